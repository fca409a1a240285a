"""Tables of groupcloud (SQLAlchemy 2, typed ``Mapped[...]`` models).

Usage counters live next to what they count: ``inventories.used`` beside the host's
capacity and ``quotas.used`` beside the company's quota. A claim is then a handful of
conditional updates in one transaction, and CHECK constraints make the database itself
refuse an over-allocation even if a code path forgot the condition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AffinityMemberRow",
    "AllocationDeviceRow",
    "AllocationItemRow",
    "AllocationRow",
    "ApiTokenRow",
    "Base",
    "CompanyRow",
    "EventRow",
    "ExternalInstanceRow",
    "GpuDeviceRow",
    "HostRow",
    "InventoryRow",
    "IpAddressRow",
    "LoanRow",
    "NetPrefixRow",
    "NetQuotaRow",
    "NetRuleRow",
    "PeeringBanRow",
    "PeeringRow",
    "PoolStateRow",
    "ProjectRow",
    "ProviderRow",
    "QuotaRow",
    "SegmentPoolRow",
    "SegmentRow",
    "ServiceInstanceRow",
    "ServiceTemplateRow",
    "ZoneBlockRow",
    "ZoneRow",
    "table_of",
]


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed (``Model.__table__`` is only a FromClause to mypy)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite drops tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; stamp rows with the runtime's clock (UTC-aware)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
Amount = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
    }


class CompanyRow(Base):
    """A company of the group (a tenant): bank, card, capital, savings ..."""

    __tablename__ = "companies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    fair_weight: Mapped[float] = mapped_column(Float, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column()


class ProjectRow(Base):
    """A team's unit of ownership inside a company; allocations belong to a project."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("company_id", "slug"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    default_priority: Mapped[int] = mapped_column(Integer, server_default=text("500"))
    created_at: Mapped[datetime] = mapped_column()
    # The data class and system type of its allocations that name none.
    default_data_class: Mapped[str] = mapped_column(String(2), server_default=text("'D3'"))
    default_system_type: Mapped[str] = mapped_column(
        String(32), server_default=text("'external_service'")
    )


class ZoneRow(Base):
    """A placement domain: shared (group pool), local (one company) or external (public cloud)."""

    __tablename__ = "zones"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner_company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    # What the placement rules for regulated data read (placement.zone_rules): ISO 3166
    # alpha-2 country, network separation, certifications passed, the data classes
    # (D1/D2/D3) it may hold, and the group's approvals of an external zone.
    country: Mapped[str | None] = mapped_column(String(2))
    internet_separated: Mapped[bool] = mapped_column(server_default=false())
    certifications: Mapped[list[str]] = mapped_column(server_default=text("'[]'"))
    data_classes: Mapped[list[str]] = mapped_column(server_default=text('\'["D1", "D2", "D3"]\''))
    approved: Mapped[bool] = mapped_column(server_default=false())
    approved_for_d3: Mapped[bool] = mapped_column(server_default=false())
    # An external zone is one region of one provider (both null for private zones).
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    region: Mapped[str | None] = mapped_column(String(63))
    # A local zone lent to other companies (their slugs): they may place there too.
    lent_to: Mapped[list[str]] = mapped_column(server_default=text("'[]'"))


class ProviderRow(Base):
    """A public cloud (or its simulation) that external zones reach: its adapter ``kind``
    (simulated, aws) and the adapter's settings (never credentials: those come from the
    process's environment, as boto3 reads them)."""

    __tablename__ = "providers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))


class ExternalInstanceRow(Base):
    """One unit of an external allocation: the instance groupcloud asked a provider for.

    The row (with its ``client_token``) is committed *before* the provider is called, so
    a crash at any point leaves a row by which the reconciler finds (adopts or deletes) the
    instance: creation is idempotent on the token, and instances are tagged with it. A
    unit re-planned after a failover keeps its old row as ``abandoned`` until the
    reconciler made sure no instance of that token lives."""

    __tablename__ = "external_instances"
    __table_args__ = (
        Index("ix_external_instances_allocation_id_unit", "allocation_id", "unit"),
        Index("ix_external_instances_state", "state"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"))
    unit: Mapped[int] = mapped_column(Integer)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    instance_type: Mapped[str] = mapped_column(String(64))
    client_token: Mapped[str] = mapped_column(String(64), unique=True)
    instance_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    price_per_hour: Mapped[str] = mapped_column(String(32))
    """KRW per hour as a decimal string (money is Decimal; SQLite has no decimal type)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ZoneBlockRow(Base):
    """An external zone blocked after its provider failed or timed out (failover): no new
    instance is asked there before ``until``; ``failures`` in a row double the wait."""

    __tablename__ = "zone_blocks"
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), primary_key=True)
    until: Mapped[datetime] = mapped_column()
    failures: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column()


class ServiceInstanceRow(Base):
    """A service of the catalog a company runs: its template, plan and parameters as
    resolved; its parts are allocations (``allocations.service_instance_id``), claimed
    together in one transaction."""

    __tablename__ = "service_instances"
    __table_args__ = (
        Index("ix_service_instances_company_id_created_at", "company_id", "created_at"),
        Index("ix_service_instances_state", "state"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    template: Mapped[str] = mapped_column(String(63))
    version: Mapped[str] = mapped_column(String(32))
    plan: Mapped[str] = mapped_column(String(63))
    parameters: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None] = mapped_column()
    # The lifecycle (issue #16): which generation of parts is current (a plan upgrade
    # claims the next one, then releases the older), the template's backend (kept so that
    # deprovisioning never depends on the template), the operation under way or last
    # done (provision, update, deprovision), why it failed, when the state last changed.
    generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    backend: Mapped[str | None] = mapped_column(String(32))
    operation: Mapped[str | None] = mapped_column(String(16))
    failure: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column()


class ServiceBindingRow(Base):
    """An app's credentials for a service instance; ``secret`` is the credentials sealed
    with the configured key (``SecretBox``), never stored in clear."""

    __tablename__ = "service_bindings"
    __table_args__ = (Index("ix_service_bindings_instance_id", "instance_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("service_instances.id"))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    state: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    rotated_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()


class ServiceTemplateRow(Base):
    """A service template an operator added to the catalog (the shipped ones live in the
    package): its YAML source as sent, parsed again when read."""

    __tablename__ = "service_templates"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))


class HostRow(Base):
    """A resource provider. Removed hosts stay as rows for history; their name can be reused."""

    __tablename__ = "hosts"
    __table_args__ = (
        Index(
            "uq_hosts_live_name",
            "name",
            unique=True,
            sqlite_where=text("state != 'removed'"),
            postgresql_where=text("state != 'removed'"),
        ),
        Index("ix_hosts_zone_id_state", "zone_id", "state"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    state: Mapped[str] = mapped_column(String(16), default="active")
    traits: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class InventoryRow(Base):
    """One resource class of one host, with what is allocated from it (``used``)."""

    __tablename__ = "inventories"
    __table_args__ = (
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint("used <= capacity", name="used_within_capacity"),
        CheckConstraint("reserved >= 0 AND reserved <= total", name="reserved_within_total"),
        CheckConstraint("allocation_ratio > 0", name="ratio_positive"),
    )
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), primary_key=True)
    resource_class: Mapped[str] = mapped_column(String(255), primary_key=True)
    total: Mapped[int] = mapped_column(Amount)
    reserved: Mapped[int] = mapped_column(Amount, default=0)
    allocation_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    capacity: Mapped[int] = mapped_column(Amount)
    used: Mapped[int] = mapped_column(Amount, default=0)


class QuotaRow(Base):
    """A company's quota for one resource class and what it uses of the group's pool.

    ``used`` is everything the company holds; ``borrowed`` is the part of it taken from
    other companies' idle nominal, and ``lent`` is the part of this company's nominal that
    others hold now. The company's own use is ``used - borrowed``, and the CHECKs state
    the sharing invariants so that no code path can break them: own use plus what is lent
    stays within nominal, borrowing within ``borrowing_limit`` and lending within
    ``lending_limit`` (NULL: no limit).
    """

    __tablename__ = "quotas"
    __table_args__ = (
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint("nominal >= 0", name="nominal_not_negative"),
        CheckConstraint("borrowed >= 0 AND borrowed <= used", name="borrowed_within_used"),
        CheckConstraint("lent >= 0", name="lent_not_negative"),
        CheckConstraint("used - borrowed + lent <= nominal", name="own_and_lent_within_nominal"),
        CheckConstraint(
            "borrowing_limit IS NULL OR borrowed <= borrowing_limit", name="borrowed_within_limit"
        ),
        CheckConstraint("lending_limit IS NULL OR lent <= lending_limit", name="lent_within_limit"),
    )
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    resource_class: Mapped[str] = mapped_column(String(255), primary_key=True)
    nominal: Mapped[int] = mapped_column(Amount)
    borrowing_limit: Mapped[int | None] = mapped_column(Amount, default=0)
    lending_limit: Mapped[int | None] = mapped_column(Amount, default=None)
    used: Mapped[int] = mapped_column(Amount, default=0)
    borrowed: Mapped[int] = mapped_column(Amount, default=0)
    lent: Mapped[int] = mapped_column(Amount, default=0)
    updated_at: Mapped[datetime] = mapped_column()


class AllocationRow(Base):
    """One consumer's claim: ``count`` units of ``resources`` each (a gang, all or nothing)."""

    __tablename__ = "allocations"
    __table_args__ = (
        # Partial: most claims carry no key and then cost no index write.
        Index(
            "uq_allocations_company_id_idempotency_key",
            "company_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_allocations_company_id_state_seq", "company_id", "state", "seq"),
        Index("ix_allocations_state_priority_seq", "state", "priority", "seq"),
        Index("ix_allocations_service_instance_id", "service_instance_id"),
        # The worker's lease and idle rounds look only at allocations that have these set.
        *(
            Index(
                f"ix_allocations_{column}",
                column,
                sqlite_where=text(f"{column} IS NOT NULL"),
                postgresql_where=text(f"{column} IS NOT NULL"),
            )
            for column in ("expires_at", "idle_since", "idle_flagged_at")
        ),
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    state: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    resources: Mapped[dict[str, Any]]
    zone: Mapped[str | None] = mapped_column(String(63))
    required_traits: Mapped[list[str]] = mapped_column(default=list)
    anti_affinity_group: Mapped[str | None] = mapped_column(String(63))
    strategy: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # Queueing: higher priority first, FIFO (seq) within a priority.
    priority: Mapped[int] = mapped_column(Integer, default=500)
    pending_reason: Mapped[str | None] = mapped_column(String(32))
    pending_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    not_before: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    # Reclaim: borrowed allocations may be taken back with notice, not before
    # started_at + minimum_runtime_s; on_reclaim says whether they queue again.
    minimum_runtime_s: Mapped[int] = mapped_column(Integer, default=0)
    on_reclaim: Mapped[str] = mapped_column(String(16), default="requeue")
    reclaim_count: Mapped[int] = mapped_column(Integer, default=0)
    reclaim_at: Mapped[datetime | None]
    reclaim_for: Mapped[str | None] = mapped_column(String(36))
    # Lease and idle reclaim.
    expires_at: Mapped[datetime | None]
    on_expiry: Mapped[str] = mapped_column(String(16), default="release")
    lease_warned_s: Mapped[int | None] = mapped_column(Integer)
    utilisation: Mapped[float | None] = mapped_column(Float)
    reported_at: Mapped[datetime | None]
    idle_since: Mapped[datetime | None]
    idle_flagged_at: Mapped[datetime | None]
    keep: Mapped[bool] = mapped_column(default=False)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Network interfaces asked for per unit: [{"subnet": name, "count": n}, ...] (the
    # company's own subnets); their addresses are claimed with the capacity.
    interfaces: Mapped[list[Any] | None] = mapped_column(JSONType)
    # GPU sharing: thousandths of ONE device per unit (0: none, or whole GPUs in
    # ``resources``), and the GPU models accepted (None: any).
    gpu_share: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    gpu_models: Mapped[list[Any] | None] = mapped_column(JSONType)
    # The placement rules' facts of the request: data class (D1/D2/D3) and system type.
    data_class: Mapped[str] = mapped_column(String(2), server_default=text("'D3'"))
    system_type: Mapped[str] = mapped_column(String(32), server_default=text("'external_service'"))
    # Zone choice (issue #15): only zones of this kind (null: any); burst to an external
    # zone when the private ones have no room; placed externally (units in
    # external_instances, quota held without hosts); flagged for repatriation.
    zone_kind: Mapped[str | None] = mapped_column(String(16))
    burst: Mapped[bool] = mapped_column(server_default=false())
    external: Mapped[bool] = mapped_column(server_default=false())
    repatriate: Mapped[bool] = mapped_column(server_default=false())
    repatriable_at: Mapped[datetime | None] = mapped_column()
    # A part of a catalog service instance (issue #16), and which part.
    service_instance_id: Mapped[str | None] = mapped_column(ForeignKey("service_instances.id"))
    service_part: Mapped[str | None] = mapped_column(String(63))
    service_generation: Mapped[int | None] = mapped_column(Integer)


class AllocationItemRow(Base):
    """What one unit of an allocation holds on one host, per resource class."""

    __tablename__ = "allocation_items"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_allocation_items_allocation_id", "allocation_id"),
        Index("ix_allocation_items_host_id", "host_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"))
    unit: Mapped[int] = mapped_column(Integer)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    resource_class: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Amount)


class GpuDeviceRow(Base):
    """A GPU device that holds shares, with its free thousandths.

    Whole GPUs are counted, not named (``inventories.used`` of ``GPU``), so only devices
    that GPU-sharing units sit on have a row: created by the claim that opens the device
    (which also counts it in ``inventories.used``), deleted by the release that frees it.
    ``device`` is the device's number on its host (0 .. GPUs - 1). The primary key makes
    two processes opening the same device collide, and the CHECK refuses an over-share,
    so a stale plan fails instead of committing."""

    __tablename__ = "gpu_devices"
    __table_args__ = (
        CheckConstraint("free_milli >= 0 AND free_milli < 1000", name="free_milli_range"),
    )
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), primary_key=True)
    device: Mapped[int] = mapped_column(Integer, primary_key=True)
    free_milli: Mapped[int] = mapped_column(Integer)


class AllocationDeviceRow(Base):
    """The GPU device one GPU-sharing unit of an allocation sits on, and its share."""

    __tablename__ = "allocation_devices"
    __table_args__ = (
        CheckConstraint("milli > 0 AND milli < 1000", name="milli_range"),
        Index("ix_allocation_devices_host_id_device", "host_id", "device"),
    )
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), primary_key=True)
    unit: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    device: Mapped[int] = mapped_column(Integer)
    milli: Mapped[int] = mapped_column(Integer)


class LoanRow(Base):
    """What an allocation admitted by borrowing took from one lender's nominal, per class:
    returned to the lender on release, and what metering bills as borrowed."""

    __tablename__ = "loans"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_loans_lender_id_resource_class", "lender_id", "resource_class"),
    )
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), primary_key=True)
    lender_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    resource_class: Mapped[str] = mapped_column(String(255), primary_key=True)
    amount: Mapped[int] = mapped_column(Amount)


class AffinityMemberRow(Base):
    """A host holding a unit of an anti-affinity group: the primary key makes two units of
    one group on one host impossible, even when two processes place them concurrently."""

    __tablename__ = "affinity_members"
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), primary_key=True)
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"))


class EventRow(Base):
    """The audit trail: every state change, written in the transaction that made it."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_company_id_id", "company_id", "id"),
        Index("ix_events_subject", "subject"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class NetPrefixRow(Base):
    """A block of address space: a group supernet (per zone), a company's VPC carved from a
    supernet, or a subnet carved from a VPC. Children are allocated with the parent row
    locked, so two carvings from one parent never overlap; the unique (parent, cidr) is the
    backstop.

    ``generation`` counts the changes of what is allocated inside the prefix (children,
    addresses). The statement that bumps it is also the lock every change takes, and it
    tells a process whether its cached free space of the prefix is still current.
    ``purpose`` says what a supernet is for: ``private`` (VPCs are carved from it) or
    ``public`` (floating addresses are handed out from it directly). ``data_class`` is a
    VPC's data classification, which peering policy may keep apart."""

    __tablename__ = "net_prefixes"
    __table_args__ = (
        UniqueConstraint("parent_id", "cidr"),
        UniqueConstraint("kind", "company_id", "name"),
        Index("ix_net_prefixes_parent_id", "parent_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("net_prefixes.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    name: Mapped[str] = mapped_column(String(63))
    cidr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(Amount, server_default=text("0"))
    purpose: Mapped[str] = mapped_column(String(16), server_default=text("'private'"))
    data_class: Mapped[str | None] = mapped_column(String(32))


class IpAddressRow(Base):
    """An address handed out in a subnet (``kind='fixed'``) or, from a public supernet, a
    floating address (``kind='floating'``, optionally ``attached_to`` a fixed one).

    Released addresses stay as rows: for ``quarantine_s`` after ``released_at`` they are
    still held (``freed_at`` is NULL), so a stale DNS or ARP entry cannot reach the next
    tenant; once freed they are history. The partial unique index lets an address be
    held by one row at a time. Addresses claimed with an allocation name it and the unit
    whose interface they are."""

    __tablename__ = "ip_addresses"
    __table_args__ = (
        Index(
            "uq_ip_addresses_held",
            "subnet_id",
            "address",
            unique=True,
            sqlite_where=text("freed_at IS NULL"),
            postgresql_where=text("freed_at IS NULL"),
        ),
        Index(
            "ix_ip_addresses_quarantine",
            "subnet_id",
            "reusable_at",
            sqlite_where=text("released_at IS NOT NULL AND freed_at IS NULL"),
            postgresql_where=text("released_at IS NOT NULL AND freed_at IS NULL"),
        ),
        Index(
            "ix_ip_addresses_allocation_id",
            "allocation_id",
            sqlite_where=text("allocation_id IS NOT NULL"),
            postgresql_where=text("allocation_id IS NOT NULL"),
        ),
        Index("ix_ip_addresses_company_id_released_at", "company_id", "released_at"),
        Index(
            "uq_ip_addresses_company_id_idempotency_key",
            "company_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subnet_id: Mapped[int] = mapped_column(ForeignKey("net_prefixes.id"))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    address: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    released_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'fixed'"))
    allocation_id: Mapped[str | None] = mapped_column(ForeignKey("allocations.id"))
    unit: Mapped[int | None] = mapped_column(Integer)
    attached_to: Mapped[int | None] = mapped_column(ForeignKey("ip_addresses.id"))
    reusable_at: Mapped[datetime | None]
    freed_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))


class SegmentPoolRow(Base):
    """A range of layer-2 segment ids an operator gives a zone: VLAN ids (1-4094) for
    subnets, or VXLAN network identifiers (1-16777215) for VPCs. ``generation`` plays the
    same part as on ``net_prefixes``."""

    __tablename__ = "net_segment_pools"
    __table_args__ = (CheckConstraint("first >= 1 AND first <= last", name="range_ordered"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    kind: Mapped[str] = mapped_column(String(8))
    first: Mapped[int] = mapped_column(Integer)
    last: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Amount, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))


class SegmentRow(Base):
    """One segment id of a pool held by a VPC (VNI) or a subnet (VLAN); released ones stay
    as history, the partial unique index holds each id once."""

    __tablename__ = "net_segments"
    __table_args__ = (
        Index(
            "uq_net_segments_held",
            "pool_id",
            "value",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        Index("ix_net_segments_prefix_id", "prefix_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("net_segment_pools.id"))
    value: Mapped[int] = mapped_column(Integer)
    prefix_id: Mapped[int] = mapped_column(ForeignKey("net_prefixes.id"))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    released_at: Mapped[datetime | None]


class NetRuleRow(Base):
    """A security rule of a VPC: allow traffic ``ingress`` (to the VPC, from ``cidr``) or
    ``egress`` (from the VPC, to ``cidr``) for a protocol and port range. What no rule
    allows is denied."""

    __tablename__ = "net_rules"
    __table_args__ = (
        CheckConstraint(
            "port_from IS NULL OR (port_from >= 0 AND port_from <= port_to AND port_to <= 65535)",
            name="ports_ordered",
        ),
        Index("ix_net_rules_vpc_id", "vpc_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vpc_id: Mapped[int] = mapped_column(ForeignKey("net_prefixes.id"))
    direction: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str] = mapped_column(String(8))
    port_from: Mapped[int | None] = mapped_column(Integer)
    port_to: Mapped[int | None] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))


class PeeringRow(Base):
    """A peering between two VPCs, requested by one side and accepted by the other.

    A request is addressed to a company slug and a VPC name (``peer_company``,
    ``peer_name``). Between two companies it is resolved to that VPC only when the other
    company accepts: until then ``vpc_b_id`` is null and ``vpc_a_id`` is the requester's
    VPC, so a request is stored, and answered, the same whether the company or the VPC
    exists or not (a company may not learn what another has, not even whether it exists).
    Once resolved, ``vpc_a_id < vpc_b_id`` whoever asked, so one pair has at most one
    live peering; one VPC has at most one live request to one name."""

    __tablename__ = "net_peerings"
    __table_args__ = (
        CheckConstraint("vpc_a_id < vpc_b_id", name="pair_ordered"),
        Index(
            "uq_net_peerings_live",
            "vpc_a_id",
            "vpc_b_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index(
            "uq_net_peerings_asked",
            "requester_vpc_id",
            "peer_company",
            "peer_name",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vpc_a_id: Mapped[int] = mapped_column(ForeignKey("net_prefixes.id"))
    vpc_b_id: Mapped[int | None] = mapped_column(ForeignKey("net_prefixes.id"))
    requester_vpc_id: Mapped[int] = mapped_column(ForeignKey("net_prefixes.id"))
    peer_company: Mapped[str] = mapped_column(String(63))
    peer_name: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column()
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    ended_at: Mapped[datetime | None]


class PeeringBanRow(Base):
    """The operator forbids peering between two zones or two data classes (``side_a <=
    side_b``; a class may be banned from peering with itself)."""

    __tablename__ = "net_peering_bans"
    __table_args__ = (
        UniqueConstraint("kind", "side_a", "side_b"),
        CheckConstraint("side_a <= side_b", name="pair_ordered"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    side_a: Mapped[str] = mapped_column(String(63))
    side_b: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))


class NetQuotaRow(Base):
    """A company's network quota of one kind (``vpcs``, ``floating_ips``,
    ``ipv4_addresses`` held in VPCs) and its use, changed by conditional updates in the
    transaction that carves or releases; ``quota_limit`` NULL means no limit."""

    __tablename__ = "net_quotas"
    __table_args__ = (
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint("quota_limit IS NULL OR quota_limit >= 0", name="limit_not_negative"),
    )
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    quota_limit: Mapped[int | None] = mapped_column(Amount)
    used: Mapped[int] = mapped_column(Amount, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column()


class ApiTokenRow(Base):
    """An API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class PoolStateRow(Base):
    """One row whose ``generation`` changes whenever hosts or inventories change, so that
    every process knows when to rebuild its capacity index."""

    __tablename__ = "pool_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))

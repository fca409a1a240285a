"""The public data contract: request and response bodies.

Shared by the services (which return these), the API (which renders them and publishes
them in OpenAPI) and the Python client (which parses responses into them), so the three
can never disagree about a field.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator

from groupcloud.domain.allocation import (
    AllocationState,
    EndReason,
    OnExpiry,
    OnReclaim,
    PendingReason,
    Strategy,
)
from groupcloud.domain.inventory import HostState, ZoneKind, check_host_name, check_traits
from groupcloud.domain.network import DataClass, NetQuotaKind, SegmentKind, SupernetPurpose
from groupcloud.domain.resources import check_amounts, check_resource_class
from groupcloud.domain.tenancy import Role, check_slug

__all__ = [
    "AddressPlan",
    "Allocation",
    "AllocationCreate",
    "AllocationUnit",
    "AllocationUpdate",
    "Company",
    "CompanyCreate",
    "CompanyUpdate",
    "Event",
    "Explanation",
    "FloatingIpCreate",
    "FloatingIpUpdate",
    "Host",
    "HostCreate",
    "InterfaceSpec",
    "Inventory",
    "InventoryIn",
    "InventoryUpdate",
    "IpAddress",
    "IpCreate",
    "NetQuota",
    "NetQuotaSet",
    "NetworkPrefix",
    "Page",
    "PlanAddress",
    "PlanSubnet",
    "PlanVpc",
    "Project",
    "ProjectCreate",
    "ProjectUpdate",
    "Quota",
    "QuotaSet",
    "SegmentPool",
    "SegmentPoolCreate",
    "SubnetCreate",
    "SupernetCreate",
    "Token",
    "TokenCreate",
    "TokenCreated",
    "UnitAddress",
    "UsageRow",
    "Utilisation",
    "UtilisationReport",
    "UtilisationReports",
    "VpcCreate",
    "Whoami",
    "Zone",
    "ZoneCreate",
]

T = TypeVar("T")

Slug = Annotated[str, AfterValidator(check_slug)]
HostName = Annotated[str, AfterValidator(check_host_name)]
Traits = Annotated[list[str], AfterValidator(check_traits)]
ResourceClass = Annotated[str, AfterValidator(check_resource_class)]
Amounts = Annotated[dict[str, StrictInt], AfterValidator(check_amounts)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` as ``cursor`` to get the next page."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Opaque cursor of the next page; null at the end."
    )


# --- tenancy ---------------------------------------------------------------------------


class CompanyCreate(_In):
    slug: Slug = Field(description="Short name used in URLs and tokens, e.g. 'bank'.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    fair_weight: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="Weight in fair sharing: a company of weight 2 may hold twice the borrowed "
        "share of a company of weight 1 before it yields to it.",
    )


class CompanyUpdate(_In):
    fair_weight: float = Field(
        gt=0, le=1000, description="Weight in fair sharing of borrowed capacity."
    )


class Company(_Out):
    slug: str
    name: str
    fair_weight: float = 1.0
    created_at: datetime


class ProjectCreate(_In):
    slug: Slug = Field(description="Short name, unique within the company, e.g. 'mobile-app'.")
    name: str = Field("", max_length=200, description="Display name (defaults to the slug).")
    default_priority: int = Field(
        500, ge=0, le=1000, description="Queue priority of its requests that give none."
    )


class ProjectUpdate(_In):
    default_priority: int = Field(
        ge=0, le=1000, description="Queue priority of its requests that give none."
    )


class Project(_Out):
    company: str
    slug: str
    name: str
    default_priority: int = 500
    created_at: datetime


class ZoneCreate(_In):
    name: Slug
    kind: ZoneKind = ZoneKind.SHARED
    owner_company: Slug | None = Field(None, description="Owning company of a local zone.")
    description: str = Field("", max_length=2000)


class Zone(_Out):
    name: str
    kind: ZoneKind
    owner_company: str | None
    description: str
    created_at: datetime


# --- hosts and inventories -------------------------------------------------------------


class InventoryIn(_In):
    total: int = Field(ge=0, description="Physical amount, e.g. 64 (VCPU) or 262144 (MEMORY_MB).")
    reserved: int = Field(0, ge=0, description="Kept back for the host itself.")
    allocation_ratio: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="Overcommit factor: capacity = floor((total - reserved) x ratio).",
    )


class Inventory(_Out):
    total: int
    reserved: int
    allocation_ratio: float
    capacity: int = Field(description="floor((total - reserved) x allocation_ratio).")
    used: int
    free: int


class HostCreate(_In):
    name: HostName
    zone: Slug = "shared"
    inventories: dict[ResourceClass, InventoryIn] = Field(
        min_length=1, description="Per resource class: total, reserved, allocation_ratio."
    )
    traits: Traits = Field(
        default_factory=list, description="Tags ('ssd') and labels ('gpu_model=V100M32')."
    )


class InventoryUpdate(_In):
    inventories: dict[ResourceClass, InventoryIn] = Field(
        min_length=1, description="The host's complete inventory; classes left out are removed."
    )


class Host(_Out):
    name: str
    zone: str
    state: HostState
    traits: list[str]
    inventories: dict[str, Inventory]
    created_at: datetime
    updated_at: datetime


# --- quotas ------------------------------------------------------------------------------


class QuotaSet(_In):
    nominal: int = Field(
        ge=0, description="Guaranteed amount of the resource class for the company."
    )
    borrowing_limit: int | None = Field(
        0,
        ge=0,
        description="How far above nominal the company may go using other companies' idle "
        "nominal; null: no limit. Left out: unchanged (0 for a new quota).",
    )
    lending_limit: int | None = Field(
        None,
        ge=0,
        description="How much of its idle nominal other companies may use; null: all of it. "
        "Left out: unchanged (null for a new quota).",
    )


class Quota(_Out):
    company: str
    resource_class: str
    nominal: int
    borrowing_limit: int | None = Field(
        description="How far above nominal the company may borrow (null: no limit)."
    )
    lending_limit: int | None = Field(
        description="How much of its idle nominal others may borrow (null: all of it)."
    )
    used: int = Field(description="Everything the company holds, borrowed part included.")
    borrowed: int = Field(description="Part of used taken from other companies' nominal.")
    lent: int = Field(description="Part of this nominal held by other companies now.")
    free: int = Field(description="Nominal neither used by the company nor lent.")
    used_pct: float


# --- allocations -------------------------------------------------------------------------


class InterfaceSpec(_In):
    """Network interfaces each unit of an allocation gets on one of the company's subnets."""

    subnet: Slug = Field(description="A subnet of the allocating company.")
    count: int = Field(1, ge=1, le=16, description="Interfaces (addresses) per unit.")


class AllocationCreate(_In):
    company: Slug | None = Field(
        None, description="Owning company; implied by company tokens, required for group-admin."
    )
    project: Slug = Field(description="Project of the company that owns the allocation.")
    resources: Amounts = Field(
        description="Amounts per unit, e.g. {'VCPU': 2, 'MEMORY_MB': 4096, 'DISK_GB': 20}.",
        examples=[{"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}],
    )
    count: int = Field(
        1, ge=1, le=1000, description="Units to place: all of them or none (a gang)."
    )
    zone: Slug | None = Field(None, description="Only place in this zone.")
    required_traits: Traits = Field(
        default_factory=list, description="Every unit's host must carry all of these traits."
    )
    anti_affinity_group: Slug | None = Field(
        None,
        description="Units of allocations of the same company in this group go to different hosts.",
    )
    strategy: Strategy = Field(Strategy.PACK, description="pack (fill hosts) or spread (balance).")
    priority: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Queue priority, higher first (default: the project's default priority).",
    )
    queue: bool = Field(
        True,
        description="Wait in the queue (202, state pending) when quota or capacity is short "
        "now; false: refuse at once with quota_exceeded or no_capacity (409).",
    )
    expires_at: datetime | None = Field(
        None, description="End of the lease (ISO 8601 with offset); none: no lease."
    )
    lease_s: int | None = Field(
        None, ge=1, description="Lease length in seconds from now (instead of expires_at)."
    )
    on_expiry: OnExpiry = Field(
        OnExpiry.RELEASE, description="At the end of the lease: release, or only notify."
    )
    minimum_runtime_s: int = Field(
        0, ge=0, description="A borrowed allocation is not reclaimed before it ran this long."
    )
    interfaces: list[InterfaceSpec] = Field(
        default_factory=list,
        max_length=8,
        description="Addresses per unit, claimed with the capacity in the same transaction "
        "and released (into quarantine) with it.",
    )
    on_reclaim: OnReclaim = Field(
        OnReclaim.REQUEUE,
        description="When borrowed capacity is reclaimed: queue again (after a backoff) or end.",
    )

    @model_validator(mode="after")
    def _one_lease(self) -> AllocationCreate:
        if self.expires_at is not None and self.lease_s is not None:
            raise ValueError("give expires_at or lease_s, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a UTC offset, e.g. 2026-12-01T09:00:00+09:00")
        return self


class AllocationUpdate(_In):
    """Change what may change on a live allocation: the keep mark and the lease."""

    keep: bool | None = Field(
        None, description="true: never release this allocation for being idle."
    )
    expires_at: datetime | None = Field(
        None, description="New end of the lease (extension is subject to quota)."
    )
    on_expiry: OnExpiry | None = None

    @model_validator(mode="after")
    def _aware(self) -> AllocationUpdate:
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a UTC offset, e.g. 2026-12-01T09:00:00+09:00")
        return self


class Utilisation(_In):
    utilisation: float = Field(ge=0, le=1, description="Busy fraction, 0 (idle) to 1 (full).")
    at: datetime | None = Field(None, description="When it was measured (default: now).")


class UtilisationReport(Utilisation):
    allocation: str = Field(description="Allocation id.")


class UtilisationReports(_In):
    reports: list[UtilisationReport] = Field(min_length=1, max_length=10_000)


class UnitAddress(_Out):
    id: int
    subnet: str
    address: str


class AllocationUnit(_Out):
    unit: int
    host: str
    addresses: list[UnitAddress] = Field(default_factory=list, description="Its interfaces.")


class Allocation(_Out):
    id: str
    company: str
    project: str
    state: AllocationState
    count: int
    resources: dict[str, int]
    zone: str | None
    required_traits: list[str]
    anti_affinity_group: str | None
    strategy: Strategy
    units: list[AllocationUnit]
    created_at: datetime
    created_by: str
    released_at: datetime | None
    released_by: str | None
    priority: int = 500
    pending_reason: PendingReason | None = Field(
        None, description="Why it waits (pending only); GET .../explain says it in words."
    )
    not_before: datetime | None = Field(None, description="Not admitted before (backoff).")
    borrowed: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Lender company -> amounts per class borrowed from it."
    )
    started_at: datetime | None = None
    expires_at: datetime | None = None
    on_expiry: OnExpiry = OnExpiry.RELEASE
    minimum_runtime_s: int = 0
    on_reclaim: OnReclaim = OnReclaim.REQUEUE
    reclaim_at: datetime | None = Field(
        None, description="When a reclaiming allocation is taken back."
    )
    reclaim_count: int = 0
    keep: bool = False
    utilisation: float | None = None
    idle_since: datetime | None = None
    idle_flagged_at: datetime | None = None
    end_reason: EndReason | None = None


class Explanation(_Out):
    """Why an allocation is where it is, in words and as data."""

    allocation: str
    state: AllocationState
    summary: str = Field(description="One paragraph in plain words.")
    reasons: list[str] = Field(description="One sentence per fact behind the summary.")
    pending_reason: PendingReason | None = None
    queue_position: int | None = Field(
        None, description="1 + pending requests admitted before this one (pending only)."
    )
    quota: list[dict[str, Any]] = Field(default_factory=list)
    placement: dict[str, Any] | None = None
    lenders: dict[str, dict[str, int]] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)


# --- usage, events, tokens ---------------------------------------------------------------


class UsageRow(_Out):
    """Capacity and use of one resource class within one scope (pool, zone, host or company).

    For a company, ``capacity`` is its nominal quota."""

    scope: Literal["pool", "zone", "host", "company"]
    name: str
    resource_class: str
    capacity: int
    used: int
    free: int
    used_pct: float


class Event(_Out):
    id: int
    at: datetime
    actor: str
    company: str | None
    kind: str
    subject: str
    data: dict[str, Any]


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=200, description="Who or what uses the token.")
    role: Role
    company: Slug | None = Field(None, description="Required for company-admin and member tokens.")


class Token(_Out):
    id: int
    name: str
    prefix: str = Field(description="First characters of the secret, to recognise it.")
    role: Role
    company: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class TokenCreated(Token):
    secret: str = Field(description="The token itself. Shown once; only its hash is stored.")


class Whoami(_Out):
    name: str
    role: Role
    company: str | None


# --- networks ----------------------------------------------------------------------------


def _check_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR prefix like 10.0.0.0/8 ({exc})") from None


def _check_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


Cidr = Annotated[str, AfterValidator(_check_cidr)]
IpAddressText = Annotated[str, AfterValidator(_check_address)]


class _Carve(_In):
    prefixlen: int | None = Field(
        None, ge=0, le=128, description="Size to carve, e.g. 20 for 'a /20' (next best fit)."
    )
    cidr: Cidr | None = Field(None, description="A specific prefix instead, e.g. 10.1.0.0/20.")

    @model_validator(mode="after")
    def _one_of(self) -> _Carve:
        if (self.prefixlen is None) == (self.cidr is None):
            raise ValueError("give exactly one of prefixlen and cidr")
        return self


class SupernetCreate(_In):
    name: Slug
    cidr: Cidr = Field(description="The group's address block, e.g. 10.0.0.0/8 or fd00::/8.")
    zone: Slug = "shared"
    purpose: SupernetPurpose = Field(
        SupernetPurpose.PRIVATE,
        description="private: VPCs are carved from it; public: floating addresses are "
        "handed out from it.",
    )


class VpcCreate(_Carve):
    name: Slug
    supernet: Slug = Field(description="Supernet to carve the VPC from.")
    company: Slug | None = Field(None, description="Owner; implied by company tokens.")
    data_class: DataClass = Field(
        DataClass.INTERNAL,
        description="Data classification; peering policy may keep classes apart.",
    )


class SubnetCreate(_Carve):
    name: Slug


class IpCreate(_In):
    address: IpAddressText | None = Field(None, description="A given address (default: next free).")
    description: str = Field("", max_length=200)


class FloatingIpCreate(_In):
    pool: Slug = Field(description="Public supernet to take the address from.")
    company: Slug | None = Field(None, description="Owner; implied by company tokens.")
    address: IpAddressText | None = Field(None, description="A given address (default: next free).")
    attach_to: int | None = Field(None, description="Id of one of the company's fixed addresses.")
    description: str = Field("", max_length=200)


class FloatingIpUpdate(_In):
    attach_to: int | None = Field(description="Fixed address to attach to; null detaches.")


class SegmentPoolCreate(_In):
    name: Slug
    zone: Slug = "shared"
    kind: SegmentKind = Field(description="vlan (ids for subnets) or vxlan (VNIs for VPCs).")
    first: int = Field(ge=1, le=2**24 - 1, description="First id of the range.")
    last: int = Field(ge=1, le=2**24 - 1, description="Last id of the range (inclusive).")

    @model_validator(mode="after")
    def _in_range(self) -> SegmentPoolCreate:
        top = 4094 if self.kind is SegmentKind.VLAN else 2**24 - 1
        if self.first > self.last:
            raise ValueError(f"first ({self.first}) is above last ({self.last})")
        if self.last > top:
            raise ValueError(f"{self.kind.value} ids go up to {top}")
        return self


class SegmentPool(_Out):
    name: str
    zone: str
    kind: SegmentKind
    first: int
    last: int
    size: int
    used: int
    free: int
    created_at: datetime
    created_by: str


class PlanAddress(_Out):
    id: int
    address: str
    kind: Literal["fixed", "floating"]
    state: Literal["held", "quarantined"]
    allocation: str | None
    unit: int | None
    attached_to: str | None = Field(description="A floating address's fixed address.")
    description: str


class PlanSubnet(_Out):
    name: str
    cidr: str
    gateway: str | None
    vlan: int | None
    addresses: list[PlanAddress]


class PlanVpc(_Out):
    name: str
    cidr: str
    supernet: str
    zone: str
    data_class: DataClass | None
    vni: int | None
    subnets: list[PlanSubnet]


class AddressPlan(_Out):
    """Everything a company holds of the group's address space, for its network team."""

    company: str
    generated_at: datetime
    vpcs: list[PlanVpc]
    floating: list[PlanAddress]


class NetQuotaSet(_In):
    limit: int | None = Field(ge=0, description="Most the company may hold; null: no limit.")


class NetQuota(_Out):
    company: str
    kind: NetQuotaKind
    limit: int | None = Field(description="Most the company may hold (null: no limit).")
    used: int
    free: int | None = Field(description="What is left under the limit (null: no limit).")


class NetworkPrefix(_Out):
    """A supernet, VPC or subnet with its utilisation."""

    name: str
    kind: Literal["supernet", "vpc", "subnet"]
    cidr: str
    parent: str | None
    company: str | None
    zone: str | None
    addresses: int
    used: int = Field(description="Addresses in allocated children (subnet: handed out).")
    free: int
    largest_free: str | None = Field(description="Largest free block, None when full.")
    quarantined: int = Field(0, description="Released addresses still held (subnets, pools).")
    data_class: DataClass | None = Field(None, description="A VPC's data classification.")
    purpose: SupernetPurpose | None = Field(None, description="A supernet's purpose.")
    segment: int | None = Field(None, description="VXLAN VNI of a VPC, VLAN id of a subnet.")
    created_at: datetime
    created_by: str


class IpAddress(_Out):
    id: int
    kind: Literal["fixed", "floating"] = "fixed"
    subnet: str = Field(description="Subnet (fixed) or public pool (floating) it comes from.")
    company: str
    address: str
    description: str
    allocation: str | None = Field(None, description="Allocation whose interface it is.")
    unit: int | None = Field(None, description="Unit of that allocation.")
    attached_to: int | None = Field(None, description="A floating address's fixed address.")
    created_at: datetime
    created_by: str
    released_at: datetime | None
    reusable_at: datetime | None = Field(None, description="End of the quarantine.")


Explanation.model_rebuild()

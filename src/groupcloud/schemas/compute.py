"""Hosts and inventories, quotas, allocations (with their explanation) and usage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, model_validator

from groupcloud.domain.allocation import (
    GPU_MILLI,
    AllocationState,
    EndReason,
    OnExpiry,
    OnReclaim,
    PendingReason,
    Strategy,
)
from groupcloud.domain.inventory import HostState, ZoneChoice
from groupcloud.domain.regulation import (
    DEFAULT_DATA_CLASS,
    DEFAULT_SYSTEM_TYPE,
    Sensitivity,
    SystemType,
)
from groupcloud.schemas.audit import Event
from groupcloud.schemas.base import (
    MAX_CLASSES,
    Amount,
    Amounts,
    Flag,
    GpuModels,
    HostName,
    Input,
    Instant,
    Int,
    Number,
    Output,
    ResourceClass,
    Seconds,
    Slug,
    Traits,
)

__all__ = [
    "Allocation",
    "AllocationCreate",
    "AllocationUnit",
    "AllocationUpdate",
    "Explanation",
    "Host",
    "HostBatch",
    "HostCreate",
    "InterfaceSpec",
    "Inventory",
    "InventoryIn",
    "InventoryUpdate",
    "Quota",
    "QuotaSet",
    "UnitAddress",
    "UsageLine",
    "Utilisation",
    "UtilisationReport",
    "UtilisationReports",
]


class InventoryIn(Input):
    total: Amount = Field(description="Physical amount, e.g. 64 (VCPU) or 262144 (MEMORY_MB).")
    reserved: Amount = Field(0, description="Kept back for the host itself.")
    allocation_ratio: Number = Field(
        1.0,
        gt=0,
        le=1000,
        description="Overcommit factor: capacity = floor((total - reserved) x ratio).",
    )


class Inventory(Output):
    total: int
    reserved: int
    allocation_ratio: float
    capacity: int = Field(description="floor((total - reserved) x allocation_ratio).")
    used: int
    free: int


class HostCreate(Input):
    name: HostName
    zone: Slug = "shared"
    inventories: dict[ResourceClass, InventoryIn] = Field(
        min_length=1,
        max_length=MAX_CLASSES,
        json_schema_extra={"additionalProperties": False},  # keys: the pattern only
        description="Per resource class: total, reserved, allocation_ratio.",
    )
    traits: Traits = Field(
        default_factory=list, description="Tags ('ssd') and labels ('gpu_model=V100M32')."
    )


class HostBatch(Input):
    hosts: list[HostCreate] = Field(
        min_length=1, max_length=10_000, description="Hosts to add in one transaction."
    )


class InventoryUpdate(Input):
    inventories: dict[ResourceClass, InventoryIn] = Field(
        min_length=1,
        max_length=MAX_CLASSES,
        json_schema_extra={"additionalProperties": False},  # keys: the pattern only
        description="The host's complete inventory; classes left out are removed.",
    )


class Host(Output):
    name: str
    zone: str
    state: HostState
    traits: list[str]
    inventories: dict[str, Inventory]
    created_at: datetime
    updated_at: datetime


class QuotaSet(Input):
    nominal: Amount = Field(description="Guaranteed amount of the resource class for the company.")
    borrowing_limit: Amount | None = Field(
        0,
        description="How far above nominal the company may go using other companies' idle "
        "nominal; null: no limit. Left out: unchanged (0 for a new quota).",
    )
    lending_limit: Amount | None = Field(
        None,
        description="How much of its idle nominal other companies may use; null: all of it. "
        "Left out: unchanged (null for a new quota).",
    )


class Quota(Output):
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


class InterfaceSpec(Input):
    """Network interfaces each unit of an allocation gets on one of the company's subnets."""

    subnet: Slug = Field(description="A subnet of the allocating company.")
    count: Int = Field(1, ge=1, le=16, description="Interfaces (addresses) per unit.")


class AllocationCreate(Input):
    company: Slug | None = Field(
        None, description="Owning company; implied by company tokens, required for group-admin."
    )
    project: Slug = Field(description="Project of the company that owns the allocation.")
    resources: Amounts = Field(
        description="Amounts per unit, e.g. {'VCPU': 2, 'MEMORY_MB': 4096, 'DISK_GB': 20}.",
        examples=[{"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}],
    )
    count: Int = Field(
        1, ge=1, le=1000, description="Units to place: all of them or none (a gang)."
    )
    zone: Slug | None = Field(
        None,
        description="Only place in this zone (refused with zone_forbidden when the placement "
        "rules for its data class and system type remove it).",
    )
    zone_kind: ZoneChoice | None = Field(
        None,
        description="Only zones of this kind: shared, local, external (a public cloud "
        "region, through its provider) or private (shared or local). Default: private "
        "zones, and external ones too when burst is set or zone names an external zone.",
    )
    burst: Flag = Field(
        False,
        description="Private first, then burst: when no private zone has room now, place "
        "in the cheapest external zone the placement rules allow (one instance per unit; "
        "cost per hour recorded). Quota applies as in private zones.",
    )
    repatriate: Flag = Field(
        False,
        description="External placement: flag the allocation (repatriable_at) when a "
        "private zone could take it again, so its owner can move it back.",
    )
    data_class: Sensitivity | None = Field(
        None,
        description="Data class of the workload: D1 non-important, D2 important, D3 personal "
        "credit information / unique identifiers. Default: the project's "
        "default_data_class, itself D3 unless set (an unlabelled workload is kept where "
        "the most sensitive data may go; private zones take every class).",
    )
    system_type: SystemType | None = Field(
        None,
        description="internal_business systems run only on internet-separated zones. "
        "Default: the project's default_system_type (external_service unless set).",
    )
    required_traits: Traits = Field(
        default_factory=list, description="Every unit's host must carry all of these traits."
    )
    anti_affinity_group: Slug | None = Field(
        None,
        description="Units of allocations of the same company in this group go to different hosts.",
    )
    strategy: Strategy = Field(Strategy.PACK, description="pack (fill hosts) or spread (balance).")
    priority: Int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Queue priority, higher first (default: the project's default priority).",
    )
    queue: Flag = Field(
        True,
        description="Wait in the queue (202, state pending) when quota or capacity is short "
        "now; false: refuse at once with quota_exceeded or no_capacity (409).",
    )
    expires_at: Instant | None = Field(
        None, description="End of the lease (ISO 8601 with offset); none: no lease."
    )
    lease_s: Seconds | None = Field(
        None, ge=1, description="Lease length in seconds from now (instead of expires_at)."
    )
    on_expiry: OnExpiry = Field(
        OnExpiry.RELEASE, description="At the end of the lease: release, or only notify."
    )
    minimum_runtime_s: Seconds = Field(
        0, description="A borrowed allocation is not reclaimed before it ran this long."
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
    gpu_share: Int = Field(
        0,
        ge=0,
        le=GPU_MILLI - 1,
        description="GPU sharing: thousandths of ONE GPU device per unit (e.g. 250: a quarter); "
        "units share devices, each unit on one device. Charged against the GPU quota as the "
        "total rounded up to whole GPUs. 0: none (ask whole GPUs with resources.GPU).",
    )
    gpu_models: GpuModels = Field(
        default_factory=list,
        description="Only hosts with one of these GPU models (hosts name theirs with the trait "
        "gpu_model=NAME); empty: any. Needs resources.GPU or gpu_share.",
    )

    @model_validator(mode="after")
    def _one_lease(self) -> AllocationCreate:
        if self.expires_at is not None and self.lease_s is not None:
            raise ValueError("give expires_at or lease_s, not both")
        return self

    @model_validator(mode="after")
    def _gpus(self) -> AllocationCreate:
        whole = self.resources.get("GPU", 0)
        if self.gpu_share and whole:
            raise ValueError("give whole GPUs (resources.GPU) or gpu_share, not both")
        if self.gpu_models and not (whole or self.gpu_share):
            raise ValueError("gpu_models needs GPUs: resources.GPU or gpu_share")
        return self


class AllocationUpdate(Input):
    """Change what may change on a live allocation: the keep mark and the lease."""

    keep: Flag | None = Field(
        None, description="true: never release this allocation for being idle."
    )
    expires_at: Instant | None = Field(
        None, description="New end of the lease (extension is subject to quota)."
    )
    on_expiry: OnExpiry | None = None


class Utilisation(Input):
    utilisation: Number = Field(ge=0, le=1, description="Busy fraction, 0 (idle) to 1 (full).")
    at: Instant | None = Field(None, description="When it was measured (default: now).")


class UtilisationReport(Utilisation):
    allocation: str = Field(description="Allocation id.")


class UtilisationReports(Input):
    reports: list[UtilisationReport] = Field(min_length=1, max_length=10_000)


class UnitAddress(Output):
    id: int
    subnet: str
    address: str


class AllocationUnit(Output):
    unit: int
    host: str
    addresses: list[UnitAddress] = Field(default_factory=list, description="Its interfaces.")
    gpu_device: int | None = Field(
        None, description="GPU sharing: the device (its number on the host) the unit shares."
    )
    zone: str | None = Field(None, description="External units: the zone (host: the same).")
    instance_type: str | None = Field(None, description="External units: the instance type.")
    instance_id: str | None = Field(
        None, description="External units: the provider's instance id (null until created)."
    )
    instance_state: str | None = Field(
        None,
        description="External units: provisioning, active, releasing, released or failed.",
    )
    price_per_hour: Decimal | None = Field(
        None, description="External units: KRW per hour of the instance type (the catalog's)."
    )


class Allocation(Output):
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
    gpu_share: int = Field(0, description="Thousandths of one GPU device per unit (0: none).")
    gpu_models: list[str] = Field(
        default_factory=list, description="GPU models accepted (empty: any)."
    )
    data_class: Sensitivity = DEFAULT_DATA_CLASS
    system_type: SystemType = DEFAULT_SYSTEM_TYPE
    zone_kind: ZoneChoice | None = None
    burst: bool = False
    external: bool = Field(False, description="Placed in an external zone (units: instances).")
    repatriate: bool = False
    repatriable_at: datetime | None = Field(
        None, description="When a private zone was found able to take it back (repatriate)."
    )
    cost_per_hour: Decimal | None = Field(
        None, description="External: KRW per hour of its live instances (sum of the units')."
    )


class Explanation(Output):
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
    zones: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per zone: allowed or not by the placement rules for regulated data, and "
        "the ids of the rules that allowed (allowed_by) or removed (removed_by) it.",
    )
    lenders: dict[str, dict[str, int]] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)


class UsageLine(Output):
    """Capacity and use of one resource class within one scope (pool, zone, host or company).

    For a company, ``capacity`` is its nominal quota."""

    scope: Literal["pool", "zone", "host", "company"]
    name: str
    resource_class: str
    capacity: int
    used: int
    free: int
    used_pct: float

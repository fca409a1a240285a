"""Allocation requests and their life cycle."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from groupcloud.domain.resources import scale

__all__ = [
    "GPU_MILLI",
    "AllocationState",
    "EndReason",
    "OnExpiry",
    "OnReclaim",
    "PendingReason",
    "Placeable",
    "PlacementSpec",
    "QueuedRequest",
    "Strategy",
    "demand_of",
    "gpu_quota",
    "spec_of",
]


GPU_MILLI = 1000
"""A GPU device in thousandths: what GPU-sharing requests ask for a part of."""


class Strategy(enum.StrEnum):
    """How to choose among hosts that fit."""

    PACK = "pack"
    """Fill the most-used hosts first: keeps whole hosts free for big and gang requests."""
    SPREAD = "spread"
    """Use the least-used hosts first: spreads load and failure risk."""


class AllocationState(enum.StrEnum):
    PENDING = "pending"
    """Queued: admitted by the scheduler when quota and capacity allow (holds nothing)."""
    ACTIVE = "active"
    """Capacity is claimed and counted against the company's quota."""
    RECLAIMING = "reclaiming"
    """Borrowed capacity its lender needs back: still held until the notice period ends."""
    RELEASED = "released"
    """Capacity and quota were returned to the pool (see ``EndReason``)."""
    PROVISIONING = "provisioning"
    """External: quota is held and the provider is creating its instances."""
    RELEASING = "releasing"
    """External: being deleted at the provider; quota is held until every instance is gone."""
    FAILED = "failed"
    """External: the provider could not create it, or its instance vanished; everything it
    held was returned (``end_reason`` says which)."""

    @property
    def holds_capacity(self) -> bool:
        return self in _HOLDING

    @property
    def finished(self) -> bool:
        """Terminal: it holds nothing and never will again."""
        return self in (AllocationState.RELEASED, AllocationState.FAILED)


_HOLDING = frozenset(
    {
        AllocationState.ACTIVE,
        AllocationState.RECLAIMING,
        AllocationState.PROVISIONING,
        AllocationState.RELEASING,
    }
)


class PendingReason(enum.StrEnum):
    """Why a request waits: a stable, machine-readable code; ``explanation`` says it in
    words (the one wording, used by ``explain`` and the docs)."""

    AWAITING_SCHEDULER = "awaiting_scheduler"
    AWAITING_RECLAIM = "awaiting_reclaim"
    BORROWING_LIMIT = "borrowing_limit"
    NO_LENDABLE = "no_lendable"
    NO_CAPACITY = "no_capacity"
    BACKOFF = "backoff"
    NO_ADDRESSES = "no_addresses"

    @property
    def explanation(self) -> str:
        """Why a request with this reason waits, as the end of "Pending: ..."."""
        return _PENDING_WORDS[self]


_PENDING_WORDS = {
    PendingReason.AWAITING_SCHEDULER: "it needs capacity borrowed from other companies, which "
    "only the scheduler lends, in fair-share order, at its next cycle",
    PendingReason.AWAITING_RECLAIM: "it fits in its company's nominal quota, but part of that "
    "nominal is lent to other companies and is being reclaimed",
    PendingReason.BORROWING_LIMIT: "it needs more than its company may borrow above its "
    "nominal quota",
    PendingReason.NO_LENDABLE: "it needs to borrow, and the other companies have not enough "
    "idle nominal to lend now",
    PendingReason.NO_CAPACITY: "quota admits it, but no hosts have room for it now",
    PendingReason.BACKOFF: "it was reclaimed a short while ago and waits out a backoff",
    PendingReason.NO_ADDRESSES: "capacity is there, but a subnet it asks interfaces on has no "
    "free address now",
}


class EndReason(enum.StrEnum):
    """Why an allocation was released."""

    RELEASED = "released"
    CANCELLED = "cancelled"
    """Released while still pending: nothing was held."""
    RECLAIMED = "reclaimed"
    EXPIRED = "expired"
    IDLE = "idle"
    PROVIDER_FAILED = "provider_failed"
    """External: no allowed zone's provider could create its instances."""
    INSTANCE_LOST = "instance_lost"
    """External: an instance vanished at the provider (found by the reconciler)."""


class OnExpiry(enum.StrEnum):
    """What happens when a lease ends."""

    RELEASE = "release"
    NOTIFY = "notify"


class OnReclaim(enum.StrEnum):
    """What happens to a borrowed allocation when its lender takes the capacity back."""

    REQUEUE = "requeue"
    """Go back to pending (after a backoff) and run again when capacity allows."""
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class PlacementSpec:
    """What the placement engine needs to know about one request (no tenancy, no storage).

    ``distinct_hosts`` puts every unit on a different host (anti-affinity); hosts in
    ``exclude_hosts`` already hold a member of the same anti-affinity group.

    GPUs: ``per_unit["GPU"]`` whole GPU devices per unit, or ``gpu_share`` thousandths of
    ONE device (GPU sharing: several units share a device; the engine tracks each device).
    ``gpu_models`` accepts any of these GPU models (hosts name theirs with the trait
    ``gpu_model=NAME``); empty accepts any.

    ``zone`` is the zone the request names; ``zones`` the zones that the placement rules
    for regulated data allow it (``placement.zone_rules``; None: no restriction). A host
    must be in both.
    """

    per_unit: dict[str, int]
    count: int = 1
    zone: str | None = None
    zones: frozenset[str] | None = None
    required_traits: tuple[str, ...] = ()
    distinct_hosts: bool = False
    exclude_hosts: frozenset[int] = field(default_factory=frozenset)
    strategy: Strategy = Strategy.PACK
    gpu_share: int = 0
    gpu_models: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 0 <= self.gpu_share < GPU_MILLI:
            raise ValueError(f"gpu_share is thousandths of one GPU: 1 to {GPU_MILLI - 1}")
        if self.gpu_share and self.per_unit.get("GPU"):
            raise ValueError("a unit asks for whole GPUs or for a share of one, not both")

    @property
    def gpus(self) -> int:
        """GPU devices one unit touches (a share touches one)."""
        return 1 if self.gpu_share else self.per_unit.get("GPU", 0)

    @property
    def gpu_milli(self) -> int:
        """Thousandths of each touched device one unit takes (0 without GPUs)."""
        if self.gpu_share:
            return self.gpu_share
        return GPU_MILLI if self.per_unit.get("GPU", 0) else 0


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A pending allocation as the scheduler sees it (a stored row, read once per cycle)."""

    seq: int
    """Arrival order (the FIFO tie-break)."""
    id: str
    company_id: int
    priority: int
    count: int
    resources: dict[str, int]
    zone: str | None
    required_traits: list[str]
    anti_affinity_group: str | None
    strategy: str
    not_before: datetime | None
    pending_reason: str | None
    created_at: datetime
    interfaces: list[dict[str, Any]] | None
    gpu_share: int = 0
    gpu_models: list[str] | None = None
    data_class: str = "D3"
    system_type: str = "external_service"
    zone_kind: str | None = None
    """Only zones of this kind (``ZoneChoice``; None: any)."""
    zones: frozenset[str] | None = None
    """The zones the placement rules allow it (set by whoever loads the queue)."""


class Placeable(Protocol):
    """What placement reads of a request, whatever holds it: the API body, a stored
    allocation row (ORM or Core), the scheduler's queue row."""

    @property
    def resources(self) -> Mapping[str, int]: ...
    @property
    def count(self) -> int: ...
    @property
    def zone(self) -> str | None: ...
    @property
    def required_traits(self) -> Sequence[str]: ...
    @property
    def anti_affinity_group(self) -> str | None: ...
    @property
    def strategy(self) -> str: ...
    @property
    def gpu_share(self) -> int: ...
    @property
    def gpu_models(self) -> Sequence[str] | None: ...


def spec_of(
    request: Placeable,
    exclude_hosts: frozenset[int] = frozenset(),
    zones: frozenset[str] | None = None,
) -> PlacementSpec:
    """The placement request of an allocation request: the one mapping used by the claim
    path, the scheduler and ``explain``, so all three place a request the same way.
    ``exclude_hosts``: hosts already holding a member of its anti-affinity group;
    ``zones``: the zones the placement rules allow it (None: any)."""
    return PlacementSpec(
        per_unit=dict(request.resources),
        count=request.count,
        zone=request.zone,
        zones=zones,
        required_traits=tuple(request.required_traits),
        distinct_hosts=request.anti_affinity_group is not None,
        exclude_hosts=exclude_hosts,
        strategy=Strategy(request.strategy),
        gpu_share=request.gpu_share,
        gpu_models=frozenset(request.gpu_models or ()),
    )


def gpu_quota(count: int, gpu_share: int) -> int:
    """GPUs of quota that ``count`` units of ``gpu_share`` thousandths are charged: their
    total, rounded up to whole GPUs per allocation (quotas count whole GPUs; four quarter
    shares in one allocation cost one GPU, four allocations of one quarter cost four)."""
    return -(-count * gpu_share // GPU_MILLI)


def demand_of(request: Placeable) -> dict[str, int]:
    """What a request is charged against its company's quota in all: its amounts per unit
    times its units, plus ``gpu_quota`` for a GPU share. The one rule for the claim path,
    the scheduler, ``explain`` and release."""
    demand = scale(request.resources, request.count)
    if request.gpu_share:
        demand["GPU"] = demand.get("GPU", 0) + gpu_quota(request.count, request.gpu_share)
    return demand

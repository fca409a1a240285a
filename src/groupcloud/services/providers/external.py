"""External placement: which external zone and instance type takes a request (the
cheapest offer in the zones the placement rules allow and failover has not blocked), and
the rows that record it.

An external allocation holds its quota from the moment it is placed (``claims.take_quota``
in the claim transaction, as a private claim holds hosts), one ``external_instances`` row
per unit with a client token, committed before any provider is called: the provisioner
then creates the instances, and whatever crashes in between, the reconciler finds every
instance again by its token and tags.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from groupcloud.db.models import ExternalInstanceRow, ProviderRow, ZoneBlockRow, ZoneRow, table_of
from groupcloud.domain.inventory import ZoneChoice, ZoneKind
from groupcloud.domain.offers import Offer
from groupcloud.errors import NoOffer, ProvidersUnavailable
from groupcloud.placement.offers import OfferRequest
from groupcloud.placement.zone_rules import ZoneDecision
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.providers.catalog import price_book

__all__ = [
    "COLUMNS",
    "INSERT",
    "ExternalPlan",
    "ExternalZone",
    "choose",
    "external_zones",
    "instance_rows",
    "token_of",
    "wants_external",
]

INSERT = insert(table_of(ExternalInstanceRow)).inline()
COLUMNS = (
    "allocation_id", "unit", "zone_id", "instance_type", "client_token", "instance_id",
    "state", "price_per_hour", "attempts", "error", "created_at", "updated_at",
)  # fmt: skip
_OFFERABLE = frozenset({"VCPU", "MEMORY_MB", "GPU", "DISK_GB"})
"""Classes an instance type can carry (disks come with the instance's volumes)."""


@dataclass(frozen=True, slots=True)
class ExternalZone:
    """An external zone that can take instances: its provider's region, and its block."""

    id: int
    name: str
    provider: str
    kind: str
    settings: Mapping[str, Any]
    region: str
    blocked_until: datetime | None


@dataclass(frozen=True, slots=True)
class ExternalPlan:
    """Where one unit (or every unit) goes: the zone and the offer chosen there."""

    zone: ExternalZone
    offer: Offer


def wants_external(
    rt: Runtime, zone: str | None, zone_kind: str | None, named_kind: ZoneKind | None
) -> bool:
    """Instances only: the request names an external zone that has a provider, or asks
    for the external kind while some external zone has one. (External zones without a
    provider hold hosts, if any: those requests are placed on hosts like private ones.)"""
    if named_kind is not ZoneKind.EXTERNAL and zone_kind != ZoneChoice.EXTERNAL.value:
        return False
    with rt.db.read() as s:
        served = {z.name for z in external_zones(s)}
    return zone in served if zone is not None else bool(served)


def external_zones(s: Session) -> list[ExternalZone]:
    """Every external zone with a provider, in name order (zones are few)."""
    rows = s.execute(
        select(ZoneRow, ProviderRow, ZoneBlockRow.until)
        .join(ProviderRow, ProviderRow.id == ZoneRow.provider_id)
        .outerjoin(ZoneBlockRow, ZoneBlockRow.zone_id == ZoneRow.id)
        .where(ZoneRow.kind == ZoneKind.EXTERNAL.value)
        .order_by(ZoneRow.name)
    ).all()
    return [
        ExternalZone(z.id, z.name, p.name, p.kind, dict(p.settings), z.region or "", until)
        for z, p, until in rows
    ]


def offer_request(resources: Mapping[str, int], gpu_models: Sequence[str]) -> list[OfferRequest]:
    """What one unit asks of an instance type (one per acceptable GPU model)."""
    models: list[str | None] = list(gpu_models) or [None]
    return [
        OfferRequest(
            vcpu=resources.get("VCPU", 0),
            memory_mb=resources.get("MEMORY_MB", 0),
            gpu=resources.get("GPU", 0),
            gpu_model=model,
        )
        for model in models
    ]


def choose(
    rt: Runtime,
    decision: ZoneDecision,
    *,
    resources: Mapping[str, int],
    gpu_share: int = 0,
    gpu_models: Sequence[str] = (),
    zone: str | None = None,
    exclude: Collection[str] = (),
    now: datetime,
) -> ExternalPlan:
    """The cheapest offer that takes one unit in an allowed, unblocked external zone
    (``zone``: only that one; ``exclude``: zones that just failed). Raises ``NoOffer``
    when none fits at all, ``ProvidersUnavailable`` when only blocked zones would."""
    with rt.db.read() as s:
        zones = external_zones(s)
    allowed = [z for z in zones if z.name in decision.allowed and (zone is None or z.name == zone)]
    considered = [z.name for z in allowed]
    odd = sorted(set(resources) - _OFFERABLE)
    if odd or gpu_share:
        what = f"resource classes {', '.join(odd)}" if odd else "GPU shares (gpu_share)"
        raise NoOffer(
            f"external zones offer whole instances: {what} stay in private zones",
            zones=considered,
        )
    open_zones = [
        z for z in allowed
        if z.name not in exclude and (z.blocked_until is None or z.blocked_until <= now)
    ]  # fmt: skip
    by_region = {(z.provider, z.region): z for z in open_zones}
    book = price_book(rt)
    found = [
        offer
        for need in offer_request(resources, gpu_models)
        for offer in book.cheapest(need, by_region.keys(), limit=1)
    ]
    if found:
        best = min(found, key=lambda o: (o.price_per_hour, o.provider, o.region, o.instance_type))
        return ExternalPlan(by_region[best.provider, best.region], best)
    if not allowed:
        raise NoOffer(
            "no external zone with a provider is allowed for this request"
            + (f" (zone {zone!r})" if zone else ""),
            zones=considered,
        )
    fits_somewhere = any(
        book.cheapest(need, {(z.provider, z.region) for z in allowed}, limit=1)
        for need in offer_request(resources, gpu_models)
    )
    if fits_somewhere:
        blocked = sorted(set(considered) - {z.name for z in open_zones})
        raise ProvidersUnavailable(
            f"the external zones that could take this request are blocked after provider "
            f"failures: {', '.join(blocked)}; retry later",
            zones=blocked,
            retryable=True,
        )
    raise NoOffer(
        f"no instance type in zone(s) {', '.join(considered)} fits one unit of {dict(resources)}",
        zones=considered,
    )


def token_of(allocation_id: str, unit: int, attempt: int) -> str:
    """The client token of one creation attempt of one unit (unique, at most 64 chars)."""
    return f"{allocation_id}-{unit}-{attempt}"


def instance_rows(
    allocation_id: str, plan: ExternalPlan, units: Sequence[int], attempt: int, now: datetime
) -> list[dict[str, Any]]:
    """The ``external_instances`` rows of ``units`` placed by ``plan`` (to be created)."""
    return [
        {
            "allocation_id": allocation_id,
            "unit": unit,
            "zone_id": plan.zone.id,
            "instance_type": plan.offer.instance_type,
            "client_token": token_of(allocation_id, unit, attempt),
            "instance_id": None,
            "state": "provisioning",
            "price_per_hour": str(plan.offer.price_per_hour),
            "attempts": 0,
            "error": None,
            "created_at": now,
            "updated_at": now,
        }
        for unit in units
    ]


def event_data(plan: ExternalPlan, count: int) -> dict[str, Any]:
    """What the allocation's events say of its external placement."""
    price = plan.offer.price_per_hour
    return {
        "zone": plan.zone.name,
        "provider": plan.zone.provider,
        "region": plan.zone.region,
        "instance_type": plan.offer.instance_type,
        "price_per_hour": str(price),
        "cost_per_hour": str(price * Decimal(count)),
    }

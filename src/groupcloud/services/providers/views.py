"""How external units read in an allocation: the instance each unit is (or is becoming)
at its zone's provider, with its price; the allocation's cost per hour is their sum."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import ExternalInstanceRow, ZoneRow
from groupcloud.schemas.compute import AllocationUnit

__all__ = ["LIVE", "cost_per_hour", "external_sentence", "external_units"]

LIVE = ("provisioning", "active", "releasing")
"""Instance row states that cost money (or may: a creation under way)."""
_SHOWN = (*LIVE, "released", "failed")
"""Every state but ``abandoned`` (a unit's earlier attempt in a failed zone)."""


def external_units(s: Session, ids: Sequence[str]) -> dict[str, list[AllocationUnit]]:
    """The external units of the allocations ``ids``, by allocation, in unit order."""
    out: dict[str, list[AllocationUnit]] = defaultdict(list)
    for row, zone in s.execute(
        select(ExternalInstanceRow, ZoneRow.name)
        .join(ZoneRow, ZoneRow.id == ExternalInstanceRow.zone_id)
        .where(ExternalInstanceRow.allocation_id.in_(ids), ExternalInstanceRow.state.in_(_SHOWN))
        .order_by(ExternalInstanceRow.allocation_id, ExternalInstanceRow.unit)
    ):
        out[row.allocation_id].append(
            AllocationUnit(
                unit=row.unit,
                host=zone,
                zone=zone,
                instance_type=row.instance_type,
                instance_id=row.instance_id,
                instance_state=row.state,
                price_per_hour=Decimal(row.price_per_hour),
            )
        )
    return out


def cost_per_hour(units: Sequence[AllocationUnit]) -> Decimal:
    """KRW per hour of the units whose instances live (or are being created or deleted)."""
    return sum(
        (
            u.price_per_hour
            for u in units
            if u.price_per_hour is not None and u.instance_state in LIVE
        ),
        Decimal(0),
    )


def external_sentence(units: Sequence[AllocationUnit]) -> str:
    """Where an external allocation runs, in one sentence (``explain``)."""
    if not units:
        return "It was placed in an external zone; no instance is recorded."
    parts = []
    for zone in sorted({u.zone or "" for u in units}):
        mine = [u for u in units if u.zone == zone]
        kinds = ", ".join(sorted({u.instance_type or "" for u in mine}))
        counted = Counter(u.instance_state or "" for u in mine)
        states = ", ".join(f"{n} {state}" for state, n in sorted(counted.items()))
        parts.append(f"{len(mine)} instance(s) of {kinds} in external zone {zone} ({states})")
    return (
        "It runs outside the group's data centres: " + "; ".join(parts)
        + f", {cost_per_hour(units):,} KRW per hour while they live."
    )  # fmt: skip

"""A tiny model of a pool for placement tests: hosts written as plain data, and the
independent arithmetic (free capacity, what fits) that the engine's answers are checked
against. Nothing here reuses the engine's own computations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from groupcloud.domain.allocation import PlacementSpec
from groupcloud.placement.index import CapacityIndex, HostRecord, InventoryRecord

__all__ = ["Host", "build", "free_units", "host", "static_fit", "total_units"]


@dataclass
class Host:
    """One host of the model: ``inventory`` maps a resource class to ``[capacity, used]``."""

    id: int
    inventory: dict[str, list[int]]
    zone: str = "shared"
    schedulable: bool = True
    traits: tuple[str, ...] = ()
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"h{self.id}"

    def free(self, rc: str) -> int:
        """Free amount of ``rc``; a class the host lacks has nothing free."""
        if rc not in self.inventory:
            return 0
        capacity, used = self.inventory[rc]
        return capacity - used


def host(
    id: int,
    *,
    zone: str = "shared",
    schedulable: bool = True,
    traits: Iterable[str] = (),
    **inventory: int | tuple[int, int],
) -> Host:
    """``host(1, VCPU=16)`` is an empty 16-VCPU host; ``VCPU=(16, 12)`` has 12 in use."""
    inv: dict[str, list[int]] = {}
    for rc, value in inventory.items():
        capacity, used = (value, 0) if isinstance(value, int) else value
        inv[rc] = [capacity, used]
    return Host(id, inv, zone=zone, schedulable=schedulable, traits=tuple(traits))


def build(hosts: Sequence[Host], *, seed: int = 0) -> CapacityIndex:
    """A fresh capacity index of the model's current state."""
    return CapacityIndex(
        [HostRecord(h.id, h.name, h.zone, h.schedulable, h.traits) for h in hosts],
        [
            InventoryRecord(h.id, rc, capacity, used)
            for h in hosts
            for rc, (capacity, used) in h.inventory.items()
        ],
        seed=seed,
    )


def static_fit(h: Host, spec: PlacementSpec) -> bool:
    """Zone and traits only: the rules that do not change with usage."""
    if spec.zone is not None and h.zone != spec.zone:
        return False
    if spec.zones is not None and h.zone not in spec.zones:
        return False
    return set(spec.required_traits) <= set(h.traits)


def _units(amounts: dict[str, int], spec: PlacementSpec) -> int:
    return min(amounts.get(rc, 0) // a for rc, a in spec.per_unit.items())


def free_units(h: Host, spec: PlacementSpec) -> int:
    """How many units of ``spec`` fit on ``h`` now, with every filter of the request applied."""
    if not h.schedulable or not static_fit(h, spec) or h.id in spec.exclude_hosts:
        return 0
    units = _units({rc: h.free(rc) for rc in h.inventory}, spec)
    return min(units, 1) if spec.distinct_hosts else units


def total_units(hosts: Iterable[Host], spec: PlacementSpec) -> int:
    """How many units hosts passing zone and traits could hold if they were empty."""
    total = 0
    for h in hosts:
        if static_fit(h, spec):
            units = _units({rc: inv[0] for rc, inv in h.inventory.items()}, spec)
            total += min(units, 1) if spec.distinct_hosts else units
    return total

"""The placement pipeline: filters, then scorers, then a pick per unit.

``place`` is the one function that wires the stages; read it top to bottom to know how a
request becomes hosts. It is pure: the same index, request and seed give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from groupcloud.domain.allocation import PlacementSpec, Strategy
from groupcloud.placement.filters import (
    AntiAffinityFilter,
    Filter,
    Mask,
    ResourceFilter,
    SchedulableFilter,
    TraitsFilter,
    ZoneFilter,
)
from groupcloud.placement.index import CapacityIndex, Floats, Rows
from groupcloud.placement.scorers import keeps_scarce_free, score

SCARCE_WEIGHT = 1.01  # x 100 points: more than any pack/spread difference (at most 100)

__all__ = [
    "Explanation",
    "FilterCount",
    "Placement",
    "Rejection",
    "explain",
    "filters_for",
    "place",
]


@dataclass(frozen=True, slots=True)
class FilterCount:
    """How many of the remaining hosts one filter removed."""

    filter: str
    reason: str
    hosts_removed: int


@dataclass(frozen=True, slots=True)
class Explanation:
    hosts_total: int
    hosts_fitting: int
    filters: tuple[FilterCount, ...]

    def summary(self) -> str:
        """Plain words: '0 of 40 hosts fit: 32 removed by resources:GPU (insufficient_gpu)'."""
        removed = [
            f"{c.hosts_removed} removed by {c.filter} ({c.reason})"
            for c in self.filters
            if c.hosts_removed
        ]
        head = f"{self.hosts_fitting} of {self.hosts_total} hosts fit"
        return f"{head}: {', '.join(removed)}" if removed else head


@dataclass(frozen=True, slots=True)
class Placement:
    """Where each unit goes, in unit order (a host may repeat unless distinct_hosts)."""

    host_ids: tuple[int, ...]
    host_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why nothing was placed. ``never_fits``: no host shape in the allowed zone with the
    required traits can take the request even when empty, so waiting will not help."""

    never_fits: bool
    units_placeable: int
    explanation: Explanation

    @property
    def message(self) -> str:
        return self.explanation.summary()


def filters_for(spec: PlacementSpec) -> list[Filter]:
    """The filter stack for one request: only the rules the request asks for."""
    stack: list[Filter] = [SchedulableFilter()]
    if spec.zone is not None:
        stack.append(ZoneFilter())
    if spec.required_traits:
        stack.append(TraitsFilter())
    if spec.exclude_hosts:
        stack.append(AntiAffinityFilter())
    stack.extend(ResourceFilter(rc) for rc in spec.per_unit)
    return stack


def place(index: CapacityIndex, spec: PlacementSpec) -> Placement | Rejection:
    """Choose hosts for every unit of ``spec`` (a gang: all units or none)."""
    if len(index) == 0:  # no hosts yet: nothing to rank (np.argmax of nothing raises)
        return _reject(index, spec, 0)
    cols = [index.rc_col.get(rc, -1) for rc in spec.per_unit]
    need = list(spec.per_unit.values())
    shared = [f for f in filters_for(spec) if not isinstance(f, AntiAffinityFilter)]

    def ranking(rows: Rows | None = None) -> Floats:
        # Stage 1 - filter: every rule of the request narrows the candidate set.
        alive: Mask = shared[0].mask(index, spec, rows).copy()
        for f in shared[1:]:
            alive &= f.mask(index, spec, rows)
        if not alive.any():
            return alive.astype(np.float64)
        # Stage 2 - score, two scorers of 0-100 each: keeping scarce classes (GPU) free for
        # the requests that need them comes first (its weight exceeds any difference of the
        # second), then pack/spread by utilisation of the requested classes after one more
        # unit. ranked = weighted score + 1 for hosts that fit, 0 for the others.
        ranked = score(spec.strategy, index, cols, need, rows)
        ranked += SCARCE_WEIGHT * keeps_scarce_free(index, list(spec.per_unit), rows)
        ranked += 1.0
        ranked *= alive
        return ranked

    # The ranking of every host for this request shape, recomputed only for hosts whose
    # usage changed since the last request of the same shape.
    shape = (spec.strategy, spec.zone, spec.required_traits, tuple(spec.per_unit.items()))
    cached = index.rankings.get(shape, ranking, ranking)
    ranked = cached
    if spec.exclude_hosts or spec.count > 1:
        ranked = cached.copy()
        ranked[[index.row_of[h] for h in spec.exclude_hosts if h in index.row_of]] = 0.0

    # Stage 3 - pick: the best per unit; rows are in seeded tie-break order, so the first
    # best row wins ties. A gang re-scores its chosen host as if the unit were there.
    placed: dict[int, int] = {}
    chosen: list[int] = []
    for _ in range(spec.count):
        j = int(np.argmax(ranked))
        if ranked[j] <= 0.0:
            return _reject(index, spec, len(chosen))
        chosen.append(j)
        if spec.count == 1:
            break
        placed[j] = k = placed.get(j, 0) + 1
        room = all(index.free[c, j] >= (k + 1) * a for c, a in zip(cols, need, strict=True))
        if spec.distinct_hosts or not room:
            ranked[j] = 0.0
        else:
            extra = sum(index.inverse[c, j] * k * a for c, a in zip(cols, need, strict=True))
            step = 100.0 * float(extra) / len(cols)
            ranked[j] = cached[j] + (step if spec.strategy is Strategy.PACK else -step)
    return Placement(
        host_ids=tuple(int(index.host_ids[r]) for r in chosen),
        host_names=tuple(index.host_names[r] for r in chosen),
    )


def explain(index: CapacityIndex, spec: PlacementSpec) -> Explanation:
    """Run the filters again, counting how many of the remaining hosts each one removes."""
    alive: Mask = np.ones(len(index), dtype=np.bool_)
    remaining = len(index)
    counts: list[FilterCount] = []
    for f in filters_for(spec):
        alive &= f.mask(index, spec)
        left = int(np.count_nonzero(alive))
        counts.append(FilterCount(f.name, f.reason, remaining - left))
        remaining = left
    return Explanation(len(index), remaining, tuple(counts))


def _reject(index: CapacityIndex, spec: PlacementSpec, placed: int) -> Rejection:
    """Decide between 'no capacity now' and 'can never fit' from host sizes alone."""
    static: Mask = np.ones(len(index), dtype=np.bool_)
    for f in filters_for(spec):
        if f.static:
            static &= f.mask(index, spec)
    return Rejection(
        never_fits=units_possible(index, spec, static) < spec.count,
        units_placeable=placed,
        explanation=explain(index, spec),
    )


def units_possible(index: CapacityIndex, spec: PlacementSpec, static: Mask) -> int:
    """How many units the hosts passing the static filters could hold if they were empty."""
    if any(rc not in index.rc_col for rc in spec.per_unit) or not static.any():
        return 0
    per_host = np.min(
        [index.capacity[index.rc_col[rc], static] // a for rc, a in spec.per_unit.items()], axis=0
    )
    if spec.distinct_hosts:
        return int(np.count_nonzero(per_host >= 1))
    return int(per_host.sum())

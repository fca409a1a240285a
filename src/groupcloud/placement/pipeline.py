"""The placement pipeline: filters, then scorers, then a pick per unit.

``place`` is the one function that wires the stages; read it top to bottom to know how a
request becomes hosts. It is pure: the same index, request and seed give the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from groupcloud.domain.allocation import GPU_MILLI, PlacementSpec, Strategy
from groupcloud.placement.candidates import Candidates
from groupcloud.placement.filters import (
    AntiAffinityFilter,
    Filter,
    GpuModelFilter,
    GpuShareFilter,
    Mask,
    ResourceFilter,
    SchedulableFilter,
    TraitsFilter,
    ZoneFilter,
)
from groupcloud.placement.index import CapacityIndex, Ints, Ranking, Rows
from groupcloud.placement.policies import Policy, for_request

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
    """Where each unit goes, in unit order (a host may repeat unless distinct_hosts);
    for requests with GPUs, also which GPU devices of its host each unit takes."""

    host_ids: tuple[int, ...]
    host_names: tuple[str, ...]
    devices: tuple[tuple[int, ...], ...] = ()

    def deltas(self, per_unit: Mapping[str, int]) -> list[tuple[int, str, int]]:
        """What it takes from each host, per class, ``per_unit`` a unit: (host id, class,
        amount) in lock order (host, class). Shares of GPU devices are not in it."""
        per_host: dict[tuple[int, str], int] = defaultdict(int)
        for host_id in self.host_ids:
            for rc, amount in per_unit.items():
                per_host[host_id, rc] += amount
        return [(h, rc, n) for (h, rc), n in sorted(per_host.items())]


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

    def detail(self, units_requested: int) -> dict[str, Any]:
        """The rejection as data (problem documents, pending details, explain): how many
        hosts there are, how many fit, and what each filter removed."""
        return {
            "hosts_total": self.explanation.hosts_total,
            "hosts_fitting": self.explanation.hosts_fitting,
            "units_requested": units_requested,
            "units_placeable": self.units_placeable,
            "filters": [
                {"filter": c.filter, "reason": c.reason, "hosts_removed": c.hosts_removed}
                for c in self.explanation.filters
            ],
        }


def filters_for(spec: PlacementSpec) -> list[Filter]:
    """The filter stack for one request: only the rules the request asks for."""
    stack: list[Filter] = [SchedulableFilter()]
    if spec.zone is not None or spec.zones is not None:
        stack.append(ZoneFilter())
    if spec.required_traits:
        stack.append(TraitsFilter())
    if spec.exclude_hosts:
        stack.append(AntiAffinityFilter())
    if spec.gpus and spec.gpu_models:
        stack.append(GpuModelFilter())
    stack.extend(ResourceFilter(rc) for rc in spec.per_unit)
    if spec.gpu_share:
        stack.append(GpuShareFilter())
    return stack


def place(
    index: CapacityIndex, spec: PlacementSpec, policy: Policy | None = None
) -> Placement | Rejection:
    """Choose hosts for every unit of ``spec`` (a gang: all units or none), ranked by
    ``policy`` (default: the one the index gives requests of this strategy)."""
    if len(index) == 0:  # no hosts yet: nothing to rank (np.argmax of nothing raises)
        return _reject(index, spec, 0)
    policy = policy or for_request(index, spec)
    shared = [f for f in filters_for(spec) if not isinstance(f, AntiAffinityFilter)]

    def ranking(rows: Rows | None = None) -> Ranking:
        return _rank(index, spec, policy, shared, rows)

    # Stages 1 and 2 - filter and score every host for this request shape; the ranking is
    # cached per shape and recomputed only for hosts whose usage changed since.
    if policy.cacheable:
        shape = (
            policy.key(index, spec),
            spec.zone,
            spec.zones,
            spec.required_traits,
            tuple(spec.per_unit.items()),
            spec.gpu_share,
            spec.gpu_models,
        )
        cached = index.rankings.get(shape, ranking, ranking)
    else:
        cached = ranking()
    # Stage 3 - pick a host per unit.
    return _pick(index, spec, policy, cached)


def _rank(
    index: CapacityIndex,
    spec: PlacementSpec,
    policy: Policy,
    shared: list[Filter],
    rows: Rows | None,
) -> Ranking:
    """1 + the policy's weighted score for every host (of ``rows``) that fits one unit, 0
    for the others; for a GPU share, also the device each host offers."""
    # Stage 1 - filter: every rule of the request narrows the candidate set.
    alive: Mask = shared[0].mask(index, spec, rows).copy()
    for f in shared[1:]:
        alive &= f.mask(index, spec, rows)
    ranked = np.zeros(len(alive))
    devices = np.full(len(alive), -1, dtype=np.intp) if spec.gpu_share else None
    if not alive.any():
        return Ranking(ranked, devices)
    # Stage 2 - score: the policy's scorers (0-100 each, weighted in tiers) rank one more
    # unit on every host that fits; a GPU share is scored on every device that has room,
    # and its host offers its best device.
    if devices is None and (rows is not None or 2 * np.count_nonzero(alive) > len(alive)):
        # A few changed rows, or most hosts fit: score them all, drop what does not fit
        # (cheaper than gathering the rows that do).
        ranked = policy.rank(Candidates(index, spec, rows)) + 1.0
        ranked *= alive
        return Ranking(ranked, devices)
    live = np.flatnonzero(alive)
    at = live if rows is None else rows[live]
    if devices is None:
        ranked[live] = policy.rank(Candidates(index, spec, at)) + 1.0
        return Ranking(ranked, devices)
    host, device = np.nonzero(_distinct_fits(index.devices[at], spec.gpu_share))
    scores = policy.rank(Candidates(index, spec, at[host], device)) + 1.0
    # By host, its best device first; of equal ones, the fullest (best fit).
    order = np.lexsort((index.devices[at[host], device], -scores, host))
    first = order[np.r_[True, host[order][1:] != host[order][:-1]]]
    ranked[live[host[first]]] = scores[first]
    devices[live[host[first]]] = device[first]
    return Ranking(ranked, devices)


def _pick(
    index: CapacityIndex, spec: PlacementSpec, policy: Policy, cached: Ranking
) -> Placement | Rejection:
    """The best host per unit; rows are in seeded tie-break order, so the first best row
    wins ties. A gang re-scores its chosen host as if the unit were there."""
    ranked = cached.scores
    if spec.exclude_hosts or spec.count > 1:
        ranked = ranked.copy()
        ranked[[index.row_of[h] for h in spec.exclude_hosts if h in index.row_of]] = 0.0
    cols = [index.rc_col.get(rc, -1) for rc in spec.per_unit]
    need = list(spec.per_unit.values())
    placed: dict[int, int] = {}
    free_devices: dict[int, Ints] = {}  # the devices a gang has left on its hosts
    chosen: list[int] = []
    chosen_devices: list[tuple[int, ...]] = []
    for _ in range(spec.count):
        j = int(np.argmax(ranked))
        if ranked[j] <= 0.0:
            return _reject(index, spec, len(chosen))
        chosen.append(j)
        if spec.gpus:
            first = cached.devices[j] if cached.devices is not None and j not in placed else -1
            left = free_devices.setdefault(j, index.devices[j].copy())
            chosen_devices.append(_take_devices(left, spec, int(first)))
        if spec.count == 1:
            break
        placed[j] = k = placed.get(j, 0) + 1
        room = all(
            index.free[c, j] >= (k + 1) * a for c, a in zip(cols, need, strict=True)
        ) and _share_fits(free_devices.get(j), spec)
        if spec.distinct_hosts or not room:
            ranked[j] = 0.0
        else:
            extra = sum(index.inverse[c, j] * k * a for c, a in zip(cols, need, strict=True))
            step = 100.0 * float(extra) / max(len(cols), 1) * policy.bottom_scale
            ranked[j] = cached.scores[j] + (step if spec.strategy is Strategy.PACK else -step)
    return Placement(
        host_ids=tuple(int(index.host_ids[r]) for r in chosen),
        host_names=tuple(index.host_names[r] for r in chosen),
        devices=tuple(chosen_devices),
    )


def _distinct_fits(devices: Ints, share: int) -> Mask:
    """Devices with room for ``share``, each free amount once per host (devices with the
    same free amount are interchangeable: scoring one of them is enough)."""
    fits: Mask = devices >= share
    for d in range(1, devices.shape[1]):
        fits[:, d] &= ~(devices[:, :d] == devices[:, d : d + 1]).any(axis=1)
    return fits


def _take_devices(left: Ints, spec: PlacementSpec, preferred: int) -> tuple[int, ...]:
    """Devices of one host for one unit, taken out of ``left``: the ranked device of a
    share (else the fullest device that fits), or the first entirely free ones."""
    if spec.gpu_share:
        if preferred < 0:
            fits = np.flatnonzero(left >= spec.gpu_share)
            preferred = int(fits[np.argmin(left[fits])])
        left[preferred] -= spec.gpu_share
        return (preferred,)
    taken = np.flatnonzero(left == GPU_MILLI)[: spec.gpus]
    left[taken] = 0
    return tuple(int(d) for d in taken)


def _share_fits(left: Ints | None, spec: PlacementSpec) -> bool:
    """Whether the devices a gang left on a host take one more GPU share (whole GPUs are
    counted like any class)."""
    return left is None or not spec.gpu_share or bool((left >= spec.gpu_share).any())


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
    classes = list(spec.per_unit) + (["GPU"] if spec.gpu_share else [])
    if any(rc not in index.rc_col for rc in classes) or not static.any():
        return 0
    per_host = np.full(int(np.count_nonzero(static)), spec.count, dtype=np.int64)  # enough
    for rc, amount in spec.per_unit.items():
        if amount:  # a class asked for with 0 limits nothing (it must only exist)
            np.minimum(per_host, index.capacity[index.rc_col[rc], static] // amount, out=per_host)
    if spec.gpu_share:  # each device holds this many shares
        shares = index.capacity[index.rc_col["GPU"], static] * (GPU_MILLI // spec.gpu_share)
        np.minimum(per_host, shares, out=per_host)
    if spec.distinct_hosts:
        return int(np.count_nonzero(per_host >= 1))
    return int(per_host.sum())

"""What a pool is expected to run, and how much of its free capacity that demand could use.

The fragmentation scorers do not judge a host by how full it is but by how much of its
free GPU capacity the *expected* requests could still use (FGD, Weng et al., ATC'23: the
"target workload"). A ``Workload`` is that expectation: request shapes with weights. The
simulator takes it from the trace it replays; the server learns it from the allocations
it holds and the requests that wait.

Three measures, all in GPUs and vectorised over many host states at once:

* ``fragmentation``: the free GPU capacity that a request drawn from the workload could
  not use (the whole free capacity if the request does not fit the host at all, else the
  devices with less free than the request needs of each), averaged over the workload.
* ``stranding``: the free GPUs that the host's free CPU and memory cannot feed at the
  workload's average ratio (VCPU and MEMORY_MB per GPU). FGD looks one request ahead; a
  host whose CPU runs out two requests later strands its last GPUs all the same.
* ``pressure``: the GPU models whose free devices are fewer than the demand that can run
  only on them (Hall's condition over the sets of models requests accept).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from groupcloud.domain.allocation import GPU_MILLI, PlacementSpec
from groupcloud.placement.index import GPU_MODEL_TRAIT, Floats, Ints

__all__ = ["Bools", "CompiledWorkload", "Demand", "Workload"]

Bools = NDArray[np.bool_]

WEIGHT_STEPS = 2**20
"""Shape weights are rounded to multiples of 1 / WEIGHT_STEPS (see ``compile``)."""
MAX_MODEL_SETS = 1024
"""Sets of GPU models checked for pressure (unions of the sets requests accept), at most."""


@dataclass(frozen=True, slots=True)
class Demand:
    """One unit of a request as the fragmentation measures see it.

    ``gpus`` devices of ``gpu_milli`` thousandths each (a share is one device of less than
    1000), on any of ``models`` (sorted; empty: any model)."""

    vcpu: int = 0
    memory_mb: int = 0
    gpus: int = 0
    gpu_milli: int = 0
    models: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: PlacementSpec) -> Demand:
        """A request's unit; a ``gpu_model=NAME`` trait it requires restricts its models."""
        models = set(spec.gpu_models)
        named = {
            t[len(GPU_MODEL_TRAIT) :] for t in spec.required_traits if t.startswith(GPU_MODEL_TRAIT)
        }
        if named:
            models = models & named if models else named
        return cls(
            vcpu=spec.per_unit.get("VCPU", 0),
            memory_mb=spec.per_unit.get("MEMORY_MB", 0),
            gpus=spec.gpus,
            gpu_milli=spec.gpu_milli,
            models=tuple(sorted(models)),
        )


class Workload:
    """Request shapes and how often each arrives (any positive weights; only their ratios
    matter)."""

    def __init__(self, demand: Mapping[Demand, float]) -> None:
        self.demand: dict[Demand, float] = {d: float(w) for d, w in demand.items() if w > 0}
        gpu = (item for item in self.demand.items() if item[0].gpus and item[0].gpu_milli)
        self.gpu_demand: tuple[tuple[Demand, float], ...] = tuple(sorted(gpu, key=_order))
        """The shapes that ask for GPUs: all the measures look at (CPU-only work counts by
        the CPU and memory it leaves to the GPUs, and is the same on every host)."""
        self.key: Hashable = self.gpu_demand
        """Equal for workloads the measures cannot tell apart (an index compiles a workload
        only when its key changes)."""

    @classmethod
    def of_specs(cls, specs: Iterable[tuple[PlacementSpec, float]]) -> Workload:
        weights: dict[Demand, float] = defaultdict(float)
        for spec, weight in specs:
            weights[Demand.of(spec)] += weight
        return cls(weights)

    def __len__(self) -> int:
        return len(self.demand)

    def key_for(self, model_ids: Mapping[str, int]) -> Hashable:
        """The key of this workload compiled for an index with these GPU models."""
        return (self.key, tuple(sorted(model_ids.items())))

    def compile(self, model_ids: Mapping[str, int]) -> CompiledWorkload | None:
        """Arrays for an index whose GPU models have ``model_ids`` (the id ``len(model_ids)``
        is a host that names no model). None when the workload asks for no GPUs."""
        gpu = self.gpu_demand
        if not gpu:
            return None
        shapes = [d for d, _ in gpu]
        weight = np.array([w for _, w in gpu], dtype=np.float64)
        # Multiples of 2**-20: every product with a free amount (whole thousandths) and
        # every sum of them is then exact, so a host's fragmentation does not depend on
        # which other hosts it is computed with (BLAS sums in any order).
        weight = np.round(weight / weight.sum() * WEIGHT_STEPS) / WEIGHT_STEPS
        milli = np.array([d.gpu_milli for d in shapes], dtype=np.int64)
        levels, level = np.unique(milli, return_inverse=True)
        allowed = np.zeros((len(shapes), len(model_ids) + 1), dtype=np.bool_)
        for s, d in enumerate(shapes):
            if d.models:
                allowed[s, [model_ids[m] for m in d.models if m in model_ids]] = True
            else:
                allowed[s] = True
        vcpu = np.array([d.vcpu for d in shapes], dtype=np.int64)
        memory = np.array([d.memory_mb for d in shapes], dtype=np.int64)
        gpus = np.array([d.gpus for d in shapes], dtype=np.int64)
        gpu_demand = weight * gpus * milli / GPU_MILLI  # GPUs per arrival, by shape
        sets, inside = _model_sets(allowed, gpu_demand)
        pairs, pair = np.unique(np.stack([level, gpus], axis=1), axis=0, return_inverse=True)
        return CompiledWorkload(
            key=self.key_for(model_ids),
            vcpu=vcpu,
            memory_mb=memory,
            gpus=gpus,
            levels=levels.astype(np.int64),
            level=level.astype(np.intp),
            allowed=allowed,
            allowed_by_model=np.ascontiguousarray(allowed.T),
            pair=pair.reshape(-1).astype(np.intp),
            pair_level=pairs[:, 0].astype(np.intp),
            pair_gpus=pairs[:, 1].astype(np.int64),
            weight=weight,
            vcpu_per_gpu=float(weight @ vcpu / gpu_demand.sum()),
            memory_per_gpu=float(weight @ memory / gpu_demand.sum()),
            model_sets=sets,
            set_demand=inside,
        )


def _order(item: tuple[Demand, float]) -> tuple[int, int, int, int, tuple[str, ...]]:
    d = item[0]
    return (d.gpus, d.gpu_milli, d.vcpu, d.memory_mb, d.models)


def _model_sets(allowed: Bools, gpu_demand: Floats) -> tuple[Bools, Floats]:
    """The sets of models that some requests are confined to (unions of their accepted
    sets, the set of all models excepted) and each set's share of the GPU demand that
    must run inside it."""
    everything = (1 << allowed.shape[1]) - 1
    masks = {sum(1 << int(i) for i in np.flatnonzero(row)) for row in allowed}
    confined = {m for m in masks if m != everything}
    closure: set[int] = set(confined)
    frontier = set(confined)
    while frontier and len(closure) < MAX_MODEL_SETS:
        grown = {a | b for a in frontier for b in confined} - closure - {everything}
        closure |= set(sorted(grown)[: MAX_MODEL_SETS - len(closure)])
        frontier = grown
    ordered = sorted(closure)
    sets = np.array(
        [[bool(m >> i & 1) for i in range(allowed.shape[1])] for m in ordered], dtype=np.bool_
    ).reshape(len(ordered), allowed.shape[1])
    within = ~(allowed[None, :, :] & ~sets[:, None, :]).any(axis=2)  # (sets, shapes)
    share = within.astype(np.float64) @ gpu_demand / gpu_demand.sum()
    return sets, share


@dataclass(frozen=True, slots=True, eq=False)
class CompiledWorkload:
    """A workload's GPU shapes as arrays for one index (see ``Workload.compile``)."""

    key: Hashable
    vcpu: Ints
    memory_mb: Ints
    gpus: Ints
    levels: Ints
    """The distinct per-device amounts (thousandths) the shapes ask for."""
    level: NDArray[np.intp]
    """Each shape's entry in ``levels``."""
    allowed: Bools
    """(shapes, models + 1): may the shape run on a host of that model id."""
    allowed_by_model: Bools
    """(models + 1, shapes): the same, one row per model (gathered per host)."""
    pair: NDArray[np.intp]
    """Each shape's (level, GPU count) pair; ``pair_level``/``pair_gpus`` describe them."""
    pair_level: NDArray[np.intp]
    pair_gpus: Ints
    weight: Floats
    vcpu_per_gpu: float
    memory_per_gpu: float
    model_sets: Bools = field(repr=False)
    """(sets, models + 1): sets of models some demand is confined to."""
    set_demand: Floats = field(repr=False)
    """Each set's share of the GPU demand that can run only inside it."""

    def fragmentation(
        self, vcpu: Ints | None, memory: Ints | None, devices: Ints, model: NDArray[np.intp]
    ) -> Floats:
        """Expected free GPUs a request of the workload could not use, per host state.

        ``vcpu``/``memory``: free amounts (None: the pool has no such class, no limit);
        ``devices``: (hosts, devices) free thousandths; ``model``: GPU model ids."""
        total = devices.sum(axis=1)
        fits = self.allowed_by_model[model]  # (hosts, shapes)
        if vcpu is not None:
            fits &= vcpu[:, None] >= self.vcpu[None, :]
        if memory is not None:
            fits &= memory[:, None] >= self.memory_mb[None, :]
        # Per distinct per-device amount: how many devices have that much free, and how
        # much free sits on devices with less (unusable by a request needing that much).
        small = devices[:, :, None] < self.levels[None, None, :]  # (hosts, devices, levels)
        enough = devices.shape[1] - small.sum(axis=1)
        short = (devices[:, :, None] * small).sum(axis=1)
        fits &= (enough[:, self.pair_level] >= self.pair_gpus[None, :])[:, self.pair]
        usable = (total[:, None] - short).astype(np.float64)[:, self.level]
        usable *= fits
        frag: Floats = (total - usable @ self.weight) / GPU_MILLI
        return frag

    def stranding(self, vcpu: Ints | None, memory: Ints | None, devices: Ints) -> Floats:
        """Free GPUs beyond what the free VCPU and memory can feed at the workload's ratio."""
        gpus: Floats = devices.sum(axis=1) / GPU_MILLI
        stranded: Floats = np.zeros_like(gpus)
        if vcpu is not None and self.vcpu_per_gpu > 0:
            np.maximum(stranded, gpus - vcpu / self.vcpu_per_gpu, out=stranded)
        if memory is not None and self.memory_per_gpu > 0:
            np.maximum(stranded, gpus - memory / self.memory_per_gpu, out=stranded)
        return stranded

    def pressure(self, free_by_model: Floats) -> Bools:
        """Models in some set whose free GPUs fall short of the demand confined to it,
        assuming the coming demand fills what is free in the workload's proportions."""
        if not len(self.set_demand):
            return np.zeros(len(free_by_model), dtype=np.bool_)
        supply = self.model_sets.astype(np.float64) @ free_by_model
        short = self.set_demand * free_by_model.sum() > supply + 1e-9
        pressed: Bools = self.model_sets[short].any(axis=0)
        return pressed

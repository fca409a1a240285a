"""Scorers: one class per rule, each ranking candidates from 0 (worst) to 100 (best).

A scorer reads a ``Candidates`` view (the hosts, or host devices, that fit one unit of the
request, before and after taking it). ``key`` names what else the score depends on
besides the candidates' own state (None: nothing), so that rankings cached per request
shape are reused only while it holds. Policies (``policies.py``) weigh scorers together.

The packing baselines follow the ATC'23 paper's simulator ("Beware of Fragmentation",
Weng et al.): best-fit, dot-product and GPU packing; ``Fragmentation`` is its FGD score.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from groupcloud.domain.allocation import GPU_MILLI, PlacementSpec, Strategy
from groupcloud.placement.candidates import Candidates
from groupcloud.placement.index import CapacityIndex, Floats, Ints, Rows
from groupcloud.placement.workload import Bools, CompiledWorkload, Demand

__all__ = [
    "SCARCE_CLASSES",
    "BestFit",
    "DotProduct",
    "Fragmentation",
    "GpuPacking",
    "KeepsScarceFree",
    "ModelReserve",
    "RandomFit",
    "Scorer",
    "Stranding",
    "Utilisation",
]

SCARCE_CLASSES = ("GPU",)
"""Classes worth keeping for the requests that need them: a host carrying them is used
by other requests only when no other host fits (as Nova's PCI weigher does)."""

PAPER_CLASSES = ("VCPU", "GPU")
"""The dimensions the paper's best-fit and dot-product baselines weigh (CPU and GPU)."""


class Scorer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dynamic(self) -> bool:
        """Whether ``key`` can be anything but None (it is asked on every request)."""
        ...

    def score(self, c: Candidates) -> Floats:
        """0-100 per candidate, higher is better: a new array (the policy scales it)."""
        ...

    def key(self, index: CapacityIndex, spec: PlacementSpec) -> Hashable:
        """What the scores depend on beyond the candidates' state (None: nothing)."""
        ...

    def active(self, index: CapacityIndex, spec: PlacementSpec) -> bool:
        """False when every candidate would score the same (the policy skips it)."""
        ...


class Always:
    """For scorers that depend on nothing but the candidates and tell them apart always."""

    dynamic = False

    def key(self, index: CapacityIndex, spec: PlacementSpec) -> Hashable:
        return None

    def active(self, index: CapacityIndex, spec: PlacementSpec) -> bool:
        return True


def _asks(spec: PlacementSpec, rc: str) -> bool:
    return rc in spec.per_unit or (rc == "GPU" and spec.gpus > 0)


def _neutral(c: Candidates) -> Floats:
    return np.full(len(c), 50.0)


def _gain(delta: Floats, span: int) -> Floats:
    """A change in GPUs (negative is good) as 0-100: 50 for no change, 100 for freeing
    ``span`` GPUs of waste, 0 for adding as much."""
    scaled: Floats = 50.0 - 50.0 * np.clip(delta / max(span, 1), -1.0, 1.0)
    return scaled


def _state(index: CapacityIndex, rows: Rows) -> tuple[Ints | None, Ints | None, Ints]:
    """Free VCPU, memory (None: the pool has no such class) and GPU devices of ``rows``."""
    vcpu, memory = (index.rc_col.get(rc) for rc in ("VCPU", "MEMORY_MB"))
    return (
        None if vcpu is None else index.free[vcpu][rows],
        None if memory is None else index.free[memory][rows],
        index.devices[rows],
    )


def _gpu_after(c: Candidates) -> Floats:
    """Free GPUs (in devices, shares counted as parts) of each candidate after the unit."""
    gpus: Floats = c.devices_after.sum(axis=1) / GPU_MILLI
    return gpus


class KeepsScarceFree(Always):
    """100 for hosts without any scarce class the request does not ask for, else 0.

    CPU-only work on a GPU host uses up the CPU and memory that the host's GPUs need to be
    usable at all, so GPU hosts are the last choice for such work."""

    name = "keeps_scarce_free"

    def active(self, index: CapacityIndex, spec: PlacementSpec) -> bool:
        return any(rc in index.rc_col and not _asks(spec, rc) for rc in SCARCE_CLASSES)

    def score(self, c: Candidates) -> Floats:
        keeps = np.full(len(c), 100.0)
        for rc in SCARCE_CLASSES:
            col = c.index.rc_col.get(rc)
            if col is None or _asks(c.spec, rc):
                continue
            keeps[c.index.capacity[col][c.rows] > 0] = 0.0
        return keeps


@dataclass(frozen=True, slots=True)
class Utilisation(Always):
    """Pack prefers hosts that end up fullest, spread the emptiest: the mean share of
    capacity in use after one more unit, over the requested classes."""

    strategy: Strategy

    @property
    def name(self) -> str:
        return self.strategy.value

    def score(self, c: Candidates) -> Floats:
        index, rows = c.index, c.rows
        needs = [(index.rc_col[rc], amount) for rc, amount in c.spec.per_unit.items()]
        if not needs:
            return _neutral(c)
        (col, amount), *more = needs
        total: Floats = index.share[col][rows] + index.inverse[col][rows] * amount
        for col, amount in more:
            total += index.share[col][rows]
            total += index.inverse[col][rows] * amount
        total *= 100.0 / len(needs)
        if self.strategy is Strategy.PACK:
            return total
        spread: Floats = 100.0 - total
        return spread


class BestFit(Always):
    """The host with the least free CPU and GPU left after the unit (equal weights, each
    relative to the largest host of the pool): the paper's best-fit baseline."""

    name = "best_fit"

    def score(self, c: Candidates) -> Floats:
        left = np.zeros(len(c))
        dims = 0
        for rc in PAPER_CLASSES:
            col = c.index.rc_col.get(rc)
            if col is None:
                continue
            largest = float(max(int(c.index.capacity[col].max()), 1))
            after = _gpu_after(c) if rc == "GPU" else c.free_after(rc)
            assert after is not None
            left += after / largest
            dims += 1
        if not dims:
            return _neutral(c)
        fit: Floats = 100.0 * (1.0 - left / dims)
        return fit


class DotProduct(Always):
    """The smallest dot product of the host's free CPU and GPU with the request (both
    relative to the host's capacity; for a GPU share, the device it would take): the
    paper's dot-product baseline (after Tetris)."""

    name = "dot_product"

    def score(self, c: Candidates) -> Floats:
        index, spec = c.index, c.spec
        dot = np.zeros(len(c))
        for rc in PAPER_CLASSES:
            col = index.rc_col.get(rc)
            if col is None:
                continue
            inverse = index.inverse[col][c.rows]
            if rc == "GPU" and c.device is not None:
                free = c.devices[np.arange(len(c)), c.device] / GPU_MILLI
                dot += free * spec.gpu_share / GPU_MILLI
                continue
            free_now = c.free(rc)
            assert free_now is not None
            dot += (free_now * inverse) * (spec.per_unit.get(rc, 0) * inverse)
        product: Floats = 100.0 * (1.0 - dot / len(PAPER_CLASSES))
        return product


class GpuPacking(Always):
    """GPUs already in use first: a shared device that fits (90-100, the fuller the
    better), then free devices of a host already in use (33-50, the fewer the better),
    then an idle host (up to 33, smaller hosts first): the paper's GPU-packing baseline."""

    name = "gpu_packing"

    def score(self, c: Candidates) -> Floats:
        spec = c.spec
        if not spec.gpus:
            return np.zeros(len(c))
        devices = c.devices
        whole = np.count_nonzero(devices == GPU_MILLI, axis=1)
        capacity = c.index.capacity[c.index.gpu_col][c.rows] if c.index.gpu_col is not None else 0
        idle = np.maximum(33 - whole, whole).astype(np.float64)
        if c.device is not None:
            left = devices[np.arange(len(c)), c.device]
            shared = np.maximum(100.0 - left * 100 // GPU_MILLI / 10.0, 50.0)
            used_host = np.where(left < GPU_MILLI, shared, 49.0)
        else:
            used_host = np.full(len(c), float(max(50 - spec.gpus, 33)))
        packing: Floats = np.where(whole >= capacity, idle, used_host)
        return packing


@dataclass(slots=True)
class RandomFit(Always):
    """A uniformly random host among those that fit (seeded, so runs repeat)."""

    seed: int = 0
    name: str = "random"
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def score(self, c: Candidates) -> Floats:
        draws: Floats = self._rng.random(len(c)) * 100.0
        return draws


class _WasteGrowth(Always):
    """GPUs one measure calls wasted for the pool's workload, before and after the unit:
    the host where the waste grows least scores best."""

    def active(self, index: CapacityIndex, spec: PlacementSpec) -> bool:
        return index.workload is not None and index.gpu_col is not None

    def measure(
        self, workload: CompiledWorkload, vcpu: Ints | None, memory: Ints | None,
        devices: Ints, model: Rows,
    ) -> Floats:  # fmt: skip
        raise NotImplementedError

    def before(self, workload: CompiledWorkload, c: Candidates) -> Floats:
        return self.measure(workload, c.free("VCPU"), c.free("MEMORY_MB"), c.devices, c.model)

    def score(self, c: Candidates) -> Floats:
        workload = c.index.workload
        if workload is None or c.index.gpu_col is None:
            return _neutral(c)
        after = self.measure(
            workload, c.free_after("VCPU"), c.free_after("MEMORY_MB"), c.devices_after, c.model
        )
        return _gain(after - self.before(workload, c), c.index.devices.shape[1])


class Fragmentation(_WasteGrowth):
    """Fragmentation gradient descent (FGD): the host whose expected unusable free GPU
    capacity, measured against the pool's workload, grows least with the unit."""

    name = "fragmentation"

    def measure(
        self, workload: CompiledWorkload, vcpu: Ints | None, memory: Ints | None,
        devices: Ints, model: Rows,
    ) -> Floats:  # fmt: skip
        return workload.fragmentation(vcpu, memory, devices, model)

    def before(self, workload: CompiledWorkload, c: Candidates) -> Floats:
        """A host's fragmentation now depends on its state only: kept until it changes."""
        index = c.index
        return index.memo(
            self.name,
            c.row_ids,
            lambda rows: self.measure(workload, *_state(index, rows), index.gpu_model[rows]),
        )


class Stranding(_WasteGrowth):
    """The host whose free GPUs stranded by too little free CPU or memory (at the
    workload's VCPU and memory per GPU) grow least with the unit."""

    name = "stranding"

    def measure(
        self, workload: CompiledWorkload, vcpu: Ints | None, memory: Ints | None,
        devices: Ints, model: Rows,
    ) -> Floats:  # fmt: skip
        return workload.stranding(vcpu, memory, devices)


class ModelReserve(Always):
    """Keep GPU models under pressure (fewer free devices than the demand that can run
    only on them) for that demand: a request that accepts other models scores its GPUs on
    a pressed model as waste."""

    name = "model_reserve"
    dynamic = True

    def active(self, index: CapacityIndex, spec: PlacementSpec) -> bool:
        workload = index.workload
        return workload is not None and spec.gpus > 0 and len(workload.set_demand) > 0

    def score(self, c: Candidates) -> Floats:
        pressed = self._pressed(c.index, c.spec)
        if pressed is None:
            return _neutral(c)
        waste = c.spec.gpus * c.spec.gpu_milli / GPU_MILLI * pressed[c.model]
        return _gain(waste.astype(np.float64), c.index.devices.shape[1])

    def key(self, index: CapacityIndex, spec: PlacementSpec) -> Hashable:
        pressed = self._pressed(index, spec)
        return None if pressed is None else tuple(np.flatnonzero(pressed).tolist())

    @staticmethod
    def _pressed(index: CapacityIndex, spec: PlacementSpec) -> Bools | None:
        workload = index.workload
        if workload is None or not spec.gpus or not len(workload.set_demand):
            return None
        pressed = workload.pressure(index.gpu_free_by_model())
        models = Demand.of(spec).models
        accepts = np.ones(len(pressed), dtype=np.bool_)
        if models:
            accepts[:] = False
            accepts[[index.gpu_model_ids[m] for m in models if m in index.gpu_model_ids]] = True
        if not (accepts & ~pressed).any():
            return None  # nowhere else to go: the pressed models are its own
        return pressed

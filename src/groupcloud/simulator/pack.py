"""The packing experiment of the ATC'23 paper ("Beware of Fragmentation"), on the engine.

Tasks arrive one by one into the empty cluster, drawn from the pod list in seeded random
order (the whole list, then again in a new order, as often as needed: the paper's
"inflation"); nothing departs. Each is placed by the placement pipeline with the chosen
policy, or fails when no node fits it. Arrivals stop once the GPU demand that arrived
reaches the cluster's GPU capacity; the result is the share of GPU capacity allocated
then, and the curve of allocated against arrived demand on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from groupcloud.domain.allocation import GPU_MILLI
from groupcloud.placement.pipeline import Placement, place
from groupcloud.placement.policies import DEFAULT_POLICY, policy
from groupcloud.simulator.trace import Node, Pod, TraceError, build_index, workload_of

__all__ = ["PackResult", "pack"]

CURVE_STEP = 0.01
"""The curve has a point each time arrived demand crosses another 1 % of capacity."""


@dataclass(frozen=True, slots=True)
class PackResult:
    policy: str
    gpu_capacity: int
    """GPUs in the cluster."""
    gpu_allocated: float
    """GPUs allocated when arrivals stopped (shares count as parts of a GPU)."""
    failed_tasks: int
    tasks: int
    """Tasks that arrived."""
    curve: tuple[tuple[float, float], ...]
    """(arrived demand, allocated) as shares of GPU capacity."""

    @property
    def allocation_ratio(self) -> float:
        return self.gpu_allocated / self.gpu_capacity

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "gpu_capacity": self.gpu_capacity,
            "gpu_allocated": round(self.gpu_allocated, 3),
            "allocation_ratio": round(self.allocation_ratio, 6),
            "failed_tasks": self.failed_tasks,
            "curve": [[a, b] for a, b in self.curve],
        }


def pack(
    nodes: Sequence[Node],
    pods: Sequence[Pod],
    policy_name: str = DEFAULT_POLICY,
    *,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> PackResult:
    """Fill the empty cluster of ``nodes`` with arrivals drawn from ``pods``.

    ``seed`` fixes the arrival order, the engine's tie-breaks and the random policy's
    draws: a run repeats exactly. ``progress`` is told the arrived share now and then."""
    capacity = sum(n.gpus for n in nodes) * GPU_MILLI
    if not capacity:
        raise TraceError("the nodes have no GPUs: nothing to pack")
    demand = np.array([p.gpu_demand for p in pods], dtype=np.int64)
    if not demand.any():
        raise TraceError("the pods ask for no GPUs: arrivals would never reach capacity")
    chosen = policy(policy_name, seed)
    index = build_index(nodes, seed=seed, workload=workload_of(pods))
    specs = [p.spec() for p in pods]
    rng = np.random.default_rng(seed)
    order, at = rng.permutation(len(pods)), 0
    arrived = allocated = failed = tasks = 0
    curve: list[tuple[float, float]] = [(0.0, 0.0)]
    mark = 1
    while arrived < capacity:
        if at == len(order):
            order, at = rng.permutation(len(pods)), 0
        task = int(order[at])
        at += 1
        tasks += 1
        arrived += int(demand[task])
        outcome = place(index, specs[task], chosen)
        if isinstance(outcome, Placement):
            index.apply_placement(specs[task], outcome)
            allocated += int(demand[task])
        else:
            failed += 1
        if arrived >= mark * CURVE_STEP * capacity:
            curve.append((round(arrived / capacity, 4), round(allocated / capacity, 4)))
            mark = int(arrived / (CURVE_STEP * capacity)) + 1
            if progress is not None:
                progress(min(arrived / capacity, 1.0))
    return PackResult(
        policy=chosen.name,
        gpu_capacity=capacity // GPU_MILLI,
        gpu_allocated=allocated / GPU_MILLI,
        failed_tasks=failed,
        tasks=tasks,
        curve=tuple(curve),
    )

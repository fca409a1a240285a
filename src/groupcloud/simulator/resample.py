"""What-if pod lists: a trace's tasks redrawn to stress one kind of demand.

The openb trace comes with such variants of its default list (gpushare40: GPU-sharing
tasks carry 40 % of the GPU demand; multigpu30, gpuspec33, cpu050). ``resample`` makes
more of them, from any pod list, so that a policy can be judged on lists it was never
run on:

* ``bootstrap``: as many tasks as the list, drawn with replacement (``percent`` unused);
* ``gpushare``: the GPU tasks redrawn so that shares of one GPU carry ``percent`` % of
  the GPU demand;
* ``multigpu``: the same, for tasks of two or more GPUs;
* ``gpuspec``: ``percent`` % of the GPU tasks restricted to GPU models (the restrictions
  of the list's own restricted tasks if it has some, else one model each, drawn in
  proportion to the GPUs of the nodes that could hold the task);
* ``cpu``: ``percent`` % as many CPU-only tasks as the list has (over 100: more).

CPU-only tasks are kept as they are except by ``cpu``; the number of GPU tasks is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from groupcloud.simulator.trace import Node, Pod, TraceError

__all__ = ["KINDS", "resample"]

KINDS = ("bootstrap", "gpushare", "multigpu", "gpuspec", "cpu")


def resample(
    pods: Sequence[Pod],
    kind: str,
    percent: float = 0.0,
    *,
    seed: int = 0,
    nodes: Sequence[Node] = (),
) -> list[Pod]:
    """A new pod list of ``kind`` (see the module); seeded, so it can be made again."""
    rng = np.random.default_rng(seed)
    if kind == "bootstrap":
        return _draw(rng, pods, len(pods))
    if not 0 <= percent <= (float("inf") if kind == "cpu" else 100):
        raise TraceError(f"percent must be 0-100 (any positive for cpu), not {percent}")
    cpu = [p for p in pods if not p.num_gpu]
    gpu = [p for p in pods if p.num_gpu]
    if kind == "cpu":
        return gpu + _draw(rng, cpu, round(len(cpu) * percent / 100))
    if kind == "gpushare":
        return cpu + _mix(rng, gpu, lambda p: p.gpu_milli < 1000, percent / 100)
    if kind == "multigpu":
        return cpu + _mix(rng, gpu, lambda p: p.num_gpu > 1, percent / 100)
    if kind == "gpuspec":
        return cpu + _restrict(rng, gpu, percent / 100, nodes)
    raise TraceError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def _draw(rng: np.random.Generator, pods: Sequence[Pod], n: int) -> list[Pod]:
    if not pods:
        return []
    return [pods[int(i)] for i in rng.integers(0, len(pods), n)]


def _mix(
    rng: np.random.Generator, gpu: Sequence[Pod], chosen: Callable[[Pod], bool], share: float
) -> list[Pod]:
    """As many GPU tasks, drawn so that the ``chosen`` kind carries ``share`` of the GPU
    demand (in expectation: counts from the two kinds' mean demand)."""
    ours = [p for p in gpu if chosen(p)]
    others = [p for p in gpu if not chosen(p)]
    if not ours or (not others and share < 1):
        raise TraceError("the pod list has too few tasks of that kind to redraw")
    mean_ours = float(np.mean([p.gpu_demand for p in ours]))
    mean_others = float(np.mean([p.gpu_demand for p in others])) if others else 0.0
    # n_ours * mean_ours = share * (n_ours * mean_ours + (n - n_ours) * mean_others)
    n = len(gpu)
    if share >= 1:
        n_ours = n
    else:
        n_ours = round(share * n * mean_others / (mean_ours * (1 - share) + share * mean_others))
    return _draw(rng, ours, n_ours) + _draw(rng, others, n - n_ours)


def _restrict(
    rng: np.random.Generator, gpu: Sequence[Pod], share: float, nodes: Sequence[Node]
) -> list[Pod]:
    specs = [p.gpu_spec for p in gpu if p.gpu_spec]
    if not specs and not nodes:
        raise TraceError("restricting GPU models needs the nodes (their models)")
    out = [replace(p, gpu_spec=()) for p in gpu]
    for i in rng.choice(len(out), round(share * len(out)), replace=False):
        task = out[int(i)]
        spec = specs[int(rng.integers(len(specs)))] if specs else _a_model_for(rng, task, nodes)
        out[int(i)] = replace(task, gpu_spec=spec)
    return out


def _a_model_for(rng: np.random.Generator, task: Pod, nodes: Sequence[Node]) -> tuple[str, ...]:
    """One model, in proportion to the GPUs of the nodes that could hold ``task``."""
    gpus: dict[str, int] = {}
    for n in nodes:
        fits = n.gpus >= task.num_gpu and n.cpu_milli >= task.cpu_milli
        if n.model and fits and n.memory_mib >= task.memory_mib:
            gpus[n.model] = gpus.get(n.model, 0) + n.gpus
    if not gpus:
        return ()
    models = sorted(gpus)
    weights = np.array([gpus[m] for m in models], dtype=np.float64)
    return (models[int(rng.choice(len(models), p=weights / weights.sum()))],)

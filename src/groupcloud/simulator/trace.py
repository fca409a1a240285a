"""GPU cluster traces in the format of Alibaba's cluster-trace-gpu-v2023 ("openb").

Nodes: ``sn, cpu_milli, memory_mib, gpu, model``. Pods: ``name, cpu_milli, memory_mib,
num_gpu, gpu_milli`` and optionally ``gpu_spec`` (allowed GPU models separated by ``|``);
other columns (qos, phase, times) are ignored here. ``gpu_milli`` is the share of ONE GPU
for GPU-sharing pods (``num_gpu`` 1, ``gpu_milli`` below 1000) and 1000 for whole GPUs.

The data of the issue lives in ``../shared/data/traces/alibaba-openb-2023`` relative to the
repository; ``GROUPCLOUD_TRACE_DIR`` points elsewhere.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from groupcloud.domain.allocation import GPU_MILLI, PlacementSpec
from groupcloud.placement.index import GPU_MODEL_TRAIT, CapacityIndex, HostRecord, InventoryRecord
from groupcloud.placement.workload import Workload

__all__ = [
    "DEFAULT_TRACE_DIR",
    "Node",
    "Pod",
    "TraceError",
    "build_index",
    "read_nodes",
    "read_pods",
    "trace_dir",
    "workload_of",
]

DEFAULT_TRACE_DIR = Path("../shared/data/traces/alibaba-openb-2023")
"""Where the openb trace is, relative to the repository root."""

SIM_ZONE = "sim"


def trace_dir() -> Path:
    """``GROUPCLOUD_TRACE_DIR``, else ``DEFAULT_TRACE_DIR`` (relative to the working
    directory: run from the repository root)."""
    return Path(os.environ.get("GROUPCLOUD_TRACE_DIR") or DEFAULT_TRACE_DIR)


class TraceError(ValueError):
    """A trace file that cannot be read: missing, a missing column, a bad value."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int = 0
    gpu_milli: int = 0
    gpu_spec: tuple[str, ...] = ()

    @property
    def gpu_demand(self) -> int:
        """GPU capacity the pod takes, in thousandths of a GPU."""
        if not self.num_gpu:
            return 0
        return self.gpu_milli if self.gpu_milli < GPU_MILLI else self.num_gpu * GPU_MILLI

    def spec(self) -> PlacementSpec:
        """The placement request of one pod (CPU in thousandths, memory in MiB, as in the
        trace; the engine compares shares, so the units need only agree with the nodes')."""
        per_unit = {"VCPU": self.cpu_milli, "MEMORY_MB": self.memory_mib}
        if not self.num_gpu:
            return PlacementSpec(per_unit=per_unit)
        if self.gpu_milli < GPU_MILLI:
            return PlacementSpec(
                per_unit=per_unit, gpu_share=self.gpu_milli, gpu_models=frozenset(self.gpu_spec)
            )
        per_unit["GPU"] = self.num_gpu
        return PlacementSpec(per_unit=per_unit, gpu_models=frozenset(self.gpu_spec))


def _rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise TraceError(f"cannot read {path}: {e.strerror}") from e
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
        yield from enumerate(reader, start=2)


def _int(path: Path, line: int, row: dict[str, str], column: str) -> int:
    value = (row.get(column) or "").strip()
    try:
        number = int(value) if value else 0
    except ValueError:
        raise TraceError(f"{path}:{line}: {column} is not a whole number: {value!r}") from None
    if number < 0:
        raise TraceError(f"{path}:{line}: {column} is negative: {number}")
    return number


def read_nodes(path: Path) -> list[Node]:
    nodes = [
        Node(
            name=row["sn"],
            cpu_milli=_int(path, line, row, "cpu_milli"),
            memory_mib=_int(path, line, row, "memory_mib"),
            gpus=_int(path, line, row, "gpu"),
            model=(row.get("model") or "").strip() or None,
        )
        for line, row in _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu"))
    ]
    if not nodes:
        raise TraceError(f"{path}: no nodes")
    return nodes


def read_pods(path: Path) -> list[Pod]:
    pods: list[Pod] = []
    for line, row in _rows(path, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")):
        num_gpu = _int(path, line, row, "num_gpu")
        gpu_milli = _int(path, line, row, "gpu_milli")
        if num_gpu and not 0 < gpu_milli <= GPU_MILLI:
            raise TraceError(f"{path}:{line}: gpu_milli must be 1-1000 with GPUs: {gpu_milli}")
        if num_gpu > 1 and gpu_milli < GPU_MILLI:
            raise TraceError(f"{path}:{line}: a share of a GPU is for one GPU, not {num_gpu}")
        spec = (row.get("gpu_spec") or "").strip()
        pods.append(
            Pod(
                name=row["name"],
                cpu_milli=_int(path, line, row, "cpu_milli"),
                memory_mib=_int(path, line, row, "memory_mib"),
                num_gpu=num_gpu,
                gpu_milli=gpu_milli if num_gpu else 0,
                gpu_spec=tuple(sorted({m for m in spec.split("|") if m})) if num_gpu else (),
            )
        )
    if not pods:
        raise TraceError(f"{path}: no pods")
    return pods


def workload_of(pods: Iterable[Pod]) -> Workload:
    """The pod list as the workload the fragmentation scorers measure against (each pod
    shape weighted by how often it occurs, as FGD's "target workload")."""
    return Workload.of_specs((pod.spec(), 1.0) for pod in pods)


def build_index(
    nodes: Sequence[Node],
    *,
    seed: int = 0,
    workload: Workload | None = None,
    pack_policy: str | None = None,
) -> CapacityIndex:
    """An empty pool of ``nodes`` as the placement engine's capacity index."""
    hosts = [
        HostRecord(i, n.name, SIM_ZONE, True, (f"{GPU_MODEL_TRAIT}{n.model}",) if n.model else ())
        for i, n in enumerate(nodes)
    ]
    inventories = [
        InventoryRecord(i, rc, amount, 0)
        for i, n in enumerate(nodes)
        for rc, amount in (("VCPU", n.cpu_milli), ("MEMORY_MB", n.memory_mib), ("GPU", n.gpus))
        if amount or rc != "GPU"
    ]
    # A trace has a few hundred pod shapes: keep a ranking for each.
    return CapacityIndex(
        hosts, inventories, seed=seed, workload=workload, pack_policy=pack_policy, rankings=4096
    )

"""Small traces written as CSV for the simulator tests, and where the real one lives."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from groupcloud.simulator.trace import DEFAULT_TRACE_DIR

__all__ = ["NODE_COLUMNS", "POD_COLUMNS", "REAL_TRACE", "write_csv"]

ROOT = Path(__file__).resolve().parents[2]
REAL_TRACE = ROOT / DEFAULT_TRACE_DIR
"""The openb trace, ../shared/data/traces/alibaba-openb-2023 from the repository root."""

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec")


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    lines = [",".join(columns), *(",".join(str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

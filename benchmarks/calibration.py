"""The CPU calibration every benchmark records beside its figures."""

from __future__ import annotations

import time

__all__ = ["cpu_calibration_ms"]


def cpu_calibration_ms() -> float:
    """Time of a fixed pure-Python loop: the speed of this machine right now. Shared VMs
    drift; a run whose calibration is slower ran on a slower machine."""
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return round((time.perf_counter() - started) * 1000, 1)

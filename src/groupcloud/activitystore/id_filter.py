"""A pre-filter of the de-dup index: the 64-bit hashes of every committed event id, in
memory, for the writer's lifetime.

Why: the exact check is an anti-join of the batch against every stored id, whose cost
grows with the store (a scan of 100M ids for every batch). A batch of new events, the
usual case, has no id whose hash is stored; then the anti-join is skipped. When some
hash is found (a retried file, or a rare 64-bit collision) the exact anti-join runs as
before, so the filter can only save work, never change a result.

The hashes come from DuckDB's ``hash()`` within one process (its value may change between
DuckDB versions, so nothing of it is stored): the set is read from the index when a
writer first meets a large batch. Sorted runs, merged when there are too many, keep
insertion cheap.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IdFilter"]

MAX_RUNS = 6


class IdFilter:
    """Sorted runs of uint64 hashes; ``may_contain`` has no false negatives."""

    def __init__(self, hashes: np.ndarray) -> None:
        self._runs: list[np.ndarray] = [np.sort(hashes.astype(np.uint64))]

    def __len__(self) -> int:
        return sum(run.size for run in self._runs)

    def may_contain(self, hashes: np.ndarray) -> bool:
        """Whether any of the hashes is in the set."""
        for run in self._runs:
            if run.size == 0:
                continue
            at = np.minimum(np.searchsorted(run, hashes), run.size - 1)
            if bool(np.any(run[at] == hashes)):
                return True
        return False

    def add(self, hashes: np.ndarray, *, ordered: bool = False) -> None:
        """Add hashes (``ordered``: already sorted)."""
        run = hashes.astype(np.uint64, copy=False)
        self._runs.append(run if ordered else np.sort(run))
        if len(self._runs) > MAX_RUNS:
            self._runs = [np.sort(np.concatenate(self._runs))]

"""The hosts (and, for GPU shares, the devices) one unit of a request could take, as the
scorers see them: free capacity before and after taking the unit.

Built once per ranking and shared by every scorer of a policy, so that the state after
the unit (which the fragmentation scorers compare with the state before) is computed once.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from groupcloud.domain.allocation import GPU_MILLI, PlacementSpec
from groupcloud.placement.index import CapacityIndex, Ints, Rows

__all__ = ["Candidates", "whole_devices"]


def whole_devices(devices: Ints, count: int) -> Ints:
    """Free devices after taking the first ``count`` entirely free ones of each row."""
    if count <= 0:
        return devices
    free = devices == GPU_MILLI
    taken = free & (np.cumsum(free, axis=1) <= count)
    after: Ints = np.where(taken, 0, devices)
    return after


class Candidates:
    """``rows`` of the index that fit one unit of ``spec`` (None: every row, in order, as
    a cheap view; the caller drops the rows that do not fit); for a GPU share, each entry
    is one device (``device``) of its row, and a row appears once per device that fits."""

    def __init__(
        self,
        index: CapacityIndex,
        spec: PlacementSpec,
        rows: Rows | None = None,
        device: Rows | None = None,
    ) -> None:
        self.index = index
        self.spec = spec
        self.rows: Rows | slice = slice(None) if rows is None else rows
        self.size = len(index) if rows is None else len(rows)
        self.device = device

    def __len__(self) -> int:
        return self.size

    @cached_property
    def row_ids(self) -> Rows:
        """The index rows of the candidates, as an array even when they are all rows."""
        return np.arange(self.size) if isinstance(self.rows, slice) else self.rows

    def free(self, rc: str) -> Ints | None:
        """Free amount of ``rc`` on each candidate now (None: the pool has no such class)."""
        col = self.index.rc_col.get(rc)
        if col is None:
            return None
        free: Ints = self.index.free[col][self.rows]
        return free

    def free_after(self, rc: str) -> Ints | None:
        """Free amount of ``rc`` once the unit is there (GPU: devices entirely free)."""
        if rc == "GPU" and self.spec.gpus:
            whole: Ints = np.count_nonzero(self.devices_after == GPU_MILLI, axis=1)
            return whole.astype(np.int64)
        free = self.free(rc)
        need = self.spec.per_unit.get(rc, 0)
        return free if free is None or not need else free - need

    @cached_property
    def devices(self) -> Ints:
        """(candidates, devices): free thousandths of each GPU now."""
        devices: Ints = self.index.devices[self.rows]
        return devices

    @cached_property
    def devices_after(self) -> Ints:
        """(candidates, devices): free thousandths of each GPU once the unit is there."""
        spec = self.spec
        if self.device is not None:
            after = self.devices.copy()
            after[np.arange(self.size), self.device] -= spec.gpu_share
            return after
        return whole_devices(self.devices, spec.per_unit.get("GPU", 0))

    @cached_property
    def model(self) -> Rows:
        """The GPU model id of each candidate."""
        model: Rows = self.index.gpu_model[self.rows]
        return model

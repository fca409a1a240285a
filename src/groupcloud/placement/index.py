"""The capacity index: free capacity of every host as numpy arrays.

Filtering 10,000 hosts is a handful of vectorised comparisons over an ``(hosts x classes)``
matrix instead of a Python loop over ORM objects; that is what keeps a placement
decision well under a millisecond.

GPUs are also tracked per device (``devices``: free thousandths of each GPU of each host),
so that GPU-sharing requests can take a part of one device and the scorers can see which
devices are fragmented. The ``GPU`` class counts the devices that are not entirely free.
Devices that hold shares are marked (``shared``) and keep their number: the database
names them (``gpu_devices``), while whole GPUs are only counted, so the other devices of
a host are laid out from its free count (free ones first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from groupcloud.domain.allocation import GPU_MILLI, PlacementSpec

if TYPE_CHECKING:
    from groupcloud.placement.pipeline import Placement
    from groupcloud.placement.workload import CompiledWorkload, Workload

__all__ = [
    "GPU_MODEL_TRAIT",
    "MAX_DEVICES",
    "CapacityIndex",
    "DeviceChange",
    "HostRecord",
    "InventoryRecord",
    "Ranking",
    "RankingCache",
    "SharedDevices",
    "gpu_model_of",
    "tiebreak_keys",
]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Rows = NDArray[np.intp]

GPU_MODEL_TRAIT = "gpu_model="
"""Hosts name their GPU model with a trait: ``gpu_model=V100M32``."""
MAX_DEVICES = 64
"""GPUs per host tracked device by device; a host with more (a virtual pool of GPUs) still
places whole GPUs exactly by its count, and shares on its first 64 devices."""


def gpu_model_of(traits: Iterable[str]) -> str | None:
    """The GPU model a host's traits name, if any."""
    for trait in traits:
        if trait.startswith(GPU_MODEL_TRAIT):
            return trait[len(GPU_MODEL_TRAIT) :]
    return None


DeviceChange = tuple[int, int, int]
"""(host id, device, change of its free thousandths): a GPU share taken (-) or given back."""
SharedDevices = dict[int, dict[int, int]]
"""Host id -> device -> free thousandths, for the devices that hold shares."""

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, slots=True)
class HostRecord:
    """A host as the engine sees it."""

    id: int
    name: str
    zone: str
    schedulable: bool
    traits: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """One resource class of one host."""

    host_id: int
    resource_class: str
    capacity: int
    used: int


def tiebreak_keys(host_ids: NDArray[np.int64], seed: int) -> NDArray[np.uint64]:
    """A seeded pseudo-random key per host (splitmix64 of seed and id).

    Keyed by host id rather than by position, so adding a host does not reshuffle the
    others: equal-scoring hosts are chosen in the same order run after run.
    """
    with np.errstate(over="ignore"):
        z = host_ids.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & _MASK64
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & _MASK64
        return z ^ (z >> np.uint64(31))


class CapacityIndex:
    """Resource classes x hosts, with traits as a boolean matrix.

    Arrays are laid out one row per resource class (``capacity[col]`` is a contiguous
    vector over all hosts), because every filter and scorer reads whole classes at once.
    ``free`` is maintained alongside ``used`` so filters compare without subtracting.
    ``devices`` holds the free thousandths of each GPU, one row per host.

    ``workload`` is what the pool is expected to run (the fragmentation scorers measure
    free capacity against it); ``pack_policy`` names the policy that packing requests use.

    Mutations (``apply``, ``set_used``, ``apply_placement``, ``set_workload``) take a lock;
    readers work without it, because every claim is re-checked by the database anyway.
    """

    def __init__(
        self,
        hosts: Sequence[HostRecord],
        inventories: Iterable[InventoryRecord],
        *,
        seed: int = 0,
        generation: int = 0,
        workload: Workload | None = None,
        pack_policy: str | None = None,
        rankings: int = 64,
        shared: SharedDevices | None = None,
    ) -> None:
        self.generation = generation
        self.seed = seed
        self.pack_policy = pack_policy
        self._lock = threading.Lock()
        # Rows in seeded tie-break order: the first best-scoring row (np.argmax) is then the
        # seeded winner among equals, with no tie handling on the hot path.
        by_id = sorted(hosts, key=lambda h: h.id)
        keys = tiebreak_keys(np.array([h.id for h in by_id], dtype=np.int64), seed)
        ordered = [by_id[i] for i in np.argsort(keys, kind="stable")]
        inventories = list(inventories)
        n = len(ordered)
        self.host_ids: NDArray[np.int64] = np.array([h.id for h in ordered], dtype=np.int64)
        self.host_names: list[str] = [h.name for h in ordered]
        self.row_of: dict[int, int] = {h.id: i for i, h in enumerate(ordered)}
        zones = sorted({h.zone for h in ordered})
        self.zone_ids: dict[str, int] = {z: i for i, z in enumerate(zones)}
        self.zone_of: NDArray[np.int32] = np.array(
            [self.zone_ids[h.zone] for h in ordered], dtype=np.int32
        )
        self.schedulable: NDArray[np.bool_] = np.array(
            [h.schedulable for h in ordered], dtype=np.bool_
        )
        trait_names = sorted({t for h in ordered for t in h.traits})
        self.trait_col: dict[str, int] = {t: i for i, t in enumerate(trait_names)}
        self.traits: NDArray[np.bool_] = np.zeros((len(trait_names), n), dtype=np.bool_)
        for i, h in enumerate(ordered):
            for t in h.traits:
                self.traits[self.trait_col[t], i] = True
        classes = sorted({inv.resource_class for inv in inventories})
        self.rc_col: dict[str, int] = {rc: i for i, rc in enumerate(classes)}
        self.capacity: NDArray[np.int64] = np.zeros((len(classes), n), dtype=np.int64)
        self.used: NDArray[np.int64] = np.zeros_like(self.capacity)
        for inv in inventories:
            row = self.row_of.get(inv.host_id)
            if row is not None:
                col = self.rc_col[inv.resource_class]
                self.capacity[col, row] = inv.capacity
                self.used[col, row] = inv.used
        self.free: NDArray[np.int64] = self.capacity - self.used
        # 1 / capacity (0 where a host lacks the class: it never reaches scoring then) and
        # the share in use, kept as floats so that scoring is one multiply-add per class.
        self.inverse: NDArray[np.float64] = np.where(
            self.capacity > 0, 1.0 / np.maximum(self.capacity, 1), 0.0
        )
        self.share: NDArray[np.float64] = self.used * self.inverse
        # GPU models: one id per model named by a host, and one more for "not named".
        models = [gpu_model_of(h.traits) for h in ordered]
        self.gpu_model_ids: dict[str, int] = {
            m: i for i, m in enumerate(sorted({m for m in models if m is not None}))
        }
        unnamed = len(self.gpu_model_ids)
        self.gpu_model: NDArray[np.intp] = np.array(
            [unnamed if m is None else self.gpu_model_ids[m] for m in models], dtype=np.intp
        )
        self.gpu_col: int | None = self.rc_col.get("GPU")
        self._lay_out_devices(shared or {})
        self._changed: list[int] = []  # rows whose usage changed, oldest first
        self._memos: dict[str, tuple[Floats, NDArray[np.bool_]]] = {}
        self.rankings = RankingCache(self, rankings)
        self.workload: CompiledWorkload | None = None
        self.workload_version = 0
        self._workload_key: Hashable = None
        self.set_workload(workload)

    def _lay_out_devices(self, shared: SharedDevices) -> None:
        """The device matrix at start: the shared devices as given, free ones first."""
        n = len(self)
        width = 1
        if self.gpu_col is not None and n:
            width = int(np.clip(self.capacity[self.gpu_col].max(), 1, MAX_DEVICES))
        whole = np.zeros(n, dtype=np.int64) if self.gpu_col is None else self.free[self.gpu_col]
        self.devices: Ints = np.where(
            np.arange(width)[None, :] < whole[:, None], GPU_MILLI, 0
        ).astype(np.int64)
        self.shared: NDArray[np.bool_] = np.zeros(self.devices.shape, dtype=np.bool_)
        if shared and self.gpu_col is not None:
            self._share_devices(shared, set(shared))

    def __len__(self) -> int:
        return len(self.host_names)

    def apply(
        self, deltas: Iterable[tuple[int, str, int]], devices: Iterable[DeviceChange] = ()
    ) -> None:
        """Add ``delta`` to the used amount of ``(host_id, resource_class)`` entries, after
        changing the free thousandths of the shared GPU ``devices`` (a claim or release
        as the database made it: shares device by device, whole GPUs by count)."""
        with self._lock:
            for host_id, device, change in devices:
                row = self.row_of.get(host_id)
                if row is not None and device < self.devices.shape[1]:
                    free = int(np.clip(self.devices[row, device] + change, 0, GPU_MILLI))
                    self.devices[row, device] = free
                    self.shared[row, device] = free < GPU_MILLI
                    self._touch(row)
            for host_id, rc, delta in deltas:
                row = self.row_of.get(host_id)
                col = self.rc_col.get(rc)
                if row is not None and col is not None:
                    self._set(
                        col, row, int(self.capacity[col, row]), int(self.used[col, row]) + delta
                    )

    def set_used(
        self, rows: Iterable[InventoryRecord], shared: SharedDevices | None = None
    ) -> None:
        """Overwrite used amounts with fresh values read from the database; with
        ``shared``, also the shared GPU devices of every host in ``rows`` (a host missing
        from ``shared`` has none)."""
        rows = list(rows)
        with self._lock:
            if shared is not None and self.gpu_col is not None:
                self._share_devices(shared, {inv.host_id for inv in rows})
            for inv in rows:
                row = self.row_of.get(inv.host_id)
                col = self.rc_col.get(inv.resource_class)
                if row is not None and col is not None:
                    self._set(col, row, inv.capacity, inv.used)

    def apply_placement(
        self, spec: PlacementSpec, placement: Placement, *, release: bool = False
    ) -> None:
        """Take (or, with ``release``, give back) what ``placement`` puts on its hosts,
        GPUs device by device: how the simulator and the scheduler's snapshot claim. The
        server's claims are recorded with ``apply``, as the database made them."""
        sign = -1 if release else 1
        with self._lock:
            for unit, host_id in enumerate(placement.host_ids):
                row = self.row_of[host_id]
                for rc, amount in spec.per_unit.items():
                    col = self.rc_col[rc]
                    if col != self.gpu_col:
                        used = int(self.used[col, row]) + sign * amount
                        self._set(col, row, int(self.capacity[col, row]), used)
                if spec.gpus and self.gpu_col is not None:
                    devices = self.devices[row]
                    before = int(np.count_nonzero(devices == GPU_MILLI))
                    for d in placement.devices[unit]:
                        devices[d] -= sign * spec.gpu_milli
                        if spec.gpu_share:
                            self.shared[row, d] = devices[d] < GPU_MILLI
                    if not ((devices >= 0) & (devices <= GPU_MILLI)).all():
                        raise ValueError(f"GPU devices of host {host_id} over- or under-used")
                    after = int(np.count_nonzero(devices == GPU_MILLI))
                    col = self.gpu_col
                    used = int(self.used[col, row]) + before - after
                    self._set(col, row, int(self.capacity[col, row]), used, devices=False)

    def set_workload(self, workload: Workload | None) -> None:
        """What the pool is expected to run; cached rankings are dropped when it changes."""
        with self._lock:
            key = None if workload is None else workload.key_for(self.gpu_model_ids)
            if key != self._workload_key:
                self._workload_key = key
                self.workload = None if workload is None else workload.compile(self.gpu_model_ids)
                self.workload_version += 1
                self.rankings.clear()
                self._memos.clear()

    def memo(self, name: str, rows: Rows, compute: Callable[[Rows], Floats]) -> Floats:
        """A value per row that depends only on the row's state (and the workload), such
        as its fragmentation now: computed for the rows that changed since, kept for the
        others."""
        values, valid = self._memos.get(name) or self._memos.setdefault(
            name, (np.zeros(len(self)), np.zeros(len(self), dtype=np.bool_))
        )
        stale = rows[~valid[rows]]
        if stale.size:
            stale = np.unique(stale)
            values[stale] = compute(stale)
            valid[stale] = True
        picked: Floats = values[rows]
        return picked

    def changes_since(self, mark: int) -> tuple[Rows | None, int]:
        """Rows changed after ``mark`` (None: too many or unknown, recompute all) and the new mark.

        Call with the lock held.
        """
        end = len(self._changed)
        if mark > end or end - mark > max(4 * len(self), 64):
            return None, end
        return np.fromiter(set(self._changed[mark:end]), dtype=np.intp), end

    def _set(self, col: int, row: int, capacity: int, used: int, *, devices: bool = True) -> None:
        inverse = 1.0 / capacity if capacity > 0 else 0.0
        self.capacity[col, row] = capacity
        self.used[col, row] = used
        self.free[col, row] = capacity - used
        self.inverse[col, row] = inverse
        self.share[col, row] = used * inverse
        if devices and col == self.gpu_col:
            self._whole_devices(row, capacity, capacity - used)
        self._touch(row)

    def _touch(self, row: int) -> None:
        """The row changed: its memos and the rankings that include it are stale."""
        for _, valid in self._memos.values():
            valid[row] = False
        self._changed.append(row)
        if len(self._changed) > 64 * len(self) + 4096:  # bound the log; rankings recompute
            self._changed.clear()
            self.rankings.clear()

    def _whole_devices(self, row: int, capacity: int, free: int) -> None:
        """A GPU count from the database: ``free`` entirely free devices, laid out on the
        devices that hold no shares (those keep their number and state). Widens the
        device matrix when a host grows beyond it."""
        width = self.devices.shape[1]
        if capacity > width and width < MAX_DEVICES:
            grown = min(capacity, MAX_DEVICES) - width
            self.devices = np.pad(self.devices, ((0, 0), (0, grown)))
            self.shared = np.pad(self.shared, ((0, 0), (0, grown)))
        whole = np.flatnonzero(~self.shared[row])
        self.devices[row, whole] = 0
        self.devices[row, whole[: max(0, free)]] = GPU_MILLI

    def _share_devices(self, shared: SharedDevices, host_ids: Iterable[int]) -> None:
        """Set the shared devices of ``host_ids`` as the database has them, then lay out
        their whole devices from the GPU count again."""
        col = self.gpu_col
        assert col is not None
        width = self.devices.shape[1]
        for host_id in host_ids:
            row = self.row_of.get(host_id)
            if row is None:
                continue
            self.shared[row] = False
            for device, free in shared.get(host_id, {}).items():
                if device < width:
                    self.devices[row, device] = free
                    self.shared[row, device] = True
            capacity = int(self.capacity[col, row])
            self._whole_devices(row, capacity, capacity - int(self.used[col, row]))

    def gpu_free_by_model(self) -> Floats:
        """Free GPUs (in devices) per GPU model id, the last entry for unnamed models."""
        free: Floats = np.bincount(
            self.gpu_model,
            weights=self.devices.sum(axis=1) / GPU_MILLI,
            minlength=len(self.gpu_model_ids) + 1,
        ).astype(np.float64)
        return free

    def used_of(self, host_id: int, rc: str) -> int | None:
        """The index's belief about one entry (tests and diagnostics)."""
        row, col = self.row_of.get(host_id), self.rc_col.get(rc)
        if row is None or col is None:
            return None
        return int(self.used[col, row])


@dataclass(slots=True)
class Ranking:
    """Every host's standing for one request shape: 0 where it does not fit, else 1 plus
    its weighted score; for GPU shares, also the device each host would give."""

    scores: Floats
    devices: Rows | None = None

    def patch(self, rows: Rows, fresh: Ranking) -> None:
        self.scores[rows] = fresh.scores
        if self.devices is not None and fresh.devices is not None:
            self.devices[rows] = fresh.devices


class RankingCache:
    """Ranked hosts per request shape, kept current by recomputing only changed rows.

    A claim changes the usage of one host, so re-ranking all hosts for the next request of
    the same shape repeats work; this cache makes a placement O(changed rows) plus one
    argmax. Computation stays with the pipeline (``full``/``partial`` callables); this
    class only knows which rows changed since each cached ranking was made.
    """

    def __init__(self, index: CapacityIndex, size: int = 64) -> None:
        self._index = index
        self._size = size
        self._entries: dict[Hashable, tuple[Ranking, int]] = {}

    def get(
        self,
        key: Hashable,
        full: Callable[[], Ranking],
        partial: Callable[[Rows], Ranking],
    ) -> Ranking:
        index = self._index
        with index._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                ranked, mark = full(), len(index._changed)
            else:
                ranked, mark = entry
                rows, mark = index.changes_since(mark)
                if rows is None:
                    ranked = full()
                elif rows.size:
                    ranked.patch(rows, partial(rows))
            self._entries[key] = (ranked, mark)  # re-inserted last: dicts keep order (LRU)
            if len(self._entries) > self._size:
                del self._entries[next(iter(self._entries))]
            return ranked

    def clear(self) -> None:
        self._entries.clear()

"""The process's capacity index, kept close enough to the database.

* Rebuilt when the pool generation changes (a host or inventory was added, changed,
  drained or removed by any process); checked at most every ``GENERATION_CHECK_S``.
* Used amounts re-read every ``refresh_s`` (other processes' claims and releases), for
  the hosts a claim found stale, and before a refusal is reported.
* This process's own claims and releases are applied as deltas right after commit.
* The zones' facts that the placement rules for regulated data read (country,
  separation, approvals, ...) are read with every rebuild: a zone change bumps the pool
  generation too.
* The workload that the fragmentation scorers measure free capacity against (what the
  pool is expected to run) is re-read with the used amounts: the shapes of the newest
  allocations that hold capacity or wait for it.

The index only proposes hosts. Every claim re-checks capacity inside its transaction,
so staleness costs a retry, never an over-allocation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable

from sqlalchemy import select

from groupcloud.db.claims import HostChanges
from groupcloud.db.engine import Database
from groupcloud.db.models import (
    AllocationRow,
    CompanyRow,
    GpuDeviceRow,
    HostRow,
    InventoryRow,
    PoolStateRow,
    ZoneRow,
)
from groupcloud.domain.allocation import AllocationState, PlacementSpec
from groupcloud.domain.inventory import HostState, ZoneKind
from groupcloud.domain.regulation import Sensitivity, ZoneFacts
from groupcloud.placement.index import CapacityIndex, HostRecord, InventoryRecord, SharedDevices
from groupcloud.placement.policies import DEFAULT_POLICY
from groupcloud.placement.workload import Workload
from groupcloud.placement.zone_rules import ZoneDecision

__all__ = ["GENERATION_CHECK_S", "WORKLOAD_SAMPLE", "IndexCache", "facts_of"]

GENERATION_CHECK_S = 0.5
WORKLOAD_SAMPLE = 2000
"""How many of the newest allocations (holding capacity or waiting) make the workload."""


class IndexCache:
    def __init__(
        self,
        db: Database,
        *,
        seed: int = 0,
        refresh_s: float = 5.0,
        policy: str = DEFAULT_POLICY,
    ) -> None:
        self._db = db
        self._seed = seed
        self._policy = policy
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._index: CapacityIndex | None = None
        self._zones: tuple[ZoneFacts, ...] = ()
        self._decisions: tuple[tuple[ZoneFacts, ...], dict[Hashable, ZoneDecision]] = ((), {})
        self._stale = True
        self._checked_at = 0.0
        self._refreshed_at = 0.0

    def get(self) -> CapacityIndex:
        """The current index, rebuilt or refreshed first when it is due."""
        index, now = self._index, time.monotonic()
        if index is None or self._stale:
            return self.rebuild()
        if now - self._checked_at >= GENERATION_CHECK_S:
            self._checked_at = now
            if self._generation() != index.generation:
                return self.rebuild()
        if self._refresh_s and now - self._refreshed_at >= self._refresh_s:
            self.refresh()
        return index

    def sync(self, host_ids: Iterable[int] | None = None) -> None:
        """Catch up with other processes now: rebuild the index when the pool changed (a
        host drained, removed or added elsewhere is not fixed by re-reading used amounts),
        else re-read the used amounts of ``host_ids`` (those a claim found short) or of
        every host (before a refusal is reported)."""
        index = self._index
        if index is None or self._stale or self._generation() != index.generation:
            self.rebuild()
        else:
            self.refresh(host_ids)

    def zones(self) -> tuple[ZoneFacts, ...]:
        """Every zone's facts, as of the index ``get`` returned last (read with it)."""
        if self._index is None or self._stale:
            self.rebuild()
        return self._zones

    def decisions(self, zones: tuple[ZoneFacts, ...]) -> dict[Hashable, ZoneDecision]:
        """A memo of the placement rules' decisions over ``zones`` (the tuple ``zones()``
        returned): requests of one company, data class and system type get the same
        decision until the zones change, so the claim path decides once, not per request."""
        held, memo = self._decisions
        if held is not zones:
            memo = {}
            self._decisions = (zones, memo)
        return memo

    def invalidate(self) -> None:
        """Hosts or inventories changed in this process: rebuild before the next placement."""
        self._stale = True

    def rebuild(self) -> CapacityIndex:
        with self._lock:
            with self._db.read() as s:
                generation = (
                    s.scalar(select(PoolStateRow.generation).where(PoolStateRow.id == 1)) or 0
                )
                hosts = [
                    HostRecord(hid, name, zone, state == HostState.ACTIVE, tuple(traits))
                    for hid, name, zone, state, traits in s.execute(
                        select(
                            HostRow.id, HostRow.name, ZoneRow.name, HostRow.state, HostRow.traits
                        )
                        .join(ZoneRow, ZoneRow.id == HostRow.zone_id)
                        .where(HostRow.state != HostState.REMOVED)
                    )
                ]
                inventories = self._read_inventories(s.execute(_INVENTORY_ROWS))
                shared = self._read_shared(s.execute(_SHARED_ROWS))
                workload = self._read_workload(s.execute(_WORKLOAD_ROWS))
                zones = tuple(facts_of(z, owner) for z, owner in s.execute(_ZONE_ROWS))
            self._zones = zones
            self._index = CapacityIndex(
                hosts,
                inventories,
                seed=self._seed,
                generation=int(generation),
                workload=workload,
                pack_policy=self._policy,
                shared=shared,
            )
            self._stale = False
            self._checked_at = self._refreshed_at = time.monotonic()
            return self._index

    def refresh(self, host_ids: Iterable[int] | None = None) -> None:
        """Re-read used amounts, of ``host_ids`` only or of every host."""
        index = self._index
        if index is None:
            return
        query, devices = _INVENTORY_ROWS, _SHARED_ROWS
        if host_ids is not None:
            some = sorted(set(host_ids))
            query = query.where(InventoryRow.host_id.in_(some))
            devices = devices.where(GpuDeviceRow.host_id.in_(some))
        else:
            self._refreshed_at = time.monotonic()
        with self._db.snapshot() as s:
            rows = self._read_inventories(s.execute(query))
            shared = self._read_shared(s.execute(devices))
            workload = (
                None if host_ids is not None else self._read_workload(s.execute(_WORKLOAD_ROWS))
            )
        index.set_used(rows, shared)
        if host_ids is None:
            index.set_workload(workload)

    def apply(self, changes: HostChanges | None) -> None:
        """Record this process's committed claim (+) or release (-)."""
        if self._index is not None and changes:
            self._index.apply(changes.deltas, changes.devices)

    def _generation(self) -> int:
        with self._db.snapshot() as s:
            return s.scalar(select(PoolStateRow.generation).where(PoolStateRow.id == 1)) or 0

    @staticmethod
    def _read_inventories(rows: Iterable[tuple[int, str, int, int]]) -> list[InventoryRecord]:
        return [InventoryRecord(h, rc, cap, used) for h, rc, cap, used in rows]

    @staticmethod
    def _read_shared(rows: Iterable[tuple[int, int, int]]) -> SharedDevices:
        shared: SharedDevices = {}
        for host_id, device, free in rows:
            shared.setdefault(host_id, {})[device] = free
        return shared

    @staticmethod
    def _read_workload(
        rows: Iterable[tuple[dict[str, int], int, list[str], int, list[str] | None]],
    ) -> Workload:
        return Workload.of_specs(
            (
                PlacementSpec(
                    per_unit=dict(resources),
                    required_traits=tuple(traits),
                    gpu_share=share,
                    gpu_models=frozenset(models or ()),
                ),
                count,
            )
            for resources, count, traits, share, models in rows
        )


def facts_of(zone: ZoneRow, owner: str | None) -> ZoneFacts:
    """What the placement rules read of a stored zone."""
    return ZoneFacts(
        name=zone.name,
        kind=ZoneKind(zone.kind),
        owner_company=owner,
        country=zone.country,
        internet_separated=zone.internet_separated,
        certifications=frozenset(zone.certifications),
        data_classes=frozenset(Sensitivity(c) for c in zone.data_classes),
        approved=zone.approved,
        approved_for_d3=zone.approved_for_d3,
        lent_to=frozenset(zone.lent_to),
    )


_ZONE_ROWS = (
    select(ZoneRow, CompanyRow.slug)
    .outerjoin(CompanyRow, CompanyRow.id == ZoneRow.owner_company_id)
    .order_by(ZoneRow.name)
)
_INVENTORY_ROWS = select(
    InventoryRow.host_id, InventoryRow.resource_class, InventoryRow.capacity, InventoryRow.used
)
_SHARED_ROWS = select(GpuDeviceRow.host_id, GpuDeviceRow.device, GpuDeviceRow.free_milli)
_WORKLOAD_ROWS = (
    select(
        AllocationRow.resources,
        AllocationRow.count,
        AllocationRow.required_traits,
        AllocationRow.gpu_share,
        AllocationRow.gpu_models,
    )
    .where(
        AllocationRow.state.in_(
            [s.value for s in AllocationState if s.holds_capacity or s is AllocationState.PENDING]
        ),
        AllocationRow.external.is_(False),  # external instances are no hosts' workload
    )
    .order_by(AllocationRow.seq.desc())
    .limit(WORKLOAD_SAMPLE)
)

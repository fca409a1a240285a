"""The discrete-event simulation: the server's own services on a virtual clock.

Nothing here decides where a request runs, whether it may borrow or what is reclaimed:
every decision is the server's (``services.allocations.allocate`` with ``queue=True``,
``allocations.end``, and the worker round's ``reclaims.finish_due`` and
``scheduler.run_cycle``, i.e. the placement pipeline, the cohort's borrowing and
lending, the fair-share scheduler cycle and reclaims), on a fresh SQLite database per
run. What this module adds is time: a heap of events, each
at a virtual instant, and nothing sleeps:

* arrival: the request is sent (claimed at once, or queued);
* end: its work is done, it is released;
* give-up: it waited ``patience_s`` without ever running, it is cancelled (abandoned);
* wake-up: a reclaim notice ends or a reclaimed request's backoff is over.

All events of one instant are handled (ends first: they free capacity), then one worker
round runs at that instant when it can change anything (someone waits or is being
reclaimed), and the states it left are read back: a request admitted now starts its
work (the rest of it, after a reclaim), a reclaim notice schedules a wake-up at its
deadline. The runtime's clock is the virtual clock, so what the services stamp
(created, started, reclaim deadlines, backoffs) is virtual time too.
"""

from __future__ import annotations

import functools
import heapq
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path

from sqlalchemy import func, or_, select

from groupcloud.config import Settings
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import AllocationRow, InventoryRow, QuotaRow, table_of
from groupcloud.domain.allocation import AllocationState
from groupcloud.schemas.compute import AllocationCreate, HostCreate, InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas, reclaims, scheduler
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from groupcloud.simulator.demand import Request

__all__ = ["EPOCH", "HostGroup", "Pool", "QuotaLine", "RunResult", "Sample", "simulate"]

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
"""Virtual instant 0 as the database sees it: after any real timestamp a service may
still write with the wall clock (audit events), so that virtual and real never mix up."""
PROJECT = "sim"
_ALLOC = table_of(AllocationRow)
_HOLDING = frozenset({AllocationState.ACTIVE.value, AllocationState.RECLAIMING.value})


@dataclass(frozen=True, slots=True)
class HostGroup:
    """``count`` identical hosts in one zone."""

    name: str
    count: int
    resources: Mapping[str, int]
    traits: tuple[str, ...] = ()
    zone: str = "shared"


@dataclass(frozen=True, slots=True)
class QuotaLine:
    nominal: int
    borrowing_limit: int | None = 0
    lending_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    """Hosts and quotas of one run; ``zones[company, host kind]`` pins the requests a
    company sends to hosts of that kind to one zone (none: anywhere)."""

    hosts: tuple[HostGroup, ...]
    quotas: Mapping[str, Mapping[str, QuotaLine]]
    zones: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @property
    def host_count(self) -> int:
        return sum(g.count for g in self.hosts)

    def capacity(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for g in self.hosts:
            for rc, n in g.resources.items():
                out[rc] += n * g.count
        return dict(out)


class _Kind(IntEnum):
    """Order of the events of one instant: what frees capacity first."""

    END = 0
    GIVE_UP = 1
    ARRIVAL = 2
    WAKE = 3


@dataclass(slots=True)
class Sample:
    """The state right after one instant (it holds until the next sample)."""

    t: float
    used: dict[str, int]
    used_by_company: dict[str, dict[str, int]]
    pending: int


@dataclass
class RunResult:
    """What one run measured; ``waits_s[i]``: how long request ``i`` waited until it
    first ran (None: it never ran)."""

    pool: Pool
    horizon_s: float
    requests: int = 0
    admitted: int = 0
    admitted_at_once: int = 0
    abandoned: int = 0
    unfinished: int = 0
    reclaim_notices: int = 0
    reclaims: int = 0
    rounds: int = 0
    events: int = 0
    asked: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    served: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    waits_s: list[float | None] = field(default_factory=list)
    gave_up: set[int] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(slots=True)
class _Live:
    request: Request
    index: int
    id: str
    state: str
    started: float | None = None
    """Virtual second of the current admission (the database's started_at)."""
    first_admitted: float | None = None
    reclaimed: int = 0
    """Reclaims seen so far (the database's reclaim_count)."""
    ran_s: float = 0.0
    run_from: float = 0.0
    version: int = 0


def simulate(
    requests: Sequence[Request],
    pool: Pool,
    *,
    horizon_s: float,
    reclaim_notice_s: float = 300.0,
    reclaim_backoff_s: float = 300.0,
    reclaim_backoff_max_s: float = 3600.0,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run ``requests`` on ``pool`` until every request ran or gave up; measure the
    first ``horizon_s`` seconds (utilisation) and every request (waits). ``kinds[i]``
    is the host kind request ``i`` needs (for ``pool.zones``)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="groupcloud-sim-") as workdir:
        settings = Settings(
            data_dir=Path(workdir),
            database_url=f"sqlite:///{Path(workdir) / 'sim.db'}",
            reclaim_notice_s=reclaim_notice_s,
            reclaim_backoff_s=reclaim_backoff_s,
            reclaim_backoff_max_s=reclaim_backoff_max_s,
            placement_seed=seed,
            # One process owns the database, so the index is kept exact by its deltas; a
            # refresh every few wall-clock seconds would re-read the placement workload at
            # moments that depend on the machine's speed, not on the simulated events.
            index_refresh_s=0,
        )
        (Path(workdir) / "sim.db").write_bytes(_schema())
        rt = Runtime.open(settings)
        try:
            _build(rt, pool)
            zones = [
                pool.zones.get((r.company, kinds[i])) if kinds is not None else None
                for i, r in enumerate(requests)
            ]
            result = _Loop(rt, requests, pool, zones, horizon_s, progress).run()
            _check_empty(rt)
        finally:
            rt.close()
    result.seconds = time.perf_counter() - started
    return result


@functools.cache
def _schema() -> bytes:
    """An empty migrated database, made once per process: a search runs a dozen short
    simulations, and migrating costs about as much as a day of requests."""
    with tempfile.TemporaryDirectory(prefix="groupcloud-sim-") as workdir:
        path = Path(workdir) / "sim.db"
        rt = Runtime.open(Settings(data_dir=Path(workdir), database_url=f"sqlite:///{path}"))
        try:
            upgrade(rt.db)
        finally:
            rt.close()
        if Path(f"{path}-wal").exists() and Path(f"{path}-wal").stat().st_size:
            raise RuntimeError("the migrated database left a write-ahead log behind")
        return path.read_bytes()


def _check_empty(rt: Runtime) -> None:
    """Every request ran to its end or gave up: hosts and quotas hold nothing any more
    (a leak here would be the server's, found by the simulation)."""
    with rt.db.read_conn() as conn:
        on_hosts = conn.scalar(select(func.coalesce(func.sum(InventoryRow.used), 0)))
        in_quotas = conn.scalar(select(func.coalesce(func.sum(QuotaRow.used), 0)))
    if on_hosts or in_quotas:
        raise RuntimeError(
            f"capacity leaked: {on_hosts} still used on hosts, {in_quotas} in quotas"
        )


def _build(rt: Runtime, pool: Pool) -> None:
    """Zones, hosts, companies (each with one project) and quotas of ``pool``."""
    for zone in sorted({g.zone for g in pool.hosts}):
        zones.create_zone(rt, SYSTEM, ZoneCreate(name=zone))
    bodies = [
        HostCreate(
            name=f"{g.name}-{i:04d}",
            zone=g.zone,
            inventories={rc: InventoryIn(total=n) for rc, n in g.resources.items()},
            traits=list(g.traits),
        )
        for g in pool.hosts
        for i in range(g.count)
    ]
    if bodies:
        hosts.add_hosts(rt, SYSTEM, bodies)
    for company, lines in pool.quotas.items():
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=company, name=company.title()))
        companies.create_project(rt, SYSTEM, company, ProjectCreate(slug=PROJECT))
        for rc, line in lines.items():
            body = QuotaSet(
                nominal=line.nominal,
                borrowing_limit=line.borrowing_limit,
                lending_limit=line.lending_limit,
            )
            quotas.set_quota(rt, SYSTEM, company, rc, body)


class _Loop:
    def __init__(
        self,
        rt: Runtime,
        requests: Sequence[Request],
        pool: Pool,
        zones: Sequence[str | None],
        horizon_s: float,
        progress: Callable[[float], None] | None,
    ) -> None:
        self.rt = rt
        self.requests = requests
        self.zones = zones
        self.pool = pool
        self.horizon_s = horizon_s
        self.progress = progress
        self.now = 0.0
        rt.clock = lambda: EPOCH + timedelta(seconds=self.now)
        self.heap: list[tuple[float, int, int, int, int]] = []  # t, kind, order, index, version
        self.order = 0
        self.live: dict[int, _Live] = {}  # by request index
        self.by_id: dict[str, _Live] = {}
        self.out = RunResult(pool=pool, horizon_s=horizon_s, requests=len(requests))
        self.out.waits_s = [None] * len(requests)

    def push(self, t: float, kind: _Kind, index: int, version: int = 0) -> None:
        self.order += 1
        heapq.heappush(self.heap, (t, kind, self.order, index, version))

    def run(self) -> RunResult:
        for i, r in enumerate(self.requests):
            self.push(r.arrival_s, _Kind.ARRIVAL, i)
        last_report = -1.0
        while self.heap:
            self.now = t = self.heap[0][0]
            changed = False
            while self.heap and self.heap[0][0] == t:
                _, kind, _, index, version = heapq.heappop(self.heap)
                self.out.events += 1
                changed |= self.handle(_Kind(kind), index, version)
            if changed and self._waiting():
                self.round()
            self.sample()
            if self.progress is not None and t - last_report >= self.horizon_s / 200:
                last_report = t
                self.progress(min(1.0, t / self.horizon_s) if self.horizon_s else 1.0)
        self.out.unfinished = len(self.live)
        if self.progress is not None:
            self.progress(1.0)
        return self.out

    def _waiting(self) -> list[_Live]:
        """Live requests a round may change: waiting ones and those being reclaimed."""
        return [x for x in self.live.values() if x.state != AllocationState.ACTIVE.value]

    def handle(self, kind: _Kind, index: int, version: int) -> bool:
        """One event; whether it may let a round change something."""
        if kind is _Kind.ARRIVAL:
            return self.arrive(index)
        if kind is _Kind.WAKE:
            return True
        x = self.live.get(index)
        if x is None:
            return False
        if kind is _Kind.END:
            if version != x.version or x.state not in _HOLDING:
                return False  # reclaimed since: it ends later, after it ran again
            self.release(x)
            return True
        if x.first_admitted is None:  # give up: it never ran
            self.release(x)
            self.out.abandoned += 1
            self.out.gave_up.add(index)
            return True
        return False

    def arrive(self, index: int) -> bool:
        r = self.requests[index]
        body = AllocationCreate(
            company=r.company,
            project=PROJECT,
            resources=dict(r.resources),
            count=r.count,
            zone=self.zones[index],
            priority=r.priority,
            queue=True,
        )
        made = allocations.allocate(self.rt, SYSTEM, body)
        x = _Live(r, index, made.id, made.state.value)
        self.live[index] = x
        self.by_id[made.id] = x
        for rc, n in r.demand().items():
            self.out.asked[rc] += n * r.duration_s / 3600
        if x.state in _HOLDING:
            self.out.admitted_at_once += 1
            self.admitted(x, self.now)
            return False
        if r.patience_s is not None:
            self.push(self.now + r.patience_s, _Kind.GIVE_UP, index)
        return True

    def admitted(self, x: _Live, started: float) -> None:
        if x.first_admitted is None:
            x.first_admitted = self.now
            self.out.admitted += 1
            self.out.waits_s[x.index] = self.now - x.request.arrival_s
        x.started = started
        x.run_from = self.now
        x.version += 1
        self.push(self.now + x.request.duration_s - x.ran_s, _Kind.END, x.index, x.version)

    def release(self, x: _Live) -> None:
        allocations.end(self.rt, SYSTEM, x.id)
        if x.state in _HOLDING:
            self.ran(x)
        del self.live[x.index]
        del self.by_id[x.id]

    def ran(self, x: _Live) -> None:
        """Count the work done since it last started."""
        x.ran_s += self.now - x.run_from
        for rc, n in x.request.demand().items():
            self.out.served[rc] += n * (self.now - x.run_from) / 3600
        x.run_from = self.now

    def round(self) -> None:
        """One worker round at the virtual now, then what it changed."""
        # The worker's round (``worker.run_round``) without its lease and idle ticks: no
        # simulated request has a lease or reports idleness, so they would only cost two
        # queries a round finding nothing. Same order: due reclaims end first.
        now = self.rt.clock()
        self.out.reclaims += reclaims.finish_due(self.rt, now)
        cycle = scheduler.run_cycle(self.rt, now)
        self.out.rounds += 1
        self.out.reclaim_notices += cycle.reclaims_started
        ids = [x.id for x in self._waiting()]
        changing = (AllocationState.PENDING.value, AllocationState.RECLAIMING.value)
        with self.rt.db.read_conn() as conn:
            rows = conn.execute(
                select(
                    _ALLOC.c.id,
                    _ALLOC.c.state,
                    _ALLOC.c.started_at,
                    _ALLOC.c.reclaim_at,
                    _ALLOC.c.not_before,
                    _ALLOC.c.reclaim_count,
                )
                .where(or_(_ALLOC.c.state.in_(changing), _ALLOC.c.id.in_(ids)))
                .order_by(_ALLOC.c.seq)  # events pushed in a fixed order: runs repeat
            ).all()
        for alloc_id, state, started_at, reclaim_at, not_before, reclaim_count in rows:
            x = self.by_id[alloc_id]
            before = x.state
            started = None if started_at is None else _seconds(started_at)
            reclaimed = reclaim_count != x.reclaimed
            x.reclaimed = reclaim_count
            if before in _HOLDING and (state not in _HOLDING or reclaimed):
                self.ran(x)  # reclaimed at this instant (and maybe admitted again)
                x.version += 1
                x.started = None
                before = "reclaimed"
            x.state = state
            if state == AllocationState.RECLAIMING.value:
                if before != state and reclaim_at is not None:
                    self.push(_seconds(reclaim_at), _Kind.WAKE, x.index)
            elif state == AllocationState.PENDING.value:
                if before != state and not_before is not None:
                    self.push(max(self.now, _seconds(not_before)), _Kind.WAKE, x.index)
            elif state == AllocationState.ACTIVE.value:
                if x.started is None:
                    self.admitted(x, self.now if started is None else started)
            else:  # released: reclaimed with on_reclaim=release
                del self.live[x.index]
                del self.by_id[x.id]

    def sample(self) -> None:
        used: dict[str, int] = defaultdict(int)
        by_company: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        pending = 0
        for x in self.live.values():
            if x.state in _HOLDING:
                for rc, n in x.request.demand().items():
                    used[rc] += n
                    by_company[x.request.company][rc] += n
            else:
                pending += 1
        sample = Sample(self.now, dict(used), {c: dict(v) for c, v in by_company.items()}, pending)
        if self.out.samples and self.out.samples[-1].t == self.now:
            self.out.samples[-1] = sample
        else:
            self.out.samples.append(sample)


def _seconds(at: datetime) -> float:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - EPOCH).total_seconds()

"""The discrete-event simulation: the server's own engines on a virtual clock, in memory.

Nothing here decides where a request runs, whether it may borrow or what is reclaimed:
every decision is an engine's, the same the server's use cases call -- the placement
pipeline on a capacity index (``placement``), the cohort's borrowing and lending and the
scheduler cycle (``quota.cycle``: earmarks, fair order, plans, reclaim needs) and the
reclaim victims and backoff (``quota.reclaim``). What the services do around them --
the order of a claim, a release, a worker round -- is followed step by step on the
in-memory state (``_Server``), where a database would only repeat it slower: one process
owns the state, so no conditional update can lose. What this module adds is time: a
heap of events, each at a virtual instant, and nothing sleeps:

* arrival: the request is sent (claimed at once, or queued);
* end: its work is done, it is released;
* give-up: it waited ``patience_s`` without ever running, it is cancelled (abandoned);
* wake-up: a reclaim notice ends or a reclaimed request's backoff is over.

All events of one instant are handled (ends first: they free capacity), then one worker
round runs at that instant when it can change anything (someone waits or is being
reclaimed), and the states it left are read back: a request admitted now starts its
work (the rest of it, after a reclaim), a reclaim notice schedules a wake-up at its
deadline. Instants are stamped as datetimes from ``EPOCH`` (what the engines compare:
backoffs, reclaim deadlines, minimum runtimes).
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from groupcloud.domain.allocation import AllocationState, PlacementSpec, QueuedRequest, spec_of
from groupcloud.domain.resources import scale
from groupcloud.errors import NeverFits
from groupcloud.placement.index import CapacityIndex, HostRecord, InventoryRecord
from groupcloud.placement.pipeline import Placement, Rejection, place
from groupcloud.placement.policies import DEFAULT_POLICY
from groupcloud.placement.workload import Workload
from groupcloud.quota import cohort as quota
from groupcloud.quota.cohort import Admission, Blocked, Cohort, Holding, Move
from groupcloud.quota.cycle import CyclePlan, Delta, plan_cycle
from groupcloud.quota.reclaim import Candidate, backoff, select_victims
from groupcloud.simulator.demand import Request

__all__ = ["EPOCH", "HostGroup", "Pool", "QuotaLine", "RunResult", "Sample", "simulate"]

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
"""Virtual instant 0."""
WORKLOAD_SAMPLE = 2000
"""How many of the newest requests (holding capacity or waiting) make the workload the
fragmentation scorers measure free capacity against: the server's ``IndexCache`` rule."""
_PENDING = AllocationState.PENDING.value
_ACTIVE = AllocationState.ACTIVE.value
_RECLAIMING = AllocationState.RECLAIMING.value
_RELEASED = AllocationState.RELEASED.value
_HOLDING = frozenset({_ACTIVE, _RECLAIMING})


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
    server = _Server(
        pool,
        seed=seed,
        notice_s=reclaim_notice_s,
        backoff_s=reclaim_backoff_s,
        backoff_max_s=reclaim_backoff_max_s,
    )
    zones = [
        pool.zones.get((r.company, kinds[i])) if kinds is not None else None
        for i, r in enumerate(requests)
    ]
    result = _Loop(server, requests, pool, zones, horizon_s, progress).run()
    server.check_empty()
    result.seconds = time.perf_counter() - started
    return result


@dataclass(slots=True)
class _Alloc:
    """One allocation as the server stores it (the columns the engines read)."""

    seq: int
    id: str
    company_id: int
    request: Request
    zone: str | None
    created_at: datetime
    state: str = _PENDING
    started_at: datetime | None = None
    not_before: datetime | None = None
    reclaim_at: datetime | None = None
    reclaim_count: int = 0
    deltas: list[Delta] = field(default_factory=list)
    loans: dict[tuple[int, str], int] = field(default_factory=dict)

    @property
    def demand(self) -> dict[str, int]:
        return scale(self.request.resources, self.request.count)

    def queued(self) -> QueuedRequest:
        """The request as the scheduler cycle sees a stored pending row."""
        r = self.request
        return QueuedRequest(
            seq=self.seq,
            id=self.id,
            company_id=self.company_id,
            priority=r.priority,
            count=r.count,
            resources=dict(r.resources),
            zone=self.zone,
            required_traits=[],
            anti_affinity_group=None,
            strategy="pack",
            not_before=self.not_before,
            pending_reason=None,
            created_at=self.created_at,
            interfaces=None,
        )


class _Server:
    """The state the server keeps in its database, in memory, and its use cases' steps
    on it: ``allocate`` (claim from the company's own free nominal or queue), ``end``
    (release or cancel), and the worker round's ``finish_due`` and ``run_cycle``. Each
    step follows its service (``services.compute.allocations``, ``.reclaims``,
    ``.scheduler``) and leaves every decision to the engines."""

    def __init__(
        self,
        pool: Pool,
        *,
        seed: int,
        notice_s: float,
        backoff_s: float,
        backoff_max_s: float,
    ) -> None:
        self.notice = timedelta(seconds=notice_s)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        # Ids as the database gives them: hosts and companies numbered in creation order
        # (they break ties: the seeded host order, the lender order of a loan).
        hosts: list[HostRecord] = []
        inventories: list[InventoryRecord] = []
        for g in pool.hosts:
            for i in range(g.count):
                host_id = len(hosts) + 1
                hosts.append(HostRecord(host_id, f"{g.name}-{i:04d}", g.zone, True, g.traits))
                inventories += [InventoryRecord(host_id, rc, n, 0) for rc, n in g.resources.items()]
        self.index = CapacityIndex(
            hosts, inventories, seed=seed, workload=Workload({}), pack_policy=DEFAULT_POLICY
        )
        self.company_ids = {company: i + 1 for i, company in enumerate(pool.quotas)}
        self.cohort = Cohort(
            (
                (self.company_ids[company], quota.QuotaLine(rc, q.nominal, 0, 0, 0,
                                                            q.borrowing_limit, q.lending_limit))
                for company, lines in pool.quotas.items()
                for rc, q in lines.items()
            ),
            dict.fromkeys(self.company_ids.values(), 1.0),
        )  # fmt: skip
        self.open: dict[str, _Alloc] = {}
        """Allocations not released yet, in arrival (``seq``) order."""
        self.seq = 0
        self.last_plan: CyclePlan | None = None
        """What the last cycle that ran decided (the equivalence test compares it)."""

    # --- allocations.allocate / end -------------------------------------------------

    def allocate(self, request: Request, zone: str | None, now: datetime) -> _Alloc:
        """Claim now what fits the company's own free nominal and hosts with room; queue
        the rest; refuse what never fits (``NeverFits``), as ``allocate(queue=True)``."""
        company = self.company_ids.get(request.company)
        if company is None:
            raise ValueError(f"company {request.company!r} is not in the pool's quotas")
        self.seq += 1
        a = _Alloc(self.seq, f"sim-{self.seq}", company, request, zone, now)
        spec = spec_of(a.queued())
        outcome = place(self.index, spec)
        if isinstance(outcome, Rejection):
            # The service syncs its index before it reports a refusal; here the used
            # amounts are exact already, but the sync also re-learns the workload.
            self.learn_workload()
            outcome = place(self.index, spec)
        demand = a.demand
        if isinstance(outcome, Placement) and self._own_nominal_has_room(company, demand):
            self.cohort.take(company, Admission(own=demand))
            a.deltas = outcome.deltas(spec.per_unit)
            self.index.apply(a.deltas)
            a.state, a.started_at = _ACTIVE, now
        else:
            self._check_fits(a, outcome)
        self.open[a.id] = a
        return a

    def _own_nominal_has_room(self, company: int, demand: Mapping[str, int]) -> bool:
        """The direct claim's conditional quota update (no loans): the company's own use
        plus what it lends plus the request stays within its nominal, per class."""
        lines = self.cohort.lines.get(company, {})
        return all(
            rc in lines and lines[rc].committed + n <= lines[rc].nominal for rc, n in demand.items()
        )

    def _check_fits(self, a: _Alloc, outcome: Placement | Rejection) -> None:
        """What never fits is refused: beyond the whole quota, or no host ever big enough."""
        plan = self.cohort.plan(a.company_id, a.demand)
        if isinstance(plan, Blocked) and plan.never:
            raise NeverFits(f"request {a.seq - 1} exceeds {a.request.company}'s whole quota")
        if isinstance(outcome, Rejection) and outcome.never_fits:
            raise NeverFits(f"no host can ever take request {a.seq - 1}: {outcome.message}")

    def end(self, a: _Alloc) -> None:
        """Release (or cancel, while pending) exactly what it holds."""
        self._give_back(a)
        a.state, a.reclaim_at = _RELEASED, None  # a release ends a reclaim under way too
        del self.open[a.id]

    def _give_back(self, a: _Alloc) -> None:
        if a.state in _HOLDING:
            self.cohort.give(a.company_id, a.demand, a.loans)
            self.index.apply((h, rc, -n) for h, rc, n in a.deltas)
        a.deltas, a.loans = [], {}

    # --- the worker round: reclaims.finish_due, scheduler.run_cycle -----------------

    def finish_due(self, now: datetime) -> int:
        """End the reclaims whose notice is over; each queues again after its backoff."""
        due = sorted(
            (
                (a.reclaim_at, a.seq, a)
                for a in self.open.values()
                if a.state == _RECLAIMING and a.reclaim_at is not None and a.reclaim_at <= now
            ),
            key=lambda t: (t[0], t[1]),
        )
        for _, _, a in due:
            wait = backoff(a.reclaim_count + 1, self.backoff_s, self.backoff_max_s)
            self._give_back(a)
            a.state, a.started_at, a.reclaim_at = _PENDING, None, None
            a.not_before = now + timedelta(seconds=wait)
            a.reclaim_count += 1
        return len(due)

    def run_cycle(self, now: datetime) -> int:
        """One scheduler cycle (``quota.cycle``) on the state; the reclaim notices sent."""
        self.last_plan = None
        queue = [a for a in self.open.values() if a.state == _PENDING]
        repay_due = any(
            line.borrowed > 0 and line.own_free > 0
            for lines in self.cohort.lines.values()
            for line in lines.values()
        )
        if not repay_due and not any(a.not_before is None or a.not_before <= now for a in queue):
            return 0  # the service's idle round: nothing is ready, nothing to repay
        self.learn_workload()  # the service's index sync at the start of a cycle
        queue.sort(key=lambda a: (-a.request.priority, a.seq))
        reclaiming: dict[tuple[int, str], int] = defaultdict(int)
        held: list[Holding] = []
        for a in sorted(self.open.values(), key=lambda a: -a.seq):  # the service's order
            if a.state == _RECLAIMING:
                for rc, n in a.demand.items():
                    reclaiming[a.company_id, rc] += n
            elif a.state == _ACTIVE and a.loans:
                held.append(Holding(a.id, a.company_id, dict(a.loans)))
        plan = plan_cycle(
            self.cohort,
            [a.queued() for a in queue],
            self.index,
            now,
            reclaiming=reclaiming,
            held=held,
        )
        self.cohort.clear_earmarks()  # they hold for one cycle
        self.cohort.held = None  # read again from the allocations next cycle
        self.last_plan = plan
        self._move_loans(plan.repaid)
        for admit in plan.admitted:
            self._move_loans(admit.moves)
            a = self.open[admit.request.id]
            a.state, a.started_at, a.not_before = _ACTIVE, now, None
            a.deltas, a.loans = admit.placement.deltas(admit.spec.per_unit), dict(admit.loans)
        return self._start_reclaims(plan.reclaims, plan.above, now) if plan.reclaims else 0

    def _move_loans(self, moves: Iterable[Move]) -> None:
        """What the service's ``claims.move_loans`` writes: loans that change lender
        (or, moved to the borrower itself, are repaid)."""
        for m in moves:
            loans = self.open[m.allocation_id].loans
            src = (m.from_lender, m.resource_class)
            loans[src] -= m.amount
            if not loans[src]:
                del loans[src]
            if m.to_lender != m.borrower:
                dst = (m.to_lender, m.resource_class)
                loans[dst] = loans.get(dst, 0) + m.amount

    def _start_reclaims(
        self,
        needs: Mapping[tuple[int, str], int],
        above: Mapping[tuple[int, str], int],
        now: datetime,
    ) -> int:
        """Reclaim notices covering ``needs``: victims chosen by ``select_victims`` among
        the running allocations of the companies above nominal in the short classes."""
        per_class: dict[str, int] = defaultdict(int)
        for (_, rc), n in needs.items():
            per_class[rc] += n
        candidates = [
            Candidate(
                a.id, a.request.priority, a.started_at or now, a.loans, 0, a.seq, a.company_id,
                a.demand,
            )
            for a in self.open.values()
            if a.state == _ACTIVE and any((a.company_id, rc) in above for rc in per_class)
        ]  # fmt: skip
        victims = select_victims(candidates, needs, above, now)
        for victim in victims:
            a = self.open[victim.allocation_id]
            a.state, a.reclaim_at = _RECLAIMING, now + self.notice
        return len(victims)

    def learn_workload(self) -> None:
        """What the pool is expected to run, as the server's index learns it: the shapes
        of the newest allocations that hold capacity or wait."""
        newest = list(self.open.values())[::-1][:WORKLOAD_SAMPLE]
        self.index.set_workload(
            Workload.of_specs(
                (PlacementSpec(per_unit=dict(a.request.resources)), a.request.count) for a in newest
            )
        )

    def check_empty(self) -> None:
        """Every request ran to its end or gave up: hosts and quotas hold nothing any more
        (a leak here would be an engine's, found by the simulation)."""
        on_hosts = int(self.index.used.sum())
        in_quotas = sum(
            line.used for lines in self.cohort.lines.values() for line in lines.values()
        )
        if on_hosts or in_quotas or self.open:
            raise RuntimeError(
                f"capacity leaked: {on_hosts} still used on hosts, {in_quotas} in quotas, "
                f"{len(self.open)} allocations open"
            )


class _Loop:
    def __init__(
        self,
        server: _Server,
        requests: Sequence[Request],
        pool: Pool,
        zones: Sequence[str | None],
        horizon_s: float,
        progress: Callable[[float], None] | None,
    ) -> None:
        self.server = server
        self.requests = requests
        self.zones = zones
        self.pool = pool
        self.horizon_s = horizon_s
        self.progress = progress
        self.now = 0.0
        self.heap: list[tuple[float, int, int, int, int]] = []  # t, kind, order, index, version
        self.order = 0
        self.live: dict[int, _Live] = {}  # by request index
        self.by_id: dict[str, _Live] = {}
        self.out = RunResult(pool=pool, horizon_s=horizon_s, requests=len(requests))
        self.out.waits_s = [None] * len(requests)

    def clock(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)

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
        return [x for x in self.live.values() if x.state != _ACTIVE]

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
        made = self.server.allocate(r, self.zones[index], self.clock())
        x = _Live(r, index, made.id, made.state)
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
        self.server.end(self.server.open[x.id])
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
        # simulated request has a lease or reports idleness. Same order: due reclaims
        # end first, so an owner is admitted in the round its capacity comes back.
        now = self.clock()
        self.out.reclaims += self.server.finish_due(now)
        self.out.reclaim_notices += self.server.run_cycle(now)
        self.out.rounds += 1
        waiting = {x.id for x in self._waiting()}
        changing = (_PENDING, _RECLAIMING)
        seen = [
            a for a in self.server.open.values() if a.state in changing or a.id in waiting
        ]  # in arrival order: events are pushed in a fixed order, runs repeat
        for a in seen:
            self.read_back(self.by_id[a.id], a)

    def read_back(self, x: _Live, a: _Alloc) -> None:
        """Follow what the round did to one allocation: admitted (it starts its rest of
        work), reclaimed (it stops, and queues again), notified (a wake-up at the
        deadline), in backoff (a wake-up when it is over)."""
        before = x.state
        reclaimed = a.reclaim_count != x.reclaimed
        x.reclaimed = a.reclaim_count
        if before in _HOLDING and (a.state not in _HOLDING or reclaimed):
            self.ran(x)  # reclaimed at this instant (and maybe admitted again)
            x.version += 1
            x.started = None
            before = "reclaimed"
        x.state = a.state
        if a.state == _RECLAIMING:
            if before != a.state and a.reclaim_at is not None:
                self.push(_seconds(a.reclaim_at), _Kind.WAKE, x.index)
        elif a.state == _PENDING:
            if before != a.state and a.not_before is not None:
                self.push(max(self.now, _seconds(a.not_before)), _Kind.WAKE, x.index)
        elif a.state == _ACTIVE and x.started is None:
            self.admitted(x, self.now if a.started_at is None else _seconds(a.started_at))

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
    return (at - EPOCH).total_seconds()

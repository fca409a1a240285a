"""One scheduler cycle's decisions, on a snapshot: who is admitted where, by borrowing
from whom, what stays pending and why, and which lent nominal must come back.

The state goes in as values: the cohort (every quota line, and the running
allocations' loans, ``Holding``), the queue
(``QueuedRequest`` values), the capacity index and what the allocations under a reclaim
notice hold. The cycle

0. **repays** the loans of companies whose own nominal is free again (borrowing is usage
   above nominal: ``Cohort.repays``);
1. **earmarks** the nominal that owners wait for (ready requests within their
   company's nominal), so that it is not lent in this cycle;
2. walks the ready queue in ``fair_order`` (priority; then the company with the smallest
   weighted dominant share of borrowed capacity; then arrival) and, for each request,
   plans it on the cohort (``Cohort.plan``: own nominal, loans moved to the idle pool,
   borrowing) and places it with the normal pipeline
   (``placement.pipeline.place``). An admission is counted in the snapshot at once (the
   cohort and the index), so later requests of the cycle see it. What does not fit is
   skipped, not waited for (best-effort FIFO), and a request *shape* that failed is not
   tried again in the same cycle (the snapshot only fills up within a cycle), so a long
   queue costs one pass;
3. asks for the **reclaims**: per lender and class, the lent nominal that earmarks still
   miss, less what reclaims under way bring back and what the idle pool could take over.

Everything here is computation on values, so the service (``services.compute.scheduler``),
the simulator and the tests drive the same decisions. The service commits admissions as
they come (``Cycle.admissions`` is a generator): when a conditional update loses a race
it calls ``Cycle.undo``, the snapshot forgets that admission and the rest of the walk sees
the capacity again, exactly as if it had never been planned. ``plan_cycle`` runs a whole
cycle for callers whose commits cannot fail (the simulator, the tests).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from groupcloud.domain.allocation import (
    PendingReason,
    PlacementSpec,
    QueuedRequest,
    demand_of,
    spec_of,
)
from groupcloud.placement.index import CapacityIndex
from groupcloud.placement.pipeline import Placement, Rejection, place
from groupcloud.quota.cohort import (
    Admission,
    Blocked,
    Cohort,
    Holding,
    Move,
    Shortfall,
    ShortfallKind,
)
from groupcloud.quota.fairshare import Queued, fair_order

__all__ = [
    "Admit",
    "Cycle",
    "CyclePlan",
    "Delta",
    "Exclude",
    "Reason",
    "is_ready",
    "pending_reason",
    "plan_cycle",
    "shortfall_data",
]

Delta = tuple[int, str, int]
"""(host id, resource class, amount): what a claim takes from one host."""
Reason = tuple[PendingReason, dict[str, Any]]
"""Why a request stays pending: the stable code and its details (stored and shown)."""
Exclude = Callable[[QueuedRequest], frozenset[int]]
"""Hosts a request may not use: those holding a member of its anti-affinity group."""


@dataclass(frozen=True, slots=True)
class Admit:
    """A request the cycle admits: on which hosts, with which loans."""

    request: QueuedRequest
    demand: dict[str, int]
    """What it is charged against quota in all (``demand_of``)."""
    spec: PlacementSpec
    placement: Placement
    """Its hosts, and for GPUs the devices of each unit."""
    loans: dict[tuple[int, str], int] = field(default_factory=dict)
    """(lender company id, resource class) -> amount borrowed from that lender."""
    transfers: dict[tuple[int, str], int] = field(default_factory=dict)
    """(new lender, class) -> this company's lent nominal moved to that lender's idle."""
    moves: tuple[Move, ...] = ()
    """The transfers, allocation by allocation: the loans rows that change lender."""

    @property
    def admission(self) -> Admission:
        """The cohort's side of it (what ``Cohort.take`` counted)."""
        own = dict(self.demand)
        for (_, rc), n in self.loans.items():
            own[rc] -= n
        return Admission(own, dict(self.loans), dict(self.transfers), self.moves)


@dataclass
class CyclePlan:
    """What one cycle decided."""

    admitted: list[Admit]
    """In the order they were decided (the commit order)."""
    reasons: dict[int, Reason]
    """By queue ``seq``: why each ready request that was not admitted waits."""
    reclaims: dict[tuple[int, str], int]
    """(lender, class) -> amount of lent nominal to take back from borrowers."""
    waiting_for: dict[int, str]
    """Per lender, the first request of its own that waits (what reclaims are for)."""
    earmarks: dict[tuple[int, str], int]
    """(company, class) -> nominal earmarked for its owner at the start of the cycle."""
    above: dict[tuple[int, str], int] = field(default_factory=dict)
    """(company, class) -> how far it is above nominal after the walk (reclaim victims)."""
    repaid: list[Move] = field(default_factory=list)
    """Loans paid back at the start: borrowers whose own nominal was free again."""


def is_ready(request: QueuedRequest, now: datetime) -> bool:
    """Whether the request may be admitted at ``now`` (not in a reclaim backoff)."""
    return request.not_before is None or request.not_before <= now


class Cycle:
    """One cycle on one snapshot; ``cohort`` and ``index`` are mutated as it decides (they
    are the cycle's own copies of the state). See the module doc."""

    def __init__(
        self,
        cohort: Cohort,
        queue: Sequence[QueuedRequest],
        index: CapacityIndex,
        now: datetime,
        *,
        exclude: Exclude | None = None,
        reclaiming: Mapping[tuple[int, str], int] | None = None,
        held: Sequence[Holding] | None = None,
    ) -> None:
        self.cohort = cohort
        self.repaid: list[Move] = []
        """Loans paid back from free own nominal at the start (``Cohort.repays``)."""
        if held is not None:
            cohort.hold(held)
            self.repaid = cohort.repays()
            cohort.repay(self.repaid)
        self.index = index
        """The index placements read; the service may swap in a re-read one mid-cycle."""
        self.exclude = exclude
        self.reclaiming = dict(reclaiming or {})
        self.ready = [r for r in queue if is_ready(r, now)]
        self.demands = {r.seq: demand_of(r) for r in self.ready}
        self.reasons: dict[int, Reason] = {}
        self.admitted: list[Admit] = []
        self.waiting_for: dict[int, str] = {}
        self.earmarks = self._earmark()

    def _earmark(self) -> dict[tuple[int, str], int]:
        """Earmark the nominal that owners wait for, so it is not lent in this cycle."""
        wanted: dict[tuple[int, str], int] = defaultdict(int)
        for r in self.ready:
            demand = self.demands[r.seq]
            if self.cohort.is_guaranteed(r.company_id, demand):
                for rc, n in demand.items():
                    wanted[r.company_id, rc] += n
                self.waiting_for.setdefault(r.company_id, r.id)
        self.cohort.clear_earmarks()
        self.cohort.earmark(wanted)
        return dict(self.cohort.earmarked)

    def admissions(self) -> Iterator[Admit]:
        """Walk the ready queue in fair order; yield each admission once it is counted in
        the snapshot (the caller may commit it, and ``undo`` it if the commit fails,
        before the walk goes on)."""
        by_seq = {r.seq: r for r in self.ready}
        blocked: dict[Hashable, Reason] = {}
        queued = (Queued(r.seq, r.company_id, r.priority) for r in self.ready)
        for item in fair_order(queued, self.cohort.dominant_share):
            r = by_seq[item.seq]
            shape = _shape(r)
            if shape is not None and shape in blocked:
                self.reasons[r.seq] = blocked[shape]
                continue
            decided = self._decide(r)
            if isinstance(decided, Admit):
                yield decided
                continue
            self.reasons[r.seq] = decided
            if shape is not None:
                blocked[shape] = decided

    def _decide(self, r: QueuedRequest) -> Admit | Reason:
        """Admit ``r`` on the snapshot (and count it there), or say why it waits."""
        demand = self.demands[r.seq]
        plan = self.cohort.plan(r.company_id, demand)
        if isinstance(plan, Blocked):
            return (
                pending_reason(plan, None),
                {"quota": [shortfall_data(f) for f in plan.shortfalls]},
            )
        exclude = self.exclude(r) if self.exclude is not None else frozenset()
        spec = spec_of(r, exclude, r.zones)
        outcome = place(self.index, spec)
        if isinstance(outcome, Rejection):
            return (PendingReason.NO_CAPACITY, {"placement": outcome.message})
        admit = Admit(r, demand, spec, outcome, dict(plan.loans), dict(plan.transfers), plan.moves)
        self.cohort.take(r.company_id, plan)
        self.index.apply_placement(spec, outcome)
        if not plan.loans:
            self.cohort.spend_earmark(r.company_id, demand)
        self.admitted.append(admit)
        return admit

    def undo(self, admit: Admit, reason: Reason | None) -> None:
        """The commit of ``admit`` failed: take it out of the snapshot again (the request
        stays pending, with ``reason``; None: it left the queue). The earmark it spent is
        not given back: the owner's request was served or is gone either way."""
        self.cohort.untake(admit.request.company_id, admit.admission)
        self.index.apply_placement(admit.spec, admit.placement, release=True)
        self.admitted = [a for a in self.admitted if a is not admit]
        if reason is not None:
            self.reasons[admit.request.seq] = reason

    def unrepay(self, moves: Sequence[Move]) -> None:
        """The commit of these repays failed (the borrower took its free nominal
        meanwhile): the snapshot forgets them."""
        self.cohort.repay(moves, -1)
        self.repaid = [m for m in self.repaid if m not in moves]

    def plan(self) -> CyclePlan:
        """What the cycle decided (after the walk): admissions, reasons and the reclaims
        that take back lent nominal owners still wait for, beyond reclaims under way."""
        return CyclePlan(
            admitted=list(self.admitted),
            reasons=dict(self.reasons),
            reclaims=self.cohort.reclaim_needs(self.reclaiming),
            above=self.cohort.above_nominal(),
            waiting_for=dict(self.waiting_for),
            earmarks=dict(self.earmarks),
            repaid=list(self.repaid),
        )


def plan_cycle(
    cohort: Cohort,
    queue: Sequence[QueuedRequest],
    index: CapacityIndex,
    now: datetime,
    *,
    exclude: Exclude | None = None,
    reclaiming: Mapping[tuple[int, str], int] | None = None,
    held: Sequence[Holding] | None = None,
) -> CyclePlan:
    """A whole cycle whose admissions all stand (nothing commits them, or nothing can
    fail): the simulator's and the tests' entry point. ``cohort`` and ``index`` end up
    counting the admissions."""
    cycle = Cycle(cohort, queue, index, now, exclude=exclude, reclaiming=reclaiming, held=held)
    for _ in cycle.admissions():
        pass
    return cycle.plan()


def _shape(r: QueuedRequest) -> Hashable | None:
    """What makes two requests interchangeable for the cycle (None: a request of an
    anti-affinity group, whose excluded hosts are its own)."""
    if r.anti_affinity_group is not None:
        return None
    return (
        r.company_id,
        r.count,
        tuple(sorted(r.resources.items())),
        r.zone,
        r.zones,
        tuple(r.required_traits),
        r.strategy,
        r.gpu_share,
        tuple(sorted(r.gpu_models or ())),
    )


def pending_reason(plan: Admission | Blocked, rejection: Rejection | None) -> PendingReason:
    """The stable reason code of a request that cannot be admitted now."""
    if isinstance(plan, Blocked):
        kinds = {f.kind for f in plan.shortfalls}
        if ShortfallKind.LENT_OUT in kinds:
            return PendingReason.AWAITING_RECLAIM
        if ShortfallKind.BORROWING_LIMIT in kinds:
            return PendingReason.BORROWING_LIMIT
        return PendingReason.NO_LENDABLE
    if plan.needs_scheduler:
        return PendingReason.AWAITING_SCHEDULER
    return PendingReason.NO_CAPACITY if rejection is not None else PendingReason.AWAITING_SCHEDULER


def shortfall_data(f: Shortfall) -> dict[str, Any]:
    """A shortfall as data (pending details, problem documents, explain)."""
    return {
        "resource_class": f.resource_class,
        "kind": f.kind.value,
        "requested": f.requested,
        "own_free": f.own_free,
        "missing": f.missing,
        "borrowable": f.borrowable,
        "limit": f.limit,
    }

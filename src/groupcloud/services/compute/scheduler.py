"""The scheduler cycle: admit queued requests, lend idle nominal fairly, start reclaims.

One cycle works on one snapshot (every quota line, every pending request, the capacity
index) and walks the queue in ``fair_order``: priority, then the company with the
smallest weighted share of borrowed capacity, then arrival. Each request is planned on
the snapshot (``Cohort.plan``), placed by the normal pipeline and admitted in its own
short transaction with the same conditional updates as a direct claim; the snapshot
then counts it, so later requests of the same cycle see it. A request that does not fit
is skipped, not waited for (best-effort FIFO), so one big request does not hold back
the whole queue; all of a company's requests may be admitted in one cycle.

Nominal that its owner waits for (pending requests within nominal) is earmarked: it is
not lent in this cycle, and if it is lent out already, the cycle starts reclaiming it
from the borrowers (``services.reclaims``) once, counting reclaims already under way.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import bindparam, exists, func, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from groupcloud.db import audit, claims
from groupcloud.db.models import AllocationRow, CompanyRow, LoanRow, table_of
from groupcloud.domain.allocation import AllocationState, PendingReason, QueuedRequest, spec_of
from groupcloud.domain.resources import scale
from groupcloud.errors import AddressSpaceExhausted, NotFound
from groupcloud.placement.pipeline import Rejection, place
from groupcloud.quota.cohort import Blocked
from groupcloud.quota.fairshare import Queued, fair_order
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import reclaims
from groupcloud.services.compute.allocations import group_hosts, pending_reason, shortfall_data
from groupcloud.services.compute.quotas import load_cohort
from groupcloud.services.network import addresses

__all__ = ["CycleReport", "run_cycle"]

ACTOR = "scheduler"
BATCH = 64
"""Admissions committed per transaction: fewer commits (SQLite) and round trips
(PostgreSQL); small enough that the write lock is not held long."""
_ALLOC = table_of(AllocationRow)
_ADMIT = (
    update(_ALLOC)
    .where(_ALLOC.c.id == bindparam("b_id"), _ALLOC.c.state == AllocationState.PENDING.value)
    .values(
        state=AllocationState.ACTIVE.value,
        started_at=bindparam("b_now"),
        pending_reason=null(),
        pending_detail=null(),
        not_before=null(),
    )
)
_PENDING = (
    select(
        _ALLOC.c.seq,
        _ALLOC.c.id,
        _ALLOC.c.company_id,
        _ALLOC.c.priority,
        _ALLOC.c.count,
        _ALLOC.c.resources,
        _ALLOC.c.zone,
        _ALLOC.c.required_traits,
        _ALLOC.c.anti_affinity_group,
        _ALLOC.c.strategy,
        _ALLOC.c.not_before,
        _ALLOC.c.pending_reason,
        _ALLOC.c.created_at,
        _ALLOC.c.interfaces,
    )
    .where(_ALLOC.c.state == AllocationState.PENDING.value)
    .order_by(_ALLOC.c.priority.desc(), _ALLOC.c.seq)
)


@dataclass
class CycleReport:
    """What one cycle did (the worker logs it; the benchmark sums it)."""

    pending: int = 0
    admitted: int = 0
    borrowed: int = 0
    reclaims_started: int = 0
    seconds: float = 0.0


class _Gone(Exception):
    """The request left the queue (cancelled) since the snapshot."""


def run_cycle(rt: Runtime, now: datetime | None = None) -> CycleReport:  # noqa: C901, PLR0912, PLR0915 -- its decisions move into the quota engine (issue #13)
    """Admit what the queue allows now; see the module doc for the order and the rules."""
    started = time.perf_counter()
    now = now or rt.clock()
    with rt.db.read_conn() as conn:
        ready_any = conn.scalar(
            select(
                exists().where(
                    _ALLOC.c.state == AllocationState.PENDING.value,
                    or_(_ALLOC.c.not_before.is_(None), _ALLOC.c.not_before <= now),
                )
            )
        )
    if not ready_any:  # an idle worker round costs one indexed query, not an index refresh
        return CycleReport(seconds=time.perf_counter() - started)
    rt.index.sync()
    with rt.db.read_conn() as conn:
        cohort = load_cohort(conn)
        rows = [QueuedRequest(**r._mapping) for r in conn.execute(_PENDING)]
        slugs = dict(conn.execute(select(CompanyRow.id, CompanyRow.slug)).all())
        incoming: dict[tuple[int, str], int] = {
            (lender, rc): int(n)
            for lender, rc, n in conn.execute(
                select(LoanRow.lender_id, LoanRow.resource_class, func.sum(LoanRow.amount))
                .join(AllocationRow, AllocationRow.id == LoanRow.allocation_id)
                .where(AllocationRow.state == AllocationState.RECLAIMING.value)
                .group_by(LoanRow.lender_id, LoanRow.resource_class)
            )
        }
    report = CycleReport(pending=len(rows))
    by_seq = {r.seq: r for r in rows}
    demands = {r.seq: scale(r.resources, r.count) for r in rows}
    ready = [r for r in rows if r.not_before is None or r.not_before <= now]

    # Earmark the nominal that owners wait for, so it is not lent in this cycle.
    wanted: dict[tuple[int, str], int] = defaultdict(int)
    waiting_for: dict[int, str] = {}
    for r in ready:
        if cohort.is_guaranteed(r.company_id, demands[r.seq]):
            for rc, n in demands[r.seq].items():
                wanted[r.company_id, rc] += n
            waiting_for.setdefault(r.company_id, r.id)
    for (company, rc), n in wanted.items():
        line = cohort.line(company, rc)
        cohort.earmarked[company, rc] = min(n, line.nominal - line.own_used)

    # One index for the cycle: it was synced above and this cycle applies its own claims;
    # a periodic refresh in the middle would only re-read thousands of rows.
    index = rt.index.get()
    reasons: dict[int, tuple[PendingReason, dict[str, Any]]] = {}
    batch: list[_Planned] = []

    def flush() -> None:
        nonlocal index
        if not batch:
            return
        done, failed = _commit(rt, batch, slugs, now)
        stale: set[int] = set()
        for planned, error in failed:
            claim = planned.claim
            cohort.give(claim.company_id, claim.demand, claim.loans)
            index.apply((h, rc, -n) for h, rc, n in claim.deltas)
            if isinstance(error, claims.QuotaRefused):  # a direct claim took it meanwhile
                reasons[planned.row.seq] = (PendingReason.AWAITING_SCHEDULER, {})
            elif isinstance(error, AddressSpaceExhausted | NotFound):
                reasons[planned.row.seq] = (PendingReason.NO_ADDRESSES, {"addresses": str(error)})
            elif isinstance(error, claims.StaleHosts):
                stale.update(error.host_ids)
                reasons[planned.row.seq] = (
                    PendingReason.NO_CAPACITY,
                    {"placement": "hosts were taken"},
                )
        if stale:
            rt.index.sync(stale)
            index = rt.index.get()
        for planned in done:
            report.admitted += 1
            report.borrowed += bool(planned.claim.loans)
        batch.clear()

    blocked: dict[tuple[Any, ...], tuple[PendingReason, dict[str, Any]]] = {}
    queued = (Queued(r.seq, r.company_id, r.priority) for r in ready)
    for item in fair_order(queued, cohort.dominant_share):
        r = by_seq[item.seq]
        demand = demands[r.seq]
        shape = None
        if r.anti_affinity_group is None:
            shape = (
                r.company_id,
                r.count,
                tuple(sorted(r.resources.items())),
                r.zone,
                tuple(r.required_traits),
                r.strategy,
            )
            if shape in blocked:  # the snapshot only fills up within a cycle
                reasons[r.seq] = blocked[shape]
                continue
        plan = cohort.plan(r.company_id, demand)
        if isinstance(plan, Blocked):
            reasons[r.seq] = (
                pending_reason(plan, None),
                {"quota": [shortfall_data(f) for f in plan.shortfalls]},
            )
            if shape is not None:
                blocked[shape] = reasons[r.seq]
            continue
        outcome = place(index, spec_of(r, group_hosts(rt, r.company_id, r.anti_affinity_group)))
        if isinstance(outcome, Rejection):
            reasons[r.seq] = (PendingReason.NO_CAPACITY, {"placement": outcome.message})
            if shape is not None:
                blocked[shape] = reasons[r.seq]
            continue
        # Count it in the snapshot now (later requests of this cycle must see it) and
        # commit it with the next batch; a batch that fails is retried one by one and
        # what fails alone is taken out of the snapshot again.
        claim = claims.Claim(
            r.id, r.company_id, r.resources, outcome, demand, plan.loans, r.anti_affinity_group
        )
        cohort.take(r.company_id, plan)
        index.apply(claim.deltas)
        if not plan.loans:
            for rc, n in demand.items():
                key = (r.company_id, rc)
                if key in cohort.earmarked:
                    cohort.earmarked[key] = max(cohort.earmarked[key] - n, 0)
        batch.append(_Planned(r, claim))
        if len(batch) >= BATCH or r.anti_affinity_group is not None:
            flush()
    flush()

    # Take back lent nominal that owners wait for, beyond reclaims already under way.
    needs: dict[tuple[int, str], int] = {}
    for (company, rc), want in cohort.earmarked.items():
        line = cohort.line(company, rc)
        back = min(want - line.own_free, line.lent) - incoming.get((company, rc), 0)
        if back > 0:
            needs[company, rc] = back
    if needs:
        report.reclaims_started = reclaims.start(rt, needs, waiting_for, slugs, now)
    _record_reasons(rt, rows, reasons, now)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Planned:
    """An admission counted in the cycle's snapshot, not committed yet."""

    row: Any
    claim: claims.Claim


def _commit(
    rt: Runtime, batch: list[_Planned], slugs: dict[int, str], now: datetime
) -> tuple[list[_Planned], list[tuple[_Planned, Exception]]]:
    """Commit the batch in one transaction; if that fails, each admission alone. Returns
    what was committed and what failed (with why)."""
    try:
        rt.db.retrying(partial(_admit, rt, batch, slugs, now))
        return list(batch), []
    except (
        claims.QuotaRefused,
        claims.StaleHosts,
        _Gone,
        IntegrityError,
        AddressSpaceExhausted,
        NotFound,  # a subnet asked for was deleted while the request waited
    ) as error:
        if len(batch) == 1:
            return [], [(batch[0], error)]
    done: list[_Planned] = []
    failed: list[tuple[_Planned, Exception]] = []
    for planned in batch:
        one_done, one_failed = _commit(rt, [planned], slugs, now)
        done += one_done
        failed += one_failed
    return done, failed


def _admit(rt: Runtime, batch: list[_Planned], slugs: dict[int, str], now: datetime) -> None:
    """One transaction for a batch of admissions: one statement per table and kind."""
    db = rt.db
    with db.fast_write() as cur:
        ids = [{"b_id": p.row.id, "b_now": now} for p in batch]
        if cur.run(db.prepare(_ADMIT), ids) != len(batch):
            raise _Gone()  # cancelled since the snapshot
        group = [p.claim for p in batch]
        claims.take(cur, db, group)
        claims.record(cur, db, group)
        tx = addresses.Transaction.begin(rt, cur, now)
        rows = []
        for p in batch:
            r, claim = p.row, p.claim
            subject = f"allocation/{r.id}"
            taken = (
                tx.take_interfaces(
                    company_id=r.company_id,
                    company=slugs.get(r.company_id, str(r.company_id)),
                    allocation_id=r.id,
                    units=r.count,
                    interfaces=r.interfaces,
                    actor=ACTOR,
                )
                if r.interfaces
                else {}
            )
            rows.append(
                audit.row(
                    ACTOR,
                    "allocation.admitted",
                    subject,
                    r.company_id,
                    {
                        "claimed": dict(claim.demand),
                        "hosts": list(claim.placement.host_names),
                        "waited_s": round((now - r.created_at).total_seconds(), 3),
                        **addresses.event_data(taken),
                    },
                    at=now,
                )
            )
            if claim.loans:
                lenders: dict[str, dict[str, int]] = defaultdict(dict)
                borrowed: dict[str, int] = defaultdict(int)
                for (lender, rc), n in sorted(claim.loans.items()):
                    lenders[slugs.get(lender, str(lender))][rc] = n
                    borrowed[rc] += n
                rows.append(
                    audit.row(
                        ACTOR,
                        "allocation.borrowed",
                        subject,
                        r.company_id,
                        {"borrowed": dict(borrowed), "lenders": dict(lenders)},
                        at=now,
                    )
                )
        cur.run(db.prepare(audit.INSERT, audit.COLUMNS), rows)
    tx.keep()


def _record_reasons(
    rt: Runtime,
    rows: list[QueuedRequest],
    reasons: dict[int, tuple[PendingReason, dict[str, Any]]],
    now: datetime,
) -> None:
    """Store why each request still waits, with an event when the reason changed."""
    changed = [
        (r, reasons[r.seq])
        for r in rows
        if r.seq in reasons and reasons[r.seq][0].value != r.pending_reason
    ]
    if not changed:
        return
    with rt.db.write() as s:
        conn = s.connection()
        for r, (reason, detail) in changed:
            moved = conn.execute(
                update(_ALLOC)
                .where(_ALLOC.c.id == r.id, _ALLOC.c.state == AllocationState.PENDING.value)
                .values(pending_reason=reason.value, pending_detail=detail)
            )
            if moved.rowcount == 1:
                events.record(
                    conn,
                    ACTOR,
                    "allocation.pending",
                    f"allocation/{r.id}",
                    r.company_id,
                    {"reason": reason.value, **detail},
                    at=now,
                )

"""The scheduler cycle as a use case: admit queued requests, lend idle nominal fairly,
start reclaims.

The decisions are the quota engine's (``quota.cycle``): on one snapshot (every quota line,
every pending request, the capacity index) it earmarks the nominal owners wait for,
walks the queue in fair order, plans and places each request, and says what stays
pending and which lent nominal must come back. This module owns the I/O around it: it
reads the snapshot, commits the engine's admissions in batches with the same
conditional updates as a direct claim (a batch that fails is retried one by one; what
fails alone is taken out of the engine's snapshot again and stays pending), sends the
reclaim notices (``services.compute.reclaims``) and records why each request waits.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from sqlalchemy import bindparam, exists, func, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from groupcloud.db import audit, claims
from groupcloud.db.models import (
    AllocationItemRow,
    AllocationRow,
    CompanyRow,
    LoanRow,
    QuotaRow,
    table_of,
)
from groupcloud.domain.allocation import AllocationState, PendingReason, QueuedRequest
from groupcloud.errors import AddressSpaceExhausted, NotFound
from groupcloud.quota.cohort import Cohort, Holding, Move
from groupcloud.quota.cycle import Admit, Cycle, Reason
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import reclaims
from groupcloud.services.compute.allocations import group_hosts
from groupcloud.services.compute.quotas import gpu_share_charges, load_cohort
from groupcloud.services.network import addresses
from groupcloud.services.zones.rules import zone_decision, zone_kinds, zones_of_kind

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
_QUOTA = table_of(QuotaRow)
_REPAY_DUE = exists().where(
    _QUOTA.c.borrowed > 0, _QUOTA.c.used - _QUOTA.c.borrowed + _QUOTA.c.lent < _QUOTA.c.nominal
)
"""A company borrows while part of its own nominal is free: the cycle repays."""
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
        _ALLOC.c.gpu_share,
        _ALLOC.c.gpu_models,
        _ALLOC.c.data_class,
        _ALLOC.c.system_type,
        _ALLOC.c.zone_kind,
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


def run_cycle(rt: Runtime, now: datetime | None = None) -> CycleReport:
    """Admit what the queue allows now (the decisions: ``quota.cycle``; see the module
    doc): load the snapshot, let the engine walk the queue, commit its admissions in
    batches, start the reclaims it asks for, store why the rest waits."""
    started = time.perf_counter()
    now = now or rt.clock()
    if not _anything_ready(rt, now):  # an idle round costs one indexed query, no refresh
        return CycleReport(seconds=time.perf_counter() - started)
    rt.index.sync()
    snapshot = _Snapshot.load(rt)
    report = CycleReport(pending=len(snapshot.rows))
    # One index for the cycle: it was synced above and this cycle applies its own claims;
    # a periodic refresh in the middle would only re-read thousands of rows.
    cycle = Cycle(
        snapshot.cohort,
        snapshot.rows,
        rt.index.get(),
        now,
        exclude=lambda r: group_hosts(rt, r.company_id, r.anti_affinity_group),
        reclaiming=snapshot.reclaiming,
        held=snapshot.held,
    )
    _repay(rt, cycle, snapshot.slugs, now)
    batches = _Batches(rt, cycle, snapshot.slugs, now, report)
    for admit in cycle.admissions():
        batches.add(admit)
    batches.flush()
    plan = cycle.plan()
    if plan.reclaims:
        report.reclaims_started = reclaims.start(
            rt, plan.reclaims, plan.above, plan.waiting_for, snapshot.slugs, now
        )
    _record_reasons(rt, snapshot.rows, plan.reasons, now)
    report.seconds = time.perf_counter() - started
    return report


def _repay(rt: Runtime, cycle: Cycle, slugs: dict[int, str], now: datetime) -> None:
    """Commit the cycle's repays, one transaction per borrower; a borrower's repays that
    fail (it claimed its free nominal since the snapshot) are forgotten by the cycle."""
    by_borrower: dict[int, list[Move]] = defaultdict(list)
    for m in cycle.repaid:
        by_borrower[m.borrower].append(m)
    for _, moves in sorted(by_borrower.items()):
        try:
            rt.db.retrying(partial(_repay_one, rt, moves, slugs, now))
        except claims.QuotaRefused:
            cycle.unrepay(moves)


def _repay_one(rt: Runtime, moves: list[Move], slugs: dict[int, str], now: datetime) -> None:
    db = rt.db
    with db.fast_write() as cur:
        claims.repay(cur, db, moves)
        cur.run(
            db.prepare(audit.INSERT, audit.COLUMNS),
            [
                audit.row(
                    ACTOR,
                    "allocation.loan_repaid",
                    f"allocation/{m.allocation_id}",
                    m.borrower,
                    {
                        "resource_class": m.resource_class,
                        "amount": m.amount,
                        "lender": slugs.get(m.from_lender, str(m.from_lender)),
                    },
                    at=now,
                )
                for m in moves
            ],
        )


def _anything_ready(rt: Runtime, now: datetime) -> bool:
    """Whether any pending request may be admitted now, or a borrower has own nominal
    free to repay its loans with (two indexed queries)."""
    with rt.db.read_conn() as conn:
        ready = conn.scalar(
            select(
                exists().where(
                    _ALLOC.c.state == AllocationState.PENDING.value,
                    or_(_ALLOC.c.not_before.is_(None), _ALLOC.c.not_before <= now),
                )
            )
        )
        return bool(ready) or bool(conn.scalar(select(_REPAY_DUE)))


@dataclass
class _Snapshot:
    """What one cycle reads, in one read transaction: every quota line, the pending queue,
    the companies' slugs, what the allocations under a reclaim notice hold per company
    and class, and the running allocations' loans."""

    cohort: Cohort
    rows: list[QueuedRequest]
    slugs: dict[int, str]
    reclaiming: dict[tuple[int, str], int]
    held: list[Holding]

    @classmethod
    def load(cls, rt: Runtime) -> _Snapshot:
        with rt.db.read_conn() as conn:
            cohort = load_cohort(conn)
            rows = [QueuedRequest(**r._mapping) for r in conn.execute(_PENDING)]
            slugs = dict(conn.execute(select(CompanyRow.id, CompanyRow.slug)).all())
            reclaiming = {
                (company, rc): int(n)
                for company, rc, n in conn.execute(
                    select(
                        AllocationRow.company_id,
                        AllocationItemRow.resource_class,
                        func.sum(AllocationItemRow.amount),
                    )
                    .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
                    .where(AllocationRow.state == AllocationState.RECLAIMING.value)
                    .group_by(AllocationRow.company_id, AllocationItemRow.resource_class)
                )
            }
            under_notice = AllocationRow.state == AllocationState.RECLAIMING.value
            for _, company, gpus in gpu_share_charges(conn, under_notice):
                reclaiming[company, "GPU"] = reclaiming.get((company, "GPU"), 0) + gpus
            held: dict[str, tuple[int, dict[tuple[int, str], int]]] = {}
            for alloc_id, company, lender, rc, n in conn.execute(
                select(
                    LoanRow.allocation_id,
                    AllocationRow.company_id,
                    LoanRow.lender_id,
                    LoanRow.resource_class,
                    LoanRow.amount,
                )
                .join(AllocationRow, AllocationRow.id == LoanRow.allocation_id)
                .where(AllocationRow.state == AllocationState.ACTIVE.value)
                # transfers move the loans of the newest allocations first
                .order_by(AllocationRow.seq.desc(), LoanRow.lender_id, LoanRow.resource_class)
            ):
                held.setdefault(alloc_id, (company, {}))[1][lender, rc] = int(n)
        holdings = [Holding(a, company, loans) for a, (company, loans) in held.items()]
        return cls(cohort, _with_zones(rt, rows, slugs), slugs, reclaiming, holdings)


def _with_zones(
    rt: Runtime, rows: list[QueuedRequest], slugs: dict[int, str]
) -> list[QueuedRequest]:
    """Each request with the zones the placement rules allow it: one decision per
    (company, data class, system type), over the zones of the process's index."""
    allowed: dict[tuple[int, str, str, str | None], frozenset[str] | None] = {}
    kinds = zone_kinds(rt)
    out = []
    for r in rows:
        key = (r.company_id, r.data_class, r.system_type, r.zone_kind)
        if key not in allowed:
            decision = zone_decision(rt, slugs[r.company_id], r.data_class, r.system_type)
            allowed[key] = zones_of_kind(decision, kinds, r.zone_kind)
        out.append(replace(r, zones=allowed[key]))
    return out


class _Batches:
    """Commits the engine's admissions as they come, ``BATCH`` at a time (an admission
    with an anti-affinity group at once: the next member must see its hosts). What fails
    to commit is taken out of the engine's snapshot again (``Cycle.undo``) before the
    walk goes on, so a lost race costs that request a cycle, never an over-commitment."""

    def __init__(
        self,
        rt: Runtime,
        cycle: Cycle,
        slugs: dict[int, str],
        now: datetime,
        report: CycleReport,
    ) -> None:
        self.rt = rt
        self.cycle = cycle
        self.slugs = slugs
        self.now = now
        self.report = report
        self.batch: list[_Planned] = []

    def add(self, admit: Admit) -> None:
        r = admit.request
        claim = claims.Claim(
            r.id, r.company_id, r.resources, admit.placement, admit.demand, admit.loans,
            r.anti_affinity_group, gpu_share=r.gpu_share, transfers=admit.transfers,
        )  # fmt: skip
        self.batch.append(_Planned(r, claim, admit))
        if len(self.batch) >= BATCH or r.anti_affinity_group is not None:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        done, failed = _commit(self.rt, self.batch, self.slugs, self.now)
        stale: set[int] = set()
        for planned, error in failed:
            if isinstance(error, claims.StaleHosts):
                stale.update(error.host_ids)
            self.cycle.undo(planned.admit, _reason_of(error))
        if stale:
            self.rt.index.sync(stale)
            self.cycle.index = self.rt.index.get()
        for planned in done:
            self.report.admitted += 1
            self.report.borrowed += bool(planned.claim.loans)
        self.batch.clear()


def _reason_of(error: Exception) -> Reason | None:
    """Why a request whose admission failed to commit still waits (None: it left the
    queue, or nothing better is known than its last reason)."""
    if isinstance(error, claims.QuotaRefused):  # a direct claim took it meanwhile
        return (PendingReason.AWAITING_SCHEDULER, {})
    if isinstance(error, AddressSpaceExhausted | NotFound):
        return (PendingReason.NO_ADDRESSES, {"addresses": str(error)})
    if isinstance(error, claims.StaleHosts):
        return (PendingReason.NO_CAPACITY, {"placement": "hosts were taken"})
    return None


@dataclass
class _Planned:
    """An admission counted in the cycle's snapshot, not committed yet."""

    row: QueuedRequest
    claim: claims.Claim
    admit: Admit


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
        moves = [m for p in batch for m in p.admit.moves]
        if moves:
            claims.move_loans(cur, db, moves)
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
            for m in p.admit.moves:
                rows.append(
                    audit.row(
                        ACTOR,
                        "allocation.lender_changed",
                        f"allocation/{m.allocation_id}",
                        m.borrower,
                        {
                            "resource_class": m.resource_class,
                            "amount": m.amount,
                            "from": slugs.get(m.from_lender, str(m.from_lender)),
                            "to": slugs.get(m.to_lender, str(m.to_lender)),
                            "for": r.id,
                        },
                        at=now,
                    )
                )
        cur.run(db.prepare(audit.INSERT, audit.COLUMNS), rows)
    tx.keep()


def _record_reasons(
    rt: Runtime,
    rows: list[QueuedRequest],
    reasons: dict[int, Reason],
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

"""Explain an allocation: why it waits, what it borrows, why it was reclaimed -- in words.

Everything is recomputed from the current state (quota lines, the capacity index, the
queue) with the same engines the scheduler uses, plus the allocation's own events, so
the answer is what the scheduler would decide now, not a stale note.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from groupcloud.db.models import AllocationRow, CompanyRow, EventRow, LoanRow
from groupcloud.domain.allocation import AllocationState, PendingReason, spec_of
from groupcloud.domain.resources import scale
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import NotFound
from groupcloud.placement.pipeline import Rejection, place
from groupcloud.quota.cohort import Admission, Blocked
from groupcloud.schemas.audit import Event
from groupcloud.schemas.compute import Explanation
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.allocations import describe_shortfalls, group_hosts, shortfall_data
from groupcloud.services.compute.quotas import load_cohort

__all__ = ["explain"]

_REASON_WORDS = {
    PendingReason.AWAITING_SCHEDULER: "it needs capacity borrowed from other companies, which "
    "only the scheduler lends, in fair-share order, at its next cycle",
    PendingReason.AWAITING_RECLAIM: "it fits in its company's nominal quota, but part of that "
    "nominal is lent to other companies and is being reclaimed",
    PendingReason.BORROWING_LIMIT: "it needs more than its company may borrow above its "
    "nominal quota",
    PendingReason.NO_LENDABLE: "it needs to borrow, and the other companies have not enough "
    "idle nominal to lend now",
    PendingReason.NO_CAPACITY: "quota admits it, but no hosts have room for it now",
    PendingReason.BACKOFF: "it was reclaimed a short while ago and waits out a backoff",
    PendingReason.NO_ADDRESSES: "capacity is there, but a subnet it asks interfaces on has no "
    "free address now",
}


def explain(rt: Runtime, actor: Principal, allocation_id: str) -> Explanation:
    with rt.db.read() as s:
        a = s.scalar(select(AllocationRow).where(AllocationRow.id == allocation_id))
        if a is None or not actor.can_see(a.company_id):
            raise NotFound(
                f"allocation {allocation_id!r} not found", resource="allocation", name=allocation_id
            )
        slugs: dict[int, str] = dict(s.execute(select(CompanyRow.id, CompanyRow.slug)).all())
        company = slugs[a.company_id]
        state = AllocationState(a.state)
        reasons: list[str] = []
        out = Explanation(allocation=a.id, state=state, summary="", reasons=reasons)
        lenders: dict[str, dict[str, int]] = defaultdict(dict)
        for lender, rc, amount in s.execute(
            select(LoanRow.lender_id, LoanRow.resource_class, LoanRow.amount).where(
                LoanRow.allocation_id == a.id
            )
        ):
            lenders[slugs[lender]][rc] = amount
        out.lenders = dict(lenders)
        out.events = [
            Event(
                id=e.id,
                at=e.at,
                actor=e.actor,
                company=company,
                kind=e.kind,
                subject=e.subject,
                data=e.data,
            )
            for e in s.scalars(
                select(EventRow)
                .where(EventRow.subject == f"allocation/{a.id}")
                .order_by(EventRow.id)
            )
        ]
        borrowed_words = "; ".join(
            f"{', '.join(f'{n} {rc}' for rc, n in sorted(held.items()))} from {lender}"
            for lender, held in sorted(lenders.items())
        )
        if state is AllocationState.PENDING:
            demand = scale(a.resources, a.count)
            cohort = load_cohort(s.connection())
            plan = cohort.plan(a.company_id, demand)
            reason = PendingReason(a.pending_reason) if a.pending_reason else None
            if a.not_before is not None and (reason is PendingReason.BACKOFF):
                reasons.append(
                    f"It was reclaimed {a.reclaim_count} time(s); it is not admitted again "
                    f"before {a.not_before.isoformat(timespec='seconds')}."
                )
            if isinstance(plan, Blocked):
                out.quota = [shortfall_data(f) for f in plan.shortfalls]
                reasons.append(f"Quota of {company}: {describe_shortfalls(plan.shortfalls)}.")
                reclaiming = s.execute(
                    select(
                        AllocationRow.id, AllocationRow.reclaim_at, AllocationRow.company_id
                    ).where(
                        AllocationRow.state == AllocationState.RECLAIMING.value,
                        AllocationRow.id.in_(
                            select(LoanRow.allocation_id).where(LoanRow.lender_id == a.company_id)
                        ),
                    )
                ).all()
                for rid, at, borrower in reclaiming:
                    reasons.append(
                        f"Allocation {rid} of {slugs[borrower]} holds {company}'s nominal and "
                        f"is being reclaimed; it ends at {_at(at, 'once due')}."
                    )
            elif isinstance(plan, Admission) and plan.loans:
                words = ", ".join(
                    f"{n} {rc} from {slugs[lender]}"
                    for (lender, rc), n in sorted(plan.loans.items())
                )
                reasons.append(f"Quota: {company} can borrow what it lacks now ({words}).")
            else:
                reasons.append(f"Quota: {company}'s own free nominal covers it.")
            if not (isinstance(plan, Blocked) and plan.never):
                spec = spec_of(a, group_hosts(rt, a.company_id, a.anti_affinity_group))
                placed = place(rt.index.get(), spec)
                if isinstance(placed, Rejection):
                    exp = placed.explanation
                    out.placement = {
                        "hosts_total": exp.hosts_total,
                        "hosts_fitting": exp.hosts_fitting,
                        "units_placeable": placed.units_placeable,
                        "filters": [
                            {
                                "filter": c.filter,
                                "reason": c.reason,
                                "hosts_removed": c.hosts_removed,
                            }
                            for c in exp.filters
                        ],
                    }
                    removed = ", ".join(
                        f"{c.filter} removed {c.hosts_removed} ({c.reason})"
                        for c in exp.filters
                        if c.hosts_removed
                    )
                    reasons.append(
                        f"Placement: {placed.units_placeable} of {a.count} unit(s) fit on "
                        f"{exp.hosts_total} hosts now" + (f"; {removed}" if removed else "") + "."
                    )
                else:
                    reasons.append("Placement: hosts with room exist now.")
            ahead = s.scalar(
                select(func.count())
                .select_from(AllocationRow)
                .where(
                    AllocationRow.state == AllocationState.PENDING.value,
                    or_(
                        AllocationRow.priority > a.priority,
                        and_(AllocationRow.priority == a.priority, AllocationRow.seq < a.seq),
                    ),
                )
            )
            out.queue_position = int(ahead or 0) + 1
            out.pending_reason = reason
            why = (
                _REASON_WORDS.get(reason, "it has not been considered yet")
                if reason
                else ("it has not been considered yet")
            )
            out.summary = (
                f"Pending: {why}. It is number {out.queue_position} in the queue (priority "
                f"{a.priority}, first come first served within a priority; requests that do "
                "not fit are skipped, not waited for)."
            )
        elif state is AllocationState.ACTIVE:
            out.summary = (
                f"Active since {_at(a.started_at)}"
                + (
                    f", borrowing {borrowed_words}: it may be reclaimed with "
                    f"{rt.settings.reclaim_notice_s:g} s notice when a lender needs its "
                    "nominal back"
                    if lenders
                    else f", within {company}'s own nominal: it is never reclaimed for a lender"
                )
                + "."
            )
        elif state is AllocationState.RECLAIMING:
            requester = s.execute(
                select(AllocationRow.id, AllocationRow.company_id).where(
                    AllocationRow.id == a.reclaim_for
                )
            ).first()
            by = f" for {slugs[requester.company_id]}'s request {requester.id}" if requester else ""
            out.summary = (
                f"Being reclaimed{by}: it borrows {borrowed_words}, and the lender needs its "
                f"nominal back. It is taken back at "
                f"{_at(a.reclaim_at, 'the next round')}"
                + (", then queued again after a backoff." if a.on_reclaim == "requeue" else ".")
            )
        else:
            out.summary = (
                f"Released ({a.end_reason or 'released'}) at "
                + (_at(a.released_at))
                + (f" by {a.released_by}." if a.released_by else ".")
            )
            if a.end_reason == "reclaimed":
                notices = [e for e in out.events if e.kind == "allocation.reclaim_notice"]
                if notices:
                    lenders_named = ", ".join(notices[-1].data.get("lenders", []))
                    reasons.append(f"It was reclaimed for its lender(s) {lenders_named}.")
        if a.expires_at is not None:
            reasons.append(
                f"Lease ends {a.expires_at.isoformat(timespec='seconds')} (then: {a.on_expiry})."
            )
        if a.idle_flagged_at is not None:
            reasons.append(
                f"Flagged idle at {a.idle_flagged_at.isoformat(timespec='seconds')} (utilisation "
                f"{a.utilisation}); released after the grace period unless busy or kept."
            )
        out.reasons = reasons  # the model holds a copy of the list it was built with
        return out


def _at(moment: datetime | None, missing: str = "?") -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else missing

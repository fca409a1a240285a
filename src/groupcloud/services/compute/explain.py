"""Explain an allocation: why it waits, what it borrows, why it was reclaimed -- in words.

Everything is recomputed from the current state (quota lines, the capacity index, the
queue) with the same engines the scheduler uses, plus the allocation's own events, so
the answer is what the scheduler would decide now, not a stale note.

Two steps: ``explain`` gathers the facts (one read transaction, the engines' verdicts)
into ``Facts``; ``describe`` turns facts into words and data without any I/O, so every
sentence can be tested on hand-made facts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from groupcloud.db.models import AllocationRow, CompanyRow, EventRow, LoanRow
from groupcloud.domain.allocation import AllocationState, PendingReason, demand_of, spec_of
from groupcloud.domain.tenancy import Principal
from groupcloud.placement.pipeline import Placement, Rejection, place
from groupcloud.placement.zone_rules import ZoneDecision
from groupcloud.quota.cohort import Admission, Blocked
from groupcloud.schemas.audit import Event
from groupcloud.schemas.compute import Explanation
from groupcloud.services.audit.events import event_out
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.allocations import (
    allocation_not_found,
    describe_shortfalls,
    group_hosts,
    shortfall_data,
)
from groupcloud.services.compute.quotas import load_cohort
from groupcloud.services.providers.views import external_sentence, external_units
from groupcloud.services.zones.rules import zone_decision

__all__ = ["Facts", "Reclaiming", "Waiting", "describe", "explain"]


@dataclass(frozen=True, slots=True)
class Reclaiming:
    """A borrower's allocation that is giving the explained company's nominal back."""

    allocation: str
    company: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Waiting:
    """What the engines say of a pending request now."""

    plan: Admission | Blocked
    placement: Placement | Rejection | None
    """None when quota says it can never fit (placement is not asked then)."""
    queue_position: int
    reclaiming: tuple[Reclaiming, ...] = ()
    lenders: dict[int, str] = field(default_factory=dict)
    """Company ids of the plan's loans -> their names."""


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything ``describe`` needs, read in one transaction."""

    row: AllocationRow
    company: str
    lenders: dict[str, dict[str, int]]
    """Lender -> what this allocation borrows from it, per class."""
    events: list[Event]
    reclaim_notice_s: float
    waiting: Waiting | None = None
    """Pending requests only."""
    reclaimed_for: tuple[str, str] | None = None
    """Being reclaimed: (company, allocation) the capacity goes back for."""
    zones: ZoneDecision | None = None
    """The placement rules' verdict on each zone for this allocation, now."""


def explain(rt: Runtime, actor: Principal, allocation_id: str) -> Explanation:
    with rt.db.read() as s:
        a = s.scalar(select(AllocationRow).where(AllocationRow.id == allocation_id))
        if a is None or not actor.can_see(a.company_id):
            raise allocation_not_found(allocation_id)
        slugs: dict[int, str] = dict(s.execute(select(CompanyRow.id, CompanyRow.slug)).all())
        decision = zone_decision(rt, slugs[a.company_id], a.data_class, a.system_type)
        lenders: dict[str, dict[str, int]] = defaultdict(dict)
        for lender, rc, amount in s.execute(
            select(LoanRow.lender_id, LoanRow.resource_class, LoanRow.amount).where(
                LoanRow.allocation_id == a.id
            )
        ):
            lenders[slugs[lender]][rc] = amount
        facts = Facts(
            row=a,
            company=slugs[a.company_id],
            lenders=dict(lenders),
            events=_events(s, a, slugs[a.company_id], actor),
            reclaim_notice_s=rt.settings.reclaim_notice_s,
            waiting=(
                _waiting(rt, s, a, slugs, decision.restriction)
                if a.state == AllocationState.PENDING
                else None
            ),
            reclaimed_for=_reclaimed_for(s, a, slugs),
            zones=decision,
        )
        out = describe(facts)
        if a.external:
            sentence = external_sentence(external_units(s, [a.id]).get(a.id, []))
            out.reasons.append(sentence)
            out.summary = f"{out.summary} {sentence}"
        return out


def _events(s: Session, a: AllocationRow, company: str, viewer: Principal) -> list[Event]:
    return [
        event_out(e, company, viewer)
        for e in s.scalars(
            select(EventRow).where(EventRow.subject == f"allocation/{a.id}").order_by(EventRow.id)
        )
    ]


def _waiting(
    rt: Runtime, s: Session, a: AllocationRow, slugs: dict[int, str], zones: frozenset[str] | None
) -> Waiting:
    """The quota engine's plan, the placement engine's answer and the queue position of a
    pending request, as the scheduler would see them now."""
    plan = load_cohort(s.connection()).plan(a.company_id, demand_of(a))
    placement: Placement | Rejection | None = None
    if not (isinstance(plan, Blocked) and plan.never):
        spec = spec_of(a, group_hosts(rt, a.company_id, a.anti_affinity_group), zones)
        placement = place(rt.index.get(), spec)
    reclaiming: tuple[Reclaiming, ...] = ()
    if isinstance(plan, Blocked):
        reclaiming = tuple(
            Reclaiming(rid, slugs[borrower], at)
            for rid, at, borrower in s.execute(
                select(AllocationRow.id, AllocationRow.reclaim_at, AllocationRow.company_id).where(
                    AllocationRow.state == AllocationState.RECLAIMING.value,
                    AllocationRow.id.in_(
                        select(LoanRow.allocation_id).where(LoanRow.lender_id == a.company_id)
                    ),
                )
            )
        )
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
    return Waiting(plan, placement, int(ahead or 0) + 1, reclaiming, slugs)


def _reclaimed_for(s: Session, a: AllocationRow, slugs: dict[int, str]) -> tuple[str, str] | None:
    if a.state != AllocationState.RECLAIMING or a.reclaim_for is None:
        return None
    requester = s.execute(
        select(AllocationRow.id, AllocationRow.company_id).where(AllocationRow.id == a.reclaim_for)
    ).first()
    return (slugs[requester.company_id], requester.id) if requester else None


# --- facts -> words (pure) ---------------------------------------------------------------


def describe(facts: Facts) -> Explanation:
    """The explanation of ``facts``: a summary by state, one sentence per fact behind it,
    and the same facts as data."""
    a = facts.row
    state = AllocationState(a.state)
    out = Explanation(
        allocation=a.id,
        state=state,
        summary="",
        reasons=[],
        lenders=facts.lenders,
        events=facts.events,
    )
    reasons: list[str] = []
    if facts.waiting is not None:
        out.summary = _pending(facts, facts.waiting, out, reasons)
    elif state is AllocationState.ACTIVE:
        out.summary = _active(facts)
    elif state is AllocationState.RECLAIMING:
        out.summary = _being_reclaimed(facts)
    else:
        out.summary = _released(facts, reasons)
    reasons += _lease_and_idle(a)
    if facts.zones is not None:
        out.zones = facts.zones.as_data()
        reasons += _zone_words(a, facts.zones)
    out.reasons = reasons  # the model holds a copy of the list it was built with
    return out


def _pending(facts: Facts, w: Waiting, out: Explanation, reasons: list[str]) -> str:
    a, company = facts.row, facts.company
    reason = PendingReason(a.pending_reason) if a.pending_reason else None
    if a.not_before is not None and reason is PendingReason.BACKOFF:
        reasons.append(
            f"It was reclaimed {a.reclaim_count} time(s); it is not admitted again "
            f"before {_at(a.not_before)}."
        )
    reasons += _quota_words(company, w)
    if isinstance(w.plan, Blocked):
        out.quota = [shortfall_data(f) for f in w.plan.shortfalls]
    if isinstance(w.placement, Rejection):
        out.placement = w.placement.detail(a.count)
        exp = w.placement.explanation
        removed = ", ".join(
            f"{c.filter} removed {c.hosts_removed} ({c.reason})"
            for c in exp.filters
            if c.hosts_removed
        )
        reasons.append(
            f"Placement: {w.placement.units_placeable} of {a.count} unit(s) fit on "
            f"{exp.hosts_total} hosts now" + (f"; {removed}" if removed else "") + "."
        )
    elif w.placement is not None:
        reasons.append("Placement: hosts with room exist now.")
    out.queue_position = w.queue_position
    out.pending_reason = reason
    why = reason.explanation if reason else "it has not been considered yet"
    return (
        f"Pending: {why}. It is number {w.queue_position} in the queue (priority "
        f"{a.priority}, first come first served within a priority; requests that do "
        "not fit are skipped, not waited for)."
    )


def _quota_words(company: str, w: Waiting) -> list[str]:
    if isinstance(w.plan, Blocked):
        return [f"Quota of {company}: {describe_shortfalls(w.plan.shortfalls)}."] + [
            f"Allocation {r.allocation} of {r.company} holds {company}'s nominal and "
            f"is being reclaimed; it ends at {_at(r.at, 'once due')}."
            for r in w.reclaiming
        ]
    if w.plan.loans:
        words = ", ".join(
            f"{n} {rc} from {w.lenders[lender]}" for (lender, rc), n in sorted(w.plan.loans.items())
        )
        return [f"Quota: {company} can borrow what it lacks now ({words})."]
    return [f"Quota: {company}'s own free nominal covers it."]


def _borrowed_words(facts: Facts) -> str:
    return "; ".join(
        f"{', '.join(f'{n} {rc}' for rc, n in sorted(held.items()))} from {lender}"
        for lender, held in sorted(facts.lenders.items())
    )


def _active(facts: Facts) -> str:
    if facts.lenders:
        holds = (
            f"borrowing {_borrowed_words(facts)}: it may be reclaimed with "
            f"{facts.reclaim_notice_s:g} s notice when a lender needs its nominal back"
        )
    else:
        holds = f"within {facts.company}'s own nominal: it is never reclaimed for a lender"
    return f"Active since {_at(facts.row.started_at)}, {holds}."


def _being_reclaimed(facts: Facts) -> str:
    a = facts.row
    by = (
        f" for {facts.reclaimed_for[0]}'s request {facts.reclaimed_for[1]}"
        if facts.reclaimed_for
        else ""
    )
    then = ", then queued again after a backoff." if a.on_reclaim == "requeue" else "."
    return (
        f"Being reclaimed{by}: it borrows {_borrowed_words(facts)}, and the lender needs its "
        f"nominal back. It is taken back at {_at(a.reclaim_at, 'the next round')}{then}"
    )


def _released(facts: Facts, reasons: list[str]) -> str:
    a = facts.row
    if a.end_reason == "reclaimed":
        notices = [e for e in facts.events if e.kind == "allocation.reclaim_notice"]
        if notices:
            lenders_named = ", ".join(notices[-1].data.get("lenders", []))
            reasons.append(f"It was reclaimed for its lender(s) {lenders_named}.")
    by = f" by {a.released_by}." if a.released_by else "."
    return f"Released ({a.end_reason or 'released'}) at {_at(a.released_at)}{by}"


def _zone_words(a: AllocationRow, decision: ZoneDecision) -> list[str]:
    """One sentence when the placement rules remove zones (none when every zone is open)."""
    removed = [v for v in decision.verdicts if not v.allowed]
    if not removed:
        return []
    allowed = ", ".join(sorted(decision.allowed)) or "none"
    return [
        f"Placement rules for {a.data_class} data of a {a.system_type} system: allowed "
        f"zones {allowed}; removed "
        + "; ".join(f"{v.zone} by {', '.join(v.removed_by)}" for v in removed)
        + "."
    ]


def _lease_and_idle(a: AllocationRow) -> list[str]:
    out = []
    if a.expires_at is not None:
        out.append(f"Lease ends {_at(a.expires_at)} (then: {a.on_expiry}).")
    if a.idle_flagged_at is not None:
        out.append(
            f"Flagged idle at {_at(a.idle_flagged_at)} (utilisation {a.utilisation}); released "
            "after the grace period unless busy or kept."
        )
    return out


def _at(moment: datetime | None, missing: str = "?") -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else missing

"""``explain``'s words from hand-made facts: ``describe`` is pure, so every sentence is
checked here without a database (the service tests check that the facts are gathered)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from groupcloud.db.models import AllocationRow
from groupcloud.domain.allocation import AllocationState, PendingReason
from groupcloud.placement.pipeline import Explanation, FilterCount, Placement, Rejection
from groupcloud.quota.cohort import Admission, Blocked, Shortfall, ShortfallKind
from groupcloud.schemas.audit import Event
from groupcloud.services.compute.explain import Facts, Reclaiming, Waiting, describe

AT = datetime(2030, 3, 1, 9, 30, tzinfo=UTC)
BANK, CARD = 1, 2


def row(state: AllocationState, **kw: Any) -> AllocationRow:
    values: dict[str, Any] = {
        "id": "a-1",
        "company_id": BANK,
        "state": state.value,
        "count": 2,
        "resources": {"VCPU": 4},
        "priority": 500,
        "pending_reason": None,
        "not_before": None,
        "reclaim_count": 0,
        "started_at": None,
        "reclaim_at": None,
        "on_reclaim": "requeue",
        "released_at": None,
        "released_by": None,
        "end_reason": None,
        "expires_at": None,
        "on_expiry": "release",
        "idle_flagged_at": None,
        "utilisation": None,
    }
    return AllocationRow(**{**values, **kw})


def facts(a: AllocationRow, **kw: Any) -> Facts:
    return Facts(
        **{
            "row": a,
            "company": "bank",
            "lenders": {},
            "events": [],
            "reclaim_notice_s": 300.0,
            **kw,
        }
    )


def test_pending_within_lent_nominal_names_the_reclaims_under_way() -> None:
    lent = Shortfall("VCPU", ShortfallKind.LENT_OUT, requested=8, own_free=2, missing=6)
    waiting = Waiting(
        Blocked((lent,)),
        Placement((1, 2), ("h1", "h2")),
        queue_position=3,
        reclaiming=(Reclaiming("b-9", "card", AT),),
    )
    a = row(AllocationState.PENDING, pending_reason=PendingReason.AWAITING_RECLAIM.value)
    out = describe(facts(a, waiting=waiting))
    assert out.summary.startswith(f"Pending: {PendingReason.AWAITING_RECLAIM.explanation}. ")
    assert "number 3 in the queue" in out.summary
    assert out.reasons == [
        "Quota of bank: VCPU requested 8, own free nominal 2: 6 of its nominal is lent and "
        "must be reclaimed.",
        "Allocation b-9 of card holds bank's nominal and is being reclaimed; it ends at "
        "2030-03-01T09:30:00+00:00.",
        "Placement: hosts with room exist now.",
    ]
    assert (out.queue_position, out.pending_reason) == (3, PendingReason.AWAITING_RECLAIM)
    assert out.quota[0]["kind"] == "lent_out"
    assert out.placement is None


def test_pending_that_may_borrow_names_its_lenders_and_what_placement_removed() -> None:
    rejected = Rejection(
        never_fits=False,
        units_placeable=1,
        explanation=Explanation(
            40,
            0,
            (
                FilterCount("resources:VCPU", "insufficient_vcpu", 39),
                FilterCount("zone", "zone_not_allowed", 0),
            ),
        ),
    )
    waiting = Waiting(
        Admission(own={"VCPU": 2}, loans={(CARD, "VCPU"): 6}),
        rejected,
        queue_position=1,
        lenders={CARD: "card"},
    )
    out = describe(facts(row(AllocationState.PENDING), waiting=waiting))
    assert out.reasons == [
        "Quota: bank can borrow what it lacks now (6 VCPU from card).",
        "Placement: 1 of 2 unit(s) fit on 40 hosts now; resources:VCPU removed 39 "
        "(insufficient_vcpu).",
    ]
    assert out.summary.startswith("Pending: it has not been considered yet.")
    assert out.placement is not None
    assert (out.placement["units_requested"], out.placement["hosts_fitting"]) == (2, 0)


def test_active_says_whether_it_can_be_reclaimed() -> None:
    own = describe(facts(row(AllocationState.ACTIVE, started_at=AT)))
    assert own.summary == (
        "Active since 2030-03-01T09:30:00+00:00, within bank's own nominal: it is never "
        "reclaimed for a lender."
    )
    borrowed = describe(
        facts(row(AllocationState.ACTIVE, started_at=AT), lenders={"card": {"VCPU": 4, "GPU": 1}})
    )
    assert borrowed.summary == (
        "Active since 2030-03-01T09:30:00+00:00, borrowing 1 GPU, 4 VCPU from card: it may be "
        "reclaimed with 300 s notice when a lender needs its nominal back."
    )
    assert borrowed.lenders == {"card": {"VCPU": 4, "GPU": 1}}


def test_being_reclaimed_names_who_gets_the_capacity_and_when() -> None:
    a = row(AllocationState.RECLAIMING, reclaim_at=AT, on_reclaim="release")
    out = describe(facts(a, lenders={"card": {"VCPU": 4}}, reclaimed_for=("card", "c-7")))
    assert out.summary == (
        "Being reclaimed for card's request c-7: it borrows 4 VCPU from card, and the lender "
        "needs its nominal back. It is taken back at 2030-03-01T09:30:00+00:00."
    )


def test_released_after_a_reclaim_names_the_lenders_and_lease_and_idle_facts_follow() -> None:
    notice = Event(
        id=7,
        at=AT,
        actor="scheduler",
        company="bank",
        kind="allocation.reclaim_notice",
        subject="allocation/a-1",
        data={"lenders": ["card", "savings"]},
    )
    a = row(
        AllocationState.RELEASED,
        end_reason="reclaimed",
        released_at=AT,
        released_by="scheduler",
        expires_at=AT,
        idle_flagged_at=AT,
        utilisation=0.02,
    )
    out = describe(facts(a, events=[notice]))
    assert out.summary == "Released (reclaimed) at 2030-03-01T09:30:00+00:00 by scheduler."
    assert out.reasons == [
        "It was reclaimed for its lender(s) card, savings.",
        "Lease ends 2030-03-01T09:30:00+00:00 (then: release).",
        "Flagged idle at 2030-03-01T09:30:00+00:00 (utilisation 0.02); released after the "
        "grace period unless busy or kept.",
    ]

"""One scheduler cycle's decisions (groupcloud.quota.cycle), on values only: earmarks of
nominal that owners wait for, the reclaims they ask for, best-effort FIFO, pending
reasons, undoing an admission whose commit lost a race, and -- for random pools and
queues -- that a plan never admits beyond the quota limits or the hosts' capacity and
never lends earmarked nominal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.allocation import PendingReason, QueuedRequest
from groupcloud.placement.index import CapacityIndex, HostRecord, InventoryRecord
from groupcloud.quota.cohort import Cohort, Holding, Move, QuotaLine
from groupcloud.quota.cycle import Cycle, plan_cycle

NOW = datetime(2031, 1, 1, tzinfo=UTC)
BANK, CARD, CAPITAL = 1, 2, 3


def hosts(n: int, vcpu: int = 8) -> CapacityIndex:
    return CapacityIndex(
        [HostRecord(i, f"h{i}", "shared", True) for i in range(1, n + 1)],
        [InventoryRecord(i, "VCPU", vcpu, 0) for i in range(1, n + 1)],
    )


def ask(seq: int, company: int, vcpu: int, count: int = 1, **kw: object) -> QueuedRequest:
    values: dict[str, object] = {
        "seq": seq, "id": f"r{seq}", "company_id": company, "priority": 500, "count": count,
        "resources": {"VCPU": vcpu}, "zone": None, "required_traits": [],
        "anti_affinity_group": None, "strategy": "pack", "not_before": None,
        "pending_reason": None, "created_at": NOW, "interfaces": None, **kw,
    }  # fmt: skip
    return QueuedRequest(**values)  # type: ignore[arg-type]


def cohort(*lines: tuple[int, QuotaLine]) -> Cohort:
    return Cohort(lines)


def test_a_lender_waiting_for_lent_nominal_asks_for_it_back_once() -> None:
    c = cohort(
        (BANK, QuotaLine("VCPU", 0, used=8, borrowed=8, borrowing_limit=None)),
        (CARD, QuotaLine("VCPU", 16, lent=8)),
    )
    plan = plan_cycle(c, [ask(1, CARD, 16)], hosts(4), NOW)
    assert plan.admitted == []
    assert plan.reasons[1][0] is PendingReason.AWAITING_RECLAIM
    assert plan.earmarks == {(CARD, "VCPU"): 16}
    assert plan.reclaims == {(CARD, "VCPU"): 8}
    assert plan.waiting_for == {CARD: "r1"}
    # A reclaim under way brings it back already: no second notice.
    c.clear_earmarks()
    again = plan_cycle(c, [ask(1, CARD, 16)], hosts(4), NOW, reclaiming={(BANK, "VCPU"): 8})
    assert again.reclaims == {}


def test_a_lender_gets_its_lent_nominal_from_the_idle_pool_before_any_reclaim() -> None:
    # card lent 8 to bank; capital has 8 idle: card's own request moves bank's loan
    # to capital, nobody is reclaimed
    c = cohort(
        (BANK, QuotaLine("VCPU", 0, used=8, borrowed=8, borrowing_limit=None)),
        (CARD, QuotaLine("VCPU", 16, lent=8)),
        (CAPITAL, QuotaLine("VCPU", 8)),
    )
    held = [Holding("bank-1", BANK, {(CARD, "VCPU"): 8})]
    plan = plan_cycle(c, [ask(1, CARD, 8, count=2)], hosts(4), NOW, held=held)
    assert [a.request.id for a in plan.admitted] == ["r1"]
    (admit,) = plan.admitted
    assert admit.loans == {}
    assert admit.transfers == {(CAPITAL, "VCPU"): 8}
    assert admit.moves == (Move("bank-1", BANK, "VCPU", CARD, CAPITAL, 8, whole=True),)
    assert plan.reclaims == {}
    assert c.line(CARD, "VCPU") == QuotaLine("VCPU", 16, used=16)
    assert c.line(CAPITAL, "VCPU") == QuotaLine("VCPU", 8, lent=8)


def test_only_what_the_idle_pool_cannot_take_over_is_reclaimed() -> None:
    # card waits for 12 of its lent 12; capital can take over 4: 8 are reclaimed (the
    # request waits for all of it: nothing is moved before it can be admitted)
    c = cohort(
        (BANK, QuotaLine("VCPU", 0, used=12, borrowed=12, borrowing_limit=None)),
        (CARD, QuotaLine("VCPU", 12, lent=12)),
        (CAPITAL, QuotaLine("VCPU", 4)),
    )
    held = [Holding("bank-1", BANK, {(CARD, "VCPU"): 12})]
    plan = plan_cycle(c, [ask(1, CARD, 12)], hosts(4), NOW, held=held)
    assert plan.admitted == []
    assert plan.reasons[1][0] is PendingReason.AWAITING_RECLAIM
    assert plan.reasons[1][1]["quota"][0]["missing"] == 8
    assert plan.reclaims == {(CARD, "VCPU"): 8}


def test_a_cycle_first_repays_the_loans_of_a_borrower_back_below_nominal() -> None:
    # bank borrowed 8 of card's nominal, then its own allocations ended: it uses 8 of
    # its nominal 8 by the borrowed allocation alone. The cycle repays card, so card's
    # request is admitted from its own nominal without a reclaim.
    c = cohort(
        (BANK, QuotaLine("VCPU", 8, used=8, borrowed=8, borrowing_limit=None)),
        (CARD, QuotaLine("VCPU", 8, lent=8)),
    )
    held = [Holding("bank-1", BANK, {(CARD, "VCPU"): 8})]
    plan = plan_cycle(c, [ask(1, CARD, 8)], hosts(4), NOW, held=held)
    assert plan.repaid == [Move("bank-1", BANK, "VCPU", CARD, BANK, 8, whole=True)]
    assert [a.request.id for a in plan.admitted] == ["r1"]
    assert plan.admitted[0].moves == ()
    assert plan.reclaims == {}
    assert c.line(BANK, "VCPU") == QuotaLine("VCPU", 8, used=8, borrowing_limit=None)
    assert c.line(CARD, "VCPU") == QuotaLine("VCPU", 8, used=8)


def test_earmarked_nominal_is_not_lent_to_a_borrower_behind_the_owner() -> None:
    # card waits for its own 8 (no host in its zone now); bank may not borrow them.
    c = cohort(
        (BANK, QuotaLine("VCPU", 8, used=8, borrowing_limit=None)),
        (CARD, QuotaLine("VCPU", 8)),
    )
    queue = [ask(1, CARD, 8, zone="card-only"), ask(2, BANK, 8)]
    plan = plan_cycle(c, queue, hosts(4), NOW)
    assert plan.admitted == []
    assert plan.reasons[1][0] is PendingReason.NO_CAPACITY
    assert plan.reasons[2][0] is PendingReason.NO_LENDABLE
    assert c.line(CARD, "VCPU").lent == 0


def test_a_request_that_does_not_fit_does_not_hold_back_the_queue() -> None:
    c = cohort((BANK, QuotaLine("VCPU", 64)))
    queue = [ask(1, BANK, 8, count=3), ask(2, BANK, 8, count=3), ask(3, BANK, 4)]
    plan = plan_cycle(c, queue, hosts(4), NOW)
    assert [a.request.seq for a in plan.admitted] == [1, 3]
    assert plan.reasons == {2: (PendingReason.NO_CAPACITY, plan.reasons[2][1])}
    assert "hosts fit" in plan.reasons[2][1]["placement"]
    assert c.line(BANK, "VCPU").used == 28


def test_borrowing_goes_in_fair_order_and_records_the_loans() -> None:
    c = cohort(
        (BANK, QuotaLine("VCPU", 8, used=8, borrowing_limit=None)),
        (CARD, QuotaLine("VCPU", 8, used=8, borrowing_limit=None)),
        (CAPITAL, QuotaLine("VCPU", 16)),
    )
    queue = [ask(1, BANK, 8), ask(2, BANK, 8), ask(3, CARD, 8)]
    plan = plan_cycle(c, queue, hosts(4), NOW)
    # bank's first borrows; then card (smaller borrowed share) before bank's second.
    assert [a.request.seq for a in plan.admitted] == [1, 3]
    assert [a.loans for a in plan.admitted] == [{(CAPITAL, "VCPU"): 8}] * 2
    assert plan.reasons[2][0] is PendingReason.NO_LENDABLE


def test_requests_in_backoff_are_not_considered() -> None:
    c = cohort((BANK, QuotaLine("VCPU", 8)))
    later = ask(1, BANK, 8, not_before=NOW + timedelta(seconds=1))
    plan = plan_cycle(c, [later], hosts(1), NOW)
    assert (plan.admitted, plan.reasons) == ([], {})


def test_an_undone_admission_gives_its_capacity_to_the_rest_of_the_walk() -> None:
    c = cohort((BANK, QuotaLine("VCPU", 8)), (CARD, QuotaLine("VCPU", 8)))
    index = hosts(1)
    cycle = Cycle(c, [ask(1, BANK, 8), ask(2, CARD, 8)], index, NOW)
    walk = cycle.admissions()
    first = next(walk)
    assert first.request.seq == 1
    assert int(index.used.sum()) == 8
    cycle.undo(first, (PendingReason.AWAITING_SCHEDULER, {}))  # its commit lost a race
    assert int(index.used.sum()) == 0
    assert c.line(BANK, "VCPU").used == 0
    second = next(walk)  # card gets the host the failed one gave back
    assert second.request.seq == 2
    plan = cycle.plan()
    assert [a.request.seq for a in plan.admitted] == [2]
    assert plan.reasons[1][0] is PendingReason.AWAITING_SCHEDULER


lines_st = st.tuples(
    st.integers(0, 24),  # nominal
    st.integers(0, 24),  # own use already
    st.one_of(st.none(), st.integers(0, 24)),  # borrowing limit
    st.one_of(st.none(), st.integers(0, 24)),  # lending limit
)
queue_st = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 3), st.integers(0, 2)),
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(
    quota=st.lists(lines_st, min_size=3, max_size=3),
    queue=queue_st,
    host_count=st.integers(0, 6),
)
def test_a_plan_stays_within_quota_limits_capacity_and_earmarks(
    quota: list[tuple[int, int, int | None, int | None]],
    queue: list[tuple[int, int, int, int]],
    host_count: int,
) -> None:
    c = Cohort(
        (company, QuotaLine("VCPU", nominal, min(own, nominal), 0, 0, borrow, lend))
        for company, (nominal, own, borrow, lend) in enumerate(quota, start=1)
    )
    before = {k: dict(v) for k, v in c.lines.items()}
    index = hosts(host_count)
    requests = [
        ask(seq, company, vcpu, count, priority=100 * prio)
        for seq, (company, vcpu, count, prio) in enumerate(queue, start=1)
    ]
    own_free = {company: c.line(company, "VCPU").own_free for company in before}
    plan = plan_cycle(c, requests, index, NOW)

    # Every ready request is admitted or has a reason, never both.
    admitted = {a.request.seq for a in plan.admitted}
    assert admitted.isdisjoint(plan.reasons)
    assert admitted | set(plan.reasons) == {r.seq for r in requests}
    # Quota: nominal + borrowing limit, lending limit, own use + lent within nominal.
    for company in before:
        line = c.line(company, "VCPU")
        assert line.own_used + line.lent <= line.nominal or line.lent == 0
        if line.borrowing_limit is not None:
            assert line.borrowed <= line.borrowing_limit
            assert line.used <= line.nominal + line.borrowing_limit
        if line.lending_limit is not None:
            assert line.lent <= line.lending_limit
    assert sum(ln.used for ln in (c.line(k, "VCPU") for k in before)) == sum(
        ln.used for ln in (before[k]["VCPU"] for k in before)
    ) + sum(a.demand["VCPU"] for a in plan.admitted)
    # Capacity: no host beyond its capacity, nothing placed beyond the pool.
    assert (index.used <= index.capacity).all()
    assert int(index.used.sum()) == sum(a.demand["VCPU"] for a in plan.admitted)
    # Earmarked nominal is never lent: loans of this cycle from a lender stay within
    # what was free beyond its earmark.
    lent: dict[int, int] = {}
    for a in plan.admitted:
        for (lender, _), n in a.loans.items():
            lent[lender] = lent.get(lender, 0) + n
    for lender, n in lent.items():
        earmark = plan.earmarks.get((lender, "VCPU"), 0)
        assert n <= max(own_free[lender] - earmark, 0)

"""The order of pending requests in a scheduler cycle (groupcloud.quota.fairshare).

Higher priority first; within a priority the company with the lowest weighted dominant
share of borrowed capacity (read when it is chosen, so what happened earlier in the cycle
counts), ties by the oldest head; FIFO within a company. Each yielded item is checked
against a reference computed from the items still pending and the shares as they are now.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.quota.cohort import Admission, Cohort, QuotaLine
from groupcloud.quota.fairshare import Queued, fair_order


def seqs(items: list[Queued]) -> list[int]:
    return [q.seq for q in items]


def constant(value: float = 0.0) -> Callable[[int], float]:
    return lambda _company: value


def test_nothing_pending_yields_nothing() -> None:
    assert list(fair_order([], constant())) == []


def test_higher_priority_first_then_fifo_when_shares_are_equal() -> None:
    items = [
        Queued(5, company=1, priority=0),
        Queued(1, company=2, priority=0),
        Queued(4, company=2, priority=10),
        Queued(2, company=1, priority=10),
        Queued(3, company=3, priority=-1),
        Queued(6, company=3, priority=10),
    ]
    assert seqs(list(fair_order(items, constant()))) == [2, 4, 6, 1, 5, 3]


def test_the_lowest_share_goes_first_within_a_priority() -> None:
    shares = {1: 0.5, 2: 0.1, 3: 0.3}
    items = [
        Queued(1, company=1, priority=0),
        Queued(2, company=2, priority=0),
        Queued(3, company=3, priority=0),
        Queued(4, company=2, priority=0),
        Queued(0, company=1, priority=1),  # priority beats share
    ]
    # shares do not change: company 2 drains its queue before company 3 gets a turn
    assert seqs(list(fair_order(items, shares.__getitem__))) == [0, 2, 4, 3, 1]


def test_equal_shares_go_by_the_oldest_head() -> None:
    shares = {1: 0.2, 2: 0.2, 3: 0.2}
    items = [Queued(9, 1, 0), Queued(3, 2, 0), Queued(7, 3, 0), Queued(4, 2, 0)]
    assert seqs(list(fair_order(items, shares.__getitem__))) == [3, 4, 7, 9]


def test_the_share_of_the_company_just_served_is_read_again() -> None:
    shares = {1: 0.0, 2: 0.1}
    items = [Queued(1, 1, 0), Queued(2, 1, 0), Queued(3, 1, 0), Queued(4, 2, 0)]
    order = fair_order(items, shares.__getitem__)
    assert next(order).seq == 1
    shares[1] = 0.5  # its first request borrowed
    assert next(order).seq == 4
    assert seqs(list(order)) == [2, 3]


def test_admissions_made_earlier_in_the_cycle_count_through_the_cohort() -> None:
    """Two borrowers with requests of one unit of borrowed CPU each: they alternate."""
    cohort = Cohort(
        [
            (1, QuotaLine("CPU", 0, borrowing_limit=None)),
            (2, QuotaLine("CPU", 0, borrowing_limit=None)),
            (3, QuotaLine("CPU", 100)),
        ]
    )
    items = [Queued(s, 1, 0) for s in range(1, 5)] + [Queued(s, 2, 0) for s in range(5, 9)]
    served: list[int] = []
    for item in fair_order(items, cohort.dominant_share):
        served.append(item.company)
        plan = cohort.plan(item.company, {"CPU": 1})
        assert isinstance(plan, Admission)
        assert plan.borrowed == {"CPU": 1}
        cohort.take(item.company, plan)
    assert served == [1, 2, 1, 2, 1, 2, 1, 2]


def test_a_share_that_drops_while_a_company_waits_counts_at_its_next_turn() -> None:
    """Company 2's borrowed capacity is reclaimed during the cycle (Cohort.give): its share
    drops below company 3's while both are waiting, so company 2 goes first."""
    shares = {1: 0.0, 2: 0.5, 3: 0.4}
    items = [Queued(1, 1, 0), Queued(2, 2, 0), Queued(3, 3, 0)]
    order = fair_order(items, shares.__getitem__)
    assert next(order).seq == 1
    shares[2] = 0.1
    assert next(order).company == 2


# --- properties ----------------------------------------------------------------------------

ITEM_SPECS = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(1, 5), st.integers(-1, 2)),
    max_size=30,
    unique_by=lambda t: t[0],
)
SHARE = st.integers(0, 8).map(lambda n: n / 8)  # coarse: ties are frequent


def expected_next(pending: list[Queued], shares: dict[int, float]) -> Queued:
    """Reference: the head (oldest) of the queue, at the highest pending priority, of the
    company with the lowest share now, ties by the oldest head."""
    top = max(q.priority for q in pending)
    heads: dict[int, Queued] = {}
    for q in pending:
        if q.priority == top and (q.company not in heads or q.seq < heads[q.company].seq):
            heads[q.company] = q
    return min(heads.values(), key=lambda q: (shares[q.company], q.seq))


def run(
    items: list[Queued],
    shares: dict[int, float],
    change: Callable[[Queued], None],
) -> list[Queued]:
    pending = list(items)
    out: list[Queued] = []
    for item in fair_order(items, shares.__getitem__):
        assert item in pending, "yielded twice or never queued"
        assert item == expected_next(pending, shares)
        pending.remove(item)
        out.append(item)
        change(item)
    assert pending == []
    return out


@settings(max_examples=100, deadline=None)
@given(specs=ITEM_SPECS, data=st.data())
def test_every_item_once_by_priority_fifo_per_company(
    specs: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    items = [Queued(seq, company, priority) for seq, company, priority in specs]
    shares = {c: data.draw(SHARE) for c in range(1, 6)}
    out = list(fair_order(items, shares.__getitem__))
    assert sorted(seqs(out)) == sorted(seqs(items))
    assert len(out) == len(items)
    # all of a higher priority before any of a lower one
    priorities = [q.priority for q in out]
    assert priorities == sorted(priorities, reverse=True)
    # FIFO within (priority, company)
    for p in {q.priority for q in items}:
        for c in {q.company for q in items}:
            mine = [q.seq for q in out if (q.priority, q.company) == (p, c)]
            assert mine == sorted(mine)


@settings(max_examples=150, deadline=None)
@given(specs=ITEM_SPECS, data=st.data())
def test_the_lowest_current_share_goes_next_as_the_served_company_borrows(
    specs: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    """What an admission changes: the share of the company just served (up, or down)."""
    items = [Queued(seq, company, priority) for seq, company, priority in specs]
    shares = {c: data.draw(SHARE) for c in range(1, 6)}

    def served(item: Queued) -> None:
        shares[item.company] = data.draw(SHARE)

    run(items, shares, served)


@settings(max_examples=100, deadline=None)
@given(specs=ITEM_SPECS, data=st.data())
def test_the_lowest_current_share_goes_next_whoever_s_share_changed(
    specs: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    """Any company's share may change between two items (a reclaim or a release counted in
    the cycle's cohort lowers the share of a company that is waiting)."""
    items = [Queued(seq, company, priority) for seq, company, priority in specs]
    shares = {c: data.draw(SHARE) for c in range(1, 6)}

    def changed(_item: Queued) -> None:
        for company in data.draw(st.lists(st.integers(1, 5), max_size=2)):
            shares[company] = data.draw(SHARE)

    run(items, shares, changed)

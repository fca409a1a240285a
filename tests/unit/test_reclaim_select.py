"""Victims of a reclaim and the backoff of reclaimed workloads (groupcloud.quota.reclaim).

Kueue's reclaim within a cohort: the running allocations of every company above nominal
in a class the lenders miss are candidates, whoever lent to it; lowest priority first,
then the most recently started; none before its minimum runtime; a company is not taken
below its nominal; no more than needed, in that order. The property checks the engine's
choice against a plain statement of those rules (``reference``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.quota.reclaim import Candidate, backoff, select_victims, select_zone_victims

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def ids(chosen: list[Candidate]) -> list[str]:
    return [c.allocation_id for c in chosen]


def cand(
    allocation_id: str,
    uses: dict[str, int],
    *,
    company: int = 2,
    priority: int = 0,
    started: float = 3600,
    minimum_runtime_s: int = 0,
) -> Candidate:
    return Candidate(allocation_id, priority, ago(started), {}, minimum_runtime_s, 0, company, uses)


# bank (1) waits for lent nominal; card (2) and capital (3) are above nominal
ABOVE = {(2, "CPU"): 100, (3, "CPU"): 100, (2, "GPU"): 100, (3, "GPU"): 100}


# --- select_victims: worked examples -------------------------------------------------------


def test_nothing_needed_takes_nothing() -> None:
    candidates = [cand("a", {"CPU": 4})]
    assert select_victims(candidates, {}, ABOVE, NOW) == []
    assert select_victims(candidates, {(1, "CPU"): 0}, ABOVE, NOW) == []
    assert select_victims(candidates, {(1, "CPU"): -3}, ABOVE, NOW) == []
    assert select_victims([], {(1, "CPU"): 3}, ABOVE, NOW) == []


def test_only_companies_above_nominal_in_the_short_class_give_back() -> None:
    candidates = [
        cand("within-nominal", {"CPU": 8}, company=4, priority=-5),
        cand("other-class", {"GPU": 8}, priority=-5),
        cand("the-lenders-own", {"CPU": 8}, company=1, priority=-5),
        cand("helper", {"CPU": 1, "GPU": 3}, priority=5),
    ]
    above = {**ABOVE, (1, "CPU"): 8}  # a lender above nominal is not its own victim
    assert ids(select_victims(candidates, {(1, "CPU"): 2}, above, NOW)) == ["helper"]


def test_a_higher_priority_allocation_of_a_borrower_outlives_its_lower_ones() -> None:
    # card borrows 4: its low-priority allocation goes, whether it holds the loan or not
    candidates = [
        Candidate("holds-the-loan", 9, ago(10), {(1, "CPU"): 4}, 0, 1, 2, {"CPU": 4}),
        Candidate("own-nominal", 0, ago(7200), {}, 0, 2, 2, {"CPU": 4}),
    ]
    above = {(2, "CPU"): 4}
    assert ids(select_victims(candidates, {(1, "CPU"): 4}, above, NOW)) == ["own-nominal"]


def test_a_company_is_not_taken_below_its_nominal() -> None:
    # card is 3 above nominal: one allocation brings it back; capital gives the rest
    candidates = [
        cand("card-1", {"CPU": 2}, company=2, started=1),
        cand("card-2", {"CPU": 2}, company=2, started=2),
        cand("card-3", {"CPU": 2}, company=2, started=3),
        cand("capital-1", {"CPU": 4}, company=3, started=4),
    ]
    above = {(2, "CPU"): 3, (3, "CPU"): 10}
    assert ids(select_victims(candidates, {(1, "CPU"): 7}, above, NOW)) == [
        "card-1",
        "card-2",
        "capital-1",
    ]
    assert ids(select_victims(candidates, {(1, "CPU"): 3}, above, NOW)) == ["card-1", "card-2"]


def test_no_allocation_is_taken_before_its_minimum_runtime() -> None:
    candidates = [
        cand("young", {"CPU": 4}, priority=-1, started=59, minimum_runtime_s=60),
        cand("just-old-enough", {"CPU": 4}, started=60, minimum_runtime_s=60),
        cand("old", {"CPU": 4}, started=7200, minimum_runtime_s=60),
    ]
    assert candidates[1].reclaimable_from == NOW
    assert ids(select_victims(candidates, {(1, "CPU"): 4}, ABOVE, NOW)) == ["just-old-enough"]
    assert ids(select_victims(candidates, {(1, "CPU"): 12}, ABOVE, NOW)) == [
        "just-old-enough",
        "old",
    ]
    later = NOW + timedelta(seconds=1)
    assert ids(select_victims(candidates, {(1, "CPU"): 4}, ABOVE, later)) == ["young"]


def test_lowest_priority_first_then_the_most_recently_started() -> None:
    candidates = [
        cand("p1-old", {"CPU": 1}, priority=1, started=9000),
        cand("p0-old", {"CPU": 1}, priority=0, started=9000, company=3),
        cand("p1-new", {"CPU": 1}, priority=1, started=10),
        cand("p0-new", {"CPU": 1}, priority=0, started=10),
        cand("p-2", {"CPU": 1}, priority=-2, started=99999, company=3),
    ]
    chosen = select_victims(candidates, {(1, "CPU"): 5}, ABOVE, NOW)
    assert ids(chosen) == ["p-2", "p0-new", "p0-old", "p1-new", "p1-old"]
    assert ids(select_victims(candidates, {(1, "CPU"): 2}, ABOVE, NOW)) == ["p-2", "p0-new"]


def test_equal_priority_and_start_go_by_arrival_newest_first_then_by_id() -> None:
    candidates = [cand(x, {"CPU": 1}) for x in ("c", "a", "b")]
    assert ids(select_victims(candidates, {(1, "CPU"): 2}, ABOVE, NOW)) == ["a", "b"]
    arrived = [Candidate(x, 0, ago(60), {}, 0, n, 2, {"CPU": 1}) for x, n in (("a", 1), ("b", 2))]
    assert ids(select_victims(arrived, {(1, "CPU"): 1}, ABOVE, NOW)) == ["b"]


def test_it_stops_once_every_need_is_covered() -> None:
    candidates = [
        cand("a", {"CPU": 3}, started=1),
        cand("b", {"CPU": 3, "GPU": 1}, started=2),
        cand("c", {"GPU": 1}, started=3),
        cand("d", {"CPU": 9, "GPU": 9}, started=4),
    ]
    # needs of two lenders in one class are one need of the pool
    needs = {(1, "CPU"): 4, (4, "CPU"): 2, (1, "GPU"): 2}
    assert ids(select_victims(candidates, needs, ABOVE, NOW)) == ["a", "b", "c"]
    # a candidate that only holds what is already covered is not taken
    assert ids(select_victims(candidates, {(1, "CPU"): 2, (1, "GPU"): 2}, ABOVE, NOW)) == [
        "a",
        "b",
        "c",
    ]
    assert ids(select_victims(candidates, {(1, "CPU"): 2, (1, "GPU"): 1}, ABOVE, NOW)) == [
        "a",
        "b",
    ]


def test_all_eligible_helpers_when_the_needs_cannot_be_covered() -> None:
    candidates = [
        cand("a", {"GPU": 1}, started=1),
        cand("young", {"GPU": 4}, started=2, minimum_runtime_s=3600),
        cand("b", {"GPU": 2}, started=3),
        cand("not-a-helper", {"CPU": 2}, started=4),
    ]
    assert ids(select_victims(candidates, {(1, "GPU"): 10}, ABOVE, NOW)) == ["a", "b"]


# --- select_victims: properties ------------------------------------------------------------

COMPANIES = (1, 2, 3, 4)
CLASSES = ("CPU", "GPU")
USES = st.dictionaries(st.sampled_from(CLASSES), st.integers(1, 6), min_size=1, max_size=2)
CANDIDATE_SPECS = st.lists(
    st.tuples(
        st.sampled_from(COMPANIES),
        st.integers(-1, 2),  # priority
        st.integers(0, 600),  # started, seconds ago (coarse: equal starts happen)
        st.sampled_from([0, 0, 60, 300, 900]),  # minimum runtime
        USES,
    ),
    max_size=10,
)
KEYS = [(c, rc) for c in COMPANIES for rc in CLASSES]
NEEDS = st.dictionaries(st.sampled_from(KEYS), st.integers(-1, 12), max_size=3)
ABOVES = st.dictionaries(st.sampled_from(KEYS), st.integers(0, 10), max_size=8)


def reclaim_order(candidates: list[Candidate]) -> list[Candidate]:
    """Lowest priority, then latest start, then latest arrival, then allocation id."""
    out = sorted(candidates, key=lambda c: c.allocation_id)
    out.sort(key=lambda c: c.seq, reverse=True)
    out.sort(key=lambda c: c.started_at, reverse=True)
    out.sort(key=lambda c: c.priority)
    return out


def reference(
    candidates: list[Candidate],
    needs: dict[tuple[int, str], int],
    above: dict[tuple[int, str], int],
) -> list[str]:
    """Kueue's reclaim, stated plainly: walk the eligible allocations in reclaim order;
    take one if some class the pool still misses is one its company is still above
    nominal in (and not one its company waits for itself); a victim brings its company
    down by what it holds, the pool's need down by as much (never more than the company
    was above)."""
    missing: dict[str, int] = {}
    for (_, rc), n in needs.items():
        missing[rc] = missing.get(rc, 0) + max(n, 0)
    over = dict(above)
    taken: list[str] = []
    eligible = [c for c in candidates if ago(c.minimum_runtime_s) >= c.started_at]
    for c in reclaim_order(eligible):
        useful = [
            rc
            for rc, n in c.uses.items()
            if missing.get(rc, 0) > 0 and over.get((c.company, rc), 0) > 0
            and (c.company, rc) not in needs
        ]  # fmt: skip
        if not useful:
            continue
        taken.append(c.allocation_id)
        for rc in useful:
            back = min(c.uses[rc], over[c.company, rc])
            over[c.company, rc] -= back
            missing[rc] -= back
    return taken


@settings(max_examples=200, deadline=None)
@given(specs=CANDIDATE_SPECS, needs=NEEDS, above=ABOVES)
def test_victims_follow_the_reclaim_rules(
    specs: list[tuple[int, int, int, int, dict[str, int]]],
    needs: dict[tuple[int, str], int],
    above: dict[tuple[int, str], int],
) -> None:
    candidates = [
        Candidate(f"alloc-{i:02d}", priority, ago(started), {}, minimum, i % 3, company, uses)
        for i, (company, priority, started, minimum, uses) in enumerate(specs)
    ]
    chosen = select_victims(candidates, needs, above, NOW)
    assert ids(chosen) == reference(candidates, needs, above)
    # every victim is of a company above nominal in a class the pool misses, which it
    # holds, and is not waiting for that class itself
    short = {rc for (_, rc), n in needs.items() if n > 0}
    for victim in chosen:
        assert any(
            above.get((victim.company, rc), 0) > 0 and (victim.company, rc) not in needs
            for rc in victim.uses
            if rc in short
        ), victim


# --- backoff -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "base", "cap", "expected"),
    [
        (0, 10.0, 300.0, 0.0),
        (-1, 10.0, 300.0, 0.0),
        (1, 10.0, 300.0, 10.0),
        (2, 10.0, 300.0, 20.0),
        (3, 10.0, 300.0, 40.0),
        (5, 10.0, 300.0, 160.0),
        (6, 10.0, 300.0, 300.0),  # 320 capped
        (60, 10.0, 300.0, 300.0),
        (3, 0.0, 300.0, 0.0),
        (3, 1.5, 1e9, 6.0),
    ],
)
def test_backoff_doubles_and_is_capped(
    count: int, base: float, cap: float, expected: float
) -> None:
    assert backoff(count, base, cap) == expected
    assert isinstance(backoff(count, base, cap), float)


@pytest.mark.parametrize("count", [1025, 1100, 100_000])
def test_backoff_of_a_workload_reclaimed_very_often_is_the_cap(count: int) -> None:
    """The reclaim count is a counter in the database: it has no upper bound."""
    assert backoff(count, 1.0, 300.0) == 300.0


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(-2, 80),
    base=st.floats(0.001, 1000.0),
    cap=st.floats(0.0, 1e6),
)
def test_backoff_matches_exact_arithmetic(count: int, base: float, cap: float) -> None:
    got = backoff(count, base, cap)
    if count <= 0:
        assert got == 0.0
        return
    assert got == float(min(Fraction(base) * 2 ** (count - 1), Fraction(cap)))
    assert got <= cap
    # doubling from one reclaim to the next, until the cap
    assert backoff(count + 1, base, cap) == min(2 * got, cap)
    assert backoff(count + 1, base, cap) >= got


def test_zone_victims_cover_the_need_lowest_priority_newest_first_or_none() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def cand(i: str, prio: int, minutes: int, vcpu: int, min_run: int = 0) -> Candidate:
        return Candidate(i, prio, t0 + timedelta(minutes=minutes), {}, min_run, minutes, 2,
                         {"VCPU": vcpu})  # fmt: skip

    now = t0 + timedelta(hours=1)
    pool = [cand("old", 500, 0, 8), cand("new", 500, 30, 8), cand("low", 100, 10, 4),
            cand("young", 100, 55, 16, min_run=3600)]  # fmt: skip
    chosen = select_zone_victims(pool, {"VCPU": 10}, now)
    assert [c.allocation_id for c in chosen] == ["low", "new"]  # "young" ran too briefly
    assert select_zone_victims(pool, {"VCPU": 100}, now) == []  # cannot help: no notice
    assert select_zone_victims(pool, {"GPU": 1}, now) == []

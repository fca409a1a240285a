"""Victims of a reclaim and the backoff of reclaimed workloads (groupcloud.quota.reclaim).

Only allocations holding loans from the lender in the classes it misses are candidates;
lowest priority first, then the most recently started; none before its minimum runtime;
no more than needed, in that order. The properties check the engine's choice against
those rules, stated independently on the candidates and the needs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.quota.reclaim import Candidate, backoff, select_victims

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def ids(chosen: list[Candidate]) -> list[str]:
    return [c.allocation_id for c in chosen]


def cand(
    allocation_id: str,
    loans: dict[tuple[int, str], int],
    *,
    priority: int = 0,
    started: float = 3600,
    minimum_runtime_s: int = 0,
) -> Candidate:
    return Candidate(allocation_id, priority, ago(started), loans, minimum_runtime_s)


# --- select_victims: worked examples -------------------------------------------------------


def test_nothing_needed_takes_nothing() -> None:
    candidates = [cand("a", {(1, "CPU"): 4})]
    assert select_victims(candidates, {}, NOW) == []
    assert select_victims(candidates, {(1, "CPU"): 0}, NOW) == []
    assert select_victims(candidates, {(1, "CPU"): -3}, NOW) == []
    assert select_victims([], {(1, "CPU"): 3}, NOW) == []


def test_only_allocations_holding_a_loan_of_that_lender_in_that_class() -> None:
    candidates = [
        cand("other-lender", {(2, "CPU"): 8}, priority=-5),
        cand("other-class", {(1, "GPU"): 8}, priority=-5),
        cand("helper", {(1, "CPU"): 1, (2, "GPU"): 3}, priority=5),
    ]
    assert ids(select_victims(candidates, {(1, "CPU"): 2}, NOW)) == ["helper"]


def test_no_allocation_is_taken_before_its_minimum_runtime() -> None:
    candidates = [
        cand("young", {(1, "CPU"): 4}, priority=-1, started=59, minimum_runtime_s=60),
        cand("just-old-enough", {(1, "CPU"): 4}, started=60, minimum_runtime_s=60),
        cand("old", {(1, "CPU"): 4}, started=7200, minimum_runtime_s=60),
    ]
    assert candidates[1].reclaimable_from == NOW
    assert ids(select_victims(candidates, {(1, "CPU"): 4}, NOW)) == ["just-old-enough"]
    assert ids(select_victims(candidates, {(1, "CPU"): 12}, NOW)) == ["just-old-enough", "old"]
    later = NOW + timedelta(seconds=1)
    assert ids(select_victims(candidates, {(1, "CPU"): 4}, later)) == ["young"]


def test_lowest_priority_first_then_the_most_recently_started() -> None:
    candidates = [
        cand("p1-old", {(1, "CPU"): 1}, priority=1, started=9000),
        cand("p0-old", {(1, "CPU"): 1}, priority=0, started=9000),
        cand("p1-new", {(1, "CPU"): 1}, priority=1, started=10),
        cand("p0-new", {(1, "CPU"): 1}, priority=0, started=10),
        cand("p-2", {(1, "CPU"): 1}, priority=-2, started=99999),
    ]
    chosen = select_victims(candidates, {(1, "CPU"): 5}, NOW)
    assert ids(chosen) == ["p-2", "p0-new", "p0-old", "p1-new", "p1-old"]
    assert ids(select_victims(candidates, {(1, "CPU"): 2}, NOW)) == ["p-2", "p0-new"]


def test_equal_priority_and_start_go_by_allocation_id() -> None:
    candidates = [cand(x, {(1, "CPU"): 1}) for x in ("c", "a", "b")]
    assert ids(select_victims(candidates, {(1, "CPU"): 2}, NOW)) == ["a", "b"]


def test_it_stops_once_every_need_is_covered() -> None:
    candidates = [
        cand("a", {(1, "CPU"): 3}, started=1),
        cand("b", {(1, "CPU"): 3, (1, "GPU"): 1}, started=2),
        cand("c", {(1, "GPU"): 1}, started=3),
        cand("d", {(1, "CPU"): 9, (1, "GPU"): 9}, started=4),
    ]
    assert ids(select_victims(candidates, {(1, "CPU"): 6, (1, "GPU"): 2}, NOW)) == [
        "a",
        "b",
        "c",
    ]
    # a candidate that only holds what is already covered is not taken
    assert ids(select_victims(candidates, {(1, "CPU"): 2, (1, "GPU"): 2}, NOW)) == [
        "a",
        "b",
        "c",
    ]
    assert ids(select_victims(candidates, {(1, "CPU"): 2, (1, "GPU"): 1}, NOW)) == ["a", "b"]


def test_all_eligible_helpers_when_the_needs_cannot_be_covered() -> None:
    candidates = [
        cand("a", {(1, "GPU"): 1}, started=1),
        cand("young", {(1, "GPU"): 4}, started=2, minimum_runtime_s=3600),
        cand("b", {(1, "GPU"): 2}, started=3),
        cand("not-a-helper", {(2, "GPU"): 2}, started=4),
    ]
    assert ids(select_victims(candidates, {(1, "GPU"): 10}, NOW)) == ["a", "b"]


# --- select_victims: properties ------------------------------------------------------------

LENDERS = (1, 2, 3)
CLASSES = ("CPU", "GPU")
KEYS = [(lender, rc) for lender in LENDERS for rc in CLASSES]
LOANS = st.dictionaries(st.sampled_from(KEYS), st.integers(1, 6), min_size=1, max_size=3)
CANDIDATE_SPECS = st.lists(
    st.tuples(
        st.integers(-1, 2),  # priority
        st.integers(0, 600),  # started, seconds ago (coarse: equal starts happen)
        st.sampled_from([0, 0, 60, 300, 900]),  # minimum runtime
        LOANS,
    ),
    max_size=10,
)
NEEDS = st.dictionaries(st.sampled_from(KEYS), st.integers(-1, 12), max_size=3)


def reclaim_order(candidates: list[Candidate]) -> list[Candidate]:
    """Lowest priority, then latest start, then allocation id (three stable sorts)."""
    out = sorted(candidates, key=lambda c: c.allocation_id)
    out.sort(key=lambda c: c.started_at, reverse=True)
    out.sort(key=lambda c: c.priority)
    return out


@settings(max_examples=150, deadline=None)
@given(specs=CANDIDATE_SPECS, needs=NEEDS)
def test_victims_follow_the_reclaim_rules(
    specs: list[tuple[int, int, int, dict[tuple[int, str], int]]],
    needs: dict[tuple[int, str], int],
) -> None:
    candidates = [
        Candidate(f"alloc-{i:02d}", priority, ago(started), loans, minimum)
        for i, (priority, started, minimum, loans) in enumerate(specs)
    ]
    chosen = select_victims(candidates, needs, NOW)
    wanted = {k: n for k, n in needs.items() if n > 0}
    eligible = reclaim_order([c for c in candidates if ago(c.minimum_runtime_s) >= c.started_at])
    position = {c.allocation_id: i for i, c in enumerate(eligible)}

    assert len(set(ids(chosen))) == len(chosen)
    for victim in chosen:
        assert victim.allocation_id in position, "taken before its minimum runtime"
        assert set(victim.loans) & set(wanted), "holds nothing of what is needed"
    # in reclaim order
    assert [position[c.allocation_id] for c in chosen] == sorted(
        position[c.allocation_id] for c in chosen
    )
    # each victim, when its turn came, gave back something still missing; a helper that
    # was passed over only held what the victims before it had covered already
    chosen_ids = set(ids(chosen))
    covered = dict.fromkeys(wanted, 0)
    for candidate in eligible:
        helps = [k for k in candidate.loans if k in wanted and covered[k] < wanted[k]]
        assert (candidate.allocation_id in chosen_ids) == bool(helps), candidate
        if helps:
            for k in candidate.loans:
                if k in covered:
                    covered[k] += candidate.loans[k]
    # covered when the eligible can cover it; all eligible helpers of a need they cannot
    for key, n in wanted.items():
        holders = [c for c in eligible if key in c.loans]
        if sum(c.loans[key] for c in holders) >= n:
            assert sum(c.loans.get(key, 0) for c in chosen) >= n
        else:
            assert {c.allocation_id for c in holders} <= chosen_ids


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

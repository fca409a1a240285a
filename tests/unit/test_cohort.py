"""Borrowing arithmetic of the group's pool (groupcloud.quota.cohort).

The quota line counters, what a request takes (own nominal, loans from the lenders with the
most lendable capacity) or misses (lent out, borrowing limit, nothing lendable, never), and
the database invariants under random sequences of admissions and releases. The expected
figures come from ``Model`` below, which keeps its own counters and its own loan ledger
(who borrows what from whom) and never calls the engine's arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.quota.cohort import (
    Admission,
    Blocked,
    Cohort,
    Holding,
    Move,
    QuotaLine,
    Shortfall,
    ShortfallKind,
)

RCS = ("CPU", "GPU", "RAM")
NOBODY_HAS = "DISK"  # a class no company has a quota line for
ALL_RCS = (*RCS, NOBODY_HAS)


def admitted(cohort: Cohort, company: int, demand: Mapping[str, int]) -> Admission:
    outcome = cohort.plan(company, demand)
    assert isinstance(outcome, Admission), outcome
    return outcome


def blocked(cohort: Cohort, company: int, demand: Mapping[str, int]) -> Blocked:
    outcome = cohort.plan(company, demand)
    assert isinstance(outcome, Blocked), outcome
    return outcome


def kinds(outcome: Blocked) -> dict[str, ShortfallKind]:
    return {s.resource_class: s.kind for s in outcome.shortfalls}


def holds(admission: Admission) -> dict[str, int]:
    """What the requesting company uses after the admission, per class (own + borrowed)."""
    out = dict(admission.own)
    for (_, rc), n in admission.loans.items():
        out[rc] = out.get(rc, 0) + n
    return out


# --- QuotaLine --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "own_used", "own_free", "lendable", "headroom", "potential"),
    [
        (QuotaLine("CPU", 10), 0, 10, 10, 0, 10),
        (QuotaLine("CPU", 10, used=4, lent=3), 4, 3, 3, 0, 10),
        # lending_limit None: every idle unit of nominal may be lent
        (QuotaLine("CPU", 10, used=2, lending_limit=None), 2, 8, 8, 0, 10),
        # borrowing and lending at once; the lending limit caps what is lent in total
        (
            QuotaLine("CPU", 10, used=7, borrowed=5, lent=2, borrowing_limit=8, lending_limit=4),
            2,
            6,
            2,
            3,
            4,
        ),
        (QuotaLine("CPU", 10, lending_limit=0), 0, 10, 0, 0, 0),
        (QuotaLine("CPU", 10, lent=4, lending_limit=4), 0, 6, 0, 0, 4),
        (QuotaLine("CPU", 10, used=10), 10, 0, 0, 0, 10),
        (QuotaLine("CPU", 10, used=3, lent=7), 3, 0, 0, 0, 10),
        # a lending limit above the nominal lends no more than the nominal
        (QuotaLine("CPU", 5, lending_limit=50), 0, 5, 5, 0, 5),
        (QuotaLine("CPU", 5, used=9, borrowed=4, borrowing_limit=None), 5, 0, 0, None, 5),
        (QuotaLine("CPU", 5, used=9, borrowed=4, borrowing_limit=4), 5, 0, 0, 0, 5),
        (QuotaLine("CPU", 0), 0, 0, 0, 0, 0),
    ],
)
def test_quota_line_counters(
    line: QuotaLine,
    own_used: int,
    own_free: int,
    lendable: int,
    headroom: int | None,
    potential: int,
) -> None:
    assert line.own_used == own_used
    assert line.own_free == own_free
    assert line.lendable == lendable
    assert line.borrow_headroom == headroom
    assert line.potential_lending == potential


@st.composite
def valid_lines(draw: st.DrawFn) -> QuotaLine:
    """A line satisfying the database CHECKs."""
    nominal = draw(st.integers(0, 50))
    borrowing_limit = draw(st.none() | st.integers(0, 50))
    lending_limit = draw(st.none() | st.integers(0, 60))
    lent = draw(st.integers(0, min(nominal, 60 if lending_limit is None else lending_limit)))
    own_used = draw(st.integers(0, nominal - lent))
    borrowed = draw(st.integers(0, 50 if borrowing_limit is None else borrowing_limit))
    return QuotaLine(
        "CPU",
        nominal,
        used=own_used + borrowed,
        borrowed=borrowed,
        lent=lent,
        borrowing_limit=borrowing_limit,
        lending_limit=lending_limit,
    )


@settings(max_examples=100, deadline=None)
@given(line=valid_lines())
def test_quota_line_counters_agree_with_their_definitions(line: QuotaLine) -> None:
    assert line.own_used == line.used - line.borrowed
    # nominal = own use + lent + free, nothing lost, nothing counted twice
    assert line.own_used + line.lent + line.own_free == line.nominal
    assert 0 <= line.lendable <= line.own_free
    assert line.lendable <= line.potential_lending <= line.nominal
    if line.lending_limit is None:
        assert line.lendable == line.own_free
        assert line.potential_lending == line.nominal
    else:
        assert line.lent + line.lendable <= line.lending_limit
        # lendable is the largest amount that keeps both rules
        assert line.lendable == min(line.own_free, line.lending_limit - line.lent)
    if line.borrowing_limit is None:
        assert line.borrow_headroom is None
    else:
        assert line.borrow_headroom == line.borrowing_limit - line.borrowed


# --- plan: worked examples ---------------------------------------------------------------


def cohort_of(*lines: tuple[int, QuotaLine], weights: Mapping[int, float] | None = None) -> Cohort:
    return Cohort(lines, weights)


def test_a_request_within_nominal_that_fits_own_free_takes_only_own() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 10, used=3)),
        (2, QuotaLine("CPU", 10)),
    )
    admission = admitted(cohort, 1, {"CPU": 7})
    assert admission.own == {"CPU": 7}
    assert admission.loans == {}
    assert admission.borrowed == {}
    cohort.take(1, admission)
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 10, used=10)
    assert cohort.line(2, "CPU") == QuotaLine("CPU", 10)


def test_a_request_within_nominal_with_part_of_it_lent_out_must_reclaim() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 10, used=2, lent=5)),
        (2, QuotaLine("CPU", 4, used=9, borrowed=5, borrowing_limit=None)),
        (3, QuotaLine("CPU", 20, lending_limit=0)),  # idle, but lends nothing
    )
    outcome = blocked(cohort, 1, {"CPU": 6})
    assert outcome.shortfalls == (Shortfall("CPU", ShortfallKind.LENT_OUT, 6, 3, 3),)
    assert outcome.reclaim == {"CPU": 3}
    assert not outcome.never
    assert cohort.is_guaranteed(1, {"CPU": 6})
    assert cohort.is_guaranteed(1, {"CPU": 8})
    assert not cohort.is_guaranteed(1, {"CPU": 9})
    # Once the borrower gives 3 back, the request is admitted from own nominal only.
    cohort.give(2, {"CPU": 3}, {(1, "CPU"): 3})
    admission = admitted(cohort, 1, {"CPU": 6})
    assert admission.own == {"CPU": 6}
    assert admission.loans == {}
    assert admission.transfers == {}


def test_a_request_within_nominal_moves_its_lent_nominal_to_the_idle_pool_first() -> None:
    # bank lends 5 to card; capital has 4 idle to lend: bank's request of 6 needs 3 of
    # its lent nominal back, the idle pool takes the loans over: nobody is reclaimed
    cohort = cohort_of(
        (1, QuotaLine("CPU", 10, used=2, lent=5)),
        (2, QuotaLine("CPU", 4, used=9, borrowed=5, borrowing_limit=None)),
        (3, QuotaLine("CPU", 4)),
    )
    cohort.hold([Holding("a", 2, {(1, "CPU"): 2}), Holding("b", 2, {(1, "CPU"): 3})])
    admission = admitted(cohort, 1, {"CPU": 6})
    assert admission.own == {"CPU": 6}
    assert admission.loans == {}
    assert admission.transfers == {(3, "CPU"): 3}
    assert admission.moves == (
        Move("a", 2, "CPU", 1, 3, 2, whole=True),
        Move("b", 2, "CPU", 1, 3, 1, whole=False),
    )
    assert admission.needs_scheduler
    cohort.take(1, admission)
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 10, used=8, lent=2)
    assert cohort.line(2, "CPU") == QuotaLine("CPU", 4, used=9, borrowed=5, borrowing_limit=None)
    assert cohort.line(3, "CPU") == QuotaLine("CPU", 4, lent=3)
    assert cohort.held is not None
    assert {a: dict(h.loans) for a, h in cohort.held.items()} == {
        "a": {(3, "CPU"): 2},
        "b": {(1, "CPU"): 2, (3, "CPU"): 1},
    }
    # what the idle pool cannot take over is reclaimed: 1 more idle, 2 still lent
    outcome = blocked(cohort, 1, {"CPU": 2})
    assert outcome.shortfalls == (Shortfall("CPU", ShortfallKind.LENT_OUT, 2, 0, 1, borrowable=1),)
    assert outcome.reclaim == {"CPU": 1}
    cohort.untake(1, admission)
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 10, used=2, lent=5)
    assert cohort.line(3, "CPU") == QuotaLine("CPU", 4)
    assert {a: dict(h.loans) for a, h in cohort.held.items()} == {
        "a": {(1, "CPU"): 2},
        "b": {(1, "CPU"): 3},
    }


def test_a_borrower_whose_own_nominal_is_free_again_repays_its_loans() -> None:
    # card borrowed 6 of bank's nominal, then released 4 of its own use: it uses 8 of
    # its nominal 10 ... and 6 borrowed: it is above nominal by 4 only
    cohort = cohort_of(
        (1, QuotaLine("CPU", 10, lent=6)),
        (2, QuotaLine("CPU", 10, used=12, borrowed=6, borrowing_limit=None)),
    )
    cohort.hold([Holding("new", 2, {(1, "CPU"): 4}), Holding("old", 2, {(1, "CPU"): 2})])
    repays = cohort.repays()
    assert repays == [Move("new", 2, "CPU", 1, 2, 4, whole=True)]
    cohort.repay(repays)
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 10, lent=2)
    assert cohort.line(2, "CPU") == QuotaLine("CPU", 10, used=12, borrowed=2, borrowing_limit=None)
    assert cohort.repays() == []  # own nominal all used now
    cohort.repay(repays, -1)
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 10, lent=6)


def test_two_companies_lending_to_each_other_repay_each_other() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4, used=4, borrowed=2, lent=2, borrowing_limit=None)),
        (2, QuotaLine("CPU", 4, used=4, borrowed=2, lent=2, borrowing_limit=None)),
    )
    cohort.hold([Holding("a", 1, {(2, "CPU"): 2}), Holding("b", 2, {(1, "CPU"): 2})])
    assert cohort.repays() == []  # nobody has free own nominal: nothing to repay with
    cohort.give(1, {"CPU": 2}, {})  # bank releases 2 of its own use
    repays = cohort.repays()
    cohort.repay(repays)
    assert {(m.borrower, m.amount) for m in repays} == {(1, 2), (2, 2)}
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 4, used=2, borrowing_limit=None)
    assert cohort.line(2, "CPU") == QuotaLine("CPU", 4, used=4, borrowing_limit=None)


def test_beyond_nominal_borrows_from_the_largest_lendable_first() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4, used=1, borrowing_limit=None)),
        (2, QuotaLine("CPU", 10, used=4)),  # lendable 6
        (3, QuotaLine("CPU", 12, used=2)),  # lendable 10
        (4, QuotaLine("CPU", 8, lending_limit=3)),  # lendable 3
    )
    # own free 3, then 5 from company 3 alone: one loan is enough
    admission = admitted(cohort, 1, {"CPU": 8})
    assert admission.own == {"CPU": 3}
    assert admission.loans == {(3, "CPU"): 5}
    # own free 3, then 10 from 3, 6 from 2, 1 from 4
    admission = admitted(cohort, 1, {"CPU": 20})
    assert admission.own == {"CPU": 3}
    assert admission.loans == {(3, "CPU"): 10, (2, "CPU"): 6, (4, "CPU"): 1}
    assert admission.borrowed == {"CPU": 17}
    cohort.take(1, admission)
    assert cohort.line(1, "CPU") == QuotaLine("CPU", 4, used=21, borrowed=17, borrowing_limit=None)
    assert cohort.line(2, "CPU") == QuotaLine("CPU", 10, used=4, lent=6)
    assert cohort.line(3, "CPU") == QuotaLine("CPU", 12, used=2, lent=10)
    assert cohort.line(4, "CPU") == QuotaLine("CPU", 8, lent=1, lending_limit=3)


def test_lenders_with_equal_lendable_are_taken_by_company_id() -> None:
    cohort = cohort_of(
        (9, QuotaLine("GPU", 5)),
        (1, QuotaLine("GPU", 0, borrowing_limit=None)),
        (4, QuotaLine("GPU", 5)),
        (7, QuotaLine("GPU", 5)),
    )
    assert admitted(cohort, 1, {"GPU": 3}).loans == {(4, "GPU"): 3}
    assert admitted(cohort, 1, {"GPU": 7}).loans == {(4, "GPU"): 5, (7, "GPU"): 2}
    assert admitted(cohort, 1, {"GPU": 15}).loans == {
        (4, "GPU"): 5,
        (7, "GPU"): 5,
        (9, "GPU"): 5,
    }


def test_borrowing_is_capped_by_the_headroom_under_the_borrowing_limit() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4, used=4, borrowed=2, borrowing_limit=5)),
        (2, QuotaLine("CPU", 20, lent=2)),
    )
    assert cohort.available(1, "CPU") == 2 + 3  # own free 2, then 3 more may be borrowed
    assert admitted(cohort, 1, {"CPU": 5}).loans == {(2, "CPU"): 3}
    outcome = blocked(cohort, 1, {"CPU": 6})
    assert outcome.shortfalls == (
        Shortfall("CPU", ShortfallKind.BORROWING_LIMIT, 6, 2, 4, borrowable=18, limit=5),
    )
    assert outcome.reclaim == {}
    assert not outcome.never


def test_no_lendable_when_the_others_use_their_nominal() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4, borrowing_limit=None)),
        (2, QuotaLine("CPU", 10, used=9)),
        (3, QuotaLine("CPU", 10, used=3, lending_limit=2)),
    )
    assert cohort.available(1, "CPU") == 4 + 1 + 2
    outcome = blocked(cohort, 1, {"CPU": 8})
    assert outcome.shortfalls == (
        Shortfall("CPU", ShortfallKind.NO_LENDABLE, 8, 4, 4, borrowable=3),
    )
    assert not outcome.never


@pytest.mark.parametrize(
    ("borrowing_limit", "ceiling"),
    [(None, 4 + 10 + 3), (0, 4), (5, 9), (13, 17), (99, 17)],
)
def test_never_when_the_demand_exceeds_nominal_plus_all_that_may_ever_be_borrowed(
    borrowing_limit: int | None, ceiling: int
) -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4, used=4, borrowing_limit=borrowing_limit)),
        (2, QuotaLine("CPU", 10, used=10)),
        (3, QuotaLine("CPU", 10, used=10, lending_limit=3)),
        (4, QuotaLine("GPU", 50)),  # another class lends nothing to CPU
    )
    assert cohort.ceiling(1, "CPU") == ceiling
    outcome = blocked(cohort, 1, {"CPU": ceiling + 1})
    assert outcome.never
    assert outcome.shortfalls == (
        Shortfall("CPU", ShortfallKind.NEVER, ceiling + 1, 0, ceiling + 1, limit=ceiling),
    )
    # At the ceiling it is only "not now": everybody uses everything.
    assert not blocked(cohort, 1, {"CPU": ceiling}).never


def test_a_class_without_a_quota_line_is_a_zero_quota_that_may_not_borrow() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4)),
        (2, QuotaLine("GPU", 8)),
    )
    assert cohort.line(1, "GPU") == QuotaLine("GPU", 0)
    assert cohort.ceiling(1, "GPU") == 0
    assert cohort.available(1, "GPU") == 0
    assert kinds(blocked(cohort, 1, {"GPU": 1})) == {"GPU": ShortfallKind.NEVER}
    assert kinds(blocked(cohort, 3, {"CPU": 1})) == {"CPU": ShortfallKind.NEVER}
    assert admitted(cohort, 1, {"CPU": 4, "GPU": 0}).loans == {}


def test_every_class_that_misses_something_is_reported() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 4, used=1, borrowed=1, borrowing_limit=1)),
        (1, QuotaLine("GPU", 2, borrowing_limit=None)),
        (1, QuotaLine("RAM", 64, borrowing_limit=None)),
        (2, QuotaLine("CPU", 10, lent=1)),
        (2, QuotaLine("GPU", 2, used=2)),
        (2, QuotaLine("RAM", 64)),
    )
    assert cohort.ceiling(1, "CPU") == 5
    outcome = blocked(cohort, 1, {"CPU": 5, "GPU": 3, "RAM": 65})
    assert kinds(outcome) == {
        "CPU": ShortfallKind.BORROWING_LIMIT,
        "GPU": ShortfallKind.NO_LENDABLE,
    }
    assert not outcome.never
    outcome = blocked(cohort, 1, {"CPU": 6, "GPU": 5, "RAM": 200})
    assert kinds(outcome) == {
        "CPU": ShortfallKind.NEVER,
        "GPU": ShortfallKind.NEVER,
        "RAM": ShortfallKind.NEVER,
    }
    assert outcome.never


def test_a_request_beyond_nominal_moves_its_lent_nominal_and_borrows_only_the_excess() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 10, lent=8, borrowing_limit=2)),
        (2, QuotaLine("CPU", 10, used=18, borrowed=8)),
        (3, QuotaLine("CPU", 30)),
    )
    assert not cohort.is_guaranteed(1, {"CPU": 12})
    # usage 12 on nominal 10: it borrows 2, within its limit of 2; the 8 it lent are
    # taken over by the idle pool
    admission = admitted(cohort, 1, {"CPU": 12})
    assert admission.own == {"CPU": 10}
    assert admission.transfers == {(3, "CPU"): 8}
    assert admission.loans == {(3, "CPU"): 2}
    assert cohort.available(1, "CPU") == 2 + 8 + 2
    assert kinds(blocked(cohort, 1, {"CPU": 13})) == {"CPU": ShortfallKind.NEVER}


def test_earmarked_nominal_is_not_lent() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 0, borrowing_limit=None)),
        (2, QuotaLine("CPU", 10)),
        (3, QuotaLine("CPU", 3)),
    )
    cohort.earmarked[2, "CPU"] = 6
    assert cohort.lendable(2, "CPU") == 4
    assert cohort.line(2, "CPU").lendable == 10  # the line itself does not know
    assert cohort.available(1, "CPU") == 7
    # lendable 4 (2) before 3 (3)
    assert admitted(cohort, 1, {"CPU": 5}).loans == {(2, "CPU"): 4, (3, "CPU"): 1}
    assert kinds(blocked(cohort, 1, {"CPU": 8})) == {"CPU": ShortfallKind.NO_LENDABLE}
    # an earmark above what is lendable never makes it negative
    cohort.earmarked[2, "CPU"] = 50
    assert cohort.lendable(2, "CPU") == 0
    assert admitted(cohort, 1, {"CPU": 3}).loans == {(3, "CPU"): 3}
    # the ceiling is what could be borrowed if others were idle: earmarks do not count
    assert cohort.ceiling(1, "CPU") == 13


def test_give_returns_what_take_counted() -> None:
    lines = [
        (1, QuotaLine("CPU", 4, used=1, borrowing_limit=None)),
        (2, QuotaLine("CPU", 10, used=4)),
        (3, QuotaLine("CPU", 12, used=2)),
    ]
    cohort = cohort_of(*lines)
    admission = admitted(cohort, 1, {"CPU": 19})
    assert len(admission.loans) == 2
    cohort.take(1, admission)
    cohort.give(1, holds(admission), admission.loans)
    assert cohort.lines == {c: {line.resource_class: line} for c, line in lines}


# --- dominant share ------------------------------------------------------------------------


def test_dominant_share_is_the_largest_borrowed_fraction_of_a_pool_over_the_weight() -> None:
    cohort = cohort_of(
        (1, QuotaLine("CPU", 20, used=10, borrowed=10, borrowing_limit=None)),
        (1, QuotaLine("GPU", 2, used=4, borrowed=2, borrowing_limit=None)),
        (2, QuotaLine("CPU", 80, lent=10)),
        (2, QuotaLine("GPU", 6, lent=2)),
        (3, QuotaLine("CPU", 0, used=5, borrowed=5, borrowing_limit=None)),
        weights={1: 2.0},
    )
    assert cohort.pool("CPU") == 100
    assert cohort.pool("GPU") == 8
    assert cohort.pool(NOBODY_HAS) == 0
    # CPU 10/100, GPU 2/8: GPU dominates; weight 2 halves it
    assert cohort.dominant_share(1) == pytest.approx(0.25 / 2)
    assert cohort.dominant_share(2) == 0.0  # lending is not borrowing
    assert cohort.dominant_share(3) == pytest.approx(0.05)
    assert cohort.dominant_share(42) == 0.0


# --- the model -----------------------------------------------------------------------------


@dataclass
class Counters:
    nominal: int
    borrowing_limit: int | None = 0
    lending_limit: int | None = None
    used: int = 0
    borrowed: int = 0
    lent: int = 0

    def as_line(self, rc: str) -> QuotaLine:
        return QuotaLine(
            rc,
            self.nominal,
            used=self.used,
            borrowed=self.borrowed,
            lent=self.lent,
            borrowing_limit=self.borrowing_limit,
            lending_limit=self.lending_limit,
        )


@dataclass
class World:
    """A generated cohort: companies, quota lines, the loans between them, earmarks."""

    companies: list[int]
    rcs: list[str]
    counters: dict[tuple[int, str], Counters]
    loans: dict[tuple[int, int, str], int]
    """(borrower, lender, class) -> amount."""
    earmarked: dict[tuple[int, str], int] = field(default_factory=dict)
    weights: dict[int, float] = field(default_factory=dict)

    def cohort(self) -> Cohort:
        cohort = Cohort(
            ((c, counters.as_line(rc)) for (c, rc), counters in self.counters.items()),
            self.weights,
        )
        cohort.earmarked.update(self.earmarked)
        cohort.hold(
            Holding(holding_id(b, lender, rc), b, {(lender, rc): n})
            for (b, lender, rc), n in sorted(self.loans.items())
        )
        return cohort


# Strategies are few, constant and flat, the values clamped afterwards: generation stays
# cheap enough for a few hundred examples per property.
LINE_SPEC = st.tuples(
    st.integers(-2, 20),  # nominal; negative: no quota line for this class
    st.integers(-5, 25),  # borrowing limit; negative: None (no limit)
    st.integers(-5, 25),  # lending limit; negative: None (all idle nominal)
    st.integers(0, 20),  # own use, clamped to what the loans leave
)
LOAN_SPECS = st.lists(  # borrower, lender, class (indices, taken modulo), amount (clamped)
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 2), st.integers(1, 10)),
    max_size=10,
)
EARMARK_SPECS = st.lists(st.tuples(st.integers(0, 17), st.integers(1, 8)), max_size=3)
COMPANIES = st.lists(st.integers(1, 40), min_size=2, max_size=6, unique=True)
CLASSES = st.lists(st.sampled_from(RCS), min_size=1, max_size=3, unique=True)
WEIGHT = st.integers(-8, 32)  # /4; not positive: no weight (1.0)


def limit(n: int) -> int | None:
    return None if n < 0 else n


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """2-6 companies, 1-3 classes, random limits, loans and usage within the DB CHECKs."""
    companies = draw(COMPANIES)
    rcs = draw(CLASSES)
    keys = [(c, rc) for c in companies for rc in rcs]
    specs = draw(st.lists(LINE_SPEC, min_size=len(keys), max_size=len(keys)))
    counters: dict[tuple[int, str], Counters] = {}
    own_use: dict[tuple[int, str], int] = {}
    for key, (nominal, bl, ll, use) in zip(keys, specs, strict=True):
        if nominal < 0:
            continue
        counters[key] = Counters(nominal, borrowing_limit=limit(bl), lending_limit=limit(ll))
        own_use[key] = use
    loans: dict[tuple[int, int, str], int] = {}
    for bi, li, ri, wanted in draw(LOAN_SPECS):
        borrower, lender = companies[bi % len(companies)], companies[li % len(companies)]
        rc = rcs[ri % len(rcs)]
        b, lend = counters.get((borrower, rc)), counters.get((lender, rc))
        if borrower == lender or b is None or lend is None:
            continue
        room = lend.nominal - lend.lent
        if lend.lending_limit is not None:
            room = min(room, lend.lending_limit - lend.lent)
        if b.borrowing_limit is not None:
            room = min(room, b.borrowing_limit - b.borrowed)
        amount = min(wanted, room)
        if amount <= 0:
            continue
        loans[borrower, lender, rc] = loans.get((borrower, lender, rc), 0) + amount
        lend.lent += amount
        b.borrowed += amount
        b.used += amount
    for key, counter in counters.items():
        counter.used += min(own_use[key], counter.nominal - counter.lent)
    earmarked: dict[tuple[int, str], int] = {}
    lines = sorted(counters)
    if lines:
        for i, n in draw(EARMARK_SPECS):
            earmarked[lines[i % len(lines)]] = n
    raw = draw(st.lists(WEIGHT, min_size=len(companies), max_size=len(companies)))
    weights = {c: w / 4 for c, w in zip(companies, raw, strict=True) if w > 0}
    return World(companies, rcs, counters, loans, earmarked, weights)


@dataclass
class Piece:
    """Something a company holds that can be released: own use, or an admission."""

    company: int
    own: dict[str, int]
    loans: dict[tuple[int, str], int]


class Model:
    """Independent counters, pieces (what each allocation holds, whose nominal) and a loan
    ledger, updated from the admissions the engine makes. The reference rules:

    * a request takes its own free nominal first;
    * idle pool first: then up to ``min(need, lent, idle)`` of its lent nominal is moved
      to the others' lendable idle nominal (largest lendable first, ties by id), never
      reclaimed while idle capacity could take it;
    * a guaranteed request (own use + demand <= nominal) then misses the rest
      (``LENT_OUT``: what a reclaim must bring back); a request beyond nominal borrows
      the rest from what the idle pool still has, within its borrowing limit;
    * borrowing is usage above nominal: a company holding loans while own nominal is
      free pays back ``min(own free, borrowed)`` (``repays``).
    """

    def __init__(self, world: World) -> None:
        self.companies = list(world.companies)
        self.counters = {
            key: Counters(c.nominal, c.borrowing_limit, c.lending_limit, c.used, c.borrowed, c.lent)
            for key, c in world.counters.items()
        }
        self.loans = dict(world.loans)
        self.earmarked = dict(world.earmarked)
        self.pieces: dict[str, Piece] = {
            f"own-{c}-{rc}": Piece(c, {rc: q.used - q.borrowed}, {})
            for (c, rc), q in world.counters.items()
        }
        for (b, lender, rc), n in world.loans.items():
            self.pieces[holding_id(b, lender, rc)] = Piece(b, {}, {(lender, rc): n})

    def get(self, c: int, rc: str) -> Counters:
        return self.counters.get((c, rc)) or Counters(0)

    def own_free(self, c: int, rc: str) -> int:
        q = self.get(c, rc)
        free = q.nominal - (q.used - q.borrowed) - q.lent
        assert free >= 0
        return free

    def lendable(self, c: int, rc: str) -> int:
        q = self.get(c, rc)
        room = self.own_free(c, rc)
        if q.lending_limit is not None:
            room = min(room, q.lending_limit - q.lent)
        return max(room - self.earmarked.get((c, rc), 0), 0)

    def lenders(self, c: int, rc: str) -> list[tuple[int, int]]:
        """(lender, lendable) of the other companies, largest lendable first, ties by id."""
        out = [(other, self.lendable(other, rc)) for other in self.companies if other != c]
        out.sort(key=lambda t: (-t[1], t[0]))
        return out

    def idle(self, c: int, rc: str) -> int:
        return sum(n for _, n in self.lenders(c, rc))

    def moved(self, c: int, rc: str, n: int) -> int:
        """How much of the company's lent nominal a request of ``n`` moves to the pool."""
        need = max(n - self.own_free(c, rc), 0)
        return min(need, self.get(c, rc).lent, self.idle(c, rc))

    def headroom(self, c: int, rc: str) -> int | None:
        q = self.get(c, rc)
        return None if q.borrowing_limit is None else q.borrowing_limit - q.borrowed

    def may_borrow(self, c: int, rc: str) -> int:
        """What the company could take now beyond its own free nominal: its lent
        nominal moved to the pool, then borrowing within the headroom."""
        idle = self.idle(c, rc)
        moved = min(self.get(c, rc).lent, idle)
        borrowable = idle - moved
        headroom = self.headroom(c, rc)
        return moved + (borrowable if headroom is None else min(borrowable, headroom))

    def available(self, c: int, rc: str) -> int:
        return self.own_free(c, rc) + self.may_borrow(c, rc)

    def ceiling(self, c: int, rc: str) -> int:
        q = self.get(c, rc)
        others = 0
        for other in self.companies:
            if other == c or (other, rc) not in self.counters:
                continue
            o = self.counters[other, rc]
            others += o.nominal if o.lending_limit is None else min(o.nominal, o.lending_limit)
        if q.borrowing_limit is not None:
            others = min(others, q.borrowing_limit)
        return q.nominal + others

    def guaranteed(self, c: int, demand: Mapping[str, int]) -> bool:
        return all(
            self.get(c, rc).used - self.get(c, rc).borrowed + n <= self.get(c, rc).nominal
            for rc, n in demand.items()
        )

    def rest(self, c: int, rc: str, n: int) -> int:
        """What the idle pool does not give back: reclaimed or borrowed."""
        return max(n - self.own_free(c, rc), 0) - self.moved(c, rc, n)

    def expected(self, c: int, demand: Mapping[str, int]) -> dict[str, ShortfallKind]:
        """The classes that cannot be admitted now, and why."""
        guaranteed = self.guaranteed(c, demand)
        out: dict[str, ShortfallKind] = {}
        for rc, n in demand.items():
            need = n - self.own_free(c, rc)
            if need <= 0:
                continue
            rest = self.rest(c, rc, n)
            headroom = self.headroom(c, rc)
            if n > self.ceiling(c, rc):
                out[rc] = ShortfallKind.NEVER
            elif guaranteed:
                if rest > 0:
                    out[rc] = ShortfallKind.LENT_OUT
            elif headroom is not None and rest > headroom:
                out[rc] = ShortfallKind.BORROWING_LIMIT
            elif rest > self.idle(c, rc) - self.moved(c, rc, n):
                out[rc] = ShortfallKind.NO_LENDABLE
        return out

    def _slot(self, c: int, rc: str) -> Counters:
        return self.counters.setdefault((c, rc), Counters(0))

    def _move(self, m: Move) -> None:
        """One move of the engine, checked: the piece holds it, nobody lends to itself."""
        piece = self.pieces[m.allocation_id]
        src, dst = (m.from_lender, m.resource_class), (m.to_lender, m.resource_class)
        assert m.amount > 0
        assert piece.company == m.borrower
        assert piece.loans.get(src, 0) >= m.amount
        assert m.whole == (piece.loans[src] == m.amount)
        piece.loans[src] -= m.amount
        if not piece.loans[src]:
            del piece.loans[src]
        self._slot(m.from_lender, m.resource_class).lent -= m.amount
        self._ledger(m.borrower, m.from_lender, m.resource_class, -m.amount)
        if m.to_lender == m.borrower:  # repaid: from the borrower's own free nominal
            self._slot(m.borrower, m.resource_class).borrowed -= m.amount
            piece.own[m.resource_class] = piece.own.get(m.resource_class, 0) + m.amount
            return
        piece.loans[dst] = piece.loans.get(dst, 0) + m.amount
        self._slot(m.to_lender, m.resource_class).lent += m.amount
        self._ledger(m.borrower, m.to_lender, m.resource_class, m.amount)

    def _ledger(self, b: int, lender: int, rc: str, n: int) -> None:
        self.loans[b, lender, rc] = self.loans.get((b, lender, rc), 0) + n
        if not self.loans[b, lender, rc]:
            del self.loans[b, lender, rc]

    def repay(self, moves: list[Move]) -> None:
        """The engine's repays: every move valid (a borrower repays only its own loans,
        from its own free nominal), and afterwards nobody borrows while own nominal of
        its is free: borrowing is exactly use above what the company's nominal holds."""
        for m in moves:
            assert m.to_lender == m.borrower
        for m in sorted(moves, key=lambda m: m.borrower):
            self._move(m)
        for key, q in self.counters.items():  # usage-based: borrowing iff no own free
            assert q.borrowed == 0 or self.own_free(*key) == 0, key

    def admit(self, c: int, admission: Admission, piece_id: str) -> None:
        for m in admission.moves:
            assert m.from_lender == c
            self._move(m)
        for rc, n in admission.own.items():
            self._slot(c, rc).used += n
        assert all(lender != c for lender, _ in admission.transfers)
        for (lender, rc), n in admission.loans.items():
            self._slot(c, rc).used += n
            self._slot(c, rc).borrowed += n
            self._slot(lender, rc).lent += n
            self._ledger(c, lender, rc, n)
        self.pieces[piece_id] = Piece(c, dict(admission.own), dict(admission.loans))

    def release(self, piece_id: str) -> Piece:
        piece = self.pieces.pop(piece_id)
        for rc, n in piece.own.items():
            self._slot(piece.company, rc).used -= n
        for (lender, rc), n in piece.loans.items():
            self._slot(piece.company, rc).used -= n
            self._slot(piece.company, rc).borrowed -= n
            self._slot(lender, rc).lent -= n
            self._ledger(piece.company, lender, rc, -n)
        return piece

    def check_invariants(self) -> None:
        for (c, rc), q in self.counters.items():
            assert 0 <= q.borrowed <= q.used, (c, rc, q)
            assert q.lent >= 0, (c, rc, q)
            assert q.used - q.borrowed + q.lent <= q.nominal, (c, rc, q)
            if q.borrowing_limit is not None:
                assert q.borrowed <= q.borrowing_limit, (c, rc, q)
                assert q.used <= q.nominal + q.borrowing_limit, (c, rc, q)
            if q.lending_limit is not None:
                assert q.lent <= q.lending_limit, (c, rc, q)
        for (borrower, lender, _rc), n in self.loans.items():
            assert n > 0
            assert borrower != lender
        # the ledger explains every counter: borrowed and lent, per company and class
        for (c, rc), q in self.counters.items():
            assert q.borrowed == sum(
                n for (b, _, r), n in self.loans.items() if (b, r) == (c, rc)
            ), (c, rc)
            assert q.lent == sum(n for (_, le, r), n in self.loans.items() if (le, r) == (c, rc))
        # ... and so do the pieces: what each allocation holds
        for (c, rc), q in self.counters.items():
            pieces = [p for p in self.pieces.values() if p.company == c]
            assert q.used == sum(p.own.get(rc, 0) for p in pieces) + sum(
                n for p in pieces for (_, r), n in p.loans.items() if r == rc
            ), (c, rc)

    def matches(self, cohort: Cohort) -> None:
        """The engine's lines equal the model's counters (a missing line = zero quota),
        and the engine's holdings are the pieces' loans."""
        for c in {*self.companies, *cohort.lines}:
            for rc in ALL_RCS:
                assert cohort.line(c, rc) == self.get(c, rc).as_line(rc), (c, rc)
        assert cohort.held is not None
        assert {a: dict(h.loans) for a, h in cohort.held.items() if h.loans} == {
            a: p.loans for a, p in self.pieces.items() if p.loans
        }


def holding_id(borrower: int, lender: int, rc: str) -> str:
    return f"loan-{borrower}-{lender}-{rc}"


def check_cohort_invariants(cohort: Cohort) -> None:
    """The DB CHECKs and Σborrowed == Σlent per class, read from the engine's own lines."""
    borrowed: dict[str, int] = {}
    lent: dict[str, int] = {}
    for by_rc in cohort.lines.values():
        for rc, line in by_rc.items():
            assert 0 <= line.borrowed <= line.used, line
            assert line.lent >= 0, line
            assert line.used - line.borrowed + line.lent <= line.nominal, line
            if line.borrowing_limit is not None:
                assert line.borrowed <= line.borrowing_limit, line
            if line.lending_limit is not None:
                assert line.lent <= line.lending_limit, line
            borrowed[rc] = borrowed.get(rc, 0) + line.borrowed
            lent[rc] = lent.get(rc, 0) + line.lent
    for rc in {*borrowed, *lent}:
        assert borrowed.get(rc, 0) == lent.get(rc, 0), rc


def greedy(lenders: list[tuple[int, int]], amount: int) -> dict[int, int]:
    """``amount`` taken from the lenders in their order, each giving all it may."""
    out: dict[int, int] = {}
    for lender, lendable in lenders:
        part = min(amount, lendable)
        if part > 0:
            out[lender] = part
            amount -= part
    assert amount == 0
    return out


def check_outcome(
    model: Model, company: int, demand: Mapping[str, int], outcome: Admission | Blocked
) -> None:
    """The engine's plan against the model's expectations."""
    expected = model.expected(company, demand)
    if not model.guaranteed(company, demand):
        # a request that may borrow is admitted iff every class fits what is available now
        fits = all(n <= model.available(company, rc) for rc, n in demand.items())
        assert fits == (not expected)
    else:
        fits = all(model.rest(company, rc, n) == 0 for rc, n in demand.items())
        assert fits == (not expected)
    if isinstance(outcome, Blocked):
        assert kinds(outcome) == expected
        assert len(outcome.shortfalls) == len(expected)  # one shortfall per class
        for s in outcome.shortfalls:
            rc = s.resource_class
            own_free = model.own_free(company, rc)
            assert s.requested == demand[rc]
            assert s.own_free == own_free
            if s.kind is ShortfallKind.NEVER:
                assert s.missing == s.requested - own_free > 0
                assert s.limit == model.ceiling(company, rc)
            else:
                assert s.missing == model.rest(company, rc, s.requested) > 0
            if s.kind is ShortfallKind.LENT_OUT:
                # what must come back is never more than what is lent, nor than the
                # idle pool could take over
                assert s.missing <= model.get(company, rc).lent
                assert s.borrowable == model.moved(company, rc, s.requested)
        assert outcome.reclaim == {
            rc: model.rest(company, rc, demand[rc])
            for rc, kind in expected.items()
            if kind is ShortfallKind.LENT_OUT
        }
        assert outcome.never == (ShortfallKind.NEVER in expected.values())
        return
    assert expected == {}
    assert all(n > 0 for n in outcome.loans.values())  # the loans table CHECKs amount > 0
    assert all(lender != company for lender, _ in outcome.loans)
    assert all(lender != company for lender, _ in outcome.transfers)
    assert {rc for _, rc in outcome.loans} <= set(demand)
    assert set(outcome.own) <= set(demand)
    moved_total: dict[tuple[int, str], int] = {}
    for m in outcome.moves:
        moved_total[m.to_lender, m.resource_class] = (
            moved_total.get((m.to_lender, m.resource_class), 0) + m.amount
        )
    assert moved_total == outcome.transfers  # the moves are the transfers, loan by loan
    for rc, n in demand.items():
        moved = model.moved(company, rc, n)
        own = outcome.own.get(rc, 0)
        assert own == min(n, model.own_free(company, rc)) + moved
        loans = {lender: m for (lender, r), m in outcome.loans.items() if r == rc}
        transfers = {lender: m for (lender, r), m in outcome.transfers.items() if r == rc}
        assert own + sum(loans.values()) == n  # exactly the demand
        if loans:
            assert not model.guaranteed(company, demand)  # guaranteed requests never borrow
        # idle pool first, largest lendable first, ties by id: the moves, then the loans
        lenders = model.lenders(company, rc)
        assert transfers == greedy(lenders, moved)
        left = [(lender, lendable - transfers.get(lender, 0)) for lender, lendable in lenders]
        assert loans == greedy(left, n - own)


DemandSpec = list[tuple[int, int, int]]
DEMAND_SPEC = st.lists(  # class pick (7: one nobody has), amount mode, amount
    st.tuples(st.integers(0, 7), st.integers(0, 4), st.integers(0, 30)),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
)
DELTAS = (0, -1, 1, -2, 2)


def demand_of(spec: DemandSpec, model: Model, company: int, rcs: list[str]) -> dict[str, int]:
    """A demand of 1-3 classes (rarely one nobody has), most amounts near a boundary of
    what the company may get now: its own free nominal, what is available, the ceiling,
    the most a guaranteed request may ask."""
    demand: dict[str, int] = {}
    for pick, mode, x in spec:
        rc = NOBODY_HAS if pick == 7 else rcs[pick % len(rcs)]
        if mode == 0:
            demand[rc] = x % 16
            continue
        line = model.get(company, rc)
        base = (
            model.own_free(company, rc),
            model.available(company, rc),
            model.ceiling(company, rc),
            line.nominal - (line.used - line.borrowed),
        )[mode - 1]
        demand[rc] = max(base + DELTAS[x % 5], 0)
    return demand


def snapshot(cohort: Cohort, companies: list[int]) -> dict[tuple[int, str], QuotaLine]:
    return {(c, rc): cohort.line(c, rc) for c in companies for rc in ALL_RCS}


# --- properties ----------------------------------------------------------------------------


STEPS = st.lists(  # release? (0), which piece or which company, what demand
    st.tuples(st.integers(0, 2), st.integers(0, 63), DEMAND_SPEC), min_size=1, max_size=10
)


def repay(cohort: Cohort, model: Model) -> None:
    """What a scheduler cycle does first: borrowers with free own nominal pay back."""
    moves = cohort.repays()
    model.repay(moves)
    cohort.repay(moves)


def used_of(piece: Piece) -> dict[str, int]:
    used = dict(piece.own)
    for (_, rc), n in piece.loans.items():
        used[rc] = used.get(rc, 0) + n
    return used


@settings(max_examples=150, deadline=None)
@given(world=worlds(), steps=STEPS)
def test_random_admissions_and_releases_keep_every_invariant(
    world: World, steps: list[tuple[int, int, DemandSpec]]
) -> None:
    cohort = world.cohort()
    model = Model(world)
    never: list[tuple[int, dict[str, int]]] = []
    # the generated world and the engine agree before anything happens
    model.check_invariants()
    check_cohort_invariants(cohort)
    model.matches(cohort)
    for c in world.companies:
        for rc in world.rcs:
            assert cohort.ceiling(c, rc) == model.ceiling(c, rc)
    for rc in ALL_RCS:
        assert cohort.pool(rc) == sum(q.nominal for (_, r), q in world.counters.items() if r == rc)
    repay(cohort, model)  # borrowing is usage above nominal from here on
    for c in world.companies:
        for rc in world.rcs:
            assert cohort.lendable(c, rc) == model.lendable(c, rc)
    for i, (op, k, spec) in enumerate(steps):
        if model.pieces and op == 0:
            piece_id = sorted(model.pieces)[k % len(model.pieces)]
            piece = model.release(piece_id)
            cohort.give(piece.company, used_of(piece), piece.loans)
            assert cohort.held is not None
            cohort.held.pop(piece_id, None)
            model.check_invariants()
            model.matches(cohort)
            repay(cohort, model)
        else:
            company = world.companies[k % len(world.companies)]
            demand = demand_of(spec, model, company, world.rcs)
            outcome = cohort.plan(company, demand)
            check_outcome(model, company, demand, outcome)
            if isinstance(outcome, Blocked):
                if outcome.never:
                    never.append((company, demand))
            else:
                # take + untake restores the lines exactly, then take again for good
                before = snapshot(cohort, world.companies)
                held_before = dict(cohort.held or {})
                cohort.take(company, outcome)
                cohort.untake(company, outcome)
                assert snapshot(cohort, world.companies) == before
                assert cohort.held == held_before
                cohort.take(company, outcome)
                model.admit(company, outcome, f"step-{i}")
                if outcome.loans:
                    assert cohort.held is not None
                    cohort.held[f"step-{i}"] = Holding(f"step-{i}", company, dict(outcome.loans))
        model.check_invariants()
        check_cohort_invariants(cohort)
        model.matches(cohort)
        for c in world.companies:
            for rc in world.rcs:
                available = cohort.available(c, rc)
                assert available == model.available(c, rc)
                assert available <= cohort.ceiling(c, rc)
    # Everybody releases everything: nothing leaks, the pool is idle again.
    for piece_id in sorted(model.pieces):
        piece = model.release(piece_id)
        cohort.give(piece.company, used_of(piece), piece.loans)
        assert cohort.held is not None
        cohort.held.pop(piece_id, None)
    assert model.loans == {}
    for by_rc in cohort.lines.values():
        for line in by_rc.values():
            assert (line.used, line.borrowed, line.lent) == (0, 0, 0), line
    cohort.earmarked.clear()
    for c in world.companies:
        for rc in world.rcs:
            assert cohort.available(c, rc) == cohort.ceiling(c, rc)  # idle: now = ever
    # ... and what was "never" is still not admitted.
    for company, demand in never:
        outcome = cohort.plan(company, demand)
        assert isinstance(outcome, Blocked)
        assert outcome.never


@settings(max_examples=100, deadline=None)
@given(world=worlds(), k=st.integers(0, 5), spec=DEMAND_SPEC)
def test_on_an_idle_pool_a_request_is_admitted_iff_it_is_below_the_ceiling(
    world: World, k: int, spec: DemandSpec
) -> None:
    for q in world.counters.values():
        q.used = q.borrowed = q.lent = 0
    world.loans.clear()
    world.earmarked.clear()
    cohort = world.cohort()
    model = Model(world)
    company = world.companies[k % len(world.companies)]
    demand = demand_of(spec, model, company, world.rcs)
    outcome = cohort.plan(company, demand)
    check_outcome(model, company, demand, outcome)
    over = {rc for rc, n in demand.items() if n > model.ceiling(company, rc)}
    if over:
        assert isinstance(outcome, Blocked)
        assert kinds(outcome) == dict.fromkeys(over, ShortfallKind.NEVER)
    else:
        assert isinstance(outcome, Admission)


@settings(max_examples=100, deadline=None)
@given(
    world=worlds(),
    k=st.integers(0, 5),
    less=st.lists(st.integers(0, 5), min_size=3, max_size=3),
)
def test_reclaiming_what_a_guaranteed_request_misses_admits_it_from_own_nominal(
    world: World, k: int, less: list[int]
) -> None:
    cohort = world.cohort()
    model = Model(world)
    repay(cohort, model)  # as a cycle does first
    lenders = sorted({c for (c, _), q in model.counters.items() if q.lent})
    choices = lenders or world.companies
    company = choices[k % len(choices)]
    demand = {  # up to what fits in the nominal next to the company's own use, often all
        rc: max(q.nominal - (q.used - q.borrowed) - less[RCS.index(rc)], 0)
        for (c, rc), q in model.counters.items()
        if c == company
    }
    assert cohort.is_guaranteed(company, demand)
    outcome = cohort.plan(company, demand)
    check_outcome(model, company, demand, outcome)
    if isinstance(outcome, Blocked):
        assert set(kinds(outcome).values()) == {ShortfallKind.LENT_OUT}
        # the borrowers give back what is missing: whole allocations holding its loans
        for rc, missing in outcome.reclaim.items():
            for piece_id in sorted(model.pieces):
                back = model.pieces[piece_id].loans.get((company, rc), 0)
                if not back or missing <= 0:
                    continue
                piece = model.release(piece_id)
                cohort.give(piece.company, used_of(piece), piece.loans)
                assert cohort.held is not None
                cohort.held.pop(piece_id, None)
                missing -= back
            assert missing <= 0
        model.check_invariants()
        model.matches(cohort)
        outcome = cohort.plan(company, demand)
    assert isinstance(outcome, Admission)
    assert outcome.loans == {}
    assert {rc: n for rc, n in outcome.own.items() if n} == {rc: n for rc, n in demand.items() if n}


@settings(max_examples=75, deadline=None)
@given(world=worlds(), steps=st.lists(st.tuples(st.integers(0, 5), DEMAND_SPEC), max_size=4))
def test_dominant_share_matches_its_definition(
    world: World, steps: list[tuple[int, DemandSpec]]
) -> None:
    cohort = world.cohort()
    model = Model(world)
    # borrow some more so that shares are not all zero
    for k, spec in steps:
        company = world.companies[k % len(world.companies)]
        outcome = cohort.plan(company, demand_of(spec, model, company, world.rcs))
        if isinstance(outcome, Admission):
            cohort.take(company, outcome)
            model.admit(company, outcome, f"step-{k}-{len(model.pieces)}")
    for c in [*world.companies, 999]:
        share = 0.0
        for rc in world.rcs:
            pool = sum(q.nominal for (_, r), q in model.counters.items() if r == rc)
            borrowed = model.get(c, rc).borrowed
            if borrowed:
                share = max(share, borrowed / pool)
        expected = share / world.weights.get(c, 1.0)
        assert cohort.dominant_share(c) == pytest.approx(expected, rel=1e-12, abs=0)

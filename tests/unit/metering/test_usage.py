"""Usage records derived from allocation events (groupcloud.metering.usage)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupcloud.metering.rates import Rate, RateCard
from groupcloud.metering.statements import statements
from groupcloud.metering.usage import (
    AllocationEvent,
    EventKind,
    Source,
    UsageRecord,
    corrections,
    derive,
    to_second,
)
from tests.unit.metering.scenarios import EPOCH, KINDS, event, facts, histories, utc


def spans(records: list[UsageRecord]) -> list[tuple[str, str, str | None, int, datetime, datetime]]:
    return [(r.resource_class, r.source.value, r.lender, r.amount, r.start, r.end) for r in records]


def test_a_claim_and_its_release_make_one_record_per_class_to_the_second() -> None:
    records = derive(
        [
            event(1, utc(2026, 3, 1, 9, 0, 0, 700_000), EventKind.CLAIMED,
                  {"VCPU": 4, "MEMORY_MB": 8192}, of=facts()),
            event(2, utc(2026, 3, 1, 10, 30, 5, 999_999), EventKind.RELEASED),
        ]
    )  # fmt: skip
    assert spans(records) == [
        ("MEMORY_MB", "own", None, 8192, utc(2026, 3, 1, 9), utc(2026, 3, 1, 10, 30, 5)),
        ("VCPU", "own", None, 4, utc(2026, 3, 1, 9), utc(2026, 3, 1, 10, 30, 5)),
    ]
    assert records[1].seconds == 5405
    assert records[1].unit_seconds == 4 * 5405
    assert (records[0].company, records[0].project, records[0].zone_kind) == (
        "bank",
        "payments",
        "shared",
    )
    assert records[0].start.tzinfo is not None


def test_borrowing_splits_the_amount_into_own_and_borrowed_until_the_loan_is_repaid() -> None:
    records = derive(
        [
            event(1, utc(2026, 3, 1, 0), EventKind.CLAIMED, {"VCPU": 8}, of=facts()),
            event(2, utc(2026, 3, 1, 0), EventKind.BORROW_STARTED, {"VCPU": 6}, lender="card"),
            event(3, utc(2026, 3, 1, 4), EventKind.BORROW_RETURNED, {"VCPU": 6}, lender="card"),
            event(4, utc(2026, 3, 1, 6), EventKind.RELEASED),
        ]
    )
    assert spans(records) == [
        # the claim and the loan at one second: no zero-length record of 8 own VCPU
        ("VCPU", "borrowed", "card", 6, utc(2026, 3, 1, 0), utc(2026, 3, 1, 4)),
        ("VCPU", "own", None, 2, utc(2026, 3, 1, 0), utc(2026, 3, 1, 4)),
        ("VCPU", "own", None, 8, utc(2026, 3, 1, 4), utc(2026, 3, 1, 6)),
    ]


def test_a_lender_change_moves_the_loan_and_leaves_the_own_part_running() -> None:
    records = derive(
        [
            event(1, utc(2026, 3, 1, 0), EventKind.CLAIMED, {"VCPU": 8}, of=facts()),
            event(2, utc(2026, 3, 1, 1), EventKind.BORROW_STARTED, {"VCPU": 4}, lender="card"),
            # allocation.lender_changed: a return and a start at the same instant
            event(3, utc(2026, 3, 1, 2), EventKind.BORROW_RETURNED, {"VCPU": 4}, lender="card"),
            event(4, utc(2026, 3, 1, 2), EventKind.BORROW_STARTED, {"VCPU": 4}, lender="capital"),
            event(5, utc(2026, 3, 1, 3), EventKind.RELEASED),
        ]
    )
    assert spans(records) == [
        ("VCPU", "own", None, 8, utc(2026, 3, 1, 0), utc(2026, 3, 1, 1)),
        ("VCPU", "borrowed", "card", 4, utc(2026, 3, 1, 1), utc(2026, 3, 1, 2)),
        ("VCPU", "own", None, 4, utc(2026, 3, 1, 1), utc(2026, 3, 1, 3)),
        ("VCPU", "borrowed", "capital", 4, utc(2026, 3, 1, 2), utc(2026, 3, 1, 3)),
    ]


def test_a_resize_ends_the_record_of_that_class_only() -> None:
    records = derive(
        [
            event(1, utc(2026, 3, 1, 0), EventKind.CLAIMED, {"VCPU": 2, "GPU": 1}, of=facts()),
            event(2, utc(2026, 3, 1, 1), EventKind.RESIZED, {"VCPU": 6}),
            event(3, utc(2026, 3, 1, 2), EventKind.RESIZED, {"GPU": 0}),
            event(4, utc(2026, 3, 1, 3), EventKind.RELEASED),
        ]
    )
    assert spans(records) == [
        ("GPU", "own", None, 1, utc(2026, 3, 1, 0), utc(2026, 3, 1, 2)),
        ("VCPU", "own", None, 2, utc(2026, 3, 1, 0), utc(2026, 3, 1, 1)),
        ("VCPU", "own", None, 6, utc(2026, 3, 1, 1), utc(2026, 3, 1, 3)),
    ]


def test_open_usage_is_cut_at_the_horizon_or_left_out_without_one() -> None:
    claim = event(1, utc(2026, 3, 1, 0), EventKind.CLAIMED, {"VCPU": 2}, of=facts())
    late = event(2, utc(2026, 3, 5), EventKind.RESIZED, {"VCPU": 3})
    assert derive([claim, late]) == derive([claim, late], until=utc(2026, 3, 5)) != []
    (cut,) = derive([claim, late], until=utc(2026, 3, 2))
    assert (cut.amount, cut.end) == (2, utc(2026, 3, 2))
    assert derive([claim]) == []


def test_rebuilding_from_shuffled_and_redelivered_events_gives_the_same_records() -> None:
    events = [
        event(1, utc(2026, 3, 1, 0), EventKind.CLAIMED, {"VCPU": 8}, of=facts()),
        event(2, utc(2026, 3, 1, 0, 0, 0, 5), EventKind.CLAIMED, {"GPU": 1}, allocation="a2",
              of=facts("card", "ml")),
        event(3, utc(2026, 3, 1, 1), EventKind.BORROW_STARTED, {"VCPU": 4}, lender="card"),
        event(4, utc(2026, 3, 2), EventKind.RELEASED, allocation="a2"),
        event(5, utc(2026, 3, 3), EventKind.RELEASED),
    ]  # fmt: skip
    expected = derive(events)
    for seed in range(5):
        shuffled = [*events, events[2], events[0]]
        random.Random(seed).shuffle(shuffled)
        assert derive(shuffled) == expected


@given(histories(), st.randoms(use_true_random=False))
def test_rebuild_is_a_function_of_the_events_alone(
    events: list[AllocationEvent], rng: random.Random
) -> None:
    shuffled = list(events)
    rng.shuffle(shuffled)
    horizon = utc(2026, 4, 1)
    assert derive(shuffled, until=horizon) == derive(events, until=horizon)
    records = derive(events, until=horizon)
    # what is held at any instant is what the claims said, own and borrowed together
    assert all(r.amount > 0 and r.start < r.end for r in records)
    assert all((r.lender is None) == (r.source is Source.OWN) for r in records)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([event(1, utc(2026, 3, 1), EventKind.RELEASED)], "without a live claim"),
        ([event(1, utc(2026, 3, 1), EventKind.CLAIMED, {"VCPU": 1})], "needs its facts"),
        (
            [
                event(1, utc(2026, 3, 1), EventKind.CLAIMED, {"VCPU": 2}, of=facts()),
                event(2, utc(2026, 3, 1), EventKind.BORROW_STARTED, {"VCPU": 3}, lender="card"),
            ],
            "exceeds the total",
        ),
        (
            [
                event(1, utc(2026, 3, 1), EventKind.CLAIMED, {"VCPU": 2}, of=facts()),
                event(2, utc(2026, 3, 1), EventKind.BORROW_RETURNED, {"VCPU": 1}, lender="card"),
            ],
            "than borrowed",
        ),
        (
            [
                event(1, utc(2026, 3, 1), EventKind.CLAIMED, {"VCPU": 2}, of=facts()),
                event(1, utc(2026, 3, 2), EventKind.RELEASED),
            ],
            "two different events with seq 1",
        ),
        (
            [
                event(1, utc(2026, 3, 2), EventKind.CLAIMED, {"VCPU": 2}, of=facts()),
                event(2, utc(2026, 3, 1), EventKind.RELEASED),
            ],
            "goes back in time",
        ),
    ],
)
def test_an_impossible_history_is_refused(events: list[AllocationEvent], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        derive(events)


def test_metering_instants_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_second(datetime(2026, 3, 1))


# --- corrections -----------------------------------------------------------------------------

FLAT = RateCard(
    Rate(kind, provider, rc, EPOCH, Decimal("12.5"))
    for kind, provider in KINDS
    for rc in ("VCPU", "GPU")
)


def test_a_late_event_is_corrected_by_new_records_never_by_changing_issued_ones() -> None:
    claim = event(1, utc(2026, 3, 1, 0), EventKind.CLAIMED, {"VCPU": 8}, of=facts())
    release = event(3, utc(2026, 3, 1, 10), EventKind.RELEASED)
    borrow = event(2, utc(2026, 3, 1, 2), EventKind.BORROW_STARTED, {"VCPU": 6}, lender="card")
    issued = derive([claim, release])
    rebuilt = derive([claim, borrow, release])
    fixes = corrections(issued, rebuilt)
    # the issued 8 VCPU x 10 h is reversed; the rebuilt records are added
    assert [r.amount for r in fixes if r.is_reversal] == [-8]
    assert Counter(r for r in fixes if not r.is_reversal) == Counter(rebuilt)
    share = Decimal("0.5")
    assert statements([*issued, *fixes], FLAT, lender_share=share) == statements(
        rebuilt, FLAT, lender_share=share
    )
    # correcting again with the same rebuild adds nothing
    assert corrections([*issued, *fixes], rebuilt) == []


@given(histories(), histories())
def test_issued_plus_corrections_bill_as_the_rebuild(
    first: list[AllocationEvent], second: list[AllocationEvent]
) -> None:
    horizon = utc(2026, 4, 1)
    issued, rebuilt = derive(first, until=horizon), derive(second, until=horizon)
    fixes = corrections(issued, rebuilt)
    share = Decimal("0.7")
    assert statements([*issued, *fixes], FLAT, lender_share=share) == statements(
        rebuilt, FLAT, lender_share=share
    )
    assert corrections([*issued, *fixes], rebuilt) == []

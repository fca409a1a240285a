"""Monthly statements (groupcloud.metering.statements): hand-checked scenarios, then the
property that every line is exactly its usage times its rates, rounded once."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from groupcloud.analytics.months import SEOUL, Month
from groupcloud.metering.rates import Rate, RateCard
from groupcloud.metering.statements import (
    Statement,
    month_start,
    round_krw,
    split_months,
    statements,
)
from groupcloud.metering.usage import (
    AllocationEvent,
    EventKind,
    Source,
    UsageRecord,
    derive,
)
from tests.unit.metering.scenarios import (
    at,
    card_strategy,
    event,
    facts,
    histories,
    utc,
)

JAN = at("2026-01-01T00:00:00+09:00")


def flat(price: str, rc: str = "VCPU", kind: str = "shared") -> Rate:
    return Rate(kind, None, rc, JAN, Decimal(price))


def one(found: list[Statement], company: str, month: Month) -> Statement:
    (statement,) = [s for s in found if (s.company, s.month) == (company, month)]
    return statement


def test_seoul_months_start_at_midnight_seoul_time() -> None:
    assert month_start(Month(2026, 2)) == utc(2026, 1, 31, 15)
    assert [(str(m), a, b) for m, a, b in split_months(utc(2026, 1, 31, 12), utc(2026, 3, 1))] == [
        ("2026-01", utc(2026, 1, 31, 12), utc(2026, 1, 31, 15)),
        ("2026-02", utc(2026, 1, 31, 15), utc(2026, 2, 28, 15)),
        ("2026-03", utc(2026, 2, 28, 15), utc(2026, 3, 1)),
    ]


def test_an_allocation_over_the_seoul_month_boundary_is_billed_in_both_months() -> None:
    # 21:00 to 03:00 in Seoul: 3 h in January, 3 h in February (all of it is 31 January in UTC)
    records = derive(
        [
            event(1, utc(2026, 1, 31, 12), EventKind.CLAIMED, {"VCPU": 4}, of=facts()),
            event(2, utc(2026, 1, 31, 18), EventKind.RELEASED),
        ]
    )
    found = statements(records, RateCard([flat("100")]), lender_share=Decimal("0.8"))
    assert [(str(s.month), s.charges_total) for s in found] == [
        ("2026-01", Decimal(1200)),
        ("2026-02", Decimal(1200)),
    ]
    (line,) = found[0].lines
    assert (line.project, line.unit_seconds, line.unit_hours) == (
        "payments",
        4 * 3 * 3600,
        Decimal(12),
    )


def test_a_rate_change_mid_month_prices_each_part_at_its_rate() -> None:
    card = RateCard([flat("100"), Rate("shared", None, "VCPU", at("2026-03-16T00:00+09:00"),
                                       Decimal("120"))])  # fmt: skip
    records = derive(
        [
            event(1, utc(2026, 3, 10), EventKind.CLAIMED, {"VCPU": 2}, of=facts()),
            event(2, utc(2026, 3, 20), EventKind.RELEASED),
        ]
    )
    (march,) = statements(records, card, lender_share=Decimal(1))
    (line,) = march.lines
    # 135 h at 100 until 2026-03-15T15:00Z, then 105 h at 120, 2 VCPU
    assert line.unit_seconds == 2 * 240 * 3600
    assert line.amount == 2 * 135 * 100 + 2 * 105 * 120 == 52200


def test_borrowed_then_reclaimed_bills_the_borrower_and_credits_the_lender_its_share() -> None:
    records = derive(
        [
            event(1, utc(2026, 3, 2), EventKind.CLAIMED, {"VCPU": 8}, of=facts("bank")),
            event(2, utc(2026, 3, 2), EventKind.BORROW_STARTED, {"VCPU": 6}, lender="card"),
            event(3, utc(2026, 3, 2, 10), EventKind.RELEASED),  # allocation.reclaimed
            event(4, utc(2026, 3, 3), EventKind.CLAIMED, {"VCPU": 1}, allocation="c1",
                  of=facts("card", "cards")),
            event(5, utc(2026, 3, 3, 1), EventKind.RELEASED, allocation="c1"),
        ]
    )  # fmt: skip
    bank, card = statements(records, RateCard([flat("50")]), lender_share=Decimal("0.7"))
    assert [(x.source, x.lender, x.amount) for x in bank.lines] == [
        (Source.BORROWED, "card", Decimal(3000)),  # 6 VCPU x 10 h x 50
        (Source.OWN, None, Decimal(1000)),
    ]
    assert (bank.own_total, bank.borrowed_total, bank.credits_total) == tuple(
        map(Decimal, (1000, 3000, 0))
    )
    assert bank.net_total == 4000
    (credit,) = card.credits
    assert (credit.borrower, credit.resource_class, credit.charged, credit.amount) == (
        "bank",
        "VCPU",
        Decimal(3000),
        Decimal(2100),
    )
    assert card.charges_total == 50  # its own hour of 1 VCPU
    assert card.net_total == 50 - 2100  # the lender earned more than it spent


def test_an_external_burst_passes_the_provider_price_through_with_the_markup() -> None:
    aws = Rate("external", "aws", "VCPU", JAN, Decimal("85.5"), markup_pct=Decimal("12"))
    records = derive(
        [
            event(1, utc(2026, 3, 5, 1, 0, 0), EventKind.CLAIMED, {"VCPU": 3},
                  of=facts("card", "burst", "external", "aws")),
            event(2, utc(2026, 3, 5, 2, 30, 20), EventKind.RELEASED),
        ]
    )  # fmt: skip
    (march,) = statements(records, RateCard([aws, flat("100")]), lender_share=Decimal(1))
    (line,) = march.lines
    assert (line.zone_kind, line.provider, line.unit_seconds) == ("external", "aws", 16260)
    # 16260 unit-seconds x 95.76 KRW per unit-hour = 432.516 KRW
    assert line.amount == Decimal(433)


def test_amounts_are_rounded_half_up_once_per_line_not_per_record() -> None:
    # two separate seconds of one VCPU at 1800 KRW/h: 0.5 KRW each, 1 KRW together
    events = [
        event(1, utc(2026, 3, 1), EventKind.CLAIMED, {"VCPU": 1}, of=facts()),
        event(2, utc(2026, 3, 1, 0, 0, 1), EventKind.RELEASED),
        event(3, utc(2026, 3, 2), EventKind.CLAIMED, {"VCPU": 1}, allocation="a2", of=facts()),
        event(4, utc(2026, 3, 2, 0, 0, 1), EventKind.RELEASED, allocation="a2"),
    ]
    (march,) = statements(derive(events), RateCard([flat("1800")]), lender_share=Decimal(1))
    assert [line.amount for line in march.lines] == [Decimal(1)]
    (alone,) = statements(derive(events[:2]), RateCard([flat("1800")]), lender_share=Decimal(1))
    assert alone.charges_total == 1  # 0.5 rounds half up
    assert round_krw(Fraction(-3, 2)) == -2  # half away from zero on reversals


def test_only_the_months_asked_for_are_stated() -> None:
    records = derive(
        [
            event(1, utc(2026, 1, 31, 12), EventKind.CLAIMED, {"VCPU": 4}, of=facts()),
            event(2, utc(2026, 1, 31, 18), EventKind.RELEASED),
        ]
    )
    card = RateCard([flat("100")])
    (feb,) = statements(records, card, lender_share=Decimal(1), months=[Month(2026, 2)])
    assert (str(feb.month), feb.charges_total) == ("2026-02", Decimal(1200))
    assert statements(records, card, lender_share=Decimal(1), months=[Month(2026, 5)]) == []


# --- the property: Σ lines = Σ usage x rate, exactly, with the rounding rule ------------------


def reference_lines(
    records: list[UsageRecord], card: RateCard
) -> dict[tuple[str, str, tuple[str, str, str, str | None, Source, str | None]], Fraction]:
    """Each record cut at every Seoul midnight of a first day and every rate start inside
    it (found independently of the engine, by brute force), priced exactly."""
    out: dict[tuple[str, str, tuple[str, str, str, str | None, Source, str | None]], Fraction]
    out = defaultdict(Fraction)
    starts = sorted({r.effective_from for r in card.rates})
    for r in records:
        cuts = {r.start, r.end} | {s for s in starts if r.start < s < r.end}
        day = r.start.astimezone(SEOUL).replace(hour=0, minute=0, second=0)
        while day < r.end:
            if day.day == 1 and r.start < day:
                cuts.add(day)
            day = (day + timedelta(days=1, hours=2)).replace(hour=0)
        ordered = sorted(cuts)
        for a, b in pairwise(ordered):
            rate = max(
                (x for x in card.rates if x.key == (r.zone_kind, r.provider, r.resource_class)
                 and x.effective_from <= a),
                key=lambda x: x.effective_from,
            )  # fmt: skip
            month = str(Month.of(a.astimezone(SEOUL).date()))
            key = (r.project, r.resource_class, r.zone_kind, r.provider, r.source, r.lender)
            seconds = int((b - a).total_seconds())
            out[(r.company, month, key)] += (
                Fraction(r.amount * seconds) * Fraction(rate.unit_price) / 3600
            )
    return out


HORIZON = utc(2026, 5, 1)


@given(histories(allocations=6), card_strategy(), st.integers(0, 100))
def test_every_line_is_its_usage_times_its_rates_rounded_once(
    events: list[AllocationEvent], card: RateCard, percent: int
) -> None:
    records = derive(events, until=HORIZON)
    share = Decimal(percent).scaleb(-2)
    found = statements(records, card, lender_share=share)
    expected = reference_lines(records, card)
    stated = {
        (s.company, str(s.month), (x.project, x.resource_class, x.zone_kind, x.provider,
                                   x.source, x.lender)): x.amount
        for s in found
        for x in s.lines
    }  # fmt: skip
    assert stated == {k: round_krw(v) for k, v in expected.items()}
    # unit-seconds are conserved: what the records hold is what the lines bill
    assert sum(x.unit_seconds for s in found for x in s.lines) == sum(
        r.unit_seconds for r in records
    )
    for s in found:
        assert s.charges_total == sum(x.amount for x in s.lines)
        assert s.net_total == s.charges_total - s.credits_total
    # every lender is credited its share of what each borrower was charged, rounded once
    charged: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for s in found:
        for x in s.lines:
            if x.lender is not None:
                charged[(x.lender, str(s.month), s.company, x.resource_class)] += x.amount
    credits = {(s.company, str(s.month), c.borrower, c.resource_class): c.amount
               for s in found for c in s.credits}  # fmt: skip
    assert credits == {k: round_krw(Fraction(v) * Fraction(share)) for k, v in charged.items()}


@given(histories(), card_strategy())
def test_recomputing_a_month_gives_the_same_numbers(
    events: list[AllocationEvent], card: RateCard
) -> None:
    first = statements(derive(events, until=HORIZON), card, lender_share=Decimal("0.5"))
    again = statements(
        list(reversed(derive(list(reversed(events)), until=HORIZON))),
        card,
        lender_share=Decimal("0.5"),
    )
    assert first == again


def test_the_reference_cuts_at_seoul_months() -> None:
    records = derive(
        [
            event(1, utc(2026, 1, 31, 12), EventKind.CLAIMED, {"VCPU": 1}, of=facts()),
            event(2, utc(2026, 3, 1), EventKind.RELEASED),
        ]
    )
    ref = reference_lines(records, RateCard([flat("3600")]))
    assert sorted((month, v) for (_, month, _), v in ref.items()) == [
        ("2026-01", Fraction(3 * 3600)),
        ("2026-02", Fraction(28 * 24 * 3600)),
        ("2026-03", Fraction(9 * 3600)),
    ]

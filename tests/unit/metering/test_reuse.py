"""Reuse KPIs (groupcloud.metering.reuse): borrowed share and what pooling saves."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given

from groupcloud.metering.reuse import borrowing, pooling
from groupcloud.metering.usage import AllocationEvent, EventKind, derive
from tests.unit.metering.scenarios import event, facts, histories, utc


def test_the_borrowed_share_is_per_seoul_month_and_class() -> None:
    records = derive(
        [
            # 23:00 on 28 February to 09:00 on 1 March in Seoul: 1 h in February, 9 h in March
            event(1, utc(2026, 2, 28, 14), EventKind.CLAIMED, {"VCPU": 8}, of=facts("bank")),
            event(2, utc(2026, 2, 28, 14), EventKind.BORROW_STARTED, {"VCPU": 6}, lender="card"),
            event(3, utc(2026, 3, 1), EventKind.RELEASED),
        ]
    )
    feb, march = borrowing(records)
    assert (str(feb.month), feb.unit_seconds, feb.borrowed_unit_seconds) == (
        "2026-02",
        8 * 3600,
        6 * 3600,
    )
    assert (str(march.month), march.unit_seconds) == ("2026-03", 8 * 9 * 3600)
    assert march.borrowed_share == Fraction(3, 4)


def test_pooling_saves_the_capacity_of_peaks_that_do_not_coincide() -> None:
    events = [
        # the bank's day and the card company's evening, back to back at 12:00 UTC
        event(1, utc(2026, 3, 2, 0), EventKind.CLAIMED, {"VCPU": 10}, allocation="b",
              of=facts("bank")),
        event(2, utc(2026, 3, 2, 12), EventKind.RELEASED, allocation="b"),
        event(3, utc(2026, 3, 2, 12), EventKind.CLAIMED, {"VCPU": 6}, allocation="c1",
              of=facts("card", zone_kind="local")),
        event(4, utc(2026, 3, 2, 13), EventKind.CLAIMED, {"VCPU": 4}, allocation="c2",
              of=facts("card")),
        event(5, utc(2026, 3, 2, 20), EventKind.RELEASED, allocation="c1"),
        event(6, utc(2026, 3, 2, 20), EventKind.RELEASED, allocation="c2"),
        # an external burst needs no pool: left out
        event(7, utc(2026, 3, 2, 13), EventKind.CLAIMED, {"VCPU": 50}, allocation="x",
              of=facts("card", zone_kind="external", provider="aws")),
        event(8, utc(2026, 3, 2, 14), EventKind.RELEASED, allocation="x"),
    ]  # fmt: skip
    (vcpu,) = pooling(derive(events))
    assert vcpu.company_peaks == (("bank", 10), ("card", 10))
    assert (vcpu.group_peak, vcpu.separate_peak, vcpu.avoided) == (10, 20, 10)
    assert vcpu.avoided_share == Fraction(1, 2)


@given(histories(allocations=6))
def test_the_kpis_hold_their_bounds(events: list[AllocationEvent]) -> None:
    records = derive(events, until=utc(2026, 5, 1))
    lines = borrowing(records)
    assert sum(x.unit_seconds for x in lines) == sum(r.unit_seconds for r in records)
    assert all(0 <= x.borrowed_unit_seconds <= x.unit_seconds for x in lines)
    for p in pooling(records):
        assert max(peak for _, peak in p.company_peaks) <= p.group_peak <= p.separate_peak
        assert 0 <= p.avoided_share < 1

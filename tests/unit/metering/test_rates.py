"""Effective-dated rate cards (groupcloud.metering.rates)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from groupcloud.metering.rates import MissingRate, Rate, RateCard
from tests.unit.metering.scenarios import at, utc

VCPU = ("shared", None, "VCPU")
CARD = RateCard(
    [
        Rate("shared", None, "VCPU", at("2026-03-16T00:00:00+09:00"), Decimal("120")),
        Rate("shared", None, "VCPU", at("2026-01-01T00:00:00+09:00"), Decimal("100")),
        Rate("external", "aws", "VCPU", at("2026-01-01T00:00:00+09:00"), Decimal("85.5"),
             markup_pct=Decimal("12")),
    ]
)  # fmt: skip


def test_the_rate_in_force_is_the_latest_that_started_at_or_before_the_instant() -> None:
    assert CARD.rate_at(VCPU, utc(2026, 3, 15, 14, 59, 59)).price == Decimal("100")
    assert CARD.rate_at(VCPU, utc(2026, 3, 15, 15)).price == Decimal("120")  # 00:00 in Seoul
    assert CARD.rate_at(VCPU, utc(2030, 1, 1)).price == Decimal("120")


def test_usage_before_the_first_rate_or_without_one_is_an_error_not_free() -> None:
    with pytest.raises(MissingRate, match="no rate for VCPU in shared at 2025-12-31T14:59:59"):
        CARD.rate_at(VCPU, utc(2025, 12, 31, 14, 59, 59))
    with pytest.raises(MissingRate, match="external/azure"):
        CARD.rate_at(("external", "azure", "VCPU"), utc(2026, 2, 1))


def test_an_interval_is_split_at_every_rate_change_inside_it() -> None:
    pieces = CARD.split(VCPU, utc(2026, 3, 10), utc(2026, 3, 20))
    assert [(r.price, a, b) for r, a, b in pieces] == [
        (Decimal("100"), utc(2026, 3, 10), utc(2026, 3, 15, 15)),
        (Decimal("120"), utc(2026, 3, 15, 15), utc(2026, 3, 20)),
    ]
    (whole,) = CARD.split(VCPU, utc(2026, 3, 16), utc(2026, 3, 17))
    assert whole[0].price == Decimal("120")


def test_an_external_rate_passes_the_provider_price_through_with_the_markup_exactly() -> None:
    rate = CARD.rate_at(("external", "aws", "VCPU"), utc(2026, 2, 1))
    assert rate.unit_price == Decimal("95.76")  # 85.5 x 1.12
    odd = Rate("external", "aws", "GPU", utc(2026, 1, 1), Decimal("0.0001"), Decimal("33.33"))
    assert odd.unit_price == Decimal("0.00013333")


def test_rates_are_listed_by_key_then_start() -> None:
    assert [(r.zone_kind, r.price) for r in CARD.rates] == [
        ("external", Decimal("85.5")),
        ("shared", Decimal("100")),
        ("shared", Decimal("120")),
    ]


@pytest.mark.parametrize(
    ("price", "markup", "message"),
    [
        (Decimal("-1"), Decimal(0), "price must be"),
        (Decimal("NaN"), Decimal(0), "price must be"),
        (Decimal("1"), Decimal("-101"), "markup below -100"),
    ],
)
def test_a_rate_that_makes_no_sense_is_refused(
    price: Decimal, markup: Decimal, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Rate("shared", None, "VCPU", utc(2026, 1, 1), price, markup)


def test_two_rates_of_one_key_cannot_start_at_once() -> None:
    with pytest.raises(ValueError, match="same instant"):
        RateCard([Rate("shared", None, "VCPU", utc(2026, 1, 1), Decimal(p)) for p in "12"])

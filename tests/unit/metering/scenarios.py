"""Builders shared by the metering tests: events, rate cards and random histories."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from groupcloud.metering.rates import Rate, RateCard
from groupcloud.metering.usage import AllocationEvent, AllocationFacts, EventKind

__all__ = [
    "COMPANIES",
    "EPOCH",
    "KINDS",
    "at",
    "card_strategy",
    "event",
    "facts",
    "histories",
    "utc",
]

EPOCH = datetime(2025, 11, 1, tzinfo=UTC)
"""Every random rate card has its first rates here: random usage starts after it."""
COMPANIES = ("bank", "card", "capital")
KINDS: tuple[tuple[str, str | None], ...] = (("shared", None), ("local", None), ("external", "aws"))
CLASSES = ("VCPU", "GPU")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def at(text: str) -> datetime:
    """An instant written in ISO 8601 with its offset (``+09:00`` for Seoul time)."""
    found = datetime.fromisoformat(text)
    assert found.tzinfo is not None
    return found


def facts(
    company: str = "bank",
    project: str = "payments",
    zone_kind: str = "shared",
    provider: str | None = None,
) -> AllocationFacts:
    zone = {"shared": "pool-a", "local": f"{company}-local", "external": "aws-seoul"}[zone_kind]
    return AllocationFacts(company, project, zone, zone_kind, provider)


def event(
    seq: int,
    when: datetime,
    kind: EventKind,
    amounts: Mapping[str, int] | None = None,
    *,
    allocation: str = "a1",
    lender: str | None = None,
    of: AllocationFacts | None = None,
) -> AllocationEvent:
    return AllocationEvent(seq, when, allocation, kind, dict(amounts or {}), lender, of)


# --- random histories ------------------------------------------------------------------------


@st.composite
def card_strategy(draw: st.DrawFn) -> RateCard:
    """Prices with up to 4 decimals, markups on external zones, and up to 3 changes per key
    at random seconds over the first months of 2026."""
    rates = []
    for zone_kind, provider in KINDS:
        for rc in CLASSES:
            offsets = draw(st.sets(st.integers(1, 150 * 86400), max_size=3))
            starts = [EPOCH, *(EPOCH + timedelta(seconds=s) for s in sorted(offsets))]
            for start in starts:
                price = Decimal(draw(st.integers(0, 5_000_000))).scaleb(-4)
                markup = (
                    Decimal(draw(st.integers(0, 3000))).scaleb(-2)
                    if zone_kind == "external"
                    else Decimal(0)
                )
                rates.append(Rate(zone_kind, provider, rc, start, price, markup))
    return RateCard(rates)


@st.composite
def histories(draw: st.DrawFn, allocations: int = 4) -> list[AllocationEvent]:
    """Valid event histories of a few allocations: claims, resizes, borrows and returns,
    some released, at random instants (microseconds included) from December to March."""
    events: list[AllocationEvent] = []
    seq = 0
    for n in range(draw(st.integers(1, allocations))):
        company = draw(st.sampled_from(COMPANIES))
        zone_kind, provider = draw(st.sampled_from(KINDS))
        project = draw(st.sampled_from(("p1", "p2")))
        when = utc(2025, 12, 20) + timedelta(microseconds=draw(st.integers(0, 80 * 86400 * 10**6)))
        totals = {
            rc: draw(st.integers(1, 8))
            for rc in draw(st.sets(st.sampled_from(CLASSES), min_size=1))
        }
        name = f"alloc-{n}"
        seq += 1
        of = facts(company, project, zone_kind, provider)
        events.append(event(seq, when, EventKind.CLAIMED, totals, allocation=name, of=of))
        loans: dict[tuple[str, str], int] = {}
        for _ in range(draw(st.integers(0, 5))):
            when += timedelta(
                seconds=draw(st.integers(0, 20 * 86400)), microseconds=draw(st.integers(0, 999_999))
            )
            seq += 1
            rc = draw(st.sampled_from(sorted(totals)))
            lender = draw(st.sampled_from([c for c in COMPANIES if c != company]))
            lent = sum(v for (_, r), v in loans.items() if r == rc)
            choice = draw(st.sampled_from(("borrow", "return", "resize")))
            if choice == "borrow" and totals[rc] > lent:
                amount = draw(st.integers(1, totals[rc] - lent))
                loans[(lender, rc)] = loans.get((lender, rc), 0) + amount
                events.append(event(seq, when, EventKind.BORROW_STARTED, {rc: amount},
                                    allocation=name, lender=lender))  # fmt: skip
            elif choice == "return" and loans.get((lender, rc)):
                amount = draw(st.integers(1, loans[(lender, rc)]))
                loans[(lender, rc)] -= amount
                events.append(event(seq, when, EventKind.BORROW_RETURNED, {rc: amount},
                                    allocation=name, lender=lender))  # fmt: skip
            else:
                totals[rc] = draw(st.integers(max(lent, 1), 10))
                events.append(
                    event(seq, when, EventKind.RESIZED, {rc: totals[rc]}, allocation=name)
                )
        if draw(st.booleans()):
            when += timedelta(seconds=draw(st.integers(0, 40 * 86400)))
            seq += 1
            events.append(event(seq, when, EventKind.RELEASED, allocation=name))
    return events

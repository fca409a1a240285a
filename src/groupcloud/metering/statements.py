"""Monthly statements per company: what each project used, what it costs, what lenders earn.

The month is the Asia/Seoul calendar month (the group's books are kept in Seoul time): a
record running over 2026-01-31T15:00Z (midnight of 1 February in Seoul) is cut there, the
part before billed in January and the rest in February.

Pricing is exact until the last step. A line (company, month, project, resource class,
zone kind, provider, own or borrowed, lender) accrues unit-seconds per rate in force; its
amount is Σ unit-seconds x KRW per unit-hour / 3600 as an exact fraction, **rounded once,
half up to whole KRW** (``ROUNDING``). Rounding per line and not per record means that how
usage happens to be cut into records (a resize, a reclaim, a month or rate boundary) never
changes what a company pays, and recomputing a month from the same records gives the same
numbers to the won.

Borrowed lines are billed to the borrower like own ones (same rates), and the lender is
credited ``lender_share`` of them: per lender, borrower and resource class, the share of the
whole-KRW amounts charged, rounded once the same way. What the lender does not receive
stays with the group pool (its operating margin).

``accrue`` + ``assemble`` are the two halves: ``bulk`` replaces ``accrue`` with one DuckDB
query for millions of records and reuses ``assemble``, so both paths price and round in the
same place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from groupcloud.analytics.months import SEOUL, Month
from groupcloud.metering.rates import Rate, RateCard
from groupcloud.metering.usage import Source, UsageRecord

__all__ = [
    "ROUNDING",
    "Accrual",
    "CreditLine",
    "Statement",
    "StatementLine",
    "accrue",
    "assemble",
    "month_end",
    "month_start",
    "round_krw",
    "split_months",
    "statements",
]

ROUNDING = ROUND_HALF_UP
"""Whole KRW, halves away from zero, once per line (and once per credit line)."""
SECONDS_PER_HOUR = 3600
_HOUR = Decimal("0.001")


def month_start(month: Month) -> datetime:
    """00:00 on the first day of ``month`` in Seoul, as a UTC instant."""
    return datetime.combine(month.first_day, time(0), SEOUL).astimezone(UTC)


def month_end(month: Month) -> datetime:
    """The first instant after ``month`` (the next month's start)."""
    return month_start(month.next())


def split_months(start: datetime, end: datetime) -> list[tuple[Month, datetime, datetime]]:
    """``[start, end)`` cut at Seoul month boundaries, each piece with its month."""
    pieces = []
    month = Month.of(start.astimezone(SEOUL).date())
    at = start
    while at < end:
        upto = min(month_end(month), end)
        pieces.append((month, at, upto))
        at, month = upto, month.next()
    return pieces


def round_krw(value: Fraction) -> Decimal:
    """``value`` KRW rounded to whole KRW by ``ROUNDING`` (exact integer arithmetic: a
    decimal context would round the fraction before the rule saw it)."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    if 2 * rest >= value.denominator:
        whole += 1
    return Decimal(whole if value >= 0 else -whole)


@dataclass(frozen=True, slots=True)
class Accrual:
    """Unit-seconds of one line of one company's month at one rate."""

    company: str
    month: Month
    project: str
    resource_class: str
    zone_kind: str
    provider: str | None
    source: Source
    lender: str | None
    rate: Rate
    unit_seconds: int


@dataclass(frozen=True, slots=True)
class StatementLine:
    """What one project used of one class in one kind of zone, and what it costs (KRW)."""

    project: str
    resource_class: str
    zone_kind: str
    provider: str | None
    source: Source
    lender: str | None
    unit_seconds: int
    amount: Decimal

    @property
    def unit_hours(self) -> Decimal:
        """For reading (to 0.001 unit-hour); the amount is priced from ``unit_seconds``."""
        return (Decimal(self.unit_seconds) / SECONDS_PER_HOUR).quantize(_HOUR, ROUNDING)


@dataclass(frozen=True, slots=True)
class CreditLine:
    """A lender's share of what ``borrower`` was charged for ``resource_class`` it lent."""

    borrower: str
    resource_class: str
    charged: Decimal
    share: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Statement:
    """One company's month: lines charged, credits earned as a lender, totals (KRW)."""

    company: str
    month: Month
    lines: tuple[StatementLine, ...]
    credits: tuple[CreditLine, ...]

    @property
    def own_total(self) -> Decimal:
        return sum((x.amount for x in self.lines if x.source is Source.OWN), Decimal(0))

    @property
    def borrowed_total(self) -> Decimal:
        return sum((x.amount for x in self.lines if x.source is Source.BORROWED), Decimal(0))

    @property
    def charges_total(self) -> Decimal:
        return self.own_total + self.borrowed_total

    @property
    def credits_total(self) -> Decimal:
        return sum((c.amount for c in self.credits), Decimal(0))

    @property
    def net_total(self) -> Decimal:
        """What the company pays: its charges less what it earned by lending."""
        return self.charges_total - self.credits_total


def statements(
    records: Iterable[UsageRecord],
    card: RateCard,
    *,
    lender_share: Decimal,
    months: Sequence[Month] | None = None,
) -> list[Statement]:
    """The statements of every company and month of ``records`` (or only ``months``),
    by company then month."""
    return assemble(accrue(records, card, months=months), lender_share=lender_share)


AccrualKey = tuple[str, Month, str, str, str, str | None, Source, str | None, Rate]


def accrue(
    records: Iterable[UsageRecord], card: RateCard, *, months: Sequence[Month] | None = None
) -> list[Accrual]:
    """Records cut at Seoul months and rate changes, unit-seconds summed per line and rate.

    The reference implementation (one Python step per record piece); ``bulk`` computes the
    same accruals in SQL.
    """
    wanted = None if months is None else set(months)
    sums: dict[AccrualKey, int] = defaultdict(int)
    for r in records:
        key = (r.zone_kind, r.provider, r.resource_class)
        for month, start, end in split_months(r.start, r.end):
            if wanted is not None and month not in wanted:
                continue
            for rate, a, b in card.split(key, start, end):
                seconds = int((b - a).total_seconds())
                line = (r.company, month, r.project, r.resource_class, r.zone_kind, r.provider)
                sums[(*line, r.source, r.lender, rate)] += r.amount * seconds
    return [Accrual(*key, unit_seconds=n) for key, n in sums.items() if n]


LineKey = tuple[str, str, str, str | None, Source, str | None]
"""(project, resource class, zone kind, provider, source, lender)"""


def assemble(accruals: Iterable[Accrual], *, lender_share: Decimal) -> list[Statement]:
    """Price accruals into lines (rounded once each), credit lenders, total per company."""
    if not isinstance(lender_share, Decimal) or not Decimal(0) <= lender_share <= 1:
        raise ValueError(f"lender_share must be a Decimal in [0, 1], not {lender_share!r}")
    seconds: dict[tuple[str, Month], dict[LineKey, int]] = defaultdict(lambda: defaultdict(int))
    money: dict[tuple[str, Month], dict[LineKey, Fraction]] = defaultdict(
        lambda: defaultdict(Fraction)
    )
    per_second: dict[Rate, Fraction] = {}  # KRW per unit-second of each rate, exact
    for a in accruals:
        key = (a.project, a.resource_class, a.zone_kind, a.provider, a.source, a.lender)
        price = per_second.get(a.rate)
        if price is None:
            price = per_second[a.rate] = Fraction(a.rate.unit_price) / SECONDS_PER_HOUR
        seconds[(a.company, a.month)][key] += a.unit_seconds
        money[(a.company, a.month)][key] += a.unit_seconds * price
    lines: dict[tuple[str, Month], list[StatementLine]] = {}
    lent: dict[tuple[str, Month], dict[tuple[str, str], Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for (company, month), by_key in seconds.items():
        found = []
        for key in sorted(by_key, key=_line_order):
            exact = money[(company, month)][key]
            if not by_key[key] and not exact:
                continue  # reversed to nothing: no line
            line = StatementLine(*key, by_key[key], round_krw(exact))
            found.append(line)
            if line.source is Source.BORROWED and line.lender is not None:
                lent[(line.lender, month)][(company, line.resource_class)] += line.amount
        lines[(company, month)] = found
    out = []
    for company, month in sorted(set(lines) | set(lent), key=lambda cm: (cm[0], cm[1])):
        credits = tuple(
            CreditLine(
                borrower,
                rc,
                charged,
                lender_share,
                round_krw(Fraction(charged) * Fraction(lender_share)),
            )
            for (borrower, rc), charged in sorted(lent.get((company, month), {}).items())
        )
        charged = tuple(lines.get((company, month), ()))
        if charged or credits:  # a month whose usage was all reversed has no statement
            out.append(Statement(company, month, charged, credits))
    return out


def _line_order(key: LineKey) -> tuple[str, str, str, str, str, str]:
    project, rc, zone_kind, provider, source, lender = key
    return project, rc, zone_kind, provider or "", source.value, lender or ""

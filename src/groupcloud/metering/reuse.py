"""Reuse KPIs from usage records: how much demand borrowing served, and what pooling saves.

Two figures the group shows its companies, both computed from the same records the
statements bill (so the proof and the bill never disagree):

* ``borrowing``: per Seoul month and resource class, the unit-seconds used and the part held
  on borrowed nominal (reclaimed and reused capacity: what one company's idle nominal
  served another).
* ``pooling``: per resource class, the peak of concurrent use of each company alone versus
  the peak of the group together, over private zones (``shared`` and ``local``; external
  bursts are bought per use and need no pool). A company running its own pool would have
  to size it for its own peak; the group pool needs only the peak of the sum, so
  Σ company peaks - group peak units are capacity the group does not have to buy.
  Peaks do not coincide (the bank's daytime, the card company's evening), which is the gain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from groupcloud.analytics.months import Month
from groupcloud.metering.statements import split_months
from groupcloud.metering.usage import Source, UsageRecord

__all__ = ["PRIVATE_KINDS", "Borrowing", "Pooling", "borrowing", "pooling"]

PRIVATE_KINDS = frozenset({"shared", "local"})
"""Zone kinds whose capacity the group owns (and would otherwise own per company)."""


@dataclass(frozen=True, slots=True)
class Borrowing:
    """Unit-seconds of one class in one month, and those held on borrowed nominal."""

    month: Month
    resource_class: str
    unit_seconds: int
    borrowed_unit_seconds: int

    @property
    def borrowed_share(self) -> Fraction:
        """Share of the month's use served by borrowing (0 when nothing was used)."""
        if not self.unit_seconds:
            return Fraction(0)
        return Fraction(self.borrowed_unit_seconds, self.unit_seconds)


def borrowing(records: Iterable[UsageRecord]) -> list[Borrowing]:
    """Per Seoul month and class (sorted), all use and the borrowed part, in unit-seconds."""
    used: dict[tuple[Month, str], int] = defaultdict(int)
    lent: dict[tuple[Month, str], int] = defaultdict(int)
    for r in records:
        for month, start, end in split_months(r.start, r.end):
            amount = r.amount * int((end - start).total_seconds())
            used[(month, r.resource_class)] += amount
            if r.source is Source.BORROWED:
                lent[(month, r.resource_class)] += amount
    return [Borrowing(m, rc, n, lent[(m, rc)]) for (m, rc), n in sorted(used.items()) if n]


@dataclass(frozen=True, slots=True)
class Pooling:
    """Peaks of concurrent use of one class: each company alone, and the group together."""

    resource_class: str
    company_peaks: tuple[tuple[str, int], ...]
    group_peak: int

    @property
    def separate_peak(self) -> int:
        """Capacity the companies would need with a pool each, sized for its own peak."""
        return sum(peak for _, peak in self.company_peaks)

    @property
    def avoided(self) -> int:
        """Units of capacity the shared pool saves (never negative: a peak of a sum is at
        most the sum of the peaks)."""
        return self.separate_peak - self.group_peak

    @property
    def avoided_share(self) -> Fraction:
        return Fraction(self.avoided, self.separate_peak) if self.separate_peak else Fraction(0)


def pooling(records: Iterable[UsageRecord]) -> list[Pooling]:
    """Per class (sorted), each company's peak and the group's, over private zones."""
    changes: dict[str, dict[str, dict[datetime, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for r in records:
        if r.zone_kind in PRIVATE_KINDS and r.start < r.end:
            for who in (r.company, ""):  # "" is the group
                steps = changes[r.resource_class][who]
                steps[r.start] += r.amount
                steps[r.end] -= r.amount
    out = []
    for rc in sorted(changes):
        peaks = {who: _peak(steps) for who, steps in changes[rc].items()}
        group = peaks.pop("")
        out.append(Pooling(rc, tuple(sorted(peaks.items())), group))
    return out


def _peak(steps: dict[datetime, int]) -> int:
    """The highest level of a step function given as changes per instant. All changes at
    one instant apply together, so an interval ending where another starts ([start, end))
    is never counted twice."""
    level = peak = 0
    for at in sorted(steps):
        level += steps[at]
        peak = max(peak, level)
    return peak

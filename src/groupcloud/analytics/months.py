"""Calendar months and days in Asia/Seoul: the group reports MAU per Seoul month, so an event
at 2026-01-31T16:30Z (01:30 on 1 February in Seoul) belongs to February, not January."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["SEOUL", "Month", "seoul_day"]

SEOUL = ZoneInfo("Asia/Seoul")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def seoul_day(instant: datetime) -> date:
    """The Seoul calendar day of an aware instant."""
    return instant.astimezone(SEOUL).date()


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month (``YYYY-MM``), the partition and reporting unit."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM`` → Month; ValueError names what is wrong."""
        found = _MONTH.match(text)
        if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1:
            raise ValueError(f"month must be YYYY-MM (e.g. 2026-02), not {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        """Number of calendar days (the denominator of average DAU)."""
        return (self.next().first_day - self.first_day).days

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def until(self, last: Month) -> list[Month]:
        """This month through ``last``, inclusive (empty when ``last`` is earlier)."""
        count = (last.year - self.year) * 12 + last.month - self.month + 1
        return [self.plus(i) for i in range(max(count, 0))]

    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

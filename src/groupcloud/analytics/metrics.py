"""Metric arithmetic on exact counts: k-suppression, growth, stickiness, target progress.

The counts come from DuckDB (services/analytics); what is done with them is here, pure, so
that it is property-tested apart from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_K",
    "DEFAULT_TARGET",
    "Counts",
    "growth",
    "overlap_matrix",
    "progress",
    "stickiness",
    "suppress",
]

DEFAULT_K = 10
"""Segments with 1..k-1 persons are not shown: a count that small can point at individuals."""
DEFAULT_TARGET = 15_000_000
"""The group's integrated MAU target."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Exact counts of one segment (an app, or all apps) in one month."""

    mau: int
    """Distinct persons active in the month."""
    person_days: int
    """Distinct (person, Seoul day) pairs: the sum of the month's daily active users."""
    events: int

    def average_dau(self, days: int) -> float:
        """Mean daily active users over the month's calendar days (idle days count as 0)."""
        return self.person_days / days if days else 0.0


def suppress(count: int, k: int) -> int | None:
    """``count`` if it may be shown, None when it is a small segment (0 < count < k).

    Zero is shown: it says nothing about any person."""
    return None if 0 < count < k else count


def growth(current: int | None, previous: int | None) -> float | None:
    """Relative change ``current / previous - 1``; None when either is unknown (suppressed)
    or there is no base to grow from."""
    if current is None or previous is None or previous == 0:
        return None
    return current / previous - 1


def stickiness(average_dau: float, mau: int) -> float | None:
    """DAU/MAU: the share of a month's users active on a typical day (0-1)."""
    return average_dau / mau if mau else None


def progress(mau: int | None, target: int) -> float | None:
    """Share of the target reached (may exceed 1)."""
    if mau is None or target <= 0:
        return None
    return mau / target


def overlap_matrix(combinations: dict[tuple[str, ...], int]) -> dict[str, dict[str, int]]:
    """Persons active in both apps, for every pair (the diagonal is each app's MAU), from
    the count of persons per exact app combination (UpSet-style): a person using apps
    {a, b, c} counts once in every pair of them."""
    apps = sorted({app for combo in combinations for app in combo})
    matrix = {a: dict.fromkeys(apps, 0) for a in apps}
    for combo, persons in combinations.items():
        for a in combo:
            for b in combo:
                matrix[a][b] += persons
    return matrix

"""Which borrowed allocations give capacity back to a lender that needs its nominal.

Only allocations holding loans from that lender, in the classes it misses, are
candidates: a company's use of its own nominal is never taken. Among them the lowest
priority goes first, then the most recently started (it has lost the least work), and
none is taken before its ``minimum_runtime`` has passed. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Candidate", "backoff", "select_victims"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A borrowed, running allocation and what it holds of whose nominal."""

    allocation_id: str
    priority: int
    started_at: datetime
    loans: Mapping[tuple[int, str], int]
    """(lender company id, resource class) -> amount."""
    minimum_runtime_s: int = 0
    seq: int = 0
    """Arrival order, the last tie-break (so runs repeat exactly)."""

    @property
    def reclaimable_from(self) -> datetime:
        return self.started_at + timedelta(seconds=self.minimum_runtime_s)


def select_victims(
    candidates: Iterable[Candidate], needs: Mapping[tuple[int, str], int], now: datetime
) -> list[Candidate]:
    """The fewest candidates, in reclaim order, whose loans cover ``needs`` ((lender, rc) ->
    amount). If the eligible ones cannot cover everything, all eligible ones that help are
    returned; the rest follows when more become eligible."""
    remaining = {k: n for k, n in needs.items() if n > 0}
    # Stable sorts, last key first: lowest priority, then latest start, then arrival.
    eligible = sorted(
        (c for c in candidates if c.reclaimable_from <= now),
        key=lambda c: (c.seq, c.allocation_id),
    )
    eligible.sort(key=lambda c: c.started_at, reverse=True)
    eligible.sort(key=lambda c: c.priority)
    chosen: list[Candidate] = []
    for candidate in eligible:
        if not remaining:
            break
        helps = [k for k in candidate.loans if k in remaining]
        if not helps:
            continue
        chosen.append(candidate)
        for key in helps:
            remaining[key] -= candidate.loans[key]
            if remaining[key] <= 0:
                del remaining[key]
    return chosen


def backoff(reclaim_count: int, base_s: float, max_s: float) -> float:
    """Seconds a reclaimed workload waits before it may be admitted again: doubling with
    every reclaim, so a workload is not reclaimed and re-admitted in a tight loop."""
    if reclaim_count <= 0 or base_s <= 0:
        return 0.0
    # 2.0**1023 is the largest power of two a float holds; past the cap it changes nothing.
    return float(min(base_s * 2.0 ** min(reclaim_count - 1, 1023), max_s))

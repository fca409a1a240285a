"""Which running allocations give capacity back to lenders that need their nominal.

Kueue's reclaim within a cohort: the capacity a lender misses comes back from the pool,
so the candidates are the running allocations of every company that is above its nominal
in a class the lenders miss (its ``borrowed``; after the cycle's repays that is exactly
its use above nominal), whichever of its allocations pushed it there and whoever lent to
it. Among them the lowest priority goes first, then the most recently started (it has
lost the least work), then the latest arrival; none is taken before its
``minimum_runtime`` has passed. A candidate helps by what it holds of the short class, up
to how far its company is still above nominal: once the victims chosen bring a company
back within its nominal, its other allocations are not touched (a company's use of its
own nominal is never taken). It stops once the needs are covered. This module does no I/O.

Capacity comes back to the lenders through the ledger: a victim's loans are returned when
it ends, and a victim without loans frees its company's own nominal, with which the
company repays its loans at the next cycle's start (``Cohort.repays``); what comes back
to a lender other than the one waiting is idle pool capacity, which the waiting lender's
request takes over by moving its loans (``Cohort.plan``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["Candidate", "backoff", "select_victims", "select_zone_victims"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A running allocation of a company above nominal: what it holds, whose nominal."""

    allocation_id: str
    priority: int
    started_at: datetime
    loans: Mapping[tuple[int, str], int]
    """(lender company id, resource class) -> amount (for the notice: whose it was)."""
    minimum_runtime_s: int = 0
    seq: int = 0
    """Arrival order, the last tie-break (so runs repeat exactly)."""
    company: int = 0
    uses: Mapping[str, int] = field(default_factory=dict)
    """What it holds per class."""

    @property
    def reclaimable_from(self) -> datetime:
        return self.started_at + timedelta(seconds=self.minimum_runtime_s)


def select_victims(
    candidates: Iterable[Candidate],
    needs: Mapping[tuple[int, str], int],
    above: Mapping[tuple[int, str], int],
    now: datetime,
) -> list[Candidate]:
    """The candidates, in reclaim order, that bring back to the pool what the lenders
    miss (``needs``: (lender, class) -> amount; summed per class), each helping by
    ``min(what it holds, how far its company is still above nominal)`` per short class
    (``above``: (company, class) -> borrowed). A lender's own allocations never help its
    own need (that would be preemption within a company). If the eligible ones cannot
    cover everything, all eligible ones that help are returned; the rest follows when
    more become eligible."""
    remaining: dict[str, int] = {}
    for (_, rc), n in needs.items():
        if n > 0:
            remaining[rc] = remaining.get(rc, 0) + n
    over = {k: n for k, n in above.items() if n > 0 and k not in needs}
    # Stable sorts, last key first: lowest priority, then latest start, then latest
    # arrival (the newest work first), then allocation id.
    eligible = sorted(
        (c for c in candidates if c.reclaimable_from <= now), key=lambda c: c.allocation_id
    )
    eligible.sort(key=lambda c: c.seq, reverse=True)
    eligible.sort(key=lambda c: c.started_at, reverse=True)
    eligible.sort(key=lambda c: c.priority)
    chosen: list[Candidate] = []
    for candidate in eligible:
        if not remaining:
            break
        helps = {
            rc: min(candidate.uses.get(rc, 0), over.get((candidate.company, rc), 0))
            for rc in remaining
        }
        helps = {rc: n for rc, n in helps.items() if n > 0}
        if not helps:
            continue
        chosen.append(candidate)
        for rc, n in helps.items():
            over[candidate.company, rc] -= n
            remaining[rc] -= n
            if remaining[rc] <= 0:
                del remaining[rc]
    return chosen


def select_zone_victims(
    candidates: Iterable[Candidate], need: Mapping[str, int], now: datetime
) -> list[Candidate]:
    """The allocations of other companies to take back from a lent local zone for its
    owner: lowest priority first, then the most recently started, none before its
    minimum runtime, only those holding a class still missing, until what they hold in
    the zone (``Candidate.uses``) covers ``need`` per class. None at all when even every
    candidate would not cover it (a notice that cannot help is not sent)."""
    order = sorted(
        (c for c in candidates if c.reclaimable_from <= now),
        key=lambda c: (c.priority, -c.started_at.timestamp(), -c.seq),
    )
    got: dict[str, int] = dict.fromkeys(need, 0)
    out: list[Candidate] = []
    for c in order:
        missing = [rc for rc, n in need.items() if got[rc] < n]
        if not missing:
            break
        if not any(c.uses.get(rc, 0) > 0 for rc in missing):
            continue
        out.append(c)
        for rc in need:
            got[rc] += c.uses.get(rc, 0)
    return out if all(got[rc] >= n for rc, n in need.items()) else []


def backoff(reclaim_count: int, base_s: float, max_s: float) -> float:
    """Seconds a reclaimed workload waits before it may be admitted again: doubling with
    every reclaim, so a workload is not reclaimed and re-admitted in a tight loop."""
    if reclaim_count <= 0 or base_s <= 0:
        return 0.0
    # 2.0**1023 is the largest power of two a float holds; past the cap it changes nothing.
    return float(min(base_s * 2.0 ** min(reclaim_count - 1, 1023), max_s))

"""The order in which a scheduler cycle considers pending requests.

Higher priority first. Within one priority, the company with the smallest weighted
dominant share of borrowed capacity goes next (dominant-resource fairness, as in Kueue's
fair sharing), so one busy company cannot take all the idle capacity of the group; FIFO
by arrival within a company, and between companies of equal share. Every company's queue
is drained in the same cycle: not one head per queue per cycle.

Every waiting company's share is read again for every pick, so admissions (and any
release) earlier in the cycle count (``share`` is a callback into the cycle's
``Cohort``); with a handful of companies this costs less than keeping a heap exact.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Queued", "fair_order"]


@dataclass(frozen=True, slots=True)
class Queued:
    """A pending request as the ordering sees it: who, how urgent, when it came."""

    seq: int
    company: int
    priority: int


def fair_order(items: Iterable[Queued], share: Callable[[int], float]) -> Iterator[Queued]:
    """Yield every item once, in admission order (see the module doc)."""
    levels: dict[int, dict[int, deque[Queued]]] = defaultdict(lambda: defaultdict(deque))
    for item in sorted(items, key=lambda q: q.seq):
        levels[item.priority][item.company].append(item)
    for priority in sorted(levels, reverse=True):
        queues = levels[priority]
        while queues:
            # every waiting company's share is read now: a reclaim or a release earlier in
            # the cycle may have changed it, not only the admission of the last one served
            _, _, company = min((share(c), q[0].seq, c) for c, q in queues.items())
            queue = queues[company]
            yield queue.popleft()
            if not queue:
                del queues[company]

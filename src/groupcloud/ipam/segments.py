"""Free ids of a segment pool (VLAN ids, VXLAN network identifiers), without enumerating
the pool: disjoint free runs ``[first, last]`` kept sorted. Taking the lowest free id,
claiming a given one and giving one back cost a binary search plus at most one run split
or merge, so a pool of 16 million VNIs is as cheap as one of 4,094 VLANs.

Pure (no I/O): services load the held ids of a pool, build a ``Segments`` and record in
the database what it proposes, under the pool row's lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

__all__ = ["Segments", "SegmentsError", "SegmentsExhausted"]


class SegmentsError(ValueError):
    """An id outside the pool, or not free / not held as asked."""


class SegmentsExhausted(SegmentsError):
    """Every id of the pool is held."""


class Segments:
    """The free ids of ``first..last``; everything else in it is held."""

    def __init__(self, first: int, last: int, held: Iterable[int] = ()) -> None:
        if not 0 <= first <= last:
            raise SegmentsError(f"empty or negative range {first}-{last}")
        self.first, self.last = first, last
        self._starts: list[int] = [first]
        self._ends: list[int] = [last]
        for value in sorted(set(held)):
            self.claim(value)

    @property
    def free(self) -> int:
        return sum(e - s + 1 for s, e in zip(self._starts, self._ends, strict=True))

    def runs(self) -> list[tuple[int, int]]:
        """The free runs, lowest first."""
        return list(zip(self._starts, self._ends, strict=True))

    def lowest(self) -> int:
        """Take the lowest free id."""
        if not self._starts:
            raise SegmentsExhausted(f"every id of {self.first}-{self.last} is held")
        return self.claim(self._starts[0])

    def claim(self, value: int) -> int:
        """Take ``value`` (it must be inside the pool and free)."""
        self._check_inside(value)
        i = self._run_of(value)
        if i is None:
            raise SegmentsError(f"{value} is held already")
        start, end = self._starts[i], self._ends[i]
        if start == end:
            del self._starts[i], self._ends[i]
        elif value == start:
            self._starts[i] = value + 1
        elif value == end:
            self._ends[i] = value - 1
        else:
            self._ends[i] = value - 1
            self._starts.insert(i + 1, value + 1)
            self._ends.insert(i + 1, end)
        return value

    def release(self, value: int) -> None:
        """Give ``value`` back; it merges with the free runs beside it."""
        self._check_inside(value)
        if self._run_of(value) is not None:
            raise SegmentsError(f"{value} is free already")
        i = bisect.bisect_left(self._starts, value)  # runs before i end below value
        joins_left = i > 0 and self._ends[i - 1] == value - 1
        joins_right = i < len(self._starts) and self._starts[i] == value + 1
        if joins_left and joins_right:
            self._ends[i - 1] = self._ends[i]
            del self._starts[i], self._ends[i]
        elif joins_left:
            self._ends[i - 1] = value
        elif joins_right:
            self._starts[i] = value
        else:
            self._starts.insert(i, value)
            self._ends.insert(i, value)

    def _check_inside(self, value: int) -> None:
        if not self.first <= value <= self.last:
            raise SegmentsError(f"{value} is outside {self.first}-{self.last}")

    def _run_of(self, value: int) -> int | None:
        i = bisect.bisect_right(self._starts, value) - 1
        if i >= 0 and value <= self._ends[i]:
            return i
        return None

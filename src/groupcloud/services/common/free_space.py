"""The process's cache of free space per prefix (and per segment pool), checked against
the row's change counter.

Every change of what is allocated inside a prefix first bumps the prefix row's
``generation`` -- the same statement takes the row lock -- so a transaction that holds
the lock knows the generation its cached free space must have (the one before its bump).
A matching entry is taken out of the cache for the transaction and put back, at the new
generation, only after the commit: a transaction that rolls back leaves nothing behind,
and a stale or missing entry costs one rebuild from the rows, never a wrong answer. With
one process doing the work (the common case) the free space is never rebuilt, and a
claim costs a few statements whatever the number of addresses already handed out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from groupcloud.ipam.space import Space

__all__ = ["AddressSpace", "FreeSpaceCache"]

T = TypeVar("T")


class FreeSpaceCache(Generic[T]):
    """At most ``size`` entries (least recently used go first), keyed by row id."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], tuple[int, T]] = OrderedDict()

    def take(self, kind: str, row_id: int, generation: int) -> T | None:
        """The cached free space at ``generation``, removed from the cache (the caller
        owns it until ``put``); None when missing or at another generation."""
        with self._lock:
            entry = self._entries.pop((kind, row_id), None)
        if entry is None or entry[0] != generation:
            return None
        return entry[1]

    def put(self, kind: str, row_id: int, generation: int, value: T) -> None:
        """Keep ``value`` as the free space at ``generation`` (call after the commit)."""
        with self._lock:
            key = (kind, row_id)
            current = self._entries.get(key)
            if current is not None and current[0] > generation:
                return  # a later transaction already put a newer one
            self._entries[key] = (generation, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


@dataclass(slots=True)
class AddressSpace:
    """What a process caches per prefix: its free addresses, and when released addresses
    whose quarantine had ended were last freed in it."""

    space: Space
    swept_at: datetime

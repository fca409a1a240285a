"""Allocation requests and their life cycle."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["AllocationState", "PlacementSpec", "Strategy"]


class Strategy(enum.StrEnum):
    """How to choose among hosts that fit."""

    PACK = "pack"
    """Fill the most-used hosts first: keeps whole hosts free for big and gang requests."""
    SPREAD = "spread"
    """Use the least-used hosts first: spreads load and failure risk."""


class AllocationState(enum.StrEnum):
    ACTIVE = "active"
    """Capacity is claimed and counted against the company's quota."""
    RELEASED = "released"
    """Capacity and quota were returned to the pool."""


@dataclass(frozen=True, slots=True)
class PlacementSpec:
    """What the placement engine needs to know about one request (no tenancy, no storage).

    ``distinct_hosts`` puts every unit on a different host (anti-affinity); hosts in
    ``exclude_hosts`` already hold a member of the same anti-affinity group.
    """

    per_unit: dict[str, int]
    count: int = 1
    zone: str | None = None
    required_traits: tuple[str, ...] = ()
    distinct_hosts: bool = False
    exclude_hosts: frozenset[int] = field(default_factory=frozenset)
    strategy: Strategy = Strategy.PACK

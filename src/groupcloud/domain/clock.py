"""Time as the control plane reads it.

Every use case takes its instants from the runtime's clock (``Runtime.clock``), never
from the wall directly, so that one request is stamped with one instant everywhere it
writes (its rows, its audit events, its lease ends) and tests can run the services on a
clock of their own. ``utcnow`` is the production clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

Clock = Callable[[], datetime]
"""A source of timezone-aware UTC instants."""


def utcnow() -> datetime:
    """The wall clock, in UTC (timezone-aware)."""
    return datetime.now(UTC)

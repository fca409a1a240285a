"""App activity events as they arrive, and the checks a row must pass to be loaded.

A row is a mapping of the five columns ``event_id, app, person_id, occurred_at, kind`` (from
a CSV line, an NDJSON object, a Parquet row or an API batch). ``check`` turns it into an
``Event`` or a ``BadRow`` naming the field and the reason, never the value: a bad
``person_id`` must not leak into logs or reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from groupcloud.analytics.months import seoul_day

__all__ = [
    "COLUMNS",
    "SEEDED_APPS",
    "BadRow",
    "Event",
    "app_list",
    "check",
]

COLUMNS = ("event_id", "app", "person_id", "occurred_at", "kind")
"""The columns every source must have (others are ignored)."""

SEEDED_APPS: dict[str, str] = {
    "won_banking": "banking app",
    "won_card": "card app",
    "won_car": "auto-finance app",
    "won_savings": "savings-bank app",
}
"""The group's app family, registered when the event store is created; other app ids are
registered on first sight."""

_APP = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_KIND = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_ID = 128
MAX_PERSON_ID = 256


@dataclass(frozen=True, slots=True)
class Event:
    """A checked event; ``person_id`` is still raw here and is replaced by its key before
    anything is written."""

    event_id: str
    app: str
    person_id: str
    occurred_at: datetime
    kind: str

    @property
    def day(self) -> date:
        """The Seoul calendar day, which decides the month partition."""
        return seoul_day(self.occurred_at)


@dataclass(frozen=True, slots=True)
class BadRow:
    """Why the row at ``line`` (1-based line of a file, or position in a batch) was not loaded."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


def _text(row: Mapping[str, object], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else None
        if value is None:
            return None
    value = value.strip()
    return value or None


def _instant(value: object) -> datetime | str:
    """An aware datetime, or the reason it is not one."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return "not an ISO 8601 date-time"
    else:
        return "missing" if value is None else "not an ISO 8601 date-time"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return "has no UTC offset (write e.g. 2026-02-01T09:30:00+09:00 or ...Z)"
    return parsed


def check(row: Mapping[str, object], line: int) -> Event | BadRow:
    """The row as an Event, or the first reason it cannot be loaded."""
    event_id = _text(row, "event_id")
    if event_id is None:
        return BadRow(line, "event_id", "missing")
    if len(event_id) > MAX_ID:
        return BadRow(line, "event_id", f"longer than {MAX_ID} characters")
    app = _text(row, "app")
    if app is None:
        return BadRow(line, "app", "missing")
    if not _APP.match(app):
        return BadRow(line, "app", "must be lower-case letters, digits and _ (e.g. won_card)")
    person_id = _text(row, "person_id")
    if person_id is None:
        return BadRow(line, "person_id", "missing")
    if len(person_id) > MAX_PERSON_ID:
        return BadRow(line, "person_id", f"longer than {MAX_PERSON_ID} characters")
    occurred_at = _instant(row.get("occurred_at"))
    if isinstance(occurred_at, str):
        return BadRow(line, "occurred_at", occurred_at)
    kind = _text(row, "kind")
    if kind is None:
        return BadRow(line, "kind", "missing")
    if not _KIND.match(kind):
        return BadRow(line, "kind", "must be 1-64 letters, digits or _.:-")
    return Event(event_id, app, person_id, occurred_at, kind)


def app_list(text: str | None) -> list[str] | None:
    """Apps named in a comma-separated option or query parameter (``won_banking,won_card``);
    None when none are named, which the reports read as every registered app."""
    return [a.strip() for a in text.split(",") if a.strip()] if text else None

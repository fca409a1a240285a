"""The row checks of ``events.check``, on whole Arrow columns at once.

Loading 100M events one Python object at a time is bound by the interpreter, not by the
store, so a chunk of rows is checked column by column with Arrow compute kernels. The fast
path is deliberately *stricter* than ``check``: a row it accepts is one that ``check``
accepts too, with the same values. Every other row (a bad one, or an unusual but valid one
such as ``2026-02-01T09:30:00+0900`` or an instant before 1988) goes through ``check``
itself, so the verdicts, fields and reasons are exactly those of the row-by-row path.

Input: a table with ``line`` (int64) and the five event columns, as strings, integers
(Parquet ids) or, for ``occurred_at``, an Arrow timestamp. Output: the accepted rows with
the values the store needs (``person_id`` still raw: keys are made by ``keys.person_keys``),
and the bad rows in line order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from groupcloud.analytics.events import MAX_ID, MAX_PERSON_ID, BadRow, Event, check

__all__ = ["CHECKED", "Checked", "check_columns", "seoul_days"]

CHECKED = pa.schema(
    [
        ("pos", pa.int64()),
        ("event_id", pa.string()),
        ("app", pa.string()),
        ("person_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("kind", pa.string()),
    ]
)
"""Accepted rows: ``pos`` is the row's line, which decides which of several events with one
id wins (the first)."""

_APP = r"^[a-z][a-z0-9_]{0,62}$"
_KIND = r"^[A-Za-z0-9_.:-]{1,64}$"
_INSTANT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""The common ISO 8601 form with an offset; Python's ``datetime.fromisoformat`` takes more
(``+0900``, no seconds, ...), and those rows go through ``check``."""

_SLICE = 4_096
_SEOUL_OFFSET_US = 9 * 3600 * 1_000_000
_DAY_US = 86_400 * 1_000_000
_FIXED_FROM_US = int(datetime(1988, 10, 10, tzinfo=UTC).timestamp() * 1_000_000)
"""Seoul has kept +09:00 without daylight saving since October 1988; the fast path adds nine
hours, and earlier instants go through the time-zone database (``check``)."""
_FIXED_UNTIL_US = int(datetime(9998, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Checked:
    """One chunk after the checks."""

    good: pa.Table
    """Accepted rows (schema ``CHECKED``), in no particular order."""
    bad: list[BadRow]
    """Every refused row, in line order."""


def _text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Strings trimmed of surrounding blanks; integers as their decimal text (as ``check``
    reads them); any other type null, so that ``check`` decides."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_large_string(kind):
        column = pc.cast(column, pa.string())
    elif not pa.types.is_string(kind):
        return pa.nulls(len(column), pa.string())
    return pc.utf8_trim_whitespace(column)


def _length_within(column: pa.ChunkedArray | pa.Array, most: int) -> pa.ChunkedArray:
    length = pc.utf8_length(column)
    return pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, most))


def _instants(column: pa.ChunkedArray | pa.Array) -> tuple[pa.ChunkedArray | pa.Array, bool]:
    """UTC microseconds of the column (null where the bulk form cannot read a value) and
    whether any could be read in bulk."""
    utc = pa.timestamp("us", tz="UTC")
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return pa.nulls(len(column), utc), False
        return pc.cast(column, utc), True
    text = _text(column)
    shaped = pc.if_else(pc.fill_null(pc.match_substring_regex(text, _INSTANT), False), text, None)
    try:
        return pc.cast(shaped, utc), True
    except pa.ArrowInvalid:
        pass
    # an impossible date such as 2026-02-30 fails the whole cast: cast slice by slice, and
    # leave the slices that fail to check(), which names the bad row
    parts = []
    for start in range(0, len(shaped), _SLICE):
        piece = shaped.slice(start, _SLICE)
        try:
            parts.append(pc.cast(piece, utc))
        except pa.ArrowInvalid:
            parts.append(pa.nulls(len(piece), utc))
    return pa.chunked_array(parts, utc), True


def seoul_days(instants: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Seoul calendar days of UTC instants from October 1988 on (fixed +09:00)."""
    micros = pc.cast(instants, pa.int64()).to_numpy(zero_copy_only=False)
    days = (micros + _SEOUL_OFFSET_US) // _DAY_US
    return pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32())


def _rows_of(table: pa.Table, indices: np.ndarray) -> list[dict[str, object]]:
    return table.take(pa.array(indices, pa.int64())).to_pylist()  # type: ignore[no-any-return]


def _events_table(events: list[tuple[int, Event]]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "pos": [line for line, _ in events],
            "event_id": [e.event_id for _, e in events],
            "app": [e.app for _, e in events],
            "person_id": [e.person_id for _, e in events],
            "occurred_at": [e.occurred_at for _, e in events],
            "day": [e.day for _, e in events],
            "kind": [e.kind for _, e in events],
        },
        schema=CHECKED,
    )


def check_columns(table: pa.Table) -> Checked:
    """Check a chunk: accepted rows in bulk, the rest row by row with ``check``."""
    if table.num_rows == 0:
        return Checked(CHECKED.empty_table(), [])
    event_id = _text(table["event_id"])
    app = _text(table["app"])
    person_id = _text(table["person_id"])
    kind = _text(table["kind"])
    instants, readable = _instants(table["occurred_at"])
    micros = pc.cast(instants, pa.int64())
    fast = pc.and_(
        pc.and_(_length_within(event_id, MAX_ID), _length_within(person_id, MAX_PERSON_ID)),
        pc.and_(pc.match_substring_regex(app, _APP), pc.match_substring_regex(kind, _KIND)),
    )
    fast = pc.and_(
        fast,
        pc.and_(pc.greater_equal(micros, _FIXED_FROM_US), pc.less(micros, _FIXED_UNTIL_US)),
    )
    mask = pc.fill_null(fast, False) if readable else pa.repeat(False, table.num_rows)
    accepted = pa.Table.from_arrays(
        [table["line"], event_id, app, person_id, instants, kind],
        names=["pos", "event_id", "app", "person_id", "occurred_at", "kind"],
    ).filter(mask)
    good = pa.Table.from_arrays(
        [
            pc.cast(accepted["pos"], pa.int64()),
            accepted["event_id"],
            accepted["app"],
            accepted["person_id"],
            accepted["occurred_at"],
            seoul_days(accepted["occurred_at"]),
            accepted["kind"],
        ],
        schema=CHECKED,
    )
    rest = np.flatnonzero(~np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    if rest.size == 0:
        return Checked(good, [])
    bad: list[BadRow] = []
    slow: list[tuple[int, Event]] = []
    for row in _rows_of(table, rest):
        line = int(row["line"])  # type: ignore[call-overload]
        verdict = check(row, line)
        if isinstance(verdict, BadRow):
            bad.append(verdict)
        else:
            slow.append((line, verdict))
    if slow:
        good = pa.concat_tables([good, _events_table(slow)])
    bad.sort(key=lambda b: b.line)
    return Checked(good, bad)

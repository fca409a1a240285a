"""Statements for millions of usage records: the accrual step as one DuckDB query.

``statements.accrue`` walks records one by one; a year of a group's usage is millions of
records, so here the same step is one SQL aggregation over columns (a pyarrow table, numpy
arrays or a Parquet file) in an in-memory DuckDB. The month boundaries (Seoul) and rate
changes are few, so they are made in Python into a small table of *periods*: per rate key,
the stretches of time inside one month with one rate in force. Each record is joined to the
periods of its key that it overlaps, and ``amount x overlap`` is summed per line and rate in
128-bit integers (exact). The few thousand sums come back to ``statements.assemble``, which
prices and rounds them exactly as the pure path does: both paths give the same lines.

Input columns (others, e.g. ``allocation_id``, ``zone``, ``data_class``, are ignored):
``company``, ``project``, ``resource_class``, ``zone_kind``, ``provider`` (null for private
zones), ``source`` (``own`` / ``borrowed``), ``lender`` (null when own), ``amount`` (integer),
``start`` and ``end`` (timestamps, or integer seconds since the Unix epoch, UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa

from groupcloud.analytics.months import SEOUL, Month
from groupcloud.metering.rates import MissingRate, Rate, RateCard
from groupcloud.metering.statements import (
    Accrual,
    Statement,
    assemble,
    month_end,
    month_start,
)
from groupcloud.metering.usage import Source, UsageRecord

__all__ = ["COLUMNS", "UsageColumns", "accrue", "statements", "table_of"]

COLUMNS = (
    "company",
    "project",
    "resource_class",
    "zone_kind",
    "provider",
    "source",
    "lender",
    "amount",
    "start",
    "end",
)
"""The columns the bulk step reads."""

UsageColumns: TypeAlias = (
    "pa.Table | Mapping[str, np.ndarray[Any, Any] | pa.Array[Any] | Sequence[Any]] | Path | str"
)
"""A pyarrow table, a mapping of column name to array, or the path of a Parquet file."""

_ACCRUE = """
WITH u AS (
    SELECT company, project, resource_class, zone_kind, coalesce(provider, '') AS provider,
           source, coalesce(lender, '') AS lender, CAST(amount AS HUGEINT) AS amount,
           {start} AS s, {end} AS e
    FROM usage_in
)
SELECT u.company, p.month_index, u.project, u.resource_class, u.zone_kind, u.provider,
       u.source, u.lender, p.rate_index,
       sum(u.amount * (least(u.e, p.period_end) - greatest(u.s, p.period_start))) AS unit_seconds
FROM u
JOIN periods AS p
  ON u.zone_kind = p.zone_kind AND u.provider = p.provider
 AND u.resource_class = p.resource_class
 AND u.s < p.period_end AND u.e > p.period_start
GROUP BY ALL
HAVING unit_seconds <> 0
"""

_SPAN = "SELECT min({start}), max({end}) FROM usage_in WHERE {end} > {start}"

_UNRATED = """
WITH u AS (
    SELECT zone_kind, coalesce(provider, '') AS provider, resource_class,
           greatest({start}, b.month_start) AS s, least({end}, b.month_end) AS e
    FROM usage_in JOIN billed AS b ON {start} < b.month_end AND {end} > b.month_start
)
SELECT u.zone_kind, u.provider, u.resource_class, min(u.s)
FROM u LEFT JOIN firsts AS f
  ON u.zone_kind = f.zone_kind AND u.provider = f.provider
 AND u.resource_class = f.resource_class
WHERE u.s < u.e AND (f.first_from IS NULL OR u.s < f.first_from)
GROUP BY ALL
ORDER BY 4, 1, 2, 3
LIMIT 1
"""


def statements(
    usage: UsageColumns,
    card: RateCard,
    *,
    lender_share: Decimal,
    months: Sequence[Month] | None = None,
) -> list[Statement]:
    """``statements.statements`` for columns: the same statements, by company then month."""
    return assemble(accrue(usage, card, months=months), lender_share=lender_share)


def accrue(
    usage: UsageColumns, card: RateCard, *, months: Sequence[Month] | None = None
) -> list[Accrual]:
    """``statements.accrue`` as one DuckDB aggregation (same accruals, in another order)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        _register(con, usage)
        start, end = _seconds(con, "start"), _seconds(con, "end")
        chosen = _months(con, start, end) if months is None else sorted(set(months))
        if not chosen:
            return []
        rates = card.rates
        _periods(con, card, rates, chosen)
        _check_rated(con, start, end, chosen)
        rows = con.execute(_ACCRUE.format(start=start, end=end)).fetchall()
    finally:
        con.close()
    return [
        Accrual(
            company=company,
            month=chosen[month_index],
            project=project,
            resource_class=rc,
            zone_kind=zone_kind,
            provider=provider or None,
            source=Source(source),
            lender=lender or None,
            rate=rates[rate_index],
            unit_seconds=int(unit_seconds),
        )
        for (company, month_index, project, rc, zone_kind, provider, source, lender, rate_index,
             unit_seconds) in rows
    ]  # fmt: skip


def table_of(records: Iterable[UsageRecord]) -> pa.Table:
    """Usage records as the columns ``accrue`` reads (plus allocation, zone and data
    class), timestamps to the second in UTC: the form records are exported in."""
    rows = list(records)
    stamp = pa.timestamp("s", tz="UTC")
    return pa.table(
        {
            "allocation_id": pa.array([r.allocation_id for r in rows], pa.string()),
            "company": pa.array([r.company for r in rows], pa.string()),
            "project": pa.array([r.project for r in rows], pa.string()),
            "resource_class": pa.array([r.resource_class for r in rows], pa.string()),
            "zone": pa.array([r.zone for r in rows], pa.string()),
            "zone_kind": pa.array([r.zone_kind for r in rows], pa.string()),
            "provider": pa.array([r.provider for r in rows], pa.string()),
            "data_class": pa.array([r.data_class for r in rows], pa.string()),
            "source": pa.array([r.source.value for r in rows], pa.string()),
            "lender": pa.array([r.lender for r in rows], pa.string()),
            "amount": pa.array([r.amount for r in rows], pa.int64()),
            "start": pa.array([r.start for r in rows], stamp),
            "end": pa.array([r.end for r in rows], stamp),
        }
    )


def _register(con: duckdb.DuckDBPyConnection, usage: UsageColumns) -> None:
    """Make ``usage`` the view ``usage_in`` (no copy of a table; a file is scanned)."""
    if isinstance(usage, str | Path):
        con.read_parquet(str(usage)).create_view("usage_in")
        return
    table = usage if isinstance(usage, pa.Table) else pa.table(dict(usage))
    missing = sorted(set(COLUMNS) - set(table.column_names))
    if missing:
        raise ValueError(f"usage columns missing: {', '.join(missing)}")
    con.register("usage_in", table)


def _seconds(con: duckdb.DuckDBPyConnection, column: str) -> str:
    """The SQL of ``column`` as whole seconds since the epoch (timestamps truncated, as
    usage records are)."""
    types = {name: kind for name, kind, *_ in con.execute("DESCRIBE usage_in").fetchall()}
    if column not in types:
        raise ValueError(f"usage column missing: {column}")
    quoted = f'"{column}"'
    if str(types[column]).startswith("TIMESTAMP"):
        return f"(epoch_ms({quoted}) // 1000)"
    return f"CAST({quoted} AS BIGINT)"


def _months(con: duckdb.DuckDBPyConnection, start: str, end: str) -> list[Month]:
    """Every Seoul month the usage touches."""
    first, last = con.execute(_SPAN.format(start=start, end=end)).fetchone() or (None, None)
    if first is None or last is None:
        return []
    begin = Month.of(datetime.fromtimestamp(int(first), UTC).astimezone(SEOUL).date())
    final = Month.of(datetime.fromtimestamp(int(last) - 1, UTC).astimezone(SEOUL).date())
    return begin.until(final)


def _periods(
    con: duckdb.DuckDBPyConnection, card: RateCard, rates: list[Rate], months: list[Month]
) -> None:
    """The table ``periods``: per rate key, each stretch inside one month with one rate
    (months before a key's first rate have none: ``_check_rated`` reports usage there),
    and ``firsts``: when each key's first rate starts."""
    index = {rate: i for i, rate in enumerate(rates)}
    columns: dict[str, list[Any]] = {
        name: []
        for name in ("zone_kind", "provider", "resource_class", "month_index", "rate_index",
                     "period_start", "period_end")
    }  # fmt: skip
    firsts: dict[str, list[Any]] = {"zone_kind": [], "provider": [], "resource_class": [],
                                    "first_from": []}  # fmt: skip
    keys = sorted({r.key for r in rates}, key=lambda k: (k[0], k[1] or "", k[2]))
    for key in keys:
        zone_kind, provider, rc = key
        first = card.history(key)[0].effective_from
        for name, value in zip(firsts, (zone_kind, provider or "", rc, _epoch(first)), strict=True):
            firsts[name].append(value)
        for month_index, month in enumerate(months):
            start, end = max(month_start(month), first), month_end(month)
            if start >= end:
                continue
            for rate, a, b in card.split(key, start, end):
                row = (
                    zone_kind,
                    provider or "",
                    rc,
                    month_index,
                    index[rate],
                    _epoch(a),
                    _epoch(b),
                )
                for name, value in zip(columns, row, strict=True):
                    columns[name].append(value)
    con.register("periods", pa.table(_typed(columns)))
    con.register("firsts", pa.table(_typed(firsts)))


def _typed(columns: dict[str, list[Any]]) -> dict[str, pa.Array[Any]]:
    """String and int64 columns (typed even when empty, so the joins still bind)."""
    return {
        name: pa.array(values, pa.string() if name in _TEXT else pa.int64())
        for name, values in columns.items()
    }


_TEXT = frozenset({"zone_kind", "provider", "resource_class"})


def _check_rated(con: duckdb.DuckDBPyConnection, start: str, end: str, months: list[Month]) -> None:
    """Raise ``MissingRate`` for the earliest usage (in the months billed) that no rate
    covers, as the pure path would: unpriced usage must never vanish from a statement."""
    billed = {
        "month_start": [_epoch(month_start(m)) for m in months],
        "month_end": [_epoch(month_end(m)) for m in months],
    }
    con.register("billed", pa.table(_typed(billed)))
    found = con.execute(_UNRATED.format(start=start, end=end)).fetchone()
    if found is not None:
        zone_kind, provider, rc, at = found
        raise MissingRate((zone_kind, provider or None, rc), datetime.fromtimestamp(int(at), UTC))


def _epoch(instant: datetime) -> int:
    return int(instant.timestamp())

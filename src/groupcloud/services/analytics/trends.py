"""Exact activity over time: monthly trends (WAU, new / retained / resurrected / churned
persons, month-over-month and year-over-year growth), the rolling 30-day MAU and the
forecast of the month the integrated MAU reaches the target.

All counts are DuckDB over the month-partitioned Parquet events, periods in Asia/Seoul
(the stored ``day``). Like the MAU report they need no secret and no lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb
import numpy as np

from groupcloud.activitystore.store import EventStore, connect
from groupcloud.analytics import forecast as trend
from groupcloud.analytics.metrics import growth
from groupcloud.analytics.metrics import suppress as hide
from groupcloud.analytics.months import Month
from groupcloud.config import Settings
from groupcloud.errors import InvalidInput
from groupcloud.schemas.analytics import (
    DayCount,
    ForecastReport,
    MonthCount,
    RollingReport,
    TrendMonth,
    TrendReport,
)
from groupcloud.services.analytics.activity import MAX_SPAN_DAYS, MAX_SPAN_MONTHS, check_span

__all__ = ["FORECAST_MONTHS", "WINDOW_DAYS", "forecast_report", "rolling_report", "trend_report"]

WINDOW_DAYS = 30
FORECAST_MONTHS = 12
"""Months fitted by default: the last twelve with events (fewer when fewer are stored)."""

_MONTHLY = """
WITH pm AS (
    SELECT DISTINCT app, person_key, year(day) * 12 + month(day) - 1 AS m
    FROM read_parquet(?, hive_partitioning = false)
), seg AS (
    SELECT app AS seg, person_key, m FROM pm
    UNION ALL
    SELECT DISTINCT NULL AS seg, person_key, m FROM pm
), f AS (
    SELECT seg, m,
        min(m) OVER (PARTITION BY seg, person_key) AS first_m,
        lag(m) OVER (PARTITION BY seg, person_key ORDER BY m) AS prev_m
    FROM seg
)
SELECT seg, m, count(*),
    count(*) FILTER (WHERE first_m = m),
    count(*) FILTER (WHERE prev_m = m - 1),
    count(*) FILTER (WHERE prev_m < m - 1)
FROM f GROUP BY seg, m
"""

_WEEKLY = """
WITH w AS (
    SELECT DISTINCT app, person_key, day - CAST(isodow(day) - 1 AS INTEGER) AS week
    FROM read_parquet(?, hive_partitioning = false)
)
SELECT seg, week, count(DISTINCT person_key) FROM (
    SELECT app AS seg, person_key, week FROM w
    UNION ALL
    SELECT NULL AS seg, person_key, week FROM w
) GROUP BY seg, week
"""

_ROLLING = """
WITH pd AS (
    SELECT DISTINCT person_key, day FROM read_parquet(?, hive_partitioning = false)
    WHERE day <= ? {apps}
), iv AS (
    SELECT day AS s,
        least(day + {last}, coalesce(
            lead(day) OVER (PARTITION BY person_key ORDER BY day) - 1, day + {last})) AS e
    FROM pd
)
SELECT s, count(*) FROM iv GROUP BY s
UNION ALL
SELECT e + 1, -count(*) FROM iv GROUP BY e + 1
"""
"""Each active day of a person covers the window days up to the next active day (or the
window's end): the coverage intervals of one person do not overlap, so the persons of a
day are the running sum of interval starts minus ends."""


def _files(store: EventStore, months: Sequence[Month]) -> list[str]:
    return [str(p) for m in months for p in store.month_files(m)]


def _index(month: Month) -> int:
    return month.year * 12 + month.month - 1


def _month_of(index: int) -> Month:
    return Month(index // 12, index % 12 + 1)


def _weeks_of(month: Month) -> list[date]:
    """Mondays of the ISO weeks whose Thursday is in the month (each week in one month)."""
    thursday = month.first_day + timedelta(days=(3 - month.first_day.weekday()) % 7)
    mondays = []
    while thursday <= month.last_day():
        mondays.append(thursday - timedelta(days=3))
        thursday += timedelta(days=7)
    return mondays


def _weekly(files: list[str], con: duckdb.DuckDBPyConnection) -> dict[tuple[str | None, date], int]:
    """Distinct persons per segment and ISO week (keyed by its Monday)."""
    if not files:
        return {}
    return {
        (seg, week): int(persons) for seg, week, persons in con.execute(_WEEKLY, [files]).fetchall()
    }


def trend_report(
    settings: Settings, first: Month, last: Month, *, k: int | None = None
) -> TrendReport:
    """Month by month from ``first`` to ``last``: MAU, average WAU, new, retained,
    resurrected and churned persons, MoM and YoY growth, integrated and per app."""
    k = settings.analytics_k if k is None else k
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    check_span(first, last, months, MAX_SPAN_MONTHS, "months", "months")
    span = first.until(last)
    store = EventStore.under(settings.data_dir)
    history = [m for m in store.months() if m <= last]
    counts: dict[tuple[str | None, int], tuple[int, int, int, int]] = {}
    with connect() as con:
        files = _files(store, history)
        if files:
            for seg, m, mau, new, retained, resurrected in con.execute(
                _MONTHLY, [files]
            ).fetchall():
                counts[(seg, int(m))] = (int(mau), int(new), int(retained), int(resurrected))
        weekly = _weekly(_files(store, first.previous().until(last.next())), con)
    apps = sorted(set(store.apps()) | {seg for seg, _ in counts if seg is not None})
    rows = []
    for month in span:
        at = _index(month)
        for app in [None, *apps]:
            mau, new, retained, resurrected = counts.get((app, at), (0, 0, 0, 0))
            before = counts.get((app, at - 1), (0, 0, 0, 0))[0]
            year_ago = counts.get((app, at - 12), (0, 0, 0, 0))[0]
            shown = hide(mau, k)
            week_counts = [weekly.get((app, w), 0) for w in _weeks_of(month)]
            wau: float | None = sum(week_counts) / len(week_counts)
            if any(hide(n, k) is None for n in week_counts):
                wau = None  # an average of small weeks could be undone into them
            rows.append(
                TrendMonth(
                    month=str(month),
                    app=app,
                    mau=shown,
                    wau=wau,
                    new=hide(new, k),
                    retained=hide(retained, k),
                    resurrected=hide(resurrected, k),
                    churned=hide(before - retained, k),
                    mom_growth=growth(shown, hide(before, k)),
                    yoy_growth=growth(shown, hide(year_ago, k)),
                )
            )
    return TrendReport(first=str(first), last=str(last), k=k, rows=rows)


def rolling_report(
    settings: Settings,
    first: date,
    last: date,
    *,
    apps: Sequence[str] | None = None,
    k: int | None = None,
) -> RollingReport:
    """Distinct persons active in the 30 Seoul days ending on each day from ``first`` to
    ``last`` (in ``apps``, default all): the rolling view of MAU."""
    k = settings.analytics_k if k is None else k
    check_span(first, last, (last - first).days + 1, MAX_SPAN_DAYS, "days", "last")
    store = EventStore.under(settings.data_dir)
    start = first - timedelta(days=WINDOW_DAYS - 1)
    files = _files(store, Month.of(start).until(Month.of(last)))
    days = (last - first).days + 1
    persons = np.zeros(days, dtype=np.int64)
    if files:
        params: list[object] = [files, last]
        where = ""
        if apps is not None:
            where = "AND app IN (SELECT unnest(?))"
            params.append(sorted(set(apps)))
        query = _ROLLING.format(apps=where, last=WINDOW_DAYS - 1)
        with connect() as con:
            steps = con.execute(query, params).fetchall()
        delta = np.zeros((last - start).days + 2, dtype=np.int64)
        for day, change in steps:
            offset = (day - start).days
            if 0 <= offset < delta.size:
                delta[offset] += int(change)
            elif offset < 0:
                delta[0] += int(change)  # coverage that began before the window's start
        persons = np.cumsum(delta)[WINDOW_DAYS - 1 : WINDOW_DAYS - 1 + days]
    return RollingReport(
        first_day=first.isoformat(),
        last_day=last.isoformat(),
        apps=None if apps is None else sorted(set(apps)),
        window_days=WINDOW_DAYS,
        k=k,
        days=[
            DayCount(day=(first + timedelta(days=i)).isoformat(), persons=hide(int(n), k))
            for i, n in enumerate(persons)
        ],
    )


def forecast_report(
    settings: Settings,
    *,
    first: Month | None = None,
    last: Month | None = None,
    model: trend.Model = "linear",
    target: int | None = None,
) -> ForecastReport:
    """Fit the exact integrated MAU of ``first..last`` (default: the last twelve stored
    months) and find the month the trend reaches the target."""
    target = settings.analytics_target_mau if target is None else target
    store = EventStore.under(settings.data_dir)
    stored = store.months()
    if last is None:
        last = stored[-1] if stored else None
    if last is None:
        raise InvalidInput("no events are stored: there is nothing to fit")
    if first is None:
        used = [m for m in stored if m <= last][-FORECAST_MONTHS:]
        first = used[0] if used else last
    span = first.until(last)
    series: list[tuple[Month, int]] = []
    with connect() as con:
        for month in span:
            files = _files(store, [month])
            found = (
                con.execute(
                    "SELECT count(DISTINCT person_key) "
                    "FROM read_parquet(?, hive_partitioning = false)",
                    [files],
                ).fetchone()
                if files
                else (0,)
            )
            series.append((month, int(found[0]) if found else 0))
    try:
        fitted = trend.fit(series, model)
    except ValueError as exc:
        raise InvalidInput(str(exc), errors=[{"field": "months", "message": str(exc)}]) from None
    reached = series[-1][1] >= target
    when = None if reached else trend.reach(fitted, last, target)
    horizon = last.until(when)[1:] if when else last.until(last.plus(12))[1:]
    return ForecastReport(
        model=model,
        target=target,
        months_used=[MonthCount(month=str(m), mau=v) for m, v in series],
        intercept=fitted.intercept,
        slope=fitted.slope,
        monthly_growth=fitted.monthly_growth,
        r2=fitted.r2,
        reached=reached,
        forecast_month=None if when is None else str(when),
        projection=[MonthCount(month=str(m), mau=round(fitted.value(m))) for m in horizon],
    )

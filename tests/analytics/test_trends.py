"""Trends, rolling 30-day MAU and the forecast checked against brute-force counts on small
data: persons in several apps, Seoul days and months (not UTC), duplicate events."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupcloud.analytics import forecast
from groupcloud.analytics.months import SEOUL, Month
from groupcloud.errors import InvalidInput
from groupcloud.services.analytics.activity import ingest_batch
from groupcloud.services.analytics.trends import forecast_report, rolling_report, trend_report
from tests.analytics.helpers import settings_for

APPS = ["won_banking", "won_card", "won_car"]
START = datetime(2025, 12, 20, tzinfo=UTC)  # December to early April, Seoul and UTC
MONTHS = Month(2025, 12).until(Month(2026, 4))

event = st.tuples(
    st.integers(0, 150),  # event id: repeats are duplicates, the first one counts
    st.sampled_from(APPS),
    st.integers(0, 12),  # person
    st.integers(0, 105 * 24),  # hours after START
)


def _rows(events: list[tuple[int, str, int, int]]) -> list[dict[str, object]]:
    return [
        {"event_id": f"e{eid}", "app": app, "person_id": f"person-{person}",
         "occurred_at": (START + timedelta(hours=hour)).isoformat(), "kind": "login"}
        for eid, app, person, hour in events
    ]  # fmt: skip


def _activity(events: list[tuple[int, str, int, int]]) -> list[tuple[str, int, date]]:
    first: dict[int, tuple[str, int, date]] = {}
    for eid, app, person, hour in events:
        at = (START + timedelta(hours=hour)).astimezone(SEOUL).date()
        first.setdefault(eid, (app, person, at))
    return list(first.values())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=90))
def test_trends_and_rolling_mau_match_a_brute_force_count(
    events: list[tuple[int, str, int, int]],
) -> None:
    activity = _activity(events)

    def active(app: str | None, month: Month) -> set[int]:
        return {p for a, p, d in activity if (app is None or a == app) and Month.of(d) == month}

    with tempfile.TemporaryDirectory() as data:
        config = settings_for(Path(data))
        ingest_batch(config, _rows(events))
        report = trend_report(config, MONTHS[1], MONTHS[-1], k=1)
        rolling = rolling_report(config, date(2026, 1, 10), date(2026, 3, 5), k=1)
        card = rolling_report(config, date(2026, 2, 1), date(2026, 2, 3), apps=["won_card"], k=1)

    rows = {(r.month, r.app): r for r in report.rows}
    for month in MONTHS[1:]:
        for app in [None, *APPS]:
            row = rows[(str(month), app)]
            now, before = active(app, month), active(app, month.previous())
            earlier = set().union(*(active(app, m) for m in MONTHS if m < month.previous()))
            ever = earlier | before
            assert row.mau == len(now)
            assert row.new == len(now - ever)
            assert row.retained == len(now & before)
            assert row.resurrected == len((now - before) & earlier)
            assert row.churned == len(before - now)
            mondays = [
                d
                for d in (date(2025, 11, 24) + timedelta(weeks=i) for i in range(25))
                if Month.of(d + timedelta(days=3)) == month
            ]
            weekly = [
                len({p for a, p, d in activity if (app is None or a == app)
                     and monday <= d < monday + timedelta(days=7)})
                for monday in mondays
            ]  # fmt: skip
            assert row.wau == pytest.approx(sum(weekly) / len(weekly))
    for entry in rolling.days + card.days:
        day = date.fromisoformat(entry.day)
        apps = APPS if entry in rolling.days else ["won_card"]
        window = {p for a, p, d in activity if a in apps and day - timedelta(days=29) <= d <= day}
        assert entry.persons == len(window)


def test_an_event_at_1630_utc_on_31_january_is_a_february_user(tmp_path: Path) -> None:
    config = settings_for(tmp_path)
    ingest_batch(
        config,
        [
            {"event_id": "a", "app": "won_card", "person_id": "P1",
             "occurred_at": "2026-01-31T16:30:00Z", "kind": "login"},
            {"event_id": "b", "app": "won_card", "person_id": "P1",
             "occurred_at": "2025-02-10T12:00:00+09:00", "kind": "login"},
        ],
    )  # fmt: skip
    rows = {
        (r.month, r.app): r for r in trend_report(config, Month(2026, 1), Month(2026, 2), k=1).rows
    }
    assert (rows[("2026-01", None)].mau, rows[("2026-02", None)].mau) == (0, 1)
    assert rows[("2026-02", None)].resurrected == 1  # seen a year before
    assert rows[("2026-02", None)].yoy_growth == 0.0
    assert rows[("2026-02", "won_card")].new == 0
    # Sunday 1 February (Seoul) is in the ISO week of Thursday 29 January: a January week
    assert rows[("2026-02", None)].wau == 0
    assert rows[("2026-01", None)].wau == pytest.approx(1 / 5)  # Thursdays 1, 8, ..., 29
    hidden = trend_report(config, Month(2026, 1), Month(2026, 2), k=10).rows
    assert [(r.mau, r.wau, r.resurrected) for r in hidden if r.app is None] == [
        (0, None, 0),
        (None, 0, None),
    ]
    with pytest.raises(InvalidInput, match="before it starts"):
        trend_report(config, Month(2026, 2), Month(2026, 1))


def test_a_linear_trend_is_fitted_exactly_and_projected_to_the_target() -> None:
    series = [(Month(2022, 1).plus(i), 1_000 + 250 * i) for i in range(6)]
    line = forecast.fit(series)
    assert line.slope == pytest.approx(250)
    assert line.r2 == pytest.approx(1.0)
    # 1,000 + 250 t >= 5,000 at t = 16: May 2023
    assert forecast.reach(line, Month(2022, 6), 5_000) == Month(2023, 5)
    growing = forecast.fit([(Month(2022, 1).plus(i), round(1_000 * 1.1**i)) for i in range(6)],
                           "loglinear")  # fmt: skip
    assert growing.monthly_growth == pytest.approx(0.1, abs=1e-3)
    flat = forecast.fit([(Month(2022, 1), 10), (Month(2022, 2), 9)])
    assert flat.r2 is None
    assert forecast.reach(flat, Month(2022, 2), 100) is None
    with pytest.raises(ValueError, match="at least two"):
        forecast.fit(series[:1])


def test_the_forecast_fits_the_stored_months(tmp_path: Path) -> None:
    config = settings_for(tmp_path)
    events = []
    for month_index, persons in enumerate([20, 30, 40]):
        month = Month(2026, 1).plus(month_index)
        events += [
            {"event_id": f"{month}-{p}", "app": "won_banking", "person_id": f"P{p}",
             "occurred_at": f"{month}-15T12:00:00+09:00", "kind": "login"}
            for p in range(persons)
        ]  # fmt: skip
    ingest_batch(config, events)
    made = forecast_report(config, target=100)
    assert [m.mau for m in made.months_used] == [20, 30, 40]
    assert made.slope == pytest.approx(10)
    assert made.forecast_month == "2026-09"  # 40 + 10 a month reaches 100 six months on
    assert made.projection[-1].mau == 100
    assert forecast_report(config, target=30).reached
    with pytest.raises(InvalidInput, match="nothing to fit"):
        forecast_report(settings_for(tmp_path / "empty"))

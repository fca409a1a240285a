"""Exact metrics from the store checked against brute-force counts in Python: persons in
several apps, Seoul month boundaries (not UTC), duplicate events, k-suppression."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupcloud.analytics.months import SEOUL, Month
from groupcloud.services.analytics.activity import ingest_batch, mau_report, overlap_report
from tests.analytics.helpers import settings_for

APPS = ["won_banking", "won_card", "won_car", "won_savings", "won_extra"]
START = datetime(2026, 1, 20, tzinfo=UTC)  # January, February and March, in Seoul and UTC
FEBRUARY = Month(2026, 2)

event = st.tuples(
    st.integers(0, 60),  # event id: repeats are duplicates, and only the first one counts
    st.sampled_from(APPS),
    st.integers(0, 15),  # person
    st.integers(0, 50 * 24 * 60),  # minutes after START
)


def _rows(events: list[tuple[int, str, int, int]]) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"e{eid}",
            "app": app,
            "person_id": f"person-{person}",
            "occurred_at": (START + timedelta(minutes=minute)).isoformat(),
            "kind": "login",
        }
        for eid, app, person, minute in events
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=80), st.integers(1, 4))
def test_mau_overlap_and_dau_match_a_brute_force_count(
    events: list[tuple[int, str, int, int]], k: int
) -> None:
    first: dict[int, tuple[str, int, datetime]] = {}
    for eid, app, person, minute in events:
        first.setdefault(eid, (app, person, START + timedelta(minutes=minute)))
    february = [
        (app, person, at.astimezone(SEOUL).date())
        for app, person, at in first.values()
        if (at.astimezone(SEOUL).year, at.astimezone(SEOUL).month) == (2026, 2)
    ]
    january = {(a, p) for a, p, at in first.values() if at.astimezone(SEOUL).month == 1}

    def shown(n: int) -> int | None:
        return None if 0 < n < k else n

    with tempfile.TemporaryDirectory() as data:
        config = settings_for(Path(data))
        summary = ingest_batch(config, _rows(events))
        report = mau_report(config, FEBRUARY, k=k)
        overlap = overlap_report(config, FEBRUARY, k=k)

    assert summary.loaded == len(first)
    assert summary.duplicates == len(events) - len(first)
    assert report.exact
    assert report.integrated_mau == shown(len({p for _, p, _ in february}))
    for app in APPS:
        persons = {p for a, p, _ in february if a == app}
        assert report.apps.get(app, 0) == shown(len(persons))
    segments = {s.app: s for s in report.segments}
    everyone = segments[None]
    if everyone.average_dau is not None:
        person_days = len({(p, d) for _, p, d in february})
        assert abs(everyone.average_dau * FEBRUARY.days - person_days) < 1e-9
    previous = len({p for _, p in january})
    assert everyone.previous_mau == shown(previous)
    used: dict[int, set[str]] = {}
    for app, person, _ in february:
        used.setdefault(person, set()).add(app)
    for a in overlap.apps:
        for b in overlap.apps:
            both = sum(1 for apps in used.values() if {a, b} <= apps)
            assert overlap.matrix[a][b] == shown(both)
    assert sum(c.persons or 0 for c in overlap.combinations if c.persons) <= len(used)


def test_an_event_at_1630_utc_on_31_january_counts_in_february(tmp_path: Path) -> None:
    config = settings_for(tmp_path)
    ingest_batch(
        config,
        _rows(
            [
                (
                    1,
                    "won_card",
                    1,
                    int((datetime(2026, 1, 31, 16, 30, tzinfo=UTC) - START).total_seconds() // 60),
                )
            ]
        ),
    )
    assert mau_report(config, FEBRUARY, k=1).apps["won_card"] == 1
    assert mau_report(config, Month(2026, 1), k=1).apps["won_card"] == 0


def test_small_segments_are_suppressed_but_zero_is_shown(tmp_path: Path) -> None:
    config = settings_for(tmp_path)
    events = [(i, "won_banking", i, 20 * 24 * 60) for i in range(10)]
    events.append((99, "won_card", 1, 20 * 24 * 60))
    ingest_batch(config, _rows(events))
    report = mau_report(config, FEBRUARY)
    assert report.k == 10
    assert report.integrated_mau == 10
    assert report.apps["won_banking"] == 10
    assert report.apps["won_card"] is None
    assert report.apps["won_car"] == 0
    card = next(s for s in report.segments if s.app == "won_card")
    assert card.suppressed
    assert card.stickiness is None
    assert report.progress == 10 / 15_000_000

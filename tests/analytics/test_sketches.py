"""Theta sketches: estimates within their stated bounds of the exact count, a person in
several apps or on several days counted once, fragments and compacted sketches agreeing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from groupcloud.activitystore.store import EventStore
from groupcloud.analytics import sketches
from groupcloud.analytics.months import Month
from groupcloud.errors import InvalidInput
from groupcloud.services.analytics.activity import ingest_batch, mau_report, sketch_estimate
from tests.analytics.helpers import settings_for


def test_estimates_of_large_unions_lie_within_their_bounds() -> None:
    rng = np.random.default_rng(7)
    people = rng.integers(-(2**63), 2**63 - 1, 120_000, dtype=np.int64)
    parts = [sketches.sketch_of(people[i : i + 50_000]) for i in (0, 35_000, 70_000)]
    found = sketches.estimate(parts)
    assert not found.exact
    assert found.lower <= 120_000 <= found.upper
    assert found.upper - found.lower < 0.04 * 120_000  # 2 sigma at about 0.8% each side
    assert sketches.estimate(parts + parts).estimate == found.estimate  # idempotent union


def test_small_unions_are_exact() -> None:
    values = np.arange(500, dtype=np.int64)
    found = sketches.estimate([sketches.sketch_of(values[:300]), sketches.sketch_of(values)])
    assert found.exact
    assert found.estimate == found.lower == found.upper == 500


def _event(i: int, app: str, person: int, at: str) -> dict[str, object]:
    return {"event_id": f"{app}-{i}", "app": app, "person_id": f"P{person}",
            "occurred_at": at, "kind": "login"}  # fmt: skip


def test_the_sketch_of_a_span_counts_a_person_in_several_apps_once(tmp_path: Path) -> None:
    config = settings_for(tmp_path, analytics_batch_rows=7_000)
    # 20,000 banking persons just after Seoul midnight on 1 February (still 31 January in
    # UTC), 15,000 card persons, 5,000 of them in both; 30 auto-finance persons in January
    events = [_event(i, "won_banking", i, "2026-01-31T15:30:00Z") for i in range(20_000)]
    events += [
        _event(i, "won_card", 15_000 + i, "2026-02-10T12:00:00+09:00") for i in range(15_000)
    ]
    events += [_event(i, "won_car", 40_000 + i, "2026-01-31T14:30:00Z") for i in range(30)]
    summary = ingest_batch(config, events)
    assert summary.loaded == len(events)
    store = EventStore.under(config.data_dir)
    # batches of 7,000 made fragments; the writer's end compacted them to one per day
    assert len(store.sketch_files(Month(2026, 2), "won_banking")) == 1

    february = sketch_estimate(config, date(2026, 2, 1), date(2026, 2, 28))
    assert february.lower is not None
    assert february.upper is not None
    assert february.lower <= 30_000 <= february.upper
    assert february.std_devs == 2
    card_only = sketch_estimate(config, date(2026, 2, 10), date(2026, 2, 10), apps=["won_card"])
    assert card_only.exact
    assert card_only.estimate == 15_000
    january = sketch_estimate(config, date(2026, 1, 1), date(2026, 1, 31), apps=["won_car"])
    assert (january.estimate, january.exact) == (30, True)
    span = sketch_estimate(config, date(2026, 1, 15), date(2026, 2, 28))
    assert span.lower is not None
    assert span.upper is not None
    assert span.lower <= 30_030 <= span.upper

    exact = mau_report(config, Month(2026, 2))
    approx = mau_report(config, Month(2026, 2), approx=True)
    assert (exact.exact, approx.exact) == (True, False)
    assert approx.error_bound is not None
    assert exact.integrated_mau == 30_000
    for segment in approx.segments:
        if segment.mau is None or segment.mau_lower is None or segment.mau_upper is None:
            continue
        truth = exact.integrated_mau if segment.app is None else exact.apps[segment.app]
        assert segment.mau_lower <= (truth or 0) <= segment.mau_upper
    assert approx.apps["won_car"] == 0
    # 15:30 UTC on 31 January is February in Seoul: January has the auto-finance persons
    assert approx.segments[0].previous_mau == exact.segments[0].previous_mau == 30


def test_a_span_that_ends_before_it_starts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="before it starts"):
        sketch_estimate(settings_for(tmp_path), date(2026, 2, 2), date(2026, 2, 1))

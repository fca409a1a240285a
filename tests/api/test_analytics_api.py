"""Analytics over real HTTP: a batch with bad rows and duplicates, a retried batch, the MAU
and overlap reports, and the problem documents of every refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.analytics.helpers import SECRET
from tests.api.stack import Stack, assert_problem, open_sqlite_stack


@pytest.fixture
def analytics_stack(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    monkeypatch.setenv("GROUPCLOUD_ANALYTICS_SECRET", SECRET)
    with open_sqlite_stack(sqlite_template, tmp_path / "stack") as made:
        yield made


def _event(eid: str, app: str, person: str, at: str) -> dict[str, str]:
    return {"event_id": eid, "app": app, "person_id": person, "occurred_at": at, "kind": "login"}


def test_a_batch_loads_once_and_the_month_is_counted(analytics_stack: Stack) -> None:
    events = [
        _event(f"b{i}", "won_banking", f"person-{i}", "2026-01-31T16:30:00Z") for i in range(12)
    ]
    events += [_event("c1", "won_card", "person-1", "2026-02-02T12:00:00+09:00")]
    events += [_event("x1", "won_pay", "person-99", "2026-02-02T12:00:00")]  # no offset
    first = analytics_stack.admin.post("/v1/analytics/events", json={"events": events})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["received"], body["loaded"], body["duplicates"], body["bad"]) == (14, 13, 0, 1)
    assert body["bad_rows"] == [
        {"line": 14, "field": "occurred_at", "reason": body["bad_rows"][0]["reason"]}
    ]
    retry = analytics_stack.admin.post("/v1/analytics/events", json={"events": events})
    assert (retry.json()["loaded"], retry.json()["duplicates"]) == (0, 13)

    report = analytics_stack.card.get("/v1/analytics/mau", params={"month": "2026-02"})
    assert report.status_code == 200, report.text
    mau = report.json()
    assert mau["month"] == "2026-02"
    assert mau["exact"] is True
    assert mau["integrated_mau"] == 12
    assert mau["apps"]["won_banking"] == 12
    assert mau["apps"]["won_card"] is None  # one person: below k = 10
    approx = analytics_stack.card.get(
        "/v1/analytics/mau", params={"month": "2026-02", "approx": "true"}
    ).json()
    assert (approx["exact"], approx["integrated_mau"]) == (False, 12)
    sketch = analytics_stack.card.get(
        "/v1/analytics/sketch",
        params={"first": "2026-02-01", "last": "2026-02-28", "apps": "won_banking,won_card"},
    ).json()
    assert (sketch["estimate"], sketch["lower"], sketch["upper"]) == (12, 12, 12)
    trend = analytics_stack.card.get(
        "/v1/analytics/trend", params={"first": "2026-01", "last": "2026-02"}
    ).json()
    assert [(r["month"], r["mau"], r["new"]) for r in trend["rows"] if r["app"] is None] == [
        ("2026-01", 0, 0),
        ("2026-02", 12, 12),
    ]
    rolling = analytics_stack.card.get(
        "/v1/analytics/rolling", params={"first": "2026-02-01", "last": "2026-03-04"}
    ).json()
    assert [d["persons"] for d in rolling["days"]][:1] == [12]
    # 30 days after 1-2 February nobody is left; on 3 March only one person (suppressed)
    assert [d["persons"] for d in rolling["days"]][-3:] == [12, None, 0]
    forecast = analytics_stack.card.get("/v1/analytics/forecast", params={"first": "2026-01"})
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["slope"] == 12
    january = analytics_stack.card.get("/v1/analytics/mau", params={"month": "2026-01"})
    assert january.json()["integrated_mau"] == 0
    overlap = analytics_stack.bank.get(
        "/v1/analytics/overlap", params={"month": "2026-02", "k": 1}
    ).json()
    assert overlap["matrix"]["won_banking"]["won_card"] == 1
    assert overlap["combinations"][0] == {"apps": ["won_banking"], "persons": 11}


def test_refusals_are_problem_documents(analytics_stack: Stack) -> None:
    batch = {"events": [_event("e1", "won_card", "p", "2026-02-02T12:00:00Z")]}
    assert_problem(
        analytics_stack.bank_admin.post("/v1/analytics/events", json=batch), 403, "forbidden"
    )
    assert_problem(
        analytics_stack.anonymous.get("/v1/analytics/mau", params={"month": "2026-02"}),
        401,
        "unauthenticated",
    )
    bad_month = assert_problem(
        analytics_stack.admin.get("/v1/analytics/mau", params={"month": "2026-2"}),
        422,
        "validation_error",
    )
    assert bad_month["errors"][0]["field"] == "month"
    assert_problem(
        analytics_stack.admin.get("/v1/analytics/forecast", params={"model": "cubic"}),
        422,
        "validation_error",
    )
    bad_day = assert_problem(
        analytics_stack.admin.get(
            "/v1/analytics/sketch", params={"first": "2026-02-31", "last": "2026-03-01"}
        ),
        422,
        "validation_error",
    )
    assert bad_day["errors"][0]["field"] == "first"
    assert_problem(
        analytics_stack.admin.get(
            "/v1/analytics/sketch", params={"first": "2026-03-02", "last": "2026-03-01"}
        ),
        422,
        "validation_error",
    )
    too_many = {"events": batch["events"] * 10_001}
    assert_problem(
        analytics_stack.admin.post("/v1/analytics/events", json=too_many), 422, "validation_error"
    )


def test_loading_without_the_secret_is_refused(sqlite_stack: Stack) -> None:
    sqlite_stack.rt.settings.analytics_secret = None
    batch = {"events": [_event("e1", "won_card", "p", "2026-02-02T12:00:00Z")]}
    problem = assert_problem(
        sqlite_stack.admin.post("/v1/analytics/events", json=batch),
        503,
        "analytics_secret_missing",
    )
    assert "GROUPCLOUD_ANALYTICS_SECRET" in problem["detail"]

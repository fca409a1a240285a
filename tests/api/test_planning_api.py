"""Capacity plans and the KPI scorecard over real HTTP, and their refusals as problems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.analytics.helpers import SECRET
from tests.api.stack import Stack, assert_problem, open_sqlite_stack


@pytest.fixture
def planning_stack(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    monkeypatch.setenv("GROUPCLOUD_ANALYTICS_SECRET", SECRET)
    monkeypatch.delenv("GROUPCLOUD_ANALYTICS_CAPACITY_MODEL", raising=False)
    monkeypatch.delenv("GROUPCLOUD_ANALYTICS_KPIS", raising=False)
    with open_sqlite_stack(sqlite_template, tmp_path / "stack") as made:
        events = [
            {
                "event_id": f"{month}-{p}",
                "app": "won_banking",
                "person_id": f"person-{p}",
                "occurred_at": f"{month}-05T10:00:00+09:00",
                "kind": "login",
            }
            for month, persons in (("2026-01", 20), ("2026-02", 40))
            for p in range(persons)
        ]
        loaded = made.admin.post("/v1/analytics/events", json={"events": events})
        assert loaded.json()["loaded"] == 60, loaded.text
        yield made


def test_a_capacity_plan_of_the_stored_mau(planning_stack: Stack) -> None:
    got = planning_stack.admin.get(
        "/v1/analytics/capacity", params={"month": "2026-02", "scale": 1e5, "pool_hosts": 2}
    )
    assert got.status_code == 200, got.text
    plan = got.json()
    assert plan["model"] == "built-in"
    assert plan["months"][0] == "2026-03"
    assert len(plan["months"]) == 12
    banking = next(a for a in plan["apps"] if a["app"] == "won_banking")
    assert banking["history"][-2:] == [
        {"month": "2026-01", "value": 2e6},
        {"month": "2026-02", "value": 4e6},
    ]
    assert banking["monthly_growth"] == pytest.approx(1.0)  # doubled in a month
    assert (plan["pool"]["pool_hosts"], plan["pool"]["pool_hosts_from"]) == (2, "given")
    assert plan["pool"]["hosts_to_add"] == max(0, plan["pool"]["hosts_needed"] - 2)


def test_a_company_reads_its_own_lines_of_the_plan_and_the_scorecard(
    planning_stack: Stack,
) -> None:
    """Group roles read every company's sizing and KPIs; a company its own, the group's
    line and the pool's totals (docs/roles.md)."""
    query: dict[str, str | float] = {"month": "2026-02", "scale": 1e5, "pool_hosts": 2}
    full = planning_stack.admin.get("/v1/analytics/capacity", params=query).json()
    assert {c["company"] for c in full["companies"]} >= {"bank", "card"}
    for client, company in ((planning_stack.card, "card"), (planning_stack.bank, "bank")):
        own = client.get("/v1/analytics/capacity", params=query).json()
        assert {c["company"] for c in own["companies"]} == {company}
        assert {a["company"] for a in own["apps"]} <= {company}
        assert own["pool"] == full["pool"]
        rows = client.get("/v1/analytics/scorecard", params={"month": "2026-02"}).json()["rows"]
        assert {r["company"] for r in rows} == {company, "group"}
    every = planning_stack.admin.get("/v1/analytics/scorecard", params={"month": "2026-02"})
    assert {r["company"] for r in every.json()["rows"]} >= {"bank", "card", "capital", "group"}


def test_the_pool_is_the_shared_zones_active_hosts_by_default(planning_stack: Stack) -> None:
    plan = planning_stack.card.get("/v1/analytics/capacity", params={"month": "2026-02"}).json()
    assert plan["pool"]["pool_hosts_from"] == "control-plane database"
    assert plan["pool"]["pool_hosts"] == 4  # the test world's hosts h1-h4 in zone shared


def test_planning_refusals_are_problem_documents(planning_stack: Stack) -> None:
    bad = assert_problem(
        planning_stack.card.get("/v1/analytics/capacity", params={"month": "2026-13"}),
        422,
        "validation_error",
    )
    assert bad["errors"][0]["field"] == "month"
    assert_problem(
        planning_stack.card.get("/v1/analytics/capacity", params={"month": "2026-02", "scale": 0}),
        422,
        "validation_error",
    )


def test_the_scorecard_of_the_built_in_definitions(planning_stack: Stack) -> None:
    got = planning_stack.bank.get("/v1/analytics/scorecard", params={"month": "2026-02"})
    assert got.status_code == 200, got.text
    card = got.json()
    assert card["definitions"] == "built-in"
    rows = {(r["company"], r["kpi"]): r for r in card["rows"]}
    bank = rows["bank", "mau"]
    assert (bank["value"], bank["previous"], bank["trend"]) == (40, 20, "improving")
    assert bank["status"] == "off_track"  # 40 persons against 8M
    retention = rows["bank", "retention"]
    assert retention["value"] == 1.0  # all 20 persons of January came back in February
    assert rows["bank", "nps"]["status"] == "no_data"  # no survey imported
    assert rows["group", "cost_avoided"]["estimate"] is True
    assert_problem(
        planning_stack.bank.get("/v1/analytics/scorecard", params={"month": "02-2026"}),
        422,
        "validation_error",
    )

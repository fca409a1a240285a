"""The KPI scorecard: status and trend rules at their boundaries, the definitions file's
checks, a hand-computed scorecard over a real store, and survey imports with bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from groupcloud.analytics.kpis import DEFAULT_KPIS, KpiDefinitions, parse_definitions, status, trend
from groupcloud.analytics.months import Month
from groupcloud.cli.main import app
from groupcloud.services.analytics.activity import ingest_batch
from groupcloud.services.analytics.kpis import company_activity
from tests.analytics.helpers import SECRET, settings_for

EXAMPLE = Path(__file__).parents[2] / "examples" / "kpis.yaml"


def test_status_has_a_band_on_the_wrong_side_of_the_target() -> None:
    assert status(100, 100, "higher", 0.1) == "on_track"
    assert status(90, 100, "higher", 0.1) == "at_risk"
    assert status(89.9, 100, "higher", 0.1) == "off_track"
    assert status(100, 100, "lower", 0.1) == "on_track"
    assert status(110, 100, "lower", 0.1) == "at_risk"
    assert status(110.1, 100, "lower", 0.1) == "off_track"
    assert status(None, 100, "lower", 0.1) == "no_data"


def test_trend_follows_the_direction() -> None:
    assert trend(110, 100, "higher") == "improving"
    assert trend(110, 100, "lower") == "worsening"
    assert trend(100.4, 100, "higher") == "flat"  # within 0.5 %
    assert trend(None, 100, "higher") == "unknown"


@given(st.floats(0, 1e9), st.floats(1, 1e9), st.floats(0, 0.9))
def test_more_is_never_a_worse_status_when_higher_is_better(
    value: float, target: float, band: float
) -> None:
    order = ["off_track", "at_risk", "on_track"]
    assert order.index(status(value * 1.1, target, "higher", band)) >= order.index(
        status(value, target, "higher", band)
    )
    assert order.index(status(value * 1.1, target, "lower", band)) <= order.index(
        status(value, target, "lower", band)
    )


def test_the_example_file_is_the_built_in_definitions() -> None:
    assert yaml.safe_load(EXAMPLE.read_text()) == DEFAULT_KPIS
    assert isinstance(parse_definitions(DEFAULT_KPIS), KpiDefinitions)


def test_bad_definitions_name_the_field() -> None:
    problems = parse_definitions(
        {
            "at_risk_band": 2,
            "costs": {"bank": {"default": -1}},
            "companies": {"bank": {"kpis": [{"name": "x", "kind": "nps"}, {"kind": "mau"}]}},
        }
    )
    assert isinstance(problems, list)
    assert {p["field"] for p in problems} == {
        "at_risk_band",
        "costs.bank.default",
        "companies.bank.kpis[0].kind",
        "companies.bank.kpis[1].name",
        "companies.bank.kpis[1].target",
    }


def _events() -> list[dict[str, object]]:
    """January: banking persons 0-19, card 10-29. February: banking 0-14 and 40-44,
    card 10-19."""
    spans = [
        ("2026-01", "won_banking", [*range(20)]),
        ("2026-01", "won_card", [*range(10, 30)]),
        ("2026-02", "won_banking", [*range(15), *range(40, 45)]),
        ("2026-02", "won_card", [*range(10, 20)]),
    ]
    return [
        {
            "event_id": f"{month}-{name}-{p}",
            "app": name,
            "person_id": f"CI-{p}",
            "occurred_at": f"{month}-03T09:00:00+09:00",
            "kind": "login",
        }
        for month, name, persons in spans
        for p in persons
    ]


DEFINITIONS = {
    "host_monthly_cost": 1000,
    "costs": {"bank": {"default": 100, "2026-02": 120}},
    "companies": {
        "group": {
            "apps": ["won_banking", "won_card", "won_car", "won_savings"],
            "kpis": [
                {"name": "integrated_mau", "kind": "mau", "target": 30},
                {"name": "retention", "kind": "retention", "target": 0.6},
                {"name": "cost_avoided", "kind": "cost_avoided", "target": 800},
            ],
        },
        "bank": {
            "apps": ["won_banking"],
            "kpis": [
                {"name": "mau", "kind": "mau", "target": 25},
                {"name": "retention", "kind": "retention", "target": 0.8},
                {"name": "cost_per_mau", "kind": "cost_per_mau", "target": 5},
                {"name": "cost_avoided", "kind": "cost_avoided", "target": 500},
                {"name": "nps", "kind": "survey", "target": 40},
            ],
        },
    },
}


def _kpi(data: Path, *args: str) -> Result:
    env = {
        "GROUPCLOUD_DATA_DIR": str(data),
        "GROUPCLOUD_DATABASE_URL": None,
        "GROUPCLOUD_ANALYTICS_SECRET": SECRET,
        "GROUPCLOUD_ANALYTICS_CAPACITY_MODEL": None,
        "GROUPCLOUD_ANALYTICS_KPIS": None,
    }
    return CliRunner().invoke(app, ["kpi", *args], env=env)


def test_company_activity_counts_each_person_once_across_its_apps(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    ingest_batch(settings, _events())
    group = company_activity(settings, Month(2026, 2), ["won_banking", "won_card"])
    assert (group.mau, group.previous_mau, group.retained) == (25, 30, 20)
    bank = company_activity(settings, Month(2026, 2), ["won_banking"])
    assert (bank.mau, bank.previous_mau, bank.retained) == (20, 20, 15)
    assert company_activity(settings, Month(2026, 5), ["won_banking"]).mau == 0


def test_a_hand_computed_scorecard(tmp_path: Path) -> None:
    ingest_batch(settings_for(tmp_path), _events())
    survey = tmp_path / "survey.csv"
    survey.write_text(
        "company,kpi,month,value\n"
        "bank,nps,2026-01,50\n"
        "bank,nps,2026-02,44\n"
        "bank,nps,2026-13,1\n"
        ",nps,2026-02,1\n"
        "bank,nps,2026-02,forty\n"
        "bank,nps,2026-02,45\n"  # replaces the 44 above
    )
    imported = _kpi(tmp_path, "import-survey", str(survey), "--json")
    assert imported.exit_code == 1  # bad rows
    done = json.loads(imported.stdout)
    assert (done["received"], done["imported"], done["bad"]) == (6, 3, 3)
    assert [(b["line"], b["field"]) for b in done["bad_rows"]] == [
        (4, "month"),
        (5, "company"),
        (6, "value"),
    ]
    assert f"{survey}:4: month: must be YYYY-MM" in imported.stderr

    definitions = tmp_path / "kpis.yaml"
    definitions.write_text(yaml.safe_dump(DEFINITIONS))
    made = _kpi(tmp_path, "scorecard", "--month", "2026-02", "--definitions", str(definitions),
                "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    rows = {(r["company"], r["kpi"]): r for r in json.loads(made.stdout)["rows"]}

    def got(company: str, kpi: str) -> tuple[object, ...]:
        r = rows[company, kpi]
        return r["value"], r["previous"], r["status"], r["trend"]

    assert got("group", "integrated_mau") == (25, 30, "off_track", "worsening")
    assert got("group", "retention") == (pytest.approx(20 / 30), None, "on_track", "unknown")
    # bank and card need a host each alone, one together: 1 host saved, half of it the bank's
    assert got("group", "cost_avoided") == (1000, 1000, "on_track", "flat")
    assert rows["group", "cost_avoided"]["estimate"] is True
    assert got("bank", "cost_avoided")[0] == 500
    assert got("bank", "mau") == (20, 20, "off_track", "flat")  # below 25 x 0.9
    assert got("bank", "retention") == (0.75, None, "at_risk", "unknown")  # 15 of 20
    assert got("bank", "cost_per_mau") == (6, 5, "off_track", "worsening")  # 120/20 vs 100/20
    assert got("bank", "nps") == (45, 50, "on_track", "worsening")

    table = _kpi(tmp_path, "scorecard", "--month", "2026-02", "--definitions", str(definitions))
    assert table.exit_code == 0, table.output
    assert "cost_avoided (estimate)" in table.stdout
    assert "off track" in table.stdout


def test_scorecard_refusals(tmp_path: Path) -> None:
    bad = tmp_path / "kpis.yaml"
    bad.write_text("companies: {bank: {kpis: [{name: mau, kind: mau}]}}")
    made = _kpi(tmp_path, "scorecard", "--month", "2026-02", "--definitions", str(bad))
    assert made.exit_code == 1
    assert "validation_error: KPI definitions" in made.stderr
    assert "companies.bank.kpis[0].target: must be a number" in made.stderr
    no_header = tmp_path / "s.csv"
    no_header.write_text("bank,nps,2026-02,1\n")
    refused = _kpi(tmp_path, "import-survey", str(no_header))
    assert refused.exit_code == 1
    assert "the header must name company, kpi, month, value" in refused.stderr
    assert _kpi(tmp_path, "scorecard", "--month", "2026-1").exit_code == 2

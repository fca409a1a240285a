"""Capacity planning: hand-computed small cases, properties of the arithmetic (monotone in
MAU, the peak of the sum never above the sum of the peaks), the model file's checks, and
the plan over a real event store through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from groupcloud.analytics.capacity import (
    DEFAULT_MODEL,
    HOURS,
    CapacityModel,
    forecast_log_linear,
    parse_model,
    plan,
)
from groupcloud.cli.main import app
from groupcloud.services.analytics.activity import ingest_batch
from groupcloud.simulator.scenario import load
from tests.analytics.helpers import SECRET, settings_for

EXAMPLE = Path(__file__).parents[2] / "examples" / "capacity-model.yaml"


def _one_hour(hour: int) -> list[float]:
    return [1.0 if h == hour else 0.0 for h in range(HOURS)]


def _model(apps: dict[str, Any], **top: Any) -> CapacityModel:
    made = parse_model({"headroom": 0, "host": {"VCPU": 2, "MEMORY_MB": 1000}, "apps": apps, **top})
    assert isinstance(made, CapacityModel), made
    return made


def _app(company: str, profile: list[float] | None = None) -> dict[str, Any]:
    """86,400 MAU x 10 requests a day = 10 requests/s on average, 20 in the busiest hour;
    1 VCPU and 100 MB per 10 requests/s: 2 VCPU and 200 MB at the peak."""
    spec: dict[str, Any] = {
        "company": company,
        "requests_per_user_day": 10,
        "peak_hour_factor": 2,
        "resources": {"per_rps": 10, "VCPU": 1, "MEMORY_MB": 100},
    }
    if profile is not None:
        spec["hourly_profile"] = profile
    return spec


def test_one_app_needs_its_peak_plus_headroom() -> None:
    made = plan(_model({"a": _app("x")}, headroom=0.5, horizon_months=2), {"a": [86_400, 86_400]})
    (company,) = made.companies
    assert company.peaks == [(2.0, 200.0), (2.0, 200.0)]
    assert company.nominal == (3, 300)  # +50 %
    assert company.hosts_alone == 2  # 3 VCPU on hosts of 2
    assert (made.hosts_shared, made.hosts_separate, made.hosts_saved) == (2, 2, 0)


def test_companies_peaking_at_different_hours_share_hosts() -> None:
    model = _model(
        {"a": _app("bank", _one_hour(9)), "b": _app("card", _one_hour(20))}, horizon_months=1
    )
    made = plan(model, {"a": [86_400], "b": [86_400]})
    assert [c.hosts_alone for c in made.companies] == [1, 1]
    assert made.pool_needed == (2, 200)  # the peaks never meet: the pool needs one peak
    assert (made.hosts_shared, made.hosts_saved, made.saved_share) == (1, 1, 0.5)
    assert made.peak_hour == 9
    same_hour = plan(
        _model(
            {"a": _app("bank", _one_hour(9)), "b": _app("card", _one_hour(9))}, horizon_months=1
        ),
        {"a": [86_400], "b": [86_400]},
    )
    assert (same_hour.hosts_shared, same_hour.hosts_saved) == (2, 0)


def test_hosts_to_add_is_what_the_pool_lacks() -> None:
    made = plan(_model({"a": _app("x")}, pool_hosts=1, horizon_months=1), {"a": [86_400 * 3]})
    assert made.pool_needed == (6, 600)
    assert (made.hosts_shared, made.hosts_to_add) == (3, 2)


def test_the_forecast_is_a_log_linear_fit() -> None:
    assert forecast_log_linear([100, 200, 400], 2) == pytest.approx([800, 1600])
    assert forecast_log_linear([100, None, 400], 1) == pytest.approx([800])  # gaps are skipped
    assert forecast_log_linear([None, 500, 0], 3) == [500, 500, 500]  # one point: flat
    assert forecast_log_linear([None, None], 2) == [0, 0]


mau = st.floats(0, 5e7, allow_nan=False)
profile = st.lists(st.floats(0, 10), min_size=HOURS, max_size=HOURS).filter(lambda p: max(p) > 0)


@given(st.lists(st.tuples(mau, profile), min_size=1, max_size=4), st.floats(1, 3))
def test_sharing_never_needs_more_and_more_users_never_need_less(
    apps: list[tuple[float, list[float]]], factor: float
) -> None:
    model = _model(
        {f"app{i}": _app(f"c{i % 3}", shape) for i, (_, shape) in enumerate(apps)},
        horizon_months=1,
        headroom=0.2,
    )
    base = {f"app{i}": [users] for i, (users, _) in enumerate(apps)}
    made = plan(model, base)
    sum_of_peaks = sum(c.peaks[0][0] for c in made.companies)
    assert made.pool_peaks[0][0] <= sum_of_peaks * (1 + 1e-9) + 1e-9
    assert made.hosts_shared <= made.hosts_separate
    more = plan(model, {app: [users[0] * factor] for app, users in base.items()})
    for before, after in zip(made.companies, more.companies, strict=True):
        assert all(a >= b for a, b in zip(after.nominal, before.nominal, strict=True))
    assert more.hosts_shared >= made.hosts_shared


@given(st.floats(1, 1e7), st.floats(-0.2, 0.2), st.integers(2, 8))
def test_an_exact_exponential_history_continues(start: float, rate: float, months: int) -> None:
    history = [start * math.exp(rate * t) for t in range(months)]
    expected = start * math.exp(rate * months)
    assert forecast_log_linear(history, 1)[0] == pytest.approx(expected, rel=1e-6)


def test_the_example_file_is_the_built_in_model() -> None:
    assert yaml.safe_load(EXAMPLE.read_text()) == DEFAULT_MODEL
    assert isinstance(parse_model(DEFAULT_MODEL), CapacityModel)


def test_a_bad_model_lists_every_field() -> None:
    problems = parse_model(
        {
            "headroom": -1,
            "host": {"VCPU": 0},
            "apps": {"a": {"company": "", "peak_hour_factor": 0.5, "hourly_profile": [1]}},
        }
    )
    assert isinstance(problems, list)
    fields = {p["field"] for p in problems}
    assert {
        "headroom",
        "host.VCPU",
        "host.MEMORY_MB",
        "apps.a.company",
        "apps.a.requests_per_user_day",
        "apps.a.peak_hour_factor",
        "apps.a.hourly_profile",
        "apps.a.resources",
    } <= fields
    assert parse_model([1]) == [{"field": "(document)", "message": "must be a mapping"}]


def _events(months: list[str], persons: dict[str, list[int]]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for index, month in enumerate(months):
        for name, counts in persons.items():
            for p in range(counts[index]):
                rows.append(
                    {
                        "event_id": f"{month}-{name}-{p}",
                        "app": name,
                        "person_id": f"CI-{p}",
                        "occurred_at": f"{month}-10T12:00:00+09:00",
                        "kind": "login",
                    }
                )
    return rows


def _run(data: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "GROUPCLOUD_DATA_DIR": str(data),
        "GROUPCLOUD_DATABASE_URL": None,
        "GROUPCLOUD_ANALYTICS_SECRET": SECRET,
        "GROUPCLOUD_ANALYTICS_CAPACITY_MODEL": None,
        "GROUPCLOUD_ANALYTICS_KPIS": None,
    }
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_a_plan_over_the_store_through_the_cli(tmp_path: Path) -> None:
    months = ["2026-01", "2026-02", "2026-03"]
    ingest_batch(settings_for(tmp_path), _events(months, {"won_banking": [20, 40, 80],
                                                         "won_card": [30, 30, 30]}))  # fmt: skip
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump({"history_months": 3, "horizon_months": 2}))
    out = tmp_path / "demand.yaml"
    code, text, err = _run(tmp_path, "plan", "capacity", "--month", "2026-03", "--model",
                           str(model), "--scale", "100000", "--pool-hosts", "1", "--json",
                           "--scenario-out", str(out))  # fmt: skip
    assert code == 0, err
    made = json.loads(text)
    banking = next(a for a in made["apps"] if a["app"] == "won_banking")
    assert [m["value"] for m in banking["history"]] == [2e6, 4e6, 8e6]
    assert [m["value"] for m in banking["forecast"]] == pytest.approx([16e6, 32e6])
    assert banking["monthly_growth"] == pytest.approx(1.0)
    assert made["months"] == ["2026-04", "2026-05"]
    bank = next(c for c in made["companies"] if c["company"] == "bank")
    # 32M users x 40 requests / 86,400 s x 2.4 at 09:00 = 35,555.6 requests/s -> 8 VCPU / 100
    assert bank["months"][1]["peak"]["VCPU"] == round(32e6 * 40 / 86_400 * 2.4 * 0.08, 2)
    assert made["pool"]["hosts_to_add"] == made["pool"]["hosts_needed"] - 1
    assert made["pool"]["pool_hosts_from"] == "given"
    assert made["sharing"]["hosts_shared"] <= made["sharing"]["hosts_separate"]
    scenario = load(out)  # the simulator's own loader: a scenario `sim run` accepts
    peak_month = made["pool"]["peak_month"]
    assert scenario.start.isoformat() == f"{peak_month}-01T00:00:00+09:00"
    assert scenario.days == 1
    assert scenario.hosts[0].resources == made["host"]
    requests = scenario.requests()
    assert {r.company for r in requests} <= {"bank", "capital", "card", "savings"}
    # each company's hour runs at least what the plan says it needs that hour
    peak = next(m for m in bank["months"] if m["month"] == peak_month)["peak"]
    busiest = max(
        sum(
            r.resources["VCPU"] for r in requests if r.company == "bank" and r.arrival_s == h * 3600
        )
        for h in range(HOURS)
    )
    assert peak["VCPU"] <= busiest < peak["VCPU"] + made["host"]["VCPU"] // 4 + 1

    code, text, _ = _run(tmp_path, "mau", "capacity", "--month", "2026-03", "--model", str(model))
    assert code == 0
    assert "sharing saves" in text
    assert "have 0 (model)" in text  # no control-plane database in this data directory
    assert "compute per company" in text

    model.write_text("apps: {won_banking: {company: bank}}")
    code, _, err = _run(tmp_path, "mau", "capacity", "--month", "2026-03", "--model", str(model))
    assert code == 1
    assert "validation_error: capacity model" in err
    assert "apps.won_banking.requests_per_user_day: must be a number" in err

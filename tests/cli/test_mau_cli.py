"""``groupcloud mau`` on the data directory (no server): generate, ingest, report, overlap,
and its errors (one ``error: code: detail`` line, exit 1; bad usage exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from groupcloud.analytics.months import Month
from groupcloud.analytics.synthetic import PROFILES, expected_share
from groupcloud.cli.main import app
from tests.analytics.helpers import SECRET, write_csv
from tests.cli.conftest import Entry


def _mau(data_dir: Path, *args: str, secret: str | None = SECRET) -> Result:
    env = {
        "GROUPCLOUD_DATA_DIR": str(data_dir),
        "GROUPCLOUD_DATABASE_URL": None,
        "GROUPCLOUD_ANALYTICS_SECRET": secret,
    }
    return CliRunner().invoke(app, ["mau", *args], env=env)


def test_generate_ingest_and_report_without_a_server(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "events.ndjson.gz"
    made = _mau(data, "generate", "--persons", "400", "--months", "2022-09..2022-10",
                "--seed", "3", "--out", str(out))  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("wrote ")
    assert f"(400 persons, 2022-09..2022-10, seed 3) to {out}" in made.stdout

    loaded = _mau(data, "ingest", str(out), "--json")
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.stdout.splitlines()[-1])
    assert summary["loaded"] == summary["received"] > 0
    again = json.loads(_mau(data, "ingest", str(out), "--json").stdout.splitlines()[-1])
    assert (again["loaded"], again["duplicates"]) == (0, summary["received"])

    reported = _mau(data, "report", "--month", "2022-10", "--json")
    assert reported.exit_code == 0, reported.output
    report = json.loads(reported.stdout.splitlines()[-1])
    assert report["month"] == "2022-10"
    assert report["exact"] is True
    assert set(report["apps"]) == {p.app for p in PROFILES}
    assert max(report["apps"].values()) <= report["integrated_mau"] <= 400
    banking = expected_share(PROFILES[0], Month(2022, 10)) * 400  # 7.19M of 10M persons
    assert abs(report["apps"]["won_banking"] - banking) < 40

    approx = json.loads(
        _mau(data, "report", "--month", "2022-10", "--approx", "--json").stdout.splitlines()[-1]
    )
    assert approx["exact"] is False
    assert approx["integrated_mau"] == report["integrated_mau"]  # below k hashes: exact
    assert approx["segments"][0]["mau_lower"] <= approx["integrated_mau"]
    spanned = _mau(data, "sketch", "--span", "2022-09..2022-10", "--apps", "won_card", "--json")
    assert spanned.exit_code == 0, spanned.output
    card = json.loads(spanned.stdout.splitlines()[-1])
    assert card["apps"] == ["won_card"]
    assert report["apps"]["won_card"] <= card["estimate"] <= 400
    assert "persons (exact" in _mau(data, "sketch", "--span", "2022-10").stdout
    assert _mau(data, "sketch", "--span", "2022-10..2022-09").exit_code == 2

    trend = json.loads(_mau(data, "trend", "--months", "2022-10", "--json").stdout)
    integrated = trend["rows"][0]
    assert (integrated["app"], integrated["mau"]) == (None, report["integrated_mau"])
    assert integrated["retained"] + integrated["churned"] == report["segments"][0]["previous_mau"]
    assert "RESURRECTED" in _mau(data, "trend", "--months", "2022-09..2022-10").stdout
    rolling = json.loads(_mau(data, "rolling", "--span", "2022-10-31", "--json").stdout)
    assert rolling["days"][0]["persons"] >= report["integrated_mau"] - 400  # 31 days vs 30
    ahead = _mau(data, "forecast", "--months", "2022-09..2022-10", "--target", "1000000")
    assert ahead.exit_code == 0, ahead.output
    assert "fit over 2 months" in ahead.stdout
    assert _mau(data, "forecast", "--model", "cubic").exit_code == 2

    table = _mau(data, "report", "--month", "2022-10")
    assert "integrated" in table.stdout
    assert "of target 15,000,000" in table.stdout
    overlap = _mau(data, "overlap", "--month", "2022-10", "--json")
    matrix = json.loads(overlap.stdout)["matrix"]
    assert matrix["won_banking"]["won_banking"] == report["apps"]["won_banking"]


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        made = _mau(tmp_path, "generate", "--persons", "50", "--months", "2022-10",
                    "--seed", "9", "--out", str(tmp_path / name))  # fmt: skip
        assert made.exit_code == 0, made.output
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    exists = _mau(tmp_path, "generate", "--out", str(tmp_path / "a.csv"))
    assert exists.exit_code == 2
    assert "exists; pass --force" in exists.stderr


def test_bad_rows_are_listed_with_file_and_line(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [
            ("e1", "won_card", "CI-1", "2026-02-01T10:00:00+09:00", "login"),
            ("e2", "won_card", "CI-2", "2026-02-01T10:00:00", "login"),
            ("e3", "won_brandnew", "CI-3", "2026-02-01T10:00:00Z", "login"),
        ],
    )
    result = _mau(tmp_path / "data", "ingest", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"{path}:3: occurred_at: has no UTC offset")
    assert f"{path}: 3 rows, 2 loaded, 0 duplicates, 1 bad; new apps: won_brandnew" in (
        result.stdout
    )


def test_errors_are_one_line_and_bad_usage_exits_2(tmp_path: Path, entry: Entry) -> None:
    path = write_csv(tmp_path / "a.csv", [])
    env = {"GROUPCLOUD_DATA_DIR": str(tmp_path / "data")}
    missing = entry("mau", "ingest", str(path), env=env)
    assert missing.code == 1
    assert missing.stderr.startswith("error: analytics_secret_missing: set GROUPCLOUD_ANALYTICS")
    assert len(missing.stderr.strip().splitlines()) == 1
    env["GROUPCLOUD_ANALYTICS_SECRET"] = SECRET
    unknown = entry("mau", "ingest", str(tmp_path / "a.xlsx"), env=env)
    assert unknown.code == 1
    assert unknown.stderr.startswith("error: validation_error: ")
    assert entry("mau", "report", "--month", "2026-13", env=env).code == 2
    assert entry("mau", "generate", "--out", "x.csv", "--months", "2022-10..2022-01").code == 2

"""Every benchmark script runs end to end at a tiny size and prints what it promises.

The scripts are found by listing ``benchmarks/`` (every file with a ``__main__`` block),
so a new script without a smoke run here fails ``test_every_benchmark_script_has_a_smoke_run``
and its own case below. Each run is a separate process on its own temporary database,
bounded by ``TIMEOUT_S`` (a hang guard: the sizes make each run a few seconds). Only the
shape and the sense of the figures are checked, never their speed: the machines that run
the suite are shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(
    p.name for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()
)
TIMEOUT_S = 120
"""Per run, a hang guard: the tiny sizes take 0.3-9 s on a quiet 2-core VM (compare_peer.py,
which starts a server, the longest) and up to about 35 s under a full ``make test`` beside
other work, so only a hang reaches it."""

Check = Callable[[dict[str, Any], Path], None]
"""Checks a run's JSON (and, given the temporary directory, what it left there)."""


@dataclass(frozen=True)
class Smoke:
    args: tuple[str, ...]  # "{tmp}" is replaced by the test's temporary directory
    check: Check


SMOKES: dict[str, list[Smoke]] = {}


def smoke(script: str, *args: str) -> Callable[[Check], Check]:
    """Register ``check`` as a smoke run of ``script`` with ``args``."""

    def register(check: Check) -> Check:
        SMOKES.setdefault(script, []).append(Smoke(args, check))
        return check

    return register


def run(script: str, args: tuple[str, ...], tmp: Path) -> dict[str, Any]:
    """Run ``script`` and read the JSON object on its last line."""
    command = [sys.executable, str(BENCHMARKS / script), *(a.format(tmp=tmp) for a in args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing"
    result = json.loads(lines[-1])
    assert isinstance(result, dict), lines[-1]
    return result


def _latencies(summary: dict[str, float]) -> None:
    assert 0 < summary["p50_us"] <= summary["p99_us"], summary
    assert summary["mean_us"] > 0, summary


# --- the engines, no database ---------------------------------------------------------------


@smoke("placement.py", "--hosts", "50", "--decisions", "20")
def placement(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "placement"
    assert out["hosts"] == 50
    assert out["failed"] == 0
    assert out["placements"] == 2 * 20 + 10  # steady per strategy, then at least 10 gangs
    for case in ("pack_cold", "pack_steady", "spread_cold", "spread_steady", "gang8"):
        _latencies(out[case])
    # each gang's claim was applied: the gangs took hosts, 8 distinct ones at least
    assert 8 <= out["gang8_hosts_used"] <= 50


@smoke("offers.py", "--requests", "500", "--providers", "2", "--regions", "4",
       "--types", "50", "--baseline", "50")  # fmt: skip
def offers(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "offers"
    assert (out["offers"], out["zones"], out["requests"]) == (2 * 4 * 50, 8, 500)
    assert out["agree"] is True  # the engine chose what the plain loop chose
    assert 0 < out["placed"] <= 500
    assert out["decisions_per_s"] > 0
    assert out["ratio"] > 0


@smoke("packing.py", "--quick")
def packing(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "packing"
    assert out["default_policy"] == "fgd-fluid"
    runs = out["results"]["default"]
    assert set(runs) == {"fgd-fluid", "best-fit"}
    for line in runs.values():
        assert 0 < line["allocation_ratio"] <= 1
        assert line["tasks_per_s"] > 0
        assert line["unallocated_pct"] == pytest.approx(
            100 * (1 - line["allocation_ratio"]), abs=1e-3
        )
    assert set(out["tasks_per_s"]) == set(runs)
    goal = out["goal"]["default"]
    assert goal["met"] == (goal["fewer_unallocated"] >= 0.25)


@smoke("simulate.py", "--quick")
def simulate(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "simulate"
    assert out["quick"] is True
    assert out["requests"] > 0
    assert out["runs"] > 0
    assert out["events"] > 0
    assert out["events_per_s"] > 0
    head = out["headline"]
    assert 0 < head["hosts_group"] <= head["hosts_separate"]
    assert head["hosts_saved"] == head["hosts_separate"] - head["hosts_group"]
    assert set(out["settings"]) >= {"separate", "group"}
    for line in out["settings"].values():
        assert line["hosts"] > 0
        assert line["events"] > 0
        assert 0 < line["admitted_share"] <= 1
        assert 0 <= line["wait_p50_min"] <= line["wait_p95_min"]
        assert all(0 <= u <= 1 for u in line["utilisation"].values()), line
        assert line["reclaims"] <= line["reclaim_notices"]


@smoke("metering.py", "--allocations", "2000")
def metering(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "metering"
    assert out["allocations"] == 2000
    assert out["records"] > 2000  # a record per class, more for loans and repayments
    assert (out["months"], out["companies"]) == (12, 4)
    assert out["statements"] == 12 * 4
    assert out["lines"] > out["statements"]
    assert out["credit_lines"] > 0
    assert out["seconds"] > 0
    assert int(out["charges_krw"]) > int(out["credits_krw"]) > 0
    assert out["agree"] is True  # the DuckDB path stated what the pure engine states


# --- the service layer and the API, on SQLite ----------------------------------------------


def _claims(out: dict[str, Any], mode: str, claims: int) -> None:
    assert out["benchmark"] == "claims"
    assert (out["mode"], out["database"], out["claims"]) == (mode, "sqlite", claims)
    assert out["claims_per_s"] > 0
    assert 0 < out["p50_ms"] <= out["p99_ms"]
    assert out["runs_claims_per_s"] == [out["claims_per_s"]]
    assert out["runs_failed"] == [out["failed"]]


@smoke("claims.py", "--hosts", "5", "--claims", "10")
def claims_service(out: dict[str, Any], tmp: Path) -> None:
    _claims(out, "service", 10)
    assert out["failed"] == 0


UNITS_PER_HOST = 262144 // 4096
"""Claims one benchmark host takes: its memory is the short resource."""


@smoke("claims.py", "--hosts", "1", "--claims", str(UNITS_PER_HOST + 2))
def claims_beyond_the_pool_are_counted_as_failed(out: dict[str, Any], tmp: Path) -> None:
    _claims(out, "service", UNITS_PER_HOST + 2)
    assert out["failed"] == 2


PEER_STUB = """
import argparse, json
parser = argparse.ArgumentParser()
parser.add_argument("--hosts", type=int)
parser.add_argument("--claims", type=int)
parser.add_argument("--json", action="store_true")
args = parser.parse_args()
print(f"stub peer: {args.claims} claims")
print(json.dumps({"project": "peer-stub", "hosts": args.hosts, "claims": args.claims,
                  "claims_per_s": 2.0, "failed": 0}))
"""
"""Stands in for ../shared/bench/placement_peer.py (which builds a venv of OpenStack
Placement from PyPI): compare_peer.py's own work, both claim modes and the ratios, is what
is smoke-run here."""


@smoke("compare_peer.py", "--hosts", "5", "--claims", "10", "--repeat", "1",
       "--peer", "{tmp}/peer.py")  # fmt: skip
def compare_peer(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "compare_peer"
    assert "compare_peer.py" in out["command"]
    assert datetime.fromisoformat(out["measured_at"]).tzinfo is not None
    assert (out["hosts"], out["claims"]) == (5, 10)
    assert out["peer"]["project"] == "peer-stub"
    assert out["failed"] == {"peer": 0, "service": 0, "http": 0}
    for mode in ("service", "http"):
        ours = out["groupcloud"][mode]
        _claims(ours, mode, 10)
        assert out["ratio"][mode] == round(ours["claims_per_s"] / 2.0, 1)


@smoke("admission.py", "--quick")
def admission(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "admission"
    assert out["database"] == "sqlite"
    assert out["hosts"] > 0
    assert out["companies"] == 8
    assert out["admissions_per_s"] > 0
    assert out["cycles"] >= 2  # the last cycle admits nothing
    assert 0 < out["admitted"] <= out["pending"]
    assert out["admitted"] + out["pending_left"] == out["pending"]
    assert 0 < out["borrowed"] < out["admitted"]
    assert out["setup"]
    assert out["reference"]


@smoke("reuse.py", "--quick")
def reuse(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "reuse"
    without, with_ = out["runs"]["no_borrowing"], out["runs"]["borrowing"]
    assert without["borrowed_share"] == 0
    assert without["borrowing_admissions"] == 0
    assert 0 < with_["borrowed_share"] < 1
    for line in (without, with_):
        assert 0 < line["utilisation"] <= 1
        assert 0 < line["served_share"] <= 1
        assert line["used_vcpu_h"] <= line["asked_vcpu_h"]
        assert line["wait_mean_min"] >= 0
        assert 0 <= line["wait_p95_min"] <= line["wait_p99_min"]
        assert line["requests"] >= line["done"] + line["abandoned"]
        assert line["reclaims"] <= line["reclaim_notices"]
    assert without["reclaim_notices"] == 0
    # Borrowing lets the same demand use more of the same pool.
    assert with_["utilisation"] >= without["utilisation"]
    assert with_["served_share"] >= without["served_share"]


@smoke("ipam.py", "--quick")
def ipam(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "ipam"
    assert out["ip_allocations_per_s"] > 0
    assert out["prefixes_per_s"] > 0
    assert out["ip_allocations_round_robin_per_s"] > 0
    stored = 2 * out["ips"] + 2 * out["dense_subnet"]["allocations"]
    assert out["verified"] == {
        "addresses": stored,
        "distinct_addresses": stored,
        "prefixes": out["prefixes"],
    }
    dense = out["dense_subnet"]
    assert dense["groupcloud"]["n"] == dense["netbox_style_scan"]["n"] > 0
    assert dense["ratio"] > 0


@smoke("mau.py", "--events", "20000", "--queries", "3", "--cache", "{tmp}/cache")
def mau(out: dict[str, Any], tmp: Path) -> None:
    assert out["benchmark"] == "mau"
    assert out["loaded"] == out["events"] > 15_000
    for key in ("ingest_events_per_s", "exact_month_s", "sketch_query_ms", "peak_rss_mb"):
        assert out[key] > 0, key
    check = out["sketch_check"]
    assert check["within_bounds"]
    assert check["exact"] == out["integrated_mau"]
    # the generated file is cached; the event store is removed
    assert [p.name for p in (tmp / "cache").iterdir()] == ["mau-20000-seed1.parquet"]


# --- the tests ------------------------------------------------------------------------------


def test_every_benchmark_script_has_a_smoke_run() -> None:
    assert SCRIPTS, f"no benchmark scripts found in {BENCHMARKS}"
    missing = sorted(set(SCRIPTS) - set(SMOKES))
    assert not missing, f"benchmark scripts without a smoke run in this file: {missing}"
    gone = sorted(set(SMOKES) - set(SCRIPTS))
    assert not gone, f"smoke runs of scripts that are not in benchmarks/: {gone}"


CASES = [
    pytest.param(script, i, id=f"{script}:{s.check.__name__}")
    for script in SCRIPTS
    for i, s in enumerate(SMOKES.get(script, []))
] + [pytest.param(script, -1, id=f"{script}:missing") for script in SCRIPTS if script not in SMOKES]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "case"), CASES)
def test_the_benchmark_runs_at_a_tiny_size_and_prints_sane_json(
    script: str, case: int, tmp_path: Path
) -> None:
    if case < 0:
        pytest.fail(f"benchmarks/{script} has no smoke run: register one with @smoke")
    (tmp_path / "peer.py").write_text(PEER_STUB)
    one = SMOKES[script][case]
    one.check(run(script, one.args, tmp_path), tmp_path)

"""The sharing and packing benchmarks run end to end in their quick mode and print what
they promise.

The scripts run as separate processes (the sharing ones side by side, on their own
temporary SQLite files; the packing one on a slice of the openb trace). Only the shape and
the sense of the figures are checked, never their speed: the machines that run the suite
are shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run_all(*commands: list[str]) -> list[dict[str, Any]]:
    """Start every script at once, then read the JSON object on each one's last line."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(BENCHMARKS / script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script, *args in commands
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]
        last = out.strip().splitlines()[-1]
        results.append(json.loads(last))
    return results


@pytest.mark.slow
def test_admission_reuse_and_ipam_benchmarks_print_sane_json() -> None:
    admission, reuse, ipam = _run_all(
        ["admission.py", "--quick"], ["reuse.py", "--quick"], ["ipam.py", "--quick"]
    )

    assert ipam["benchmark"] == "ipam"
    assert ipam["ip_allocations_per_s"] > 0
    assert ipam["prefixes_per_s"] > 0
    assert ipam["ip_allocations_round_robin_per_s"] > 0
    stored = 2 * ipam["ips"] + 2 * ipam["dense_subnet"]["allocations"]
    assert ipam["verified"] == {
        "addresses": stored,
        "distinct_addresses": stored,
        "prefixes": ipam["prefixes"],
    }
    dense = ipam["dense_subnet"]
    assert dense["groupcloud"]["n"] == dense["netbox_style_scan"]["n"] > 0
    assert dense["ratio"] > 0

    assert admission["benchmark"] == "admission"
    assert admission["database"] == "sqlite"
    assert admission["hosts"] > 0
    assert admission["companies"] == 8
    assert admission["admissions_per_s"] > 0
    assert admission["cycles"] >= 2  # the last cycle admits nothing
    assert 0 < admission["admitted"] <= admission["pending"]
    assert admission["admitted"] + admission["pending_left"] == admission["pending"]
    assert 0 < admission["borrowed"] < admission["admitted"]
    assert admission["setup"]
    assert admission["reference"]

    assert reuse["benchmark"] == "reuse"
    without, with_ = reuse["runs"]["no_borrowing"], reuse["runs"]["borrowing"]
    assert without["borrowed_share"] == 0
    assert without["borrowing_admissions"] == 0
    assert 0 < with_["borrowed_share"] < 1
    for run in (without, with_):
        assert 0 < run["utilisation"] <= 1
        assert 0 < run["served_share"] <= 1
        assert run["used_vcpu_h"] <= run["asked_vcpu_h"]
        assert run["wait_mean_min"] >= 0
        assert 0 <= run["wait_p95_min"] <= run["wait_p99_min"]
        assert run["requests"] >= run["done"] + run["abandoned"]
        assert run["reclaims"] <= run["reclaim_notices"]
    assert without["reclaim_notices"] == 0
    # Borrowing lets the same demand use more of the same pool.
    assert with_["utilisation"] >= without["utilisation"]
    assert with_["served_share"] >= without["served_share"]


def test_packing_benchmark_prints_allocation_speed_and_the_goal() -> None:
    (packing,) = _run_all(["packing.py", "--quick"])
    assert packing["benchmark"] == "packing"
    assert packing["default_policy"] == "fgd-fluid"
    runs = packing["results"]["default"]
    assert set(runs) == {"fgd-fluid", "best-fit"}
    for line in runs.values():
        assert 0 < line["allocation_ratio"] <= 1
        assert line["tasks_per_s"] > 0
        assert line["unallocated_pct"] == pytest.approx(
            100 * (1 - line["allocation_ratio"]), abs=1e-3
        )
    assert set(packing["tasks_per_s"]) == set(runs)
    goal = packing["goal"]["default"]
    assert goal["met"] == (goal["fewer_unallocated"] >= 0.25)

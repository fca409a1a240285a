"""benchmarks/mau.py runs end to end on a tiny volume and prints the figures it promises
(their sense is checked, never their speed: the machines are shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_mau_benchmark_prints_ingest_exact_and_sketch_figures(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCHMARKS / "mau.py"), "--events", "20000",
               "--queries", "3", "--cache", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "mau"
    assert result["loaded"] == result["events"] > 15_000
    for key in ("ingest_events_per_s", "exact_month_s", "sketch_query_ms", "peak_rss_mb"):
        assert result[key] > 0, key
    check = result["sketch_check"]
    assert check["within_bounds"]
    assert check["exact"] == result["integrated_mau"]
    # the generated file is cached; the event store is removed
    assert [p.name for p in tmp_path.iterdir()] == ["mau-20000-seed1.parquet"]

"""The group common cloud's headline: hosts needed by separate clouds against the group.

Runs ``groupcloud sim run``'s comparison (``simulator.experiment.compare``) on the
example scenario (a week of the financial group: bank, card, capital, savings, GPU
training at night), searches the pool size of both settings to the scenario's target
(for every company and workload kind: every request runs, p95 wait <= 30 min for online
services, longer for batch and training) and reports the figures of each setting plus
the simulator's own speed (runs, events, events per second).

    python benchmarks/simulate.py [--scenario FILE] [--seed N] [--quick]

``--quick``: one day at a third of the rates (a smoke test). Progress goes to stderr;
the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import timedelta
from pathlib import Path

from calibration import cpu_calibration_ms
from groupcloud import __version__
from groupcloud.simulator.experiment import compare
from groupcloud.simulator.report import summary
from groupcloud.simulator.scenario import load

KEPT = ("hosts", "hosts_by_group", "admitted_share", "wait_p50_min", "wait_p95_min",
        "utilisation", "reclaim_notices", "reclaims", "events", "seconds")  # fmt: skip
EXAMPLE = Path(__file__).resolve().parents[1] / "examples/scenarios/financial-group.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=EXAMPLE)
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario's")
    parser.add_argument("--quick", action="store_true", help="one day at a third of the rates")
    args = parser.parse_args()
    scenario = load(args.scenario)
    if args.seed is not None:
        scenario = scenario.model_copy(update={"seed": args.seed})
    if args.quick:
        workload = scenario.workload.model_copy(update={"scale": scenario.workload.scale / 3})
        start = scenario.start + timedelta(days=3)  # the month-end Thursday of the example
        scenario = scenario.model_copy(update={"days": 1.0, "workload": workload, "start": start})
    started = time.perf_counter()
    requests = scenario.requests()
    last = [""]

    def progress(label: str, done: float) -> None:
        if label != last[0]:
            last[0] = label
            print(f"  {label}", file=sys.stderr, flush=True)

    comparison = compare(scenario, requests, progress)
    seconds = time.perf_counter() - started
    figures = summary(comparison, seconds)
    head = figures["headline"]
    result = {
        "project": "groupcloud",
        "version": __version__,
        "benchmark": "simulate",
        "database": "sqlite",
        "python": platform.python_version(),
        "scenario": scenario.name,
        "seed": scenario.seed,
        "days": scenario.days,
        "quick": args.quick,
        **{k: figures[k] for k in ("requests", "target", "headline", "runs", "events")},
        "settings": {name: {k: s[k] for k in KEPT} for name, s in figures["settings"].items()},
        "seconds": round(seconds, 1),
        "events_per_s": figures["events_per_s"],
        "cpu_calibration_ms": cpu_calibration_ms(),
    }
    group = figures["settings"]["group"]
    print(
        f"{scenario.name}: group cloud {head['hosts_group']} hosts vs separate clouds "
        f"{head['hosts_separate']} ({head['fewer_hosts_pct']} % fewer) at p95 wait <= "
        f"{scenario.target.p95_wait_min:g} min; group VCPU utilisation "
        f"{100 * group['utilisation'].get('VCPU', 0):.1f} %, {group['reclaims']} reclaims; "
        f"{figures['runs']} runs, {figures['events']} events in {seconds:.1f} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

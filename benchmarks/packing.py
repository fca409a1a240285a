"""Placement quality and speed on the Alibaba openb trace (ATC'23 "Beware of Fragmentation").

For every pod list and policy, ``sim pack``'s experiment: tasks drawn from the pod list
arrive into the empty cluster of 1,523 nodes (6,212 GPUs) until their GPU demand reaches
the GPU capacity; the figure is the share of GPU capacity allocated then. Also timed:
tasks placed per second (the whole replay, placement and claims on the index).

The goal of issue #6 is checked for the default policy: at least 25 % fewer unallocated
GPUs than best-fit on every pod list (``goal``).

    python benchmarks/packing.py [--traces default,gpushare40,...] [--policies ...]
                                 [--seeds 0,1,2] [--scale N] [--trace-dir DIR] [--quick]

``--scale N`` repeats the node list N times (7: 10,661 nodes) to time a large pool.
``--resample [BASE/]KIND[:PERCENT][@SEED],...`` adds pod lists redrawn from pod list BASE
(default: default) by ``groupcloud.simulator.resample`` (bootstrap, gpushare, multigpu,
gpuspec, cpu), named ``BASE~KIND PERCENT@SEED``: lists no policy was ever tuned on.
``--quick`` is a smoke run (a slice of the default trace, two policies). Progress goes to
stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from groupcloud import __version__
from groupcloud.placement.policies import DEFAULT_POLICY, POLICIES
from groupcloud.simulator.pack import pack
from groupcloud.simulator.resample import resample
from groupcloud.simulator.trace import Node, Pod, read_nodes, read_pods, trace_dir

TRACES = ("default", "gpushare40", "multigpu30", "gpuspec33", "cpu050")
PAPER = tuple(p for p in POLICIES if p != "spread")
GOAL = 0.75
"""The default policy may leave at most this share of best-fit's unallocated GPUs."""


def scaled(nodes: list[Node], times: int) -> list[Node]:
    return [replace(n, name=f"{n.name}-{k}") for k in range(times) for n in nodes]


def variants(specs: str, folder: Path, nodes: list[Node]) -> dict[str, list[Pod]]:
    """``[BASE/]KIND[:PERCENT][@SEED]`` each: redrawn from pod list BASE (default)."""
    out: dict[str, list[Pod]] = {}
    for spec in filter(None, specs.split(",")):
        base, _, rest = spec.rpartition("/")
        head, _, seed = rest.partition("@")
        kind, _, percent = head.partition(":")
        pods = read_pods(folder / f"openb_pod_list_{base or 'default'}.csv")
        name = f"{base or 'default'}~{kind}{percent}@{seed or 0}"
        out[name] = resample(pods, kind, float(percent or 0), seed=int(seed or 0), nodes=nodes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument("--policies", default=",".join(PAPER))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--scale", type=int, default=1, help="repeat the node list N times")
    parser.add_argument("--trace-dir", type=Path, default=None, help="default: the issue's")
    parser.add_argument("--resample", default="", help="[BASE/]KIND[:PERCENT][@SEED],...")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    folder = args.trace_dir or trace_dir()
    traces = ["default"] if args.quick else args.traces.split(",")
    policies = [DEFAULT_POLICY, "best-fit"] if args.quick else args.policies.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    nodes = scaled(read_nodes(folder / "openb_node_list_all_node.csv"), args.scale)
    if args.quick:
        nodes = nodes[::8]  # every 8th node: the same mix, an eighth of the size

    lists = {trace: read_pods(folder / f"openb_pod_list_{trace}.csv") for trace in traces}
    lists.update(variants(args.resample, folder, nodes))

    results: dict[str, dict[str, Any]] = {}
    speed: dict[str, list[float]] = {p: [] for p in policies}
    for trace, pods in lists.items():
        results[trace] = {}
        for policy in policies:
            ratios, failed, tasks, seconds = [], [], 0, 0.0
            for seed in seeds:
                started = time.perf_counter()
                result = pack(nodes, pods, policy, seed=seed)
                seconds += time.perf_counter() - started
                ratios.append(result.allocation_ratio)
                failed.append(result.failed_tasks)
                tasks += result.tasks
            speed[policy].append(tasks / seconds)
            results[trace][policy] = {
                "allocation_ratio": round(statistics.fmean(ratios), 5),
                "unallocated_pct": round(100 * (1 - statistics.fmean(ratios)), 3),
                "runs": [round(r, 5) for r in ratios],
                "failed_tasks": round(statistics.fmean(failed), 1),
                "tasks_per_s": round(tasks / seconds),
                "seconds_per_run": round(seconds / len(seeds), 2),
            }
            line = results[trace][policy]
            print(
                f"{trace:16s} {policy:12s} {100 * line['allocation_ratio']:6.2f} % allocated "
                f"({line['unallocated_pct']:5.2f} % not), {line['tasks_per_s']} tasks/s",
                file=sys.stderr,
                flush=True,
            )

    goal: dict[str, Any] = {}
    if DEFAULT_POLICY in policies and "best-fit" in policies:
        for trace, line in results.items():
            ours, theirs = line[DEFAULT_POLICY], line["best-fit"]
            fewer = 1 - ours["unallocated_pct"] / max(theirs["unallocated_pct"], 1e-9)
            goal[trace] = {
                "default_unallocated_pct": ours["unallocated_pct"],
                "best_fit_unallocated_pct": theirs["unallocated_pct"],
                "fewer_unallocated": round(fewer, 3),
                "met": fewer >= 1 - GOAL,
            }
    print(
        json.dumps(
            {
                "project": "groupcloud",
                "version": __version__,
                "benchmark": "packing",
                "python": platform.python_version(),
                "nodes": len(nodes),
                "gpus": sum(n.gpus for n in nodes),
                "seeds": seeds,
                "default_policy": DEFAULT_POLICY,
                "tasks_per_s": {p: round(statistics.fmean(v)) for p, v in speed.items()},
                "results": results,
                "goal": goal,
            }
        )
    )


if __name__ == "__main__":
    main()

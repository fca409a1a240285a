"""What a comparison measured, as one JSON document and three PNG plots.

Per setting: hosts (per kind) and capacity, requests admitted (ran at least once) and
given up, demand asked and served (VCPU-hours, GPU-hours), waits until first run
(p50, p95, mean; nearest rank), utilisation of VCPU and GPU over the simulated time
(capacity-hours used / capacity-hours there), reclaim notices and reclaims, borrowed
VCPU-hours (use above the company's nominal), and the simulation's own cost (runs,
events, seconds). The headline: hosts the separate clouds need against the group's,
at the same target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers

import matplotlib.pyplot as plt
import numpy as np

from groupcloud.simulator.demand import Request
from groupcloud.simulator.des import RunResult, Sample
from groupcloud.simulator.experiment import Comparison
from groupcloud.simulator.search import percentile

__all__ = ["PLOTS", "headline", "plot", "run_summary", "step_values", "summary"]

PLOTS = ("utilisation.png", "queue.png", "company_share.png")
LABELS = {
    "separate": "separate clouds",
    "group_same_hosts": "group cloud, same hosts",
    "group": "group cloud, sized",
}
CLASSES = ("VCPU", "GPU")


def step_values(samples: Sequence[Sample], grid: np.ndarray, value: Any) -> np.ndarray:
    """``value(sample)`` of the sample in force at each time of ``grid`` (0 before the
    first): the state is piecewise constant between events."""
    if not samples:
        return np.zeros(len(grid))
    times = np.array([s.t for s in samples])
    values = np.array([float(value(s)) for s in samples])
    idx = np.searchsorted(times, grid, side="right") - 1
    return np.where(idx >= 0, values[np.maximum(idx, 0)], 0.0)


def _integral(samples: Sequence[Sample], horizon_s: float, value: Any) -> float:
    """The time integral of ``value(sample)`` over [0, horizon] (unit x seconds)."""
    total = 0.0
    for s, nxt in zip(samples, [*samples[1:], None], strict=True):
        end = horizon_s if nxt is None else min(nxt.t, horizon_s)
        if end > s.t:
            total += float(value(s)) * (end - s.t)
    return total


def run_summary(result: RunResult, requests: Sequence[Request]) -> dict[str, Any]:
    """The figures of one run."""
    pool, horizon = result.pool, result.horizon_s
    capacity = pool.capacity()
    waits = [w for w in result.waits_s if w is not None]
    utilisation = {
        rc: round(_integral(result.samples, horizon, lambda s, rc=rc: s.used.get(rc, 0))
                  / (capacity[rc] * horizon), 4)
        for rc in CLASSES if capacity.get(rc)
    }  # fmt: skip
    per_company: dict[str, Any] = {}
    for company in sorted(pool.quotas):
        idx = [i for i, r in enumerate(requests) if r.company == company]
        cw = [w for i in idx if (w := result.waits_s[i]) is not None]
        nominal = pool.quotas[company].get("VCPU")
        nominal_vcpu = nominal.nominal if nominal else 0

        def borrowed(s: Sample, c: str = company, n: int = nominal_vcpu) -> float:
            return max(0, s.used_by_company.get(c, {}).get("VCPU", 0) - n)

        def used(s: Sample, c: str = company) -> float:
            return s.used_by_company.get(c, {}).get("VCPU", 0)

        per_company[company] = {
            "requests": len(idx),
            "admitted": len(cw),
            "wait_p50_min": round(percentile(cw, 50) / 60, 1),
            "wait_p95_min": round(percentile(cw, 95) / 60, 1),
            "nominal_vcpu": nominal_vcpu,
            "used_vcpu_h": round(_integral(result.samples, horizon, used) / 3600, 1),
            "borrowed_vcpu_h": round(_integral(result.samples, horizon, borrowed) / 3600, 1),
        }
    return {
        "hosts": pool.host_count,
        "hosts_by_group": {g.name: g.count for g in pool.hosts},
        "capacity": capacity,
        "requests": result.requests,
        "admitted": result.admitted,
        "admitted_share": round(result.admitted / result.requests, 4) if result.requests else 1,
        "admitted_at_once": result.admitted_at_once,
        "abandoned": result.abandoned,
        "unfinished": result.unfinished,
        "asked": {rc: round(result.asked.get(rc, 0.0), 1) for rc in CLASSES},
        "served": {rc: round(result.served.get(rc, 0.0), 1) for rc in CLASSES},
        "wait_p50_min": round(percentile(waits, 50) / 60, 1),
        "wait_p95_min": round(percentile(waits, 95) / 60, 1),
        "wait_mean_min": round(float(np.mean(waits)) / 60, 1) if waits else 0.0,
        "waited_share": round(sum(1 for w in waits if w > 0) / len(waits), 4) if waits else 0,
        "utilisation": utilisation,
        "reclaim_notices": result.reclaim_notices,
        "reclaims": result.reclaims,
        "per_company": per_company,
        "rounds": result.rounds,
        "events": result.events,
        "seconds": round(result.seconds, 2),
    }


def headline(separate_hosts: int, group_hosts: int) -> dict[str, Any]:
    saved = separate_hosts - group_hosts
    return {
        "hosts_separate": separate_hosts,
        "hosts_group": group_hosts,
        "hosts_saved": saved,
        "fewer_hosts_pct": round(100 * saved / separate_hosts, 1) if separate_hosts else 0.0,
    }


def summary(comparison: Comparison, seconds: float) -> dict[str, Any]:
    """The JSON summary of a comparison (``summary.json``)."""
    sc = comparison.scenario
    reqs = comparison.requests
    settings = {name: run_summary(result, reqs) for name, result in comparison.results().items()}
    events = comparison.events
    return {
        "scenario": sc.name,
        "seed": sc.seed,
        "start": sc.start.isoformat(),
        "days": sc.days,
        "target": sc.target.model_dump(),
        "reclaim": sc.reclaim.model_dump(),
        "requests": len(reqs),
        "requests_by_company": _count(r.company for r in reqs),
        "requests_by_kind": _count(r.kind or "-" for r in reqs),
        "headline": headline(settings["separate"]["hosts"], settings["group"]["hosts"]),
        "settings": settings,
        "search": {
            "separate": [_probe(p.counts, p.ok) for p in comparison.separate.probes],
            "group": [_probe(p.counts, p.ok) for p in comparison.group.probes],
        },
        "runs": comparison.runs,
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds) if seconds else 0,
    }


def _probe(counts: Mapping[Any, int], ok: Mapping[Any, bool]) -> dict[str, Any]:
    def name(key: Any) -> str:
        return "/".join(key) if isinstance(key, tuple) else str(key)

    return {"hosts": {name(k): n for k, n in counts.items()},
            "met": {name(k): v for k, v in ok.items()}}  # fmt: skip


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def plot(comparison: Comparison, out_dir: Path, bin_s: float = 3600.0) -> list[Path]:
    """``utilisation.png`` (VCPU and GPU, each setting), ``queue.png`` (requests
    waiting) and ``company_share.png`` (VCPU used per company in the sized group
    cloud), hourly means over the simulated time; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    horizon = comparison.scenario.horizon_s
    grid = np.arange(0.0, horizon, 60.0)
    hours = grid / 3600
    per_bin = max(1, int(bin_s // 60))

    def binned(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(values) // per_bin * per_bin
        return hours[:n:per_bin], values[:n].reshape(-1, per_bin).mean(axis=1)

    results = comparison.results()
    paths = [out_dir / name for name in PLOTS]
    title = f"{comparison.scenario.name}: {comparison.scenario.days:g} days from "
    title += comparison.scenario.start.strftime("%a %Y-%m-%d %H:%M %z")

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for ax, rc in zip(axes, CLASSES, strict=True):
        for name, result in results.items():
            cap = result.pool.capacity().get(rc, 0)
            if not cap:
                continue
            used = step_values(result.samples, grid, lambda s, rc=rc: s.used.get(rc, 0))
            x, y = binned(100 * used / cap)
            ax.plot(x, y, label=f"{LABELS[name]} ({result.pool.host_count} hosts)")
        ax.set_ylabel(f"{rc} used (%)")
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize="small")
    axes[0].set_title(title)
    axes[-1].set_xlabel("hours from the start")
    _save(fig, paths[0])

    fig, ax = plt.subplots(figsize=(10, 4))
    for name, result in results.items():
        x, y = binned(step_values(result.samples, grid, lambda s: s.pending))
        ax.plot(x, y, label=f"{LABELS[name]} ({result.pool.host_count} hosts)")
    ax.set_ylabel("requests waiting (hourly mean)")
    ax.set_xlabel("hours from the start")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    _save(fig, paths[1])

    _company_share(comparison.group.result, grid, binned, paths[2])
    return paths


def _company_share(
    group: RunResult,
    grid: np.ndarray,
    binned: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    path: Path,
) -> None:
    """The sized group cloud's VCPU, stacked by company."""
    cap = group.pool.capacity().get("VCPU", 1)
    companies = sorted(group.pool.quotas)
    stacks = []
    x = grid
    for c in companies:
        used = step_values(
            group.samples, grid, lambda s, c=c: s.used_by_company.get(c, {}).get("VCPU", 0)
        )
        x, y = binned(100 * used / cap)
        stacks.append(y)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.stackplot(x, *stacks, labels=companies)
    ax.set_ylabel("share of the pool's VCPU (%)")
    ax.set_xlabel("hours from the start")
    ax.set_ylim(0, 105)
    ax.set_title(f"per-company share, group cloud of {group.pool.host_count} hosts")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

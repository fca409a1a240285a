"""Time of the placement decision alone (engine, no database) at N hosts.

Builds a capacity index of N hosts (VCPU 64 x 4.0, MEMORY_MB 262144, DISK_GB 2000, half of
them with trait ``ssd``) and times ``place()`` for the claim benchmark's request:

* ``cold``: the first request of a shape (filters and scores every host);
* ``steady``: requests of the same shape, each followed by applying the claim to the index
  (what a server does: only the changed host is re-ranked);
* ``gang8``: 8 units with a required trait, on distinct hosts, each gang followed by
  applying its claim to the index too: every placement re-ranks the 8 hosts the previous
  one changed (an unchanged index would only measure ranking-cache hits).

A placement that finds no hosts counts as failed (``failed`` in the JSON): the sizes must
leave room for every decision, or the figures measure refusals.

    python benchmarks/placement.py --hosts 10000 [--decisions 2000]

The last line printed is one JSON object (microseconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from groupcloud import __version__
from groupcloud.domain.allocation import PlacementSpec, Strategy
from groupcloud.placement.index import CapacityIndex, HostRecord, InventoryRecord
from groupcloud.placement.pipeline import Placement, place

REQUEST = {"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}
CAPACITY = {"VCPU": 256, "MEMORY_MB": 262144, "DISK_GB": 2000}


def build(n: int) -> CapacityIndex:
    hosts = [
        HostRecord(i, f"host-{i:05d}", "shared", True, ("ssd",) if i % 2 else ()) for i in range(n)
    ]
    inventories = [InventoryRecord(i, rc, cap, 0) for i in range(n) for rc, cap in CAPACITY.items()]
    return CapacityIndex(hosts, inventories)


def timed(fn: Callable[[], object], times: int) -> list[float]:
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return sorted(out)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1),
        "mean_us": round(statistics.fmean(samples), 1),
    }


class Failures:
    """Placements that found no hosts."""

    count = 0


failures = Failures()


def claiming(index: CapacityIndex, spec: PlacementSpec) -> Callable[[], None]:
    """One decision as a server makes it: place, then apply the claim to the index (so
    the next decision re-ranks the hosts this one changed)."""

    def claim() -> None:
        chosen = place(index, spec)
        if not isinstance(chosen, Placement):
            failures.count += 1
            return
        index.apply((h, rc, n) for h in chosen.host_ids for rc, n in spec.per_unit.items())

    return claim


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()

    results: dict[str, object] = {
        "benchmark": "placement",
        "project": "groupcloud",
        "version": __version__,
        "hosts": args.hosts,
    }
    placed = 0
    for strategy in Strategy:
        spec = PlacementSpec(per_unit=REQUEST, strategy=strategy)
        cold: list[float] = []
        for _ in range(5):  # a new index each time: nothing ranked yet
            fresh = build(args.hosts)
            started = time.perf_counter()
            place(fresh, spec)
            cold.append((time.perf_counter() - started) * 1e6)

        results[f"{strategy.value}_cold"] = summary(sorted(cold))
        results[f"{strategy.value}_steady"] = summary(
            timed(claiming(build(args.hosts), spec), args.decisions)
        )
        placed += args.decisions
    gang = PlacementSpec(per_unit=REQUEST, count=8, required_traits=("ssd",), distinct_hosts=True)
    gangs = max(args.decisions // 4, 10)
    index = build(args.hosts)
    results["gang8"] = summary(timed(claiming(index, gang), gangs))
    placed += gangs
    results["placements"] = placed
    results["failed"] = failures.count
    results["gang8_hosts_used"] = int((index.used > 0).any(axis=0).sum())
    steady, cold_pack = results["pack_steady"], results["pack_cold"]
    print(f"placement at {args.hosts} hosts: pack steady {steady}, cold {cold_pack}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

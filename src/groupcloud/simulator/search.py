"""How many hosts serve a demand: a search over the pool size, one simulation per probe.

A request needs the first host kind of the scenario that can hold one unit of it (CPU
work the CPU hosts, training the GPU hosts). For every *key* (a host kind of the group
pool, or a company's host kind in separate clouds) the search finds the smallest count
with which the requests of that key meet the target: at least ``admitted_share`` of
them run (do not give up) and their p95 wait is at most ``p95_wait_min`` (per workload
kind: each kind of the key on its own, at its own wait if the target gives one). The keys are
searched together, one bisection each, all probed in the same run (a separate cloud's
run holds every company's zone side by side; the group's holds both kinds), so a
search costs about log2(range) runs instead of that many per key. The bounds come from
the demand itself: its mean (fewer hosts cannot do the work in the time) and its peak
if every request started on arrival (plus one host for fragmentation); an upper bound
that fails is doubled until it holds. The answer is always a probed configuration
that met the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from groupcloud.simulator.demand import Request
from groupcloud.simulator.des import RunResult
from groupcloud.simulator.scenario import HostKind, Target

__all__ = ["Probe", "SearchResult", "bounds", "kind_of", "meets", "percentile", "smallest"]

MAX_DOUBLINGS = 6


def kind_of(request: Request, kinds: Sequence[HostKind]) -> str:
    """The first host kind that can hold one unit of ``request``."""
    for kind in kinds:
        if all(kind.resources.get(rc, 0) >= n for rc, n in request.resources.items()):
            return kind.name
    raise ValueError(
        f"no host kind can hold a unit of {request.resources} ({request.company}, "
        f"{request.kind} at {request.arrival_s:.0f} s)"
    )


def bounds(requests: Sequence[Request], kind: HostKind, horizon_s: float) -> tuple[int, int]:
    """(lower, upper) host counts of ``kind`` for ``requests``: the mean demand over the
    horizon, and the peak demand if each ran from its arrival, plus one."""
    if not requests:
        return 0, 0
    lower, upper = 1, 1
    for rc, per_host in kind.resources.items():
        starts = np.array([r.arrival_s for r in requests])
        amounts = np.array([r.demand().get(rc, 0) for r in requests], dtype=float)
        ends = starts + np.array([r.duration_s for r in requests])
        work = float((amounts * np.minimum(ends - starts, np.maximum(horizon_s - starts, 0))).sum())
        lower = max(lower, math.ceil(work / (per_host * horizon_s)))
        times = np.concatenate([starts, ends])
        deltas = np.concatenate([amounts, -amounts])
        order = np.lexsort((deltas, times))  # an end before a start at the same instant
        peak = float(np.cumsum(deltas[order]).max())
        upper = max(upper, math.ceil(peak / per_host) + 1)
    return lower, max(lower, upper)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0-100) as a value that occurred (nearest rank); 0 if none."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


def meets(
    result: RunResult,
    indexes: Sequence[int],
    target: Target,
    kinds: Sequence[str] | None = None,
) -> bool:
    """Whether the requests ``indexes`` of ``result`` met ``target``. With ``kinds`` (the
    workload kind of every request of the run: ``oltp``, ``batch``, ...) each kind among
    ``indexes`` must meet it on its own, at its own wait if the target gives one
    (``p95_wait_min_by_kind``): a batch that may wait hours does not hide an online
    service that waited too long, nor the other way round."""
    if kinds is None:
        return _meets(result, indexes, target.admitted_share, target.p95_wait_min)
    by_kind: dict[str, list[int]] = {}
    for i in indexes:
        by_kind.setdefault(kinds[i], []).append(i)
    return all(
        _meets(result, idx, target.admitted_share, target.p95_wait_min_for(kind))
        for kind, idx in by_kind.items()
    )


def _meets(result: RunResult, indexes: Sequence[int], share: float, p95_min: float) -> bool:
    if not indexes:
        return True
    waits = [w for i in indexes if (w := result.waits_s[i]) is not None]
    if len(waits) < share * len(indexes) - 1e-9:
        return False
    return percentile(waits, 95) <= p95_min * 60 + 1e-9


@dataclass(frozen=True, slots=True)
class Probe:
    counts: dict[Hashable, int]
    ok: dict[Hashable, bool]
    seconds: float


@dataclass
class SearchResult:
    counts: dict[Hashable, int]
    result: RunResult
    probes: list[Probe] = field(default_factory=list)


def smallest(
    ranges: Mapping[Hashable, tuple[int, int]],
    probe: Callable[[dict[Hashable, int]], tuple[RunResult, dict[Hashable, bool]]],
) -> SearchResult:
    """The smallest count per key, given (lower, upper) per key and ``probe`` (one run
    with these counts: its result and, per key, whether it met the target)."""
    lo = {k: r[0] for k, r in ranges.items()}
    hi = {k: r[1] for k, r in ranges.items()}
    probes: list[Probe] = []
    best: tuple[dict[Hashable, int], RunResult] | None = None

    def run(counts: dict[Hashable, int]) -> dict[Hashable, bool]:
        nonlocal best
        result, ok = probe(counts)
        probes.append(Probe(dict(counts), dict(ok), result.seconds))
        if all(ok.values()):
            best = dict(counts), result
        return ok

    for _ in range(MAX_DOUBLINGS):  # 1. an upper bound that holds for every key
        ok = run(dict(hi))
        failing = [k for k, good in ok.items() if not good]
        if not failing:
            break
        for k in failing:
            lo[k] = hi[k] + 1
            hi[k] = max(2 * hi[k], 1)
    else:
        raise RuntimeError(f"no pool up to {hi} meets the target")
    while any(lo[k] < hi[k] for k in ranges):  # 2. bisect every open key in one run
        mid = {k: (lo[k] + hi[k]) // 2 if lo[k] < hi[k] else hi[k] for k in ranges}
        ok = run(mid)
        for k in ranges:
            if lo[k] < hi[k]:
                if ok[k]:
                    hi[k] = mid[k]
                else:
                    lo[k] = mid[k] + 1
    if best is None or best[0] != hi:  # 3. the answer itself, once, for its figures
        ok = run(dict(hi))
        if not all(ok.values()):  # the keys interact a little (shared pool): settle there
            again = smallest({k: (hi[k], 2 * hi[k] + 1) for k in ranges}, probe)
            again.probes[:0] = probes
            return again
    assert best is not None
    return SearchResult(best[0], best[1], probes)

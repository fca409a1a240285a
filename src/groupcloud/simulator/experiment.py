"""Separate clouds against the group cloud, on one trace: the headline of issue #6.

1. **Separate clouds**: every company has its own zone of hosts and only its own
   quota (no borrowing, no lending); the search sizes each company's hosts of each kind
   to its own demand at the target wait.
2. **Group cloud, same hosts**: those very hosts pooled in one zone; each company's
   nominal quota is what it owned, and idle nominal is lent (borrowing and lending
   unlimited, reclaimed with notice when its owner needs it).
3. **Group cloud, sized**: the search sizes the pooled hosts of each kind to the same
   target, checked company by company as in 1 (every company's requests of each kind
   meet the wait and the admitted share: the group does not win by letting one company
   wait); nominal quotas are split in the proportion of what each company owned in 1.

"Hosts needed" is the count of 1 against that of 3; 2 shows what pooling does to the
waits and the utilisation of an unchanged fleet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from groupcloud.simulator.demand import Request
from groupcloud.simulator.des import HostGroup, Pool, QuotaLine, RunResult, simulate
from groupcloud.simulator.scenario import HostKind, Scenario, Target
from groupcloud.simulator.search import SearchResult, bounds, kind_of, meets, smallest

__all__ = [
    "SETTINGS",
    "Comparison",
    "compare",
    "every_company_meets",
    "group_pool",
    "separate_pool",
]

SETTINGS = ("separate", "group_same_hosts", "group")
Progress = Callable[[str, float], None]
"""(what runs now, share of its virtual time done)."""


@dataclass
class Comparison:
    scenario: Scenario
    requests: list[Request]
    separate: SearchResult
    group_same_hosts: RunResult
    group: SearchResult
    runs: int = 0
    events: int = 0
    """Events of every run, the search's probes included."""

    def results(self) -> dict[str, RunResult]:
        return {
            "separate": self.separate.result,
            "group_same_hosts": self.group_same_hosts,
            "group": self.group.result,
        }


def separate_pool(kinds: Sequence[HostKind], counts: Mapping[tuple[str, str], int]) -> Pool:
    """Each company's hosts of each kind in a zone of their own (``bank-cpu``), its
    quota exactly what it owns, no borrowing, no lending."""
    by_name = {k.name: k for k in kinds}
    companies = sorted({c for c, _ in counts})
    groups = tuple(
        HostGroup(f"{c}-{k}", n, dict(by_name[k].resources), tuple(by_name[k].traits), f"{c}-{k}")
        for (c, k), n in sorted(counts.items())
        if n > 0
    )
    quotas: dict[str, dict[str, QuotaLine]] = {}
    for c in companies:
        own = Pool(tuple(g for g in groups if g.zone.startswith(f"{c}-")), {}).capacity()
        quotas[c] = {
            rc: QuotaLine(own.get(rc, 0), borrowing_limit=0, lending_limit=0)
            for rc in _classes(kinds)
        }
    return Pool(groups, quotas, zones={key: f"{key[0]}-{key[1]}" for key in counts})


def group_pool(
    kinds: Sequence[HostKind],
    counts: Mapping[str, int],
    owned: Mapping[str, Mapping[str, int]],
) -> Pool:
    """The pooled hosts, one zone per kind (``cpu``, ``gpu``: training never waits
    behind CPU work on a GPU host, as in the separate clouds); nominal quotas in the
    proportion of ``owned`` (company -> class -> capacity), all idle nominal lent."""
    groups = tuple(
        HostGroup(k.name, counts[k.name], dict(k.resources), tuple(k.traits), k.name)
        for k in kinds
        if counts.get(k.name, 0) > 0
    )
    capacity = Pool(groups, {}).capacity()
    companies = sorted(owned)
    quotas: dict[str, dict[str, QuotaLine]] = {c: {} for c in companies}
    for rc in _classes(kinds):
        total_owned = sum(owned[c].get(rc, 0) for c in companies)
        pool = capacity.get(rc, 0)
        shares = {
            c: pool * owned[c].get(rc, 0) // total_owned if total_owned else 0 for c in companies
        }
        if total_owned:  # what rounding left goes to the largest owner
            largest = max(companies, key=lambda c: (owned[c].get(rc, 0), c))
            shares[largest] += pool - sum(shares.values())
        for c in companies:
            quotas[c][rc] = QuotaLine(shares[c], borrowing_limit=None, lending_limit=None)
    return Pool(groups, quotas, zones={(c, k.name): k.name for c in companies for k in kinds})


def compare(
    scenario: Scenario,
    requests: list[Request],
    progress: Progress | None = None,
) -> Comparison:
    """The three settings on ``requests`` (see the module doc)."""
    kinds = scenario.hosts
    need = [kind_of(r, kinds) for r in requests]
    work = [r.kind for r in requests]
    by_name = {k.name: k for k in kinds}
    companies = sorted({r.company for r in requests})
    runs = events = 0

    def run(label: str, pool: Pool) -> RunResult:
        nonlocal runs, events
        runs += 1
        report = None if progress is None else (lambda done: progress(label, done))
        result = simulate(
            requests,
            pool,
            horizon_s=scenario.horizon_s,
            reclaim_notice_s=scenario.reclaim.notice_s,
            reclaim_backoff_s=scenario.reclaim.backoff_s,
            reclaim_backoff_max_s=scenario.reclaim.backoff_max_s,
            seed=scenario.seed,
            kinds=need,
            progress=report,
        )
        events += result.events
        return result

    # 1. Separate clouds: one key per (company, kind) with demand.
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        members[r.company, need[i]].append(i)
    ranges = {
        key: bounds([requests[i] for i in idx], by_name[_pair(key)[1]], scenario.horizon_s)
        for key, idx in members.items()
    }

    def probe_separate(counts: dict[Hashable, int]) -> tuple[RunResult, dict[Hashable, bool]]:
        pool = separate_pool(kinds, {_pair(k): n for k, n in counts.items()})
        result = run(f"separate clouds, {pool.host_count} hosts", pool)
        return result, {k: meets(result, members[k], scenario.target, work) for k in counts}

    separate = smallest(ranges, probe_separate)
    owned_pool = separate_pool(kinds, {_pair(k): n for k, n in separate.counts.items()})
    owned = {c: {rc: line.nominal for rc, line in owned_pool.quotas[c].items()} for c in companies}
    totals: dict[str, int] = defaultdict(int)
    for key, n in separate.counts.items():
        totals[_pair(key)[1]] += n

    # 2. The same hosts, pooled.
    same = run(
        f"group cloud, the same {sum(totals.values())} hosts",
        group_pool(kinds, totals, owned),
    )

    # 3. The group cloud sized: one key per kind.
    pooled: dict[Hashable, list[int]] = defaultdict(list)
    for i, kind in enumerate(need):
        pooled[kind].append(i)
    group_ranges = {
        kind: (
            min(
                bounds([requests[i] for i in idx], by_name[str(kind)], scenario.horizon_s)[0],
                totals[str(kind)],
            ),
            totals[str(kind)],
        )
        for kind, idx in pooled.items()
    }

    def probe_group(counts: dict[Hashable, int]) -> tuple[RunResult, dict[Hashable, bool]]:
        pool = group_pool(kinds, {str(k): n for k, n in counts.items()}, owned)
        result = run(f"group cloud, {pool.host_count} hosts", pool)
        ok = {k: every_company_meets(result, members, k, scenario.target, work) for k in counts}
        return result, ok

    group = smallest(group_ranges, probe_group)
    return Comparison(scenario, requests, separate, same, group, runs=runs, events=events)


def every_company_meets(
    result: RunResult,
    members: Mapping[Hashable, Sequence[int]],
    kind: Hashable,
    target: Target,
    work: Sequence[str] | None = None,
) -> bool:
    """Whether every company's requests of host ``kind`` met ``target`` in ``result``
    (``members[company, kind]``: their indexes; ``work``: every request's workload kind,
    see ``search.meets``). The group cloud is held to the target company by company, as
    each separate cloud is: a pool that serves the group as a whole in time but lets one
    company wait does not count."""
    return all(
        meets(result, idx, target, work) for key, idx in members.items() if _pair(key)[1] == kind
    )


def _classes(kinds: Sequence[HostKind]) -> list[str]:
    return sorted({rc for k in kinds for rc in k.resources})


def _pair(key: Hashable) -> tuple[str, str]:
    assert isinstance(key, tuple)
    company, kind = key
    return str(company), str(kind)

"""The pool-size search and its bounds, on fake probes (no simulation)."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from groupcloud.simulator.demand import Request
from groupcloud.simulator.des import Pool, RunResult
from groupcloud.simulator.scenario import HostKind, Target
from groupcloud.simulator.search import bounds, kind_of, meets, percentile, smallest

CPU = HostKind(name="cpu", resources={"VCPU": 8})
GPU = HostKind(name="gpu", resources={"VCPU": 8, "GPU": 4})


def req(t: float, seconds: float, vcpu: int, gpu: int = 0) -> Request:
    resources = {"VCPU": vcpu, **({"GPU": gpu} if gpu else {})}
    return Request(arrival_s=t, duration_s=seconds, company="bank", resources=resources)


def result(waits: list[float | None]) -> RunResult:
    return RunResult(pool=Pool((), {}), horizon_s=1.0, waits_s=waits)


def test_smallest_finds_each_key_s_threshold_in_shared_probes() -> None:
    needed: dict[Hashable, int] = {"a": 7, "b": 1, "c": 13}
    seen: list[dict[Hashable, int]] = []

    def probe(counts: dict[Hashable, int]) -> tuple[RunResult, dict[Hashable, bool]]:
        seen.append(counts)
        return result([]), {k: n >= needed[k] for k, n in counts.items()}

    found = smallest({"a": (1, 10), "b": (1, 10), "c": (2, 5)}, probe)
    assert found.counts == needed  # "c" needed its upper bound doubled twice
    assert len(found.probes) == len(seen) <= 8
    assert all(found.probes[-1].ok.values())


def test_bounds_are_the_mean_and_the_peak_demand() -> None:
    # 4 requests of 8 VCPU, an hour each, all at once, over a 4 h horizon: 32 VCPU-h.
    trace = [req(0, 3600, 8) for _ in range(4)]
    assert bounds(trace, CPU, 4 * 3600) == (1, 5)  # mean 1 host, peak 4 (+1)
    back_to_back = [req(3600 * i, 3600, 8) for i in range(4)]
    assert bounds(back_to_back, CPU, 4 * 3600) == (1, 2)  # an end frees before a start
    assert bounds([], CPU, 3600) == (0, 0)


def test_a_request_needs_the_first_kind_that_holds_it() -> None:
    assert kind_of(req(0, 1, 8), [CPU, GPU]) == "cpu"
    assert kind_of(req(0, 1, 4, gpu=2), [CPU, GPU]) == "gpu"
    with pytest.raises(ValueError, match="no host kind"):
        kind_of(req(0, 1, 16), [CPU, GPU])


def test_the_target_is_a_p95_wait_and_a_share_that_runs() -> None:
    target = Target(p95_wait_min=10, admitted_share=1.0)
    waits: list[float | None] = [*([0.0] * 19), 3600.0]  # the 20th waited an hour
    assert meets(result(waits), range(20), target)  # p95 (nearest rank) is the 19th
    assert not meets(result([*waits[:-2], 3600.0, 3600.0]), range(20), target)
    assert not meets(result([0.0, None]), [0, 1], target)
    assert meets(result([0.0, None]), [0, 1], Target(admitted_share=0.5))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([], 95) == 0.0


def test_each_workload_kind_meets_the_target_on_its_own_wait() -> None:
    target = Target(p95_wait_min=10, p95_wait_min_by_kind={"batch": 120})
    waits: list[float | None] = [*([0.0] * 20), *([3600.0] * 20)]  # the batch waited an hour
    kinds = ["oltp"] * 20 + ["batch"] * 20
    assert not meets(result(waits), range(40), target)  # all together: p95 is an hour
    assert meets(result(waits), range(40), target, kinds)  # batch within its 2 hours
    strict = Target(p95_wait_min=10)
    assert not meets(result(waits), range(40), strict, kinds)
    hidden: list[float | None] = [*([0.0] * 39), 3600.0]  # one oltp request of two waited
    two = ["batch"] * 38 + ["oltp"] * 2
    assert meets(result(hidden), range(40), strict)
    assert not meets(result(hidden), range(40), strict, two)
    with pytest.raises(ValueError, match="negative"):
        Target(p95_wait_min_by_kind={"gpu": -1})

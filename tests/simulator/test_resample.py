"""Pod lists redrawn to stress one kind of demand (bootstrap, GPU sharing, multi-GPU, GPU
models, CPU-only): the share asked for is what the new list carries, seeds repeat."""

from __future__ import annotations

import pytest

from groupcloud.simulator.resample import resample
from groupcloud.simulator.trace import Node, Pod, TraceError

NODES = [Node("g", 96000, 393216, 8, "G2"), Node("t", 104000, 524288, 2, "T4")]
PODS = (
    [Pod(f"c{i}", 8000, 30517) for i in range(100)]
    + [Pod(f"s{i}", 6000, 12288, 1, 200 + 70 * (i % 10)) for i in range(300)]
    + [Pod(f"w{i}", 12000, 16384, 1, 1000) for i in range(500)]
    + [Pod(f"m{i}", 64000, 262144, 1 + (i % 2) * 7 + (i % 2 == 0), 1000) for i in range(100)]
)


def demand_share(pods: list[Pod], kind: str) -> float:
    ours = [p for p in pods if (p.gpu_milli < 1000 if kind == "share" else p.num_gpu > 1)]
    return sum(p.gpu_demand for p in ours) / sum(p.gpu_demand for p in pods)


def test_a_bootstrap_draws_as_many_tasks_of_the_list_again_and_again() -> None:
    drawn = resample(PODS, "bootstrap", seed=3)
    assert len(drawn) == len(PODS)
    assert set(drawn) <= set(PODS)
    assert len(set(drawn)) < len(PODS)  # with replacement
    assert resample(PODS, "bootstrap", seed=3) == drawn
    assert resample(PODS, "bootstrap", seed=4) != drawn


@pytest.mark.parametrize(("kind", "share"), [("gpushare", "share"), ("multigpu", "multi")])
@pytest.mark.parametrize("percent", [20, 60])
def test_a_kind_of_gpu_task_carries_the_share_of_gpu_demand_asked_for(
    kind: str, share: str, percent: int
) -> None:
    drawn = resample(PODS, kind, percent, seed=1)
    assert len(drawn) == len(PODS)
    assert [p for p in drawn if not p.num_gpu] == PODS[:100]  # CPU-only tasks kept
    assert demand_share(drawn, share) == pytest.approx(percent / 100, abs=0.05)


def test_cpu_only_tasks_are_scaled_and_gpu_tasks_kept() -> None:
    drawn = resample(PODS, "cpu", 250, seed=2)
    assert sum(1 for p in drawn if not p.num_gpu) == 250
    assert [p for p in drawn if p.num_gpu] == PODS[100:]


def test_gpu_models_go_to_the_share_of_gpu_tasks_asked_for_and_can_hold_them() -> None:
    drawn = resample(PODS, "gpuspec", 40, seed=5, nodes=NODES)
    restricted = [p for p in drawn if p.gpu_spec]
    assert len(restricted) == round(0.4 * 900)
    for pod in restricted:
        (model,) = pod.gpu_spec
        assert any(n.model == model and n.gpus >= pod.num_gpu for n in NODES)
    again = resample(restricted, "gpuspec", 100, seed=6)  # the list's own restrictions
    assert {p.gpu_spec for p in again} <= {p.gpu_spec for p in restricted}


def test_unknown_kinds_and_bad_percentages_are_refused() -> None:
    with pytest.raises(TraceError, match="unknown kind"):
        resample(PODS, "gpuheavy", 10)
    with pytest.raises(TraceError, match="0-100"):
        resample(PODS, "gpushare", 140)
    with pytest.raises(TraceError, match="needs the nodes"):
        resample(PODS, "gpuspec", 10)

"""The packing experiment on small synthetic traces: arrivals until GPU demand reaches
capacity, GPU shares on one device, GPU models, CPU-only tasks, seeds, and trace errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from groupcloud.placement.policies import POLICIES
from groupcloud.simulator.pack import pack
from groupcloud.simulator.trace import Node, Pod, TraceError, read_nodes, read_pods
from tests.simulator.traces import NODE_COLUMNS, POD_COLUMNS, write_csv


def gpu_nodes(*gpus: tuple[int, str]) -> list[Node]:
    return [Node(f"n{i}", 32000, 262144, count, model) for i, (count, model) in enumerate(gpus)]


def pod(name: str, num_gpu: int = 0, gpu_milli: int = 0, *spec: str, cpu: int = 4000) -> Pod:
    return Pod(name, cpu, 16384, num_gpu, gpu_milli if num_gpu else 0, tuple(spec))


def test_shares_of_one_gpu_fill_devices_until_demand_reaches_capacity() -> None:
    result = pack(gpu_nodes((1, "T4"), (1, "T4")), [pod("half", 1, 500)])
    assert (result.tasks, result.failed_tasks) == (4, 0)  # 4 x 0.5 GPU = capacity
    assert result.gpu_capacity == 2
    assert result.gpu_allocated == pytest.approx(2.0)
    assert result.allocation_ratio == pytest.approx(1.0)
    assert result.curve[0] == (0.0, 0.0)
    assert result.curve[-1] == (1.0, 1.0)


def test_a_share_fails_when_no_device_has_that_much_free() -> None:
    result = pack(gpu_nodes((1, "T4")), [pod("big-share", 1, 600)])
    assert (result.tasks, result.failed_tasks) == (2, 1)  # 600 fits, a second 600 does not
    assert result.gpu_allocated == pytest.approx(0.6)
    assert result.curve[-1] == (1.2, 0.6)


def test_gpu_spec_restricts_the_models_a_task_may_use() -> None:
    result = pack(gpu_nodes((1, "T4"), (1, "G2")), [pod("t4-only", 1, 1000, "T4")])
    assert (result.tasks, result.failed_tasks) == (2, 1)  # the G2 stays free
    assert result.gpu_allocated == pytest.approx(1.0)


def test_cpu_only_tasks_arrive_but_add_no_gpu_demand() -> None:
    """The pod list alternates a whole-GPU and a CPU-only task: arrivals go on until two
    GPU tasks arrived, the CPU-only ones that came in between included."""
    nodes = [*gpu_nodes((2, "G2")), Node("cpu", 64000, 262144, 0)]
    result = pack(nodes, [pod("gpu", 1, 1000), pod("cpu", cpu=16000)], seed=2)
    assert result.tasks == 4  # two of each in the order seed 2 draws
    assert result.failed_tasks == 0
    assert result.gpu_allocated == pytest.approx(2.0)


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_fills_a_cluster_that_a_packing_can_fill(policy: str) -> None:
    """Eight GPUs and tasks of 1, 2 and 4 whole GPUs: any policy that places where things
    fit allocates GPUs only up to capacity, never more."""
    nodes = gpu_nodes((4, "G2"), (4, "G2"))
    pods = [pod("one", 1, 1000), pod("two", 2, 1000), pod("four", 4, 1000)]
    result = pack(nodes, pods, policy, seed=2)
    assert result.policy == policy
    assert 0 < result.gpu_allocated <= result.gpu_capacity
    assert result.curve[-1][0] >= 1.0
    assert all(b <= a + 1e-9 for a, b in result.curve)  # never more allocated than arrived


def test_a_seed_repeats_a_run_exactly_and_another_seed_draws_another_order() -> None:
    nodes = gpu_nodes(*[(8, "G2")] * 6, *[(2, "T4")] * 6)
    pods = [
        pod(f"p{i}", n, m, cpu=c)
        for i, (n, m, c) in enumerate([(1, 300, 2000), (1, 810, 8000), (2, 1000, 16000),
                                        (1, 1000, 12000), (1, 470, 6000), (8, 1000, 64000)])
    ]  # fmt: skip
    first = pack(nodes, pods, "fgd-fluid", seed=11)
    assert pack(nodes, pods, "fgd-fluid", seed=11) == first
    assert pack(nodes, pods, "random", seed=11) == pack(nodes, pods, "random", seed=11)
    assert pack(nodes, pods, "fgd-fluid", seed=12).curve != first.curve


def test_the_json_has_exactly_the_documented_keys() -> None:
    data = pack(gpu_nodes((1, "T4")), [pod("x", 1, 250)]).to_json()
    assert list(data) == [
        "policy",
        "gpu_capacity",
        "gpu_allocated",
        "allocation_ratio",
        "failed_tasks",
        "curve",
    ]
    assert data["curve"][-1] == [1.0, 1.0]


def test_traces_without_gpus_are_refused() -> None:
    with pytest.raises(TraceError, match="no GPUs"):
        pack([Node("cpu", 1000, 1000, 0)], [pod("x", 1, 1000)])
    with pytest.raises(TraceError, match="ask for no GPUs"):
        pack(gpu_nodes((1, "T4")), [pod("cpu-only")])


# --- reading traces ---------------------------------------------------------------------------


def test_trace_files_are_read_with_their_models_and_specs(tmp_path: Path) -> None:
    nodes = write_csv(tmp_path / "n.csv", NODE_COLUMNS, [("a", 96000, 393216, 8, "G2"),
                                                        ("b", 32000, 131072, 0, "")])  # fmt: skip
    pods = write_csv(
        tmp_path / "p.csv",
        POD_COLUMNS,
        [("s", 6000, 12288, 1, 460, ""), ("w", 12000, 24576, 2, 1000, "V100M32|T4"),
         ("c", 8000, 30517, 0, 0, "T4")],
    )  # fmt: skip
    assert read_nodes(nodes) == [Node("a", 96000, 393216, 8, "G2"), Node("b", 32000, 131072, 0)]
    share, whole, cpu = read_pods(pods)
    assert (share.gpu_demand, share.spec().gpu_share, share.spec().gpus) == (460, 460, 1)
    assert whole.gpu_spec == ("T4", "V100M32")
    assert whole.spec().per_unit == {"VCPU": 12000, "MEMORY_MB": 24576, "GPU": 2}
    assert whole.spec().gpu_models == frozenset({"T4", "V100M32"})
    assert (cpu.gpu_demand, cpu.gpu_spec, cpu.spec().gpus) == (0, (), 0)  # CPU-only: no model


def test_the_short_pod_format_without_gpu_spec_is_read(tmp_path: Path) -> None:
    short = write_csv(tmp_path / "p.csv", POD_COLUMNS[:5], [("x", 1000, 1024, 1, 1000)])
    assert read_pods(short) == [Pod("x", 1000, 1024, 1, 1000)]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("x", "many", 1, 0, 0, ""), "cpu_milli is not a whole number"),
        (("x", 1, -5, 0, 0, ""), "memory_mib is negative"),
        (("x", 1, 1, 2, 500, ""), "a share of a GPU is for one GPU"),
        (("x", 1, 1, 1, 0, ""), "gpu_milli must be 1-1000"),
    ],
)
def test_bad_pod_rows_name_their_line_and_column(
    tmp_path: Path, row: tuple[object, ...], message: str
) -> None:
    path = write_csv(tmp_path / "p.csv", POD_COLUMNS, [("ok", 1, 1, 0, 0, ""), row])
    with pytest.raises(TraceError, match=f"p.csv:3: {message}"):
        read_pods(path)


def test_missing_files_columns_and_rows_are_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_nodes(tmp_path / "absent.csv")
    with pytest.raises(TraceError, match="missing column"):
        read_nodes(write_csv(tmp_path / "n.csv", ("sn", "gpu"), [("a", 1)]))
    with pytest.raises(TraceError, match="no pods"):
        read_pods(write_csv(tmp_path / "p.csv", POD_COLUMNS, []))

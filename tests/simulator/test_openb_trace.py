"""Placement quality on the real trace (Alibaba openb, ATC'23): the server's default
policy against the paper's best-fit baseline, and the trace as its README describes it.

The other four pod lists and every policy are in benchmarks/packing.py (a minute)."""

from __future__ import annotations

from groupcloud.placement.policies import DEFAULT_POLICY
from groupcloud.simulator.pack import PackResult, pack
from groupcloud.simulator.trace import read_nodes, read_pods
from tests.simulator.traces import REAL_TRACE


def unallocated(result: PackResult) -> float:
    return result.gpu_capacity - result.gpu_allocated


def test_the_trace_has_the_nodes_and_pods_its_readme_lists() -> None:
    nodes = read_nodes(REAL_TRACE / "openb_node_list_all_node.csv")
    pods = read_pods(REAL_TRACE / "openb_pod_list_default.csv")
    assert (len(nodes), sum(n.gpus for n in nodes)) == (1523, 6212)
    assert len(pods) == 8152
    assert {p.num_gpu for p in pods} == {0, 1, 2, 4, 8}


def test_the_default_policy_leaves_a_quarter_fewer_gpus_unallocated_than_best_fit() -> None:
    nodes = read_nodes(REAL_TRACE / "openb_node_list_all_node.csv")
    pods = read_pods(REAL_TRACE / "openb_pod_list_default.csv")
    default = pack(nodes, pods, seed=0)
    best_fit = pack(nodes, pods, "best-fit", seed=0)
    assert default.policy == DEFAULT_POLICY
    assert default.curve[-1][0] >= 1.0
    assert unallocated(default) <= 0.75 * unallocated(best_fit), (default, best_fit)

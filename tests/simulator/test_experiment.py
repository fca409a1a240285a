"""Separate clouds against the group cloud on (a shortened) example scenario."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from groupcloud.simulator.experiment import (
    Comparison,
    compare,
    every_company_meets,
    group_pool,
    separate_pool,
)
from groupcloud.simulator.scenario import HostKind, Scenario, load
from groupcloud.simulator.search import kind_of, meets

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/scenarios/financial-group.yaml"


def short(scenario: Scenario) -> Scenario:
    """Two days from the month-end Thursday at a third of the rates: the same shapes in a
    few seconds."""
    start = datetime(2027, 1, 28, tzinfo=timezone(timedelta(hours=9)))
    workload = scenario.workload.model_copy(update={"scale": 0.3})
    return scenario.model_copy(update={"days": 2.0, "start": start, "workload": workload})


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    scenario = short(load(EXAMPLE))
    return compare(scenario, scenario.requests())


def test_the_group_needs_no_more_hosts_than_separate_clouds(comparison: Comparison) -> None:
    separate, group = comparison.separate.result, comparison.group.result
    assert group.pool.host_count <= separate.pool.host_count
    assert comparison.group_same_hosts.pool.capacity() == separate.pool.capacity()
    everyone = range(len(comparison.requests))
    work = [r.kind for r in comparison.requests]
    for result in (separate, comparison.group_same_hosts, group):
        assert meets(result, everyone, comparison.scenario.target, work)
        assert result.unfinished == 0


def test_every_company_meets_the_target_in_both_settings(comparison: Comparison) -> None:
    target = comparison.scenario.target
    kinds = [k.name for k in comparison.scenario.hosts]
    members: dict[Hashable, list[int]] = {}
    for i, r in enumerate(comparison.requests):
        members.setdefault((r.company, kind_of(r, comparison.scenario.hosts)), []).append(i)
    assert len({comparison.requests[idx[0]].company for idx in members.values()}) > 1
    work = [r.kind for r in comparison.requests]
    for result in (comparison.separate.result, comparison.group.result):
        for key, idx in members.items():
            assert meets(result, idx, target, work), key
        assert all(every_company_meets(result, members, k, target, work) for k in kinds)
    assert comparison.runs == len(comparison.separate.probes) + len(comparison.group.probes) + 1


def test_nominal_quotas_follow_what_each_company_owned_separately() -> None:
    kinds = [HostKind(name="cpu", resources={"VCPU": 10})]
    owned = separate_pool(kinds, {("bank", "cpu"): 3, ("card", "cpu"): 1})
    assert owned.quotas["bank"]["VCPU"].nominal == 30
    assert owned.quotas["card"]["VCPU"].borrowing_limit == 0
    assert owned.zones == {("bank", "cpu"): "bank-cpu", ("card", "cpu"): "card-cpu"}
    shares = {"bank": {"VCPU": 30}, "card": {"VCPU": 10}}
    pooled = group_pool(kinds, {"cpu": 3}, shares)
    assert pooled.capacity() == {"VCPU": 30}
    assert (pooled.quotas["bank"]["VCPU"].nominal, pooled.quotas["card"]["VCPU"].nominal) == (
        23,
        7,
    )  # 22.5 and 7.5, the rounding to the largest owner
    assert pooled.quotas["card"]["VCPU"].borrowing_limit is None

"""Where allocations land: required traits, anti-affinity groups, pack vs spread, and
the packing policy (fragmentation-aware by default, against the pool's own workload)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from groupcloud.config import Settings
from groupcloud.domain.allocation import Strategy
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import NoCapacity
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import ask, counters, set_quotas, who
from tests.support import World, build_world, check_consistency, host

ALL_HOSTS = {"h1", "h2", "h3", "h4"}
CPU_HOSTS = ALL_HOSTS - {"h1"}  # h1 carries the GPUs


def test_required_traits_restrict_placement_to_hosts_carrying_them(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    out = allocations.allocate(rt, dev, ask({"VCPU": 4}, count=3, traits=["ssd"]))
    assert [u.host for u in out.units] == ["h1", "h1", "h1"]
    gpu = allocations.allocate(rt, dev, ask({"GPU": 2}))  # only h1 has GPU inventory
    assert [u.host for u in gpu.units] == ["h1"]
    assert counters(rt).inventory[("h1", "VCPU")] == 12
    assert check_consistency(rt).ok


def test_anti_affinity_puts_units_and_later_allocations_of_a_group_on_distinct_hosts(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    first = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, group="db"))
    second = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, group="db"))

    first_hosts = {u.host for u in first.units}
    second_hosts = {u.host for u in second.units}
    assert len(first_hosts) == 2
    assert len(second_hosts) == 2
    assert first_hosts.isdisjoint(second_hosts)
    assert first_hosts | second_hosts == ALL_HOSTS
    before = counters(rt)

    with pytest.raises(NoCapacity) as err:  # every host holds a member of the group
        allocations.allocate(rt, dev, ask({"VCPU": 1}, group="db"))
    removed = {f["filter"]: f["hosts_removed"] for f in err.value.extra["explain"]["filters"]}
    assert removed["anti_affinity"] == 4
    assert counters(rt) == before
    assert check_consistency(rt).ok


def test_releasing_frees_the_hosts_of_an_anti_affinity_group(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    first = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, group="db"))
    allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, group="db"))
    with_group = counters(rt).affinity
    assert with_group == 4

    allocations.release(rt, dev, first.id)
    assert counters(rt).affinity == 2
    third = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, group="db"))

    assert {u.host for u in third.units} == {u.host for u in first.units}
    assert check_consistency(rt).ok


def test_anti_affinity_groups_are_per_company_and_per_name(rt: Runtime, world: World) -> None:
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    allocations.allocate(rt, bank, ask({"VCPU": 1}, count=4, group="db"))

    other_name = allocations.allocate(rt, bank, ask({"VCPU": 1}, count=4, group="cache"))
    other_company = allocations.allocate(
        rt, card, ask({"VCPU": 1}, project="pay", count=4, group="db")
    )

    assert {u.host for u in other_name.units} == ALL_HOSTS
    assert {u.host for u in other_company.units} == ALL_HOSTS
    assert check_consistency(rt).ok


def test_pack_fills_used_hosts_and_spread_balances_over_hosts_without_gpus(
    rt: Runtime, world: World
) -> None:
    """CPU-only work stays off the GPU host h1 while other hosts fit; among those, pack
    stacks on the used host and spread balances."""
    dev = who(rt, world.bank_member)
    shape = {"VCPU": 2, "MEMORY_MB": 4096}
    seed = allocations.allocate(rt, dev, ask(shape))
    used_host = seed.units[0].host
    assert used_host in CPU_HOSTS
    packed = allocations.allocate(rt, dev, ask(shape, strategy=Strategy.PACK))
    assert packed.units[0].host == used_host

    spread_hosts = [
        allocations.allocate(rt, dev, ask(shape, strategy=Strategy.SPREAD)).units[0].host
        for _ in range(2)
    ]

    assert sorted(spread_hosts) == sorted(CPU_HOSTS - {used_host})

    # within one gang too: spread balances the units, pack stacks them
    spread = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, strategy=Strategy.SPREAD))
    packed = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=4, strategy=Strategy.PACK))
    assert sorted(u.host for u in spread.units) == sorted(CPU_HOSTS - {used_host})
    assert [u.host for u in packed.units] == [used_host] * 4
    assert check_consistency(rt).ok


def test_cpu_only_work_uses_the_gpu_host_only_when_nothing_else_fits(
    rt: Runtime, world: World
) -> None:
    """A GPU host's CPUs are what its GPUs need to be usable: they are the last resort."""
    set_quotas(rt, "bank", {"VCPU": 64, "MEMORY_MB": 262144})
    dev = who(rt, world.bank_member)
    full = allocations.allocate(rt, dev, ask({"VCPU": 16}, count=3, strategy=Strategy.SPREAD))
    assert {u.host for u in full.units} == CPU_HOSTS

    overflow = allocations.allocate(rt, dev, ask({"VCPU": 4}))
    assert overflow.units[0].host == "h1"
    gpu_work = allocations.allocate(rt, dev, ask({"GPU": 1, "VCPU": 1}))
    assert gpu_work.units[0].host == "h1"
    assert check_consistency(rt).ok


def test_placement_is_deterministic_for_the_same_seed(rt: Runtime, world: World) -> None:
    """Two identical sequences, released in between, choose the same hosts."""
    set_quotas(rt, "bank", {"VCPU": 64})
    dev = who(rt, world.bank_member)

    def run() -> list[str]:
        outs = [
            allocations.allocate(rt, dev, ask({"VCPU": n}, strategy=s))
            for n, s in [(5, Strategy.PACK), (7, Strategy.SPREAD), (3, Strategy.PACK)]
        ]
        hosts = [o.units[0].host for o in outs]
        for o in outs:
            allocations.release(rt, dev, o.id)
        return hosts

    assert run() == run()
    assert check_consistency(rt).ok


def _uneven_gpu_hosts(rt: Runtime, world: World) -> Principal:
    """g4: 4 GPUs and 32 VCPU, one GPU already taken with 12 VCPU; g2: 2 GPUs, 32 VCPU.
    The pool's workload is then GPUs of 12 VCPU each."""
    hosts.add_hosts(
        rt, SYSTEM, [host("g4", vcpu=32, gpu=4, traits=["big"]), host("g2", vcpu=32, gpu=2)]
    )
    dev = who(rt, world.bank_member)
    first = allocations.allocate(rt, dev, ask({"GPU": 1, "VCPU": 12}, traits=["big"]))
    assert [u.host for u in first.units] == ["g4"]
    rt.index.refresh()  # the periodic refresh reads the workload with the used amounts
    return dev


def test_packing_requests_waste_the_fewest_gpus_of_the_workload_the_pool_runs(
    rt: Runtime, world: World
) -> None:
    """The fullest host (g4, where pack would go) would keep 4 VCPU for its last 2 GPUs:
    too little for the pool's 12 VCPU per GPU. fgd-fluid takes g2, which stays usable."""
    dev = _uneven_gpu_hosts(rt, world)
    second = allocations.allocate(rt, dev, ask({"GPU": 1, "VCPU": 16}))
    assert [u.host for u in second.units] == ["g2"]
    assert check_consistency(rt).ok


def test_the_packing_policy_is_a_setting(database_url: str, tmp_path: Path) -> None:
    with closing(open_runtime(database_url, tmp_path, placement_policy="pack")) as rt:
        dev = _uneven_gpu_hosts(rt, build_world(rt))
        second = allocations.allocate(rt, dev, ask({"GPU": 1, "VCPU": 16}))
        assert [u.host for u in second.units] == ["g4"]  # the fullest host
    with pytest.raises(ValueError, match="not one of fgd-fluid"):
        Settings(placement_policy="random")

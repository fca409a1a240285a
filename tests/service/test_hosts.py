"""Hosts: add (all or nothing), list with filters, drain/resume, remove only when empty,
inventory changes that never go below what is allocated."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from groupcloud.db.models import HostRow, InventoryRow
from groupcloud.domain.allocation import Strategy
from groupcloud.domain.inventory import HostState
from groupcloud.errors import (
    AlreadyExists,
    Forbidden,
    HostNotEmpty,
    InvalidInput,
    InventoryInUse,
    NoCapacity,
    NotFound,
)
from groupcloud.schemas.compute import HostCreate, InventoryIn
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import all_pages, ask, counters, set_quotas, who
from tests.support import World, build_world, check_consistency, host


def _host_rows(rt: Runtime) -> tuple[int, int]:
    with rt.db.read() as s:
        n_hosts = s.scalar(select(func.count()).select_from(HostRow)) or 0
        n_inv = s.scalar(select(func.count()).select_from(InventoryRow)) or 0
    return int(n_hosts), int(n_inv)


def _names(rt: Runtime, **filters: object) -> list[str]:
    return [h.name for h in hosts.list_hosts(rt, SYSTEM, **filters).items]  # type: ignore[arg-type]


def test_add_host_stores_inventories_with_capacity_and_traits(rt: Runtime, world: World) -> None:
    body = HostCreate(
        name="g1",
        inventories={
            "VCPU": InventoryIn(total=64, reserved=4, allocation_ratio=4.0),
            "MEMORY_MB": InventoryIn(total=262144, reserved=8192),
            "GPU": InventoryIn(total=8),
            "CUSTOM_FPGA": InventoryIn(total=10, allocation_ratio=1.1),
        },
        traits=["ssd", "gpu_model=V100M32", "ssd"],
    )
    out = hosts.add_hosts(rt, SYSTEM, [body])[0]

    assert out.name == "g1"
    assert out.zone == "shared"
    assert out.state is HostState.ACTIVE
    assert out.traits == ["gpu_model=V100M32", "ssd"]
    assert out.inventories["VCPU"].capacity == 240  # floor((64 - 4) x 4.0)
    assert out.inventories["MEMORY_MB"].capacity == 262144 - 8192
    assert out.inventories["GPU"].capacity == 8
    assert out.inventories["CUSTOM_FPGA"].capacity == 11  # 10 x 1.1, not 10.999...
    assert all(i.used == 0 and i.free == i.capacity for i in out.inventories.values())
    assert hosts.get_host(rt, SYSTEM, "g1") == out
    assert check_consistency(rt).ok


def test_a_refused_batch_stores_nothing(rt: Runtime, world: World) -> None:
    before = (_host_rows(rt), counters(rt).events)

    with pytest.raises(InvalidInput) as repeated:
        hosts.add_hosts(rt, SYSTEM, [host("n1"), host("n2"), host("n1")])
    with pytest.raises(AlreadyExists) as existing:
        hosts.add_hosts(rt, SYSTEM, [host("n1"), host("h2"), host("n2")])
    with pytest.raises(NotFound) as unknown_zone:
        hosts.add_hosts(rt, SYSTEM, [host("n1"), host("n2", zone="mars")])

    assert repeated.value.code == "validation_error"
    assert repeated.value.extra["errors"] == [{"field": "name", "message": "duplicate: n1"}]
    assert (existing.value.code, existing.value.status) == ("already_exists", 409)
    assert existing.value.extra["names"] == ["h2"]
    assert unknown_zone.value.extra == {"resource": "zone", "name": "mars"}
    assert (_host_rows(rt), counters(rt).events) == before
    with pytest.raises(NotFound):
        hosts.get_host(rt, SYSTEM, "n1")

    out = hosts.add_hosts(rt, SYSTEM, [host(f"b{i}") for i in range(25)])
    assert [h.name for h in out] == [f"b{i}" for i in range(25)]
    assert len(_names(rt, limit=500)) == 4 + 25


def test_only_group_admins_add_drain_or_remove_hosts(rt: Runtime, world: World) -> None:
    for secret in (world.bank_admin, world.bank_member):
        actor = who(rt, secret)
        with pytest.raises(Forbidden):
            hosts.add_hosts(rt, actor, [host("x1")])
        with pytest.raises(Forbidden):
            hosts.drain_host(rt, actor, "h2")
        with pytest.raises(Forbidden):
            hosts.remove_host(rt, actor, "h2")
        with pytest.raises(Forbidden):
            hosts.set_inventories(rt, actor, "h2", {"VCPU": InventoryIn(total=1)})
        assert len(hosts.list_hosts(rt, actor).items) == 4  # capacity is readable by all
    assert hosts.get_host(rt, SYSTEM, "h2").state is HostState.ACTIVE


def test_list_hosts_filters_by_zone_state_and_trait(rt: Runtime, world: World) -> None:
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="edge"))
    hosts.add_hosts(
        rt,
        SYSTEM,
        [host("e1", zone="edge", traits=["ssd", "gpu_model=A100"]), host("e2", zone="edge")],
    )
    hosts.drain_host(rt, SYSTEM, "h3")

    assert _names(rt) == ["h1", "h2", "h3", "h4", "e1", "e2"]
    assert _names(rt, zone="edge") == ["e1", "e2"]
    assert _names(rt, zone="shared") == ["h1", "h2", "h3", "h4"]
    assert _names(rt, state=HostState.DRAINING) == ["h3"]
    assert _names(rt, state=HostState.ACTIVE) == ["h1", "h2", "h4", "e1", "e2"]
    assert _names(rt, trait="ssd") == ["h1", "e1"]
    assert _names(rt, trait="gpu_model=A100") == ["e1"]
    assert _names(rt, trait="gpu_model") == []  # a label matches whole, not by key
    assert _names(rt, trait="ssd", zone="shared") == ["h1"]
    assert _names(rt, zone="nowhere") == []


def test_list_hosts_pages_with_a_cursor(rt: Runtime, world: World) -> None:
    hosts.add_hosts(rt, SYSTEM, [host(f"p{i}") for i in range(7)])
    expected = _names(rt)

    items, pages = all_pages(lambda c: hosts.list_hosts(rt, SYSTEM, cursor=c, limit=3))

    assert [h.name for h in items] == expected
    assert len(expected) == 11
    assert pages == 4
    with pytest.raises(InvalidInput):
        hosts.list_hosts(rt, SYSTEM, cursor="not-a-cursor")
    with pytest.raises(InvalidInput):
        hosts.list_hosts(rt, SYSTEM, limit=0)


def test_drained_host_takes_no_new_placements_but_keeps_its_allocations_until_resumed(
    rt: Runtime,
) -> None:
    world = build_world(rt, n_hosts=2)
    dev = who(rt, world.bank_member)
    held = allocations.allocate(rt, dev, ask({"VCPU": 2}, traits=["ssd"]))  # on h1
    hosts.drain_host(rt, SYSTEM, "h1")

    later = [allocations.allocate(rt, dev, ask({"VCPU": 2})).units[0].host for _ in range(3)]

    assert later == ["h2", "h2", "h2"]
    assert allocations.get_allocation(rt, dev, held.id).state.value == "active"
    assert counters(rt).inventory[("h1", "VCPU")] == 2
    with pytest.raises(NoCapacity) as err:  # the ssd host could take it after a resume
        allocations.allocate(rt, dev, ask({"VCPU": 2}, traits=["ssd"]))
    removed = {f["filter"]: f["hosts_removed"] for f in err.value.extra["explain"]["filters"]}
    assert removed["schedulable"] == 1

    hosts.resume_host(rt, SYSTEM, "h1")
    resumed = allocations.allocate(rt, dev, ask({"VCPU": 2}, traits=["ssd"]))
    assert [u.host for u in resumed.units] == ["h1"]
    assert check_consistency(rt).ok


def test_drain_and_resume_are_idempotent(rt: Runtime, world: World) -> None:
    first = hosts.drain_host(rt, SYSTEM, "h2")
    events_after_first = counters(rt).events
    again = hosts.drain_host(rt, SYSTEM, "h2")
    assert first.state is again.state is HostState.DRAINING
    assert again.updated_at == first.updated_at
    assert counters(rt).events == events_after_first

    resumed = hosts.resume_host(rt, SYSTEM, "h2")
    hosts.resume_host(rt, SYSTEM, "h2")
    assert resumed.state is HostState.ACTIVE
    assert counters(rt).events == events_after_first + 1
    with pytest.raises(NotFound):
        hosts.drain_host(rt, SYSTEM, "nope")


def test_host_with_allocations_cannot_be_removed(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    held = allocations.allocate(rt, dev, ask({"VCPU": 2}, traits=["ssd"]))
    hosts.drain_host(rt, SYSTEM, "h1")
    before = counters(rt)

    with pytest.raises(HostNotEmpty) as err:
        hosts.remove_host(rt, SYSTEM, "h1")

    assert err.value.code == "host_not_empty"
    assert err.value.status == 409
    assert err.value.extra == {"host": "h1"}
    assert counters(rt) == before  # the unused inventories (GPU, MEMORY_MB) are all still there
    assert set(hosts.get_host(rt, SYSTEM, "h1").inventories) == {"GPU", "MEMORY_MB", "VCPU"}

    allocations.release(rt, dev, held.id)
    removed = hosts.remove_host(rt, SYSTEM, "h1")
    assert removed.state is HostState.REMOVED
    assert "h1" not in _names(rt)
    assert _names(rt, state=HostState.REMOVED) == ["h1"]
    with pytest.raises(NotFound):
        hosts.get_host(rt, SYSTEM, "h1")
    assert check_consistency(rt).ok


def test_removed_host_takes_no_placements_and_its_name_can_be_added_again(
    rt: Runtime,
) -> None:
    world = build_world(rt, n_hosts=2)
    dev = who(rt, world.bank_member)
    hosts.remove_host(rt, SYSTEM, "h2")
    assert ("h2", "VCPU") not in counters(rt).inventory  # its inventory left the pool

    out = [
        allocations.allocate(rt, dev, ask({"VCPU": 4}, strategy=Strategy.SPREAD)) for _ in range(4)
    ]
    assert {u.host for o in out for u in o.units} == {"h1"}
    with pytest.raises(NoCapacity):
        allocations.allocate(rt, dev, ask({"VCPU": 1}))

    again = hosts.add_hosts(rt, SYSTEM, [host("h2", vcpu=8)])[0]
    assert again.state is HostState.ACTIVE
    assert again.inventories["VCPU"].capacity == 8
    assert _names(rt) == ["h1", "h2"]
    assert _names(rt, state=HostState.REMOVED) == ["h2"]
    placed = allocations.allocate(rt, dev, ask({"VCPU": 8}))
    assert [u.host for u in placed.units] == ["h2"]
    with pytest.raises(NotFound):
        hosts.remove_host(rt, SYSTEM, "nope")
    assert check_consistency(rt).ok


def test_set_inventories_applies_the_capacity_formula(rt: Runtime, world: World) -> None:
    out = hosts.set_inventories(
        rt,
        SYSTEM,
        "h2",
        {
            "VCPU": InventoryIn(total=16, reserved=2, allocation_ratio=4.0),
            "MEMORY_MB": InventoryIn(total=65536, reserved=1024, allocation_ratio=1.5),
            "DISK_GB": InventoryIn(total=1000),
        },
    )
    assert out.inventories["VCPU"].capacity == 56
    assert out.inventories["MEMORY_MB"].capacity == 96768
    assert out.inventories["DISK_GB"].capacity == 1000
    assert counters(rt).inventory[("h2", "DISK_GB")] == 0
    dev = who(rt, world.bank_member)
    set_quotas(rt, "bank", {"DISK_GB": 100})
    placed = allocations.allocate(rt, dev, ask({"DISK_GB": 50}))
    assert [u.host for u in placed.units] == ["h2"]  # the new class is placeable at once
    with pytest.raises(InvalidInput):
        hosts.set_inventories(rt, SYSTEM, "h3", {"VCPU": InventoryIn(total=4, reserved=5)})
    assert check_consistency(rt).ok


def test_inventory_cannot_shrink_below_what_is_allocated(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    allocations.allocate(rt, dev, ask({"VCPU": 10, "GPU": 2}))  # h1 only has GPU
    before = hosts.get_host(rt, SYSTEM, "h1")
    events_before = counters(rt).events

    with pytest.raises(InventoryInUse) as err:
        hosts.set_inventories(
            rt,
            SYSTEM,
            "h1",
            {
                "VCPU": InventoryIn(total=16, reserved=8),  # capacity 8 < 10 used
                "MEMORY_MB": InventoryIn(total=65536),
                "GPU": InventoryIn(total=4),
            },
        )
    assert err.value.code == "inventory_in_use"
    assert err.value.extra == {"resource_class": "VCPU", "capacity": 8}

    with pytest.raises(InventoryInUse) as err:  # dropping a used class
        hosts.set_inventories(
            rt,
            SYSTEM,
            "h1",
            {"VCPU": InventoryIn(total=16), "MEMORY_MB": InventoryIn(total=65536)},
        )
    assert err.value.extra == {"resource_class": "GPU"}
    assert hosts.get_host(rt, SYSTEM, "h1") == before
    assert counters(rt).events == events_before

    exact = hosts.set_inventories(
        rt,
        SYSTEM,
        "h1",
        {"VCPU": InventoryIn(total=10), "GPU": InventoryIn(total=2)},  # MEMORY_MB unused: gone
    )
    assert exact.inventories["VCPU"].free == 0
    assert set(exact.inventories) == {"VCPU", "GPU"}
    assert check_consistency(rt).ok

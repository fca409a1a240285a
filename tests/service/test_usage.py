"""Usage figures per pool, zone, host and company equal the sums of inventories and quotas."""

from __future__ import annotations

from collections import defaultdict

import pytest

from groupcloud.errors import NotFound
from groupcloud.schemas.compute import InventoryIn, UsageLine
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas
from groupcloud.services.compute.usage import UsageScope, usage
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import all_pages, ask, who
from tests.support import World, check_consistency, host


def _table(rows: list[UsageLine]) -> dict[tuple[str, str], tuple[int, int, int, float]]:
    return {(r.name, r.resource_class): (r.capacity, r.used, r.free, r.used_pct) for r in rows}


def _setup(rt: Runtime, world: World) -> None:
    """Two zones, a host with overcommit, a drained and a removed host, some allocations."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="edge"))
    hosts.add_hosts(rt, SYSTEM, [host("e1", vcpu=8, zone="edge"), host("gone")])
    hosts.remove_host(rt, SYSTEM, "gone")
    hosts.set_inventories(
        rt,
        SYSTEM,
        "h4",
        {
            "VCPU": InventoryIn(total=16, allocation_ratio=2.0),
            "MEMORY_MB": InventoryIn(total=65536),
        },
    )
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    allocations.allocate(rt, bank, ask({"VCPU": 4, "MEMORY_MB": 2048, "GPU": 1}))
    allocations.allocate(rt, bank, ask({"VCPU": 3}, zone="edge"))
    allocations.allocate(
        rt, card, ask({"VCPU": 5, "MEMORY_MB": 1000}, project="pay", count=2, zone="shared")
    )
    hosts.drain_host(rt, SYSTEM, "h2")


def test_usage_by_host_zone_and_pool_are_sums_of_inventories(rt: Runtime, world: World) -> None:
    _setup(rt, world)
    per_host = usage(rt, SYSTEM, UsageScope.HOST, limit=500).items
    for r in per_host:
        inv = hosts.get_host(rt, SYSTEM, r.name).inventories[r.resource_class]
        assert (r.capacity, r.used, r.free) == (inv.capacity, inv.used, inv.capacity - inv.used)
        assert r.scope == "host"
    assert {r.name for r in per_host} == {"h1", "h2", "h3", "h4", "e1"}  # not the removed one
    assert _table(per_host)[("h4", "VCPU")][0] == 32
    paged, pages = all_pages(lambda c: usage(rt, SYSTEM, UsageScope.HOST, cursor=c, limit=2))
    assert paged == per_host
    assert pages == 3
    assert {r.name for r in usage(rt, SYSTEM, UsageScope.HOST, zone="edge").items} == {"e1"}

    zone_of = {h.name: h.zone for h in hosts.list_hosts(rt, SYSTEM).items}
    by_zone: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    by_pool: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in per_host:
        by_zone[(zone_of[r.name], r.resource_class)][0] += r.capacity
        by_zone[(zone_of[r.name], r.resource_class)][1] += r.used
        by_pool[("pool", r.resource_class)][0] += r.capacity
        by_pool[("pool", r.resource_class)][1] += r.used

    zones = _table(usage(rt, SYSTEM, UsageScope.ZONE).items)
    pool = _table(usage(rt, SYSTEM, UsageScope.POOL).items)

    assert {k: (c, u) for k, (c, u, _, _) in zones.items()} == {
        k: (c, u) for k, (c, u) in by_zone.items()
    }
    assert {k: (c, u) for k, (c, u, _, _) in pool.items()} == {
        k: (c, u) for k, (c, u) in by_pool.items()
    }
    # 4 hosts of 16 with h4 overcommitted x2, plus e1 of 8: 16 + 16 + 16 + 32 + 8
    assert pool[("pool", "VCPU")] == (88, 17, 71, round(100 * 17 / 88, 2))
    assert zones[("edge", "VCPU")] == (8, 3, 5, 37.5)
    assert pool[("pool", "GPU")] == (4, 1, 3, 25.0)
    assert _table(usage(rt, SYSTEM, UsageScope.ZONE, zone="edge").items).keys() == {
        ("edge", "MEMORY_MB"),
        ("edge", "VCPU"),
    }
    assert _table(usage(rt, SYSTEM, UsageScope.POOL, resource_class="GPU").items) == {
        ("pool", "GPU"): (4, 1, 3, 25.0)
    }
    assert check_consistency(rt).ok


def test_usage_by_company_matches_quotas(rt: Runtime, world: World) -> None:
    _setup(rt, world)
    rows = _table(usage(rt, SYSTEM, UsageScope.COMPANY).items)
    expected = {
        (q.company, q.resource_class): (q.nominal, q.used, q.nominal - q.used, q.used_pct)
        for q in quotas.list_quotas(rt, SYSTEM)
    }
    assert rows == expected
    assert rows[("bank", "VCPU")] == (32, 7, 25, 21.88)
    assert rows[("card", "VCPU")] == (16, 10, 6, 62.5)
    assert check_consistency(rt).ok


def test_company_tokens_see_only_their_own_company_usage(rt: Runtime, world: World) -> None:
    _setup(rt, world)
    pairs = ((world.bank_member, "bank", "card"), (world.card_member, "card", "bank"))
    for secret, mine, other in pairs:
        actor = who(rt, secret)
        rows = usage(rt, actor, UsageScope.COMPANY).items
        assert rows
        assert {r.name for r in rows} == {mine}
        assert usage(rt, actor, UsageScope.COMPANY, company=mine).items == rows
        with pytest.raises(NotFound):
            usage(rt, actor, UsageScope.COMPANY, company=other)
        # pool capacity summaries are open to every role
        assert usage(rt, actor, UsageScope.POOL).items == usage(rt, SYSTEM, UsageScope.POOL).items
    admin_rows = usage(rt, who(rt, world.admin), UsageScope.COMPANY).items
    assert {r.name for r in admin_rows} == {"bank", "card"}

"""Refusals say why, with the right code, and never leave a partial claim behind:
quota_exceeded (409), never_fits (422: whole quota or host shapes), no_capacity (409)."""

from __future__ import annotations

from typing import Any

import pytest

from groupcloud.errors import NeverFits, NoCapacity, NotFound, QuotaExceeded
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import ask, counters, set_quotas, who
from tests.support import World, build_world, check_consistency


def _removed_by(explain: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {f["filter"]: (f["reason"], f["hosts_removed"]) for f in explain["filters"]}


def test_quota_exceeded_reports_requested_used_limit_and_excess(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    allocations.allocate(rt, dev, ask({"VCPU": 10}, count=2))  # bank uses 20 of 32
    before = counters(rt)

    with pytest.raises(QuotaExceeded) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 10, "MEMORY_MB": 1024}, count=2))

    assert err.value.code == "quota_exceeded"
    assert err.value.status == 409
    assert err.value.extra["exceeded"] == [
        {
            "resource_class": "VCPU",
            "kind": "borrowing_limit",
            "requested": 20,
            "own_free": 12,
            "missing": 8,
            "borrowable": 16,
            "limit": 0,
        }
    ]
    assert counters(rt) == before  # MEMORY_MB fitted but was not taken either
    assert check_consistency(rt).ok


def test_request_above_the_whole_quota_never_fits(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    before = counters(rt)

    with pytest.raises(NeverFits) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 10}, count=4))  # 40 > 32, on 4 free hosts

    assert err.value.code == "never_fits"
    assert err.value.status == 422
    assert err.value.extra["exceeded"] == [
        {
            "resource_class": "VCPU",
            "kind": "never",
            "requested": 40,
            "own_free": 32,
            "missing": 8,
            "borrowable": 0,
            "limit": 32,
        }
    ]
    assert counters(rt) == before
    assert check_consistency(rt).ok


def test_request_no_host_shape_can_take_never_fits_with_explain(rt: Runtime, world: World) -> None:
    set_quotas(rt, "bank", {"GPU": 16, "VCPU": 200})  # the quota allows; the hosts never can
    dev = who(rt, world.bank_member)
    before = counters(rt)

    with pytest.raises(NeverFits) as err:
        allocations.allocate(rt, dev, ask({"GPU": 8, "VCPU": 1}))  # biggest host has 4 GPU

    explain = err.value.extra["explain"]
    assert explain["hosts_total"] == 4
    assert explain["hosts_fitting"] == 0
    assert explain["units_requested"] == 1
    assert explain["units_placeable"] == 0
    assert _removed_by(explain)["resources:GPU"] == ("insufficient_gpu", 4)
    assert _removed_by(explain)["schedulable"] == ("host_draining", 0)
    assert "exceeded" not in err.value.extra
    assert counters(rt) == before

    with pytest.raises(NeverFits) as err:  # a unit bigger than any host, within quota
        allocations.allocate(rt, dev, ask({"VCPU": 20}))
    assert _removed_by(err.value.extra["explain"])["resources:VCPU"] == ("insufficient_vcpu", 4)

    with pytest.raises(NeverFits) as err:  # a gang bigger than the whole pool
        allocations.allocate(rt, dev, ask({"VCPU": 16}, count=5))
    assert err.value.extra["explain"]["units_requested"] == 5
    assert counters(rt) == before
    assert check_consistency(rt).ok


def test_no_capacity_when_used_up_but_the_request_could_fit_later(rt: Runtime) -> None:
    world = build_world(rt, n_hosts=1)
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    allocations.allocate(rt, bank, ask({"VCPU": 12}))
    before = counters(rt)

    with pytest.raises(NoCapacity) as err:
        allocations.allocate(rt, card, ask({"VCPU": 8}, project="pay"))

    assert err.value.code == "no_capacity"
    assert err.value.status == 409
    explain = err.value.extra["explain"]
    assert explain["hosts_total"] == 1
    assert explain["hosts_fitting"] == 0
    assert _removed_by(explain)["resources:VCPU"] == ("insufficient_vcpu", 1)
    assert counters(rt) == before
    assert check_consistency(rt).ok


def test_gang_is_all_or_nothing(rt: Runtime, world: World) -> None:
    set_quotas(rt, "bank", {"VCPU": 64})
    dev = who(rt, world.bank_member)
    first = allocations.allocate(rt, dev, ask({"VCPU": 12}, count=3))  # 3 hosts at 12/16
    assert len({u.host for u in first.units}) == 3
    before = counters(rt)

    # 3 units of 8: the empty host takes 2, the others have 4 free each.
    with pytest.raises(NoCapacity) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 8}, count=3))

    assert err.value.extra["explain"]["units_requested"] == 3
    assert err.value.extra["explain"]["units_placeable"] == 2
    assert counters(rt) == before  # no unit of the gang was kept
    assert check_consistency(rt).ok

    two = allocations.allocate(rt, dev, ask({"VCPU": 8}, count=2))
    empty = ({"h1", "h2", "h3", "h4"} - {u.host for u in first.units}).pop()
    assert [u.host for u in two.units] == [empty, empty]
    assert counters(rt).inventory[(empty, "VCPU")] == 16
    assert check_consistency(rt).ok


def test_an_empty_zone_a_missing_trait_or_class_never_fits(rt: Runtime, world: World) -> None:
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="edge"))
    dev = who(rt, world.bank_member)
    with pytest.raises(NeverFits) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 1}, zone="edge"))
    assert _removed_by(err.value.extra["explain"])["zone"] == ("zone_not_allowed", 4)
    with pytest.raises(NeverFits) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 1}, traits=["nvme"]))
    assert _removed_by(err.value.extra["explain"])["traits"] == ("missing_trait", 4)
    set_quotas(rt, "bank", {"CUSTOM_FPGA": 2})  # granted, but no host has the class
    with pytest.raises(NeverFits) as err:
        allocations.allocate(rt, dev, ask({"CUSTOM_FPGA": 1}))
    assert _removed_by(err.value.extra["explain"])["resources:CUSTOM_FPGA"] == (
        "insufficient_custom_fpga",
        4,
    )

    placed = allocations.allocate(rt, dev, ask({"VCPU": 1}, zone="shared"))
    assert placed.zone == "shared"
    assert check_consistency(rt).ok


def test_unknown_zone_and_another_companys_project_are_not_found(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    before = counters(rt)
    with pytest.raises(NotFound) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 1}, zone="nowhere"))
    assert err.value.extra == {"resource": "zone", "name": "nowhere"}
    with pytest.raises(NotFound) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 1}, project="pay"))  # card's project
    assert err.value.extra["resource"] == "project"
    with pytest.raises(NotFound) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 1}, company="card", project="pay"))
    assert err.value.extra["resource"] == "company"
    assert counters(rt) == before
    assert check_consistency(rt).ok


def test_quota_refusal_wins_over_placement_refusal(rt: Runtime) -> None:
    """A request over the company's remaining quota is refused for quota even when the
    pool is also full: admission comes before placement."""
    world = build_world(rt, n_hosts=1)
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    allocations.allocate(rt, card, ask({"VCPU": 16}, project="pay"))  # h1 is full
    allocations.allocate(rt, card, ask({"MEMORY_MB": 60000}, project="pay"))
    with pytest.raises(QuotaExceeded) as err:
        allocations.allocate(rt, card, ask({"MEMORY_MB": 8192}, project="pay"))
    assert err.value.extra["exceeded"][0]["resource_class"] == "MEMORY_MB"
    with pytest.raises(NoCapacity):
        allocations.allocate(rt, bank, ask({"VCPU": 1}))
    assert check_consistency(rt).ok

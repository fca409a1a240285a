"""Placement honours the rules for regulated data on both databases: the claim path, the
scheduler and explain use the zones the rules allow, a named zone the rules remove is
refused with the rule's id, zone changes reach placement (in this process and others),
and allocations keep their data class and system type."""

from __future__ import annotations

from pathlib import Path

import pytest

from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.errors import Forbidden, InvalidInput, NeverFits, NotFound, ZoneForbidden
from groupcloud.placement.zone_rules import ZoneRulesError
from groupcloud.schemas.tenancy import ProjectCreate, ProjectUpdate
from groupcloud.schemas.zones import ZoneCreate, ZoneUpdate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, explain, hosts, scheduler
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.conftest import open_runtime
from tests.service.helpers import ask, set_quotas, who
from tests.support import World, host

CSA = "cloud_security_assessment"
D1, D2, D3 = Sensitivity.D1, Sensitivity.D2, Sensitivity.D3
INTERNAL = SystemType.INTERNAL_BUSINESS


@pytest.fixture
def zoned(rt: Runtime, world: World) -> World:
    """Besides the shared zone (hosts h1-h4, 16 VCPU): ext-us (US, assessed, approved for
    D3 -- but abroad) with u1 (64 VCPU), ext-kr (KR, assessed, approved for D3,
    internet-separated) with k1 (48 VCPU), bank-local (bank's, separated) with b1 (40)."""
    for body in (
        ZoneCreate(name="ext-us", kind=ZoneKind.EXTERNAL, country="US", certifications=[CSA],
                   approved=True, approved_for_d3=True),
        ZoneCreate(name="ext-kr", kind=ZoneKind.EXTERNAL, country="KR", certifications=[CSA],
                   approved=True, approved_for_d3=True, internet_separated=True),
        ZoneCreate(name="bank-local", kind=ZoneKind.LOCAL, owner_company="bank", country="KR",
                   internet_separated=True),
    ):  # fmt: skip
        zones.create_zone(rt, SYSTEM, body)
    hosts.add_hosts(
        rt,
        SYSTEM,
        [
            host("u1", vcpu=64, zone="ext-us"),
            host("k1", vcpu=48, zone="ext-kr"),
            host("b1", vcpu=40, zone="bank-local"),
        ],
    )
    for company in ("bank", "card"):
        set_quotas(rt, company, {"VCPU": 256})
    return world


def test_a_named_zone_the_rules_remove_is_refused_naming_the_rule(
    rt: Runtime, zoned: World
) -> None:
    bank = who(rt, zoned.bank_member)
    with pytest.raises(ZoneForbidden) as caught:
        allocations.allocate(rt, bank, ask({"VCPU": 1}, zone="ext-us"))  # D3 by default
    assert caught.value.extra["rules"] == ["d3_private_or_assessed_kr_external"]
    assert "country is US, not KR" in caught.value.detail
    assert caught.value.extra["allowed_zones"] == ["bank-local", "ext-kr", "shared"]
    with pytest.raises(ZoneForbidden) as internal:
        allocations.allocate(
            rt, bank, ask({"VCPU": 1}, zone="shared", data_class=D1, system_type=INTERNAL)
        )
    assert internal.value.extra["rules"] == ["internal_business_internet_separated"]
    card = who(rt, zoned.card_member)
    with pytest.raises(ZoneForbidden) as local:
        allocations.allocate(
            rt, card, ask({"VCPU": 1}, project="pay", zone="bank-local", data_class=D1)
        )
    assert local.value.extra["rules"] == ["local_zone_owner"]
    d1 = allocations.allocate(rt, bank, ask({"VCPU": 1}, zone="ext-us", data_class=D1))
    assert [u.host for u in d1.units] == ["u1"]


def test_a_local_zone_lent_to_another_company_takes_its_workloads_until_unlent(
    rt: Runtime, zoned: World
) -> None:
    card = who(rt, zoned.card_member)
    ask_local = ask({"VCPU": 2}, project="pay", zone="bank-local", data_class=D1)
    with pytest.raises(ZoneForbidden):
        allocations.allocate(rt, card, ask_local)
    with pytest.raises(Forbidden):  # lending is the operators' change, as every zone's
        zones.update_zone(rt, card, "bank-local", ZoneUpdate(lent_to=["card"]))
    lent = zones.update_zone(rt, SYSTEM, "bank-local", ZoneUpdate(lent_to=["card"]))
    assert lent.lent_to == ["card"]
    placed = allocations.allocate(rt, card, ask_local)
    assert [u.host for u in placed.units] == ["b1"]
    assert zones.update_zone(rt, SYSTEM, "bank-local", ZoneUpdate(lent_to=[])).lent_to == []
    with pytest.raises(ZoneForbidden):  # new requests no more; the one placed stays
        allocations.allocate(rt, card, ask_local)
    assert allocations.get_allocation(rt, card, placed.id).state is AllocationState.ACTIVE
    for bad in (["bank"], ["nobody"]):
        with pytest.raises((InvalidInput, NotFound)):
            zones.update_zone(rt, SYSTEM, "bank-local", ZoneUpdate(lent_to=bad))
    with pytest.raises(InvalidInput):
        zones.update_zone(rt, SYSTEM, "shared", ZoneUpdate(lent_to=["card"]))
    assert zones.get_zone(rt, SYSTEM, "bank-local").lent_to == []


def test_placement_chooses_only_among_the_zones_the_rules_allow(rt: Runtime, zoned: World) -> None:
    bank, card = who(rt, zoned.bank_member), who(rt, zoned.card_member)
    big = {"VCPU": 24}  # only u1, k1 and b1 can take it
    d3_card = allocations.allocate(rt, card, ask(big, project="pay"))
    assert [u.host for u in d3_card.units] == ["k1"]
    allocations.release(rt, card, d3_card.id)
    d1_card = allocations.allocate(rt, card, ask(big, project="pay", data_class=D1, count=2))
    assert {u.host for u in d1_card.units} <= {"u1", "k1"}  # never bank's local zone
    internal = allocations.allocate(rt, bank, ask(big, data_class=D2, system_type=INTERNAL))
    assert [u.host for u in internal.units] in (["k1"], ["b1"])
    stored = allocations.get_allocation(rt, bank, internal.id)
    assert (stored.data_class, stored.system_type) == (D2, INTERNAL)
    assert (d3_card.data_class, d3_card.system_type) == (D3, SystemType.EXTERNAL_SERVICE)


def test_a_request_only_forbidden_zones_could_take_never_fits_and_names_the_rules(
    rt: Runtime, zoned: World
) -> None:
    card = who(rt, zoned.card_member)
    with pytest.raises(NeverFits) as caught:
        allocations.allocate(rt, card, ask({"VCPU": 56}, project="pay"))  # only u1 is as big
    assert "ext-us (d3_private_or_assessed_kr_external)" in caught.value.detail
    verdicts = {z["zone"]: z for z in caught.value.extra["zones"]}
    assert verdicts["ext-us"]["removed_by"] == ["d3_private_or_assessed_kr_external"]
    assert verdicts["bank-local"]["removed_by"] == ["local_zone_owner"]
    assert verdicts["ext-kr"]["allowed"] is True
    placed = allocations.allocate(rt, card, ask({"VCPU": 56}, project="pay", data_class=D2))
    assert [u.host for u in placed.units] == ["u1"]


def test_the_scheduler_admits_only_into_allowed_zones_and_explain_shows_the_rules(
    rt: Runtime, zoned: World
) -> None:
    card = who(rt, zoned.card_member)
    holder = allocations.allocate(rt, card, ask({"VCPU": 40}, project="pay"))
    assert [u.host for u in holder.units] == ["k1"]
    waiting = allocations.allocate(rt, card, ask({"VCPU": 24}, project="pay", queue=True))
    assert waiting.state is AllocationState.PENDING  # u1 is free, but abroad
    scheduler.run_cycle(rt)
    assert allocations.get_allocation(rt, card, waiting.id).state is AllocationState.PENDING
    why = explain.explain(rt, card, waiting.id)
    verdicts = {z["zone"]: z for z in why.zones}
    assert verdicts["ext-us"]["removed_by"] == ["d3_private_or_assessed_kr_external"]
    assert "d3_private_or_assessed_kr_external" in verdicts["ext-us"]["reason"]
    assert verdicts["ext-kr"]["allowed_by"] == [
        "zone_data_classes",
        "d3_private_or_assessed_kr_external",
    ]
    assert any("removed bank-local by local_zone_owner" in r for r in why.reasons)
    allocations.release(rt, card, holder.id)
    scheduler.run_cycle(rt)
    admitted = allocations.get_allocation(rt, card, waiting.id)
    assert admitted.state is AllocationState.ACTIVE
    assert [u.host for u in admitted.units] == ["k1"]


def test_zone_changes_reach_placement_here_and_in_other_processes(
    rt: Runtime, zoned: World, database_url: str, tmp_path: Path
) -> None:
    other = open_runtime(database_url, tmp_path / "other")
    try:
        bank = who(rt, zoned.bank_member)
        assert "ext-us" not in {z.name for z in other.index.zones() if z.country == "KR"}
        with pytest.raises(ZoneForbidden):
            allocations.allocate(other, bank, ask({"VCPU": 1}, zone="ext-us"))
        changed = zones.update_zone(rt, SYSTEM, "ext-us", ZoneUpdate(country="KR"))
        assert (changed.country, changed.approved_for_d3) == ("KR", True)
        here = allocations.allocate(rt, bank, ask({"VCPU": 1}, zone="ext-us"))
        assert [u.host for u in here.units] == ["u1"]
        other.index.sync()  # the zone change bumped the pool generation
        there = allocations.allocate(other, bank, ask({"VCPU": 1}, zone="ext-us"))
        assert [u.host for u in there.units] == ["u1"]
        assert zones.get_zone(rt, bank, "ext-us").country == "KR"
    finally:
        other.close()


def test_zone_attributes_are_validated_and_changed_by_group_admins_only(
    rt: Runtime, zoned: World
) -> None:
    with pytest.raises(InvalidInput, match="external zones only"):
        zones.update_zone(rt, SYSTEM, "shared", ZoneUpdate(approved=True))
    with pytest.raises(InvalidInput, match="approved_for_d3 needs approved"):
        zones.create_zone(
            rt, SYSTEM, ZoneCreate(name="x", kind=ZoneKind.EXTERNAL, approved_for_d3=True)
        )
    with pytest.raises(InvalidInput, match="approved_for_d3 needs approved"):
        zones.update_zone(rt, SYSTEM, "ext-kr", ZoneUpdate(approved=False))
    with pytest.raises(InvalidInput, match="cannot be null"):
        zones.update_zone(rt, SYSTEM, "ext-kr", ZoneUpdate(certifications=None))
    with pytest.raises(Forbidden):
        zones.update_zone(rt, who(rt, zoned.bank_admin), "shared", ZoneUpdate(country="KR"))
    shared = zones.update_zone(
        rt,
        SYSTEM,
        "shared",
        ZoneUpdate(country="KR", internet_separated=True, certifications=["isms", "csap"],
                   data_classes=[D2, D1, D2]),
    )  # fmt: skip
    assert (shared.country, shared.internet_separated) == ("KR", True)
    assert (shared.certifications, shared.data_classes) == (["csap", "isms"], [D1, D2])
    assert [z.name for z in zones.list_zones(rt, SYSTEM)] == [
        "bank-local", "ext-kr", "ext-us", "shared",
    ]  # fmt: skip
    bank = who(rt, zoned.bank_member)
    with pytest.raises(ZoneForbidden) as caught:  # D3 by default; shared holds D1, D2 now
        allocations.allocate(rt, bank, ask({"VCPU": 1}, zone="shared"))
    assert caught.value.extra["rules"] == ["zone_data_classes"]


def test_a_broken_rules_file_stops_the_runtime_from_opening(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: x\n    require: {country: [korea]}\n")
    with pytest.raises(ZoneRulesError, match="ISO 3166"):
        open_runtime(database_url, tmp_path, zone_rules=path)


def test_operator_rules_from_the_settings_file_act_on_placement(
    database_url: str, tmp_path: Path, rt: Runtime, zoned: World
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - id: d1_korea_only\n    when: {data_class: [D1]}\n"
        "    require: {country: [KR]}\n"
    )
    ops = open_runtime(database_url, tmp_path / "ops", zone_rules=path)
    try:
        bank = who(ops, zoned.bank_member)
        with pytest.raises(ZoneForbidden) as caught:
            allocations.allocate(ops, bank, ask({"VCPU": 1}, zone="ext-us", data_class=D1))
        assert caught.value.extra["rules"] == ["d1_korea_only"]
        placed = allocations.allocate(ops, bank, ask({"VCPU": 24}, data_class=D1))
        assert [u.host for u in placed.units] in (["k1"], ["b1"])  # shared has no country
    finally:
        ops.close()


def test_allocations_that_name_no_data_class_take_their_projects_defaults(
    rt: Runtime, zoned: World
) -> None:
    lead, bank = who(rt, zoned.bank_admin), who(rt, zoned.bank_member)
    project = companies.create_project(
        rt, lead, "bank", ProjectCreate(slug="public-web", default_data_class=D1)
    )
    assert (project.default_data_class, project.default_system_type) == (
        D1,
        SystemType.EXTERNAL_SERVICE,
    )
    d1 = allocations.allocate(rt, bank, ask({"VCPU": 1}, project="public-web", zone="ext-us"))
    assert [u.host for u in d1.units] == ["u1"]
    assert d1.data_class is D1
    with pytest.raises(ZoneForbidden):  # the request's own class beats the project's
        allocations.allocate(
            rt, bank, ask({"VCPU": 1}, project="public-web", zone="ext-us", data_class=D3)
        )
    companies.update_project(
        rt, lead, "bank", "public-web", ProjectUpdate(default_system_type=INTERNAL)
    )
    with pytest.raises(ZoneForbidden) as caught:  # at once in the process that changed it
        allocations.allocate(rt, bank, ask({"VCPU": 1}, project="public-web", zone="ext-us"))
    assert caught.value.extra["rules"] == ["internal_business_internet_separated"]
    kept = allocations.get_allocation(rt, bank, d1.id)
    assert (kept.data_class, kept.system_type) == (D1, SystemType.EXTERNAL_SERVICE)
    plain = allocations.allocate(rt, bank, ask({"VCPU": 1}))  # project web: the defaults
    assert (plain.data_class, plain.system_type) == (D3, SystemType.EXTERNAL_SERVICE)


def test_an_owner_takes_its_lent_local_zone_back_with_notice(
    database_url: str, tmp_path: Path
) -> None:
    from groupcloud.services.compute import worker
    from tests.support import build_world, check_consistency

    rt = open_runtime(database_url, tmp_path, reclaim_notice_s=0, reclaim_backoff_s=3600)
    try:
        world = build_world(rt)
        lent_zone = ZoneCreate(
            name="bank-local", kind=ZoneKind.LOCAL, owner_company="bank", lent_to=["card"]
        )
        zones.create_zone(rt, SYSTEM, lent_zone)
        hosts.add_hosts(rt, SYSTEM, [host("b1", vcpu=40, zone="bank-local")])
        for company in ("bank", "card"):
            set_quotas(rt, company, {"VCPU": 256})
        bank, card = who(rt, world.bank_member), who(rt, world.card_member)
        lent = [
            allocations.allocate(
                rt, card, ask({"VCPU": 16}, project="pay", zone="bank-local", data_class=D1)
            )
            for _ in range(2)
        ]
        assert all(a.units[0].host == "b1" for a in lent)
        mine = allocations.allocate(rt, bank, ask({"VCPU": 24}, zone="bank-local", queue=True))
        assert mine.state is AllocationState.PENDING
        worker.run_round(rt)  # the cycle finds no room; the zone's borrowers get notices
        states = [allocations.get_allocation(rt, card, a.id).state for a in lent]
        assert states.count(AllocationState.RECLAIMING) == 1  # one of 16 covers 24 - 8 free
        worker.run_round(rt)  # notice over: reclaimed (requeued after a backoff), bank in
        worker.run_round(rt)
        assert allocations.get_allocation(rt, bank, mine.id).state is AllocationState.ACTIVE
        assert [u.host for u in allocations.get_allocation(rt, bank, mine.id).units] == ["b1"]
        assert sorted(allocations.get_allocation(rt, card, a.id).state for a in lent) == [
            AllocationState.ACTIVE,
            AllocationState.PENDING,
        ]
        assert check_consistency(rt).ok
    finally:
        rt.close()

"""External placement end to end on both databases, with the simulated provider: the
rules choose the zone and the catalog the cheapest instance type, quota is held from
placement to the last deletion, the provisioner creates and deletes, failover blocks a
failing zone and re-plans, the reconciler adopts, cleans up and fails what vanished."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from groupcloud.db.models import EventRow, ExternalInstanceRow, QuotaRow, ZoneBlockRow
from groupcloud.domain.allocation import AllocationState, EndReason
from groupcloud.domain.inventory import ZoneChoice, ZoneKind
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.errors import InvalidInput, NeverFits, NoOffer, ProvidersUnavailable, QuotaExceeded
from groupcloud.providers.base import TAG_ALLOCATION, TAG_MANAGED, TAG_UNIT, InstanceSpec
from groupcloud.schemas.compute import AllocationUpdate
from groupcloud.schemas.providers import ProviderCreate, ProviderKind, ProviderUpdate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, leases
from groupcloud.services.providers import catalog, provisioner
from groupcloud.services.providers.offers import find_offers
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import ask, who
from tests.support import World, check_consistency

CSA = "cloud_security_assessment"
D1, D2, D3 = Sensitivity.D1, Sensitivity.D2, Sensitivity.D3
EXTERNAL = ZoneChoice.EXTERNAL
SMALL = {"VCPU": 2, "MEMORY_MB": 4096}


@pytest.fixture
def hybrid(rt: Runtime, world: World) -> World:
    """``world`` plus provider ``sim`` (simulated) with zones ext-kr (kr-central-1: KR,
    assessed, approved for D3) and ext-us (us-east-1: approved for D1/D2)."""
    catalog.create_provider(rt, SYSTEM, ProviderCreate(name="sim", kind=ProviderKind.SIMULATED))
    zones.create_zone(rt, SYSTEM, ZoneCreate(
        name="ext-kr", kind=ZoneKind.EXTERNAL, provider="sim", region="kr-central-1",
        country="KR", certifications=[CSA], approved=True, approved_for_d3=True))  # fmt: skip
    zones.create_zone(rt, SYSTEM, ZoneCreate(
        name="ext-us", kind=ZoneKind.EXTERNAL, provider="sim", region="us-east-1",
        country="US", approved=True))  # fmt: skip
    return world


def _sim_settings(rt: Runtime, **settings: Any) -> None:
    catalog.update_provider(rt, SYSTEM, "sim", ProviderUpdate(settings=settings))


def _used(rt: Runtime, company: str = "bank", rc: str = "VCPU") -> int:
    with rt.db.read() as s:
        from groupcloud.db.models import CompanyRow

        cid = s.scalar(select(CompanyRow.id).where(CompanyRow.slug == company))
        return int(s.scalar(select(QuotaRow.used).where(
            QuotaRow.company_id == cid, QuotaRow.resource_class == rc)) or 0)  # fmt: skip


def _events(rt: Runtime, kind: str) -> int:
    with rt.db.read() as s:
        return int(s.scalar(select(func.count()).where(EventRow.kind == kind)) or 0)


def _live_instances(rt: Runtime, region: str) -> list[Any]:
    sim = catalog.adapter(
        rt, "sim", "simulated", catalog.get_provider(rt, SYSTEM, "sim").settings or {}
    )
    return provisioner._sync(sim.list_instances(region))


def _consistent(rt: Runtime) -> None:
    found = check_consistency(rt)
    assert found.ok, found


def test_d3_goes_to_the_assessed_korean_region_and_becomes_active(
    rt: Runtime, hybrid: World
) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, count=2, zone_kind=EXTERNAL, data_class=D3))
    assert a.state is AllocationState.PROVISIONING
    assert a.external
    assert {u.zone for u in a.units} == {"ext-kr"}
    assert all(u.instance_id is None and u.price_per_hour for u in a.units)
    assert a.cost_per_hour == sum((u.price_per_hour or Decimal(0) for u in a.units), Decimal(0))
    assert _used(rt) == 4  # quota held from placement on
    _consistent(rt)
    done = provisioner.step(rt)
    assert done.created == 2
    a = allocations.get_allocation(rt, bank, a.id)
    assert a.state is AllocationState.ACTIVE
    ids = {u.instance_id for u in a.units}
    assert None not in ids
    assert len(ids) == 2
    assert {i.id for i in _live_instances(rt, "kr-central-1")} == ids
    assert _events(rt, "allocation.provisioned") == 1
    _consistent(rt)


def test_d2_takes_the_cheapest_approved_region(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    offered = find_offers(rt, bank, data_class=D2, system_type=SystemType.EXTERNAL_SERVICE,
                          vcpu=2, memory_mb=4096, limit=5)  # fmt: skip
    assert offered.offers, offered
    cheapest = offered.offers[0]
    assert cheapest.price_per_hour == min(o.price_per_hour for o in offered.offers)
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, data_class=D2))
    assert a.units[0].zone == cheapest.zone
    assert a.units[0].instance_type == cheapest.instance_type
    # D3 offers only the Korean region; the US one is removed by the D3 rule.
    d3 = find_offers(rt, bank, data_class=D3, system_type=SystemType.EXTERNAL_SERVICE,
                     vcpu=2, memory_mb=4096)  # fmt: skip
    assert {o.zone for o in d3.offers} == {"ext-kr"}
    us = next(v for v in d3.zones if v["zone"] == "ext-us")
    assert us["removed_by"] == ["d3_private_or_assessed_kr_external"]
    internal = find_offers(rt, bank, data_class=D1, system_type=SystemType.INTERNAL_BUSINESS,
                           vcpu=2, memory_mb=4096)  # fmt: skip
    assert internal.offers == []  # no external zone here is internet-separated


def test_burst_only_when_private_zones_are_full(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    fits = allocations.allocate(rt, bank, ask({"VCPU": 8}, burst=True, data_class=D3))
    assert not fits.external
    assert fits.state is AllocationState.ACTIVE
    big = {"VCPU": 20, "MEMORY_MB": 8192}  # no 16-VCPU host takes it
    with pytest.raises(NeverFits):
        allocations.allocate(rt, bank, ask(big, queue=True, data_class=D3))
    burst = allocations.allocate(rt, bank, ask(big, burst=True, data_class=D3))
    assert burst.external
    assert burst.units[0].zone == "ext-kr"
    assert burst.burst
    with pytest.raises(NeverFits):  # burst, but only private zones asked: it stays private
        allocations.allocate(rt, bank, ask(big, burst=True, zone_kind=ZoneChoice.PRIVATE))
    with pytest.raises(NeverFits):
        allocations.allocate(rt, bank, ask(big, burst=True, zone="shared"))
    _consistent(rt)


def test_release_deletes_the_instances_before_the_quota_comes_back(
    rt: Runtime, hybrid: World
) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, count=2, zone_kind=EXTERNAL))
    provisioner.step(rt)
    released = allocations.release(rt, bank, a.id)
    assert released.state is AllocationState.RELEASING
    assert _used(rt) == 4  # the instances still cost money
    _consistent(rt)
    done = provisioner.step(rt)
    assert done.deleted == 2
    a = allocations.get_allocation(rt, bank, a.id)
    assert a.state is AllocationState.RELEASED
    assert a.end_reason is EndReason.RELEASED
    assert _used(rt) == 0
    assert _live_instances(rt, "kr-central-1") == []
    assert allocations.release(rt, bank, a.id).state is AllocationState.RELEASED  # idempotent
    _consistent(rt)


def test_a_pending_creation_released_is_deleted_once_created(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL))
    assert allocations.release(rt, bank, a.id).state is AllocationState.RELEASING
    provisioner.step(rt, reconcile=True)
    provisioner.step(rt, reconcile=True)
    assert allocations.get_allocation(rt, bank, a.id).state is AllocationState.RELEASED
    assert _live_instances(rt, "kr-central-1") == []
    assert _used(rt) == 0


def test_lease_expiry_of_an_external_allocation_deletes_its_instance(
    rt: Runtime, hybrid: World
) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, lease_s=60))
    provisioner.step(rt)
    later = rt.clock().replace(year=rt.clock().year + 1)
    leases.tick(rt, later)
    assert allocations.get_allocation(rt, bank, a.id).state is AllocationState.RELEASING
    provisioner.step(rt)
    a = allocations.get_allocation(rt, bank, a.id)
    assert a.state is AllocationState.RELEASED
    assert a.end_reason is EndReason.EXPIRED
    assert _live_instances(rt, "kr-central-1") == []
    _consistent(rt)


def test_failover_blocks_the_zone_and_replans_in_the_next(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    _sim_settings(rt, fail_regions=["us-east-1"])
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, data_class=D1))
    assert a.units[0].zone == "ext-us"  # the cheapest
    done = provisioner.step(rt)
    assert done.replanned == 1
    assert done.errors
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ZoneBlockRow)) == 1
    a = allocations.get_allocation(rt, bank, a.id)
    assert [u.zone for u in a.units] == ["ext-kr"]
    assert zones.get_zone(rt, bank, "ext-us").blocked_until is not None
    provisioner.step(rt)
    assert allocations.get_allocation(rt, bank, a.id).state is AllocationState.ACTIVE
    # While blocked, new requests skip the zone; offers say why.
    b = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, data_class=D1))
    assert b.units[0].zone == "ext-kr"
    offered = find_offers(rt, bank, data_class=D1, system_type=SystemType.EXTERNAL_SERVICE,
                          vcpu=2, memory_mb=4096)  # fmt: skip
    assert {o.zone for o in offered.offers} == {"ext-kr"}
    assert next(v for v in offered.zones if v["zone"] == "ext-us")["blocked_until"]
    assert _events(rt, "zone.blocked") == 1
    _consistent(rt)


def test_failover_with_no_allowed_zone_left_fails_and_returns_the_quota(
    rt: Runtime, hybrid: World
) -> None:
    bank = who(rt, hybrid.bank_member)
    _sim_settings(rt, fail_regions=["kr-central-1"])
    a = allocations.allocate(rt, bank, ask(SMALL, count=2, zone_kind=EXTERNAL, data_class=D3))
    assert _used(rt) == 4
    done = provisioner.step(rt)
    assert done.failed == 1
    a = allocations.get_allocation(rt, bank, a.id)
    assert a.state is AllocationState.FAILED
    assert a.end_reason is EndReason.PROVIDER_FAILED
    assert _used(rt) == 0
    assert _events(rt, "allocation.failed") == 1
    with pytest.raises(ProvidersUnavailable):  # the only D3 zone is blocked now
        allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, data_class=D3))
    _consistent(rt)


def test_reconciler_fails_an_allocation_whose_instance_vanished(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, count=2, zone_kind=EXTERNAL))
    provisioner.step(rt)
    a = allocations.get_allocation(rt, bank, a.id)
    sim = catalog.adapter(rt, "sim", "simulated", {})
    sim.vanish(a.units[0].instance_id)  # type: ignore[attr-defined]
    done = provisioner.step(rt, reconcile=True)
    assert done.lost == 1
    a = allocations.get_allocation(rt, bank, a.id)
    assert a.state is AllocationState.FAILED
    assert a.end_reason is EndReason.INSTANCE_LOST
    assert _used(rt) == 0
    provisioner.step(rt)  # the other unit's instance is deleted
    assert _live_instances(rt, "kr-central-1") == []
    _consistent(rt)


def test_reconciler_adopts_an_instance_created_before_a_crash_and_deletes_orphans(
    rt: Runtime, hybrid: World
) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL))
    with rt.db.read() as s:
        token = s.scalar(select(ExternalInstanceRow.client_token))
    sim = catalog.adapter(rt, "sim", "simulated", {})
    tags = {TAG_MANAGED: "true", TAG_ALLOCATION: a.id, TAG_UNIT: "0"}
    # The process created the instance, then died before it committed the id.
    made = provisioner._sync(sim.create_instance(
        InstanceSpec(client_token=str(token), region="kr-central-1",
                     instance_type=str(a.units[0].instance_type), tags=tags)))  # fmt: skip
    # And an instance of groupcloud's that no row knows (an older crash).
    stray = provisioner._sync(sim.create_instance(
        InstanceSpec(client_token="lost-token", region="kr-central-1",
                     instance_type="m5.large", tags={TAG_MANAGED: "true"})))  # fmt: skip
    done = provisioner.step(rt, reconcile=True)
    a = allocations.get_allocation(rt, bank, a.id)
    assert a.state is AllocationState.ACTIVE
    assert a.units[0].instance_id == made.id
    assert done.orphans_deleted == 1
    assert {i.id for i in _live_instances(rt, "kr-central-1")} == {made.id}
    assert stray.id != made.id
    _consistent(rt)


def test_repatriation_flags_what_a_private_zone_could_take_back(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, repatriate=True))
    plain = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL))
    first = provisioner.step(rt)  # created, then (the first reconciliation is due) flagged
    again = provisioner.step(rt, reconcile=True)
    assert (first.repatriable, again.repatriable) == (1, 0)
    assert allocations.get_allocation(rt, bank, a.id).repatriable_at is not None
    assert allocations.get_allocation(rt, bank, plain.id).repatriable_at is None
    assert _events(rt, "allocation.repatriable") == 1


def test_refusals_name_what_cannot_go_external(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    with pytest.raises(NoOffer):
        allocations.allocate(rt, bank, ask({"VCPU": 2, "CUSTOM_FPGA": 1}, zone_kind=EXTERNAL))
    with pytest.raises(NoOffer):
        allocations.allocate(rt, bank, ask({"VCPU": 2}, gpu_share=250, zone_kind=EXTERNAL))
    with pytest.raises(NoOffer):  # no instance type is that big
        allocations.allocate(rt, bank, ask({"VCPU": 4096}, zone_kind=EXTERNAL))
    with pytest.raises(NoOffer):  # internal business systems need separated zones
        allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL,
                                           system_type=SystemType.INTERNAL_BUSINESS))  # fmt: skip
    with pytest.raises(QuotaExceeded):  # bank's VCPU quota is 32
        allocations.allocate(rt, bank, ask({"VCPU": 16}, count=3, zone_kind=EXTERNAL))
    with pytest.raises(InvalidInput):
        allocations.allocate(rt, bank, ask(SMALL, zone="shared", zone_kind=EXTERNAL))
    assert _used(rt) == 0
    _consistent(rt)


def test_an_external_allocation_cannot_be_changed_once_failed(rt: Runtime, hybrid: World) -> None:
    bank = who(rt, hybrid.bank_member)
    _sim_settings(rt, fail_regions=["kr-central-1", "us-east-1"])
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL))
    provisioner.step(rt)
    assert allocations.get_allocation(rt, bank, a.id).state is AllocationState.FAILED
    from groupcloud.errors import AllocationReleased

    with pytest.raises(AllocationReleased):
        allocations.update_allocation(rt, bank, a.id, AllocationUpdate(keep=True))


def test_explain_says_where_an_external_allocation_runs(rt: Runtime, hybrid: World) -> None:
    from groupcloud.services.compute import explain

    bank = who(rt, hybrid.bank_member)
    a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, data_class=D3))
    provisioner.step(rt)
    said = explain.explain(rt, bank, a.id)
    assert said.state is AllocationState.ACTIVE
    assert "ext-kr" in said.summary
    assert any(v["zone"] == "ext-us" and not v["allowed"] for v in said.zones)


def test_a_region_that_hangs_times_out_and_fails_over(database_url: str, tmp_path: Path) -> None:
    from tests.conftest import open_runtime
    from tests.support import build_world

    rt = open_runtime(database_url, tmp_path, provider_timeout_s=0.2, provider_attempts=1)
    try:
        world = build_world(rt)
        hang = {"hang_regions": ["us-east-1"]}
        catalog.create_provider(
            rt, SYSTEM, ProviderCreate(name="sim", kind=ProviderKind.SIMULATED, settings=hang)
        )
        for name, region, country in (
            ("ext-kr", "kr-central-1", "KR"),
            ("ext-us", "us-east-1", "US"),
        ):
            zones.create_zone(rt, SYSTEM, ZoneCreate(
                name=name, kind=ZoneKind.EXTERNAL, provider="sim", region=region,
                country=country, approved=True))  # fmt: skip
        bank = who(rt, world.bank_member)
        a = allocations.allocate(rt, bank, ask(SMALL, zone_kind=EXTERNAL, data_class=D1))
        assert a.units[0].zone == "ext-us"  # the cheapest, and it never answers
        done = provisioner.step(rt)
        assert done.replanned == 1
        assert "timed out" in done.errors[0]
        provisioner.step(rt)
        a = allocations.get_allocation(rt, bank, a.id)
        assert a.state is AllocationState.ACTIVE
        assert [u.zone for u in a.units] == ["ext-kr"]
        _consistent(rt)
    finally:
        rt.close()

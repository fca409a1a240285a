"""Invariant 4: a company never sees or changes another company's objects unless a group
role allows it; plus companies, projects and zones, their lists and cursors."""

from __future__ import annotations

import pytest

from groupcloud.domain.inventory import ZoneKind
from groupcloud.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, quotas
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import all_pages, ask, counters, who
from tests.support import World, check_consistency


def test_a_member_cannot_see_or_release_another_companys_allocation(
    rt: Runtime, world: World
) -> None:
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    theirs = allocations.allocate(rt, card, ask({"VCPU": 2}, project="pay"))
    before = counters(rt)

    for actor in (bank, who(rt, world.bank_admin)):
        with pytest.raises(NotFound) as err:
            allocations.get_allocation(rt, actor, theirs.id)
        assert err.value.status == 404  # not 403: its existence is not revealed
        with pytest.raises(NotFound):
            allocations.release(rt, actor, theirs.id)
        with pytest.raises(NotFound):
            allocations.list_allocations(rt, actor, company="card")
        assert allocations.list_allocations(rt, actor).items == []

    assert counters(rt) == before
    assert allocations.get_allocation(rt, card, theirs.id).state.value == "active"
    assert check_consistency(rt).ok


def test_group_admin_sees_and_releases_every_companys_allocations(
    rt: Runtime, world: World
) -> None:
    admin = who(rt, world.admin)
    a = allocations.allocate(rt, who(rt, world.bank_member), ask({"VCPU": 1}))
    b = allocations.allocate(rt, who(rt, world.card_member), ask({"VCPU": 1}, project="pay"))

    assert [x.id for x in allocations.list_allocations(rt, admin).items] == [a.id, b.id]
    assert [x.id for x in allocations.list_allocations(rt, admin, company="card").items] == [b.id]
    assert allocations.get_allocation(rt, admin, a.id).company == "bank"
    released = allocations.release(rt, admin, b.id)
    assert released.released_by == "token:ops"
    assert counters(rt).quota[("card", "VCPU")] == 0
    assert check_consistency(rt).ok


def test_a_company_cannot_list_another_companys_projects_quotas_or_company(
    rt: Runtime, world: World
) -> None:
    for secret in (world.bank_member, world.bank_admin):
        actor = who(rt, secret)
        with pytest.raises(NotFound):
            companies.list_projects(rt, actor, "card")
        with pytest.raises(NotFound):
            companies.get_company(rt, actor, "card")
        with pytest.raises(NotFound):
            quotas.list_quotas(rt, actor, "card")
        assert {q.company for q in quotas.list_quotas(rt, actor)} == {"bank"}
        assert [c.slug for c in companies.list_companies(rt, actor).items] == ["bank"]
        assert [p.slug for p in companies.list_projects(rt, actor, "bank").items] == [
            "web",
            "batch",
        ]
        assert companies.get_company(rt, actor, "bank").name == "Bank"


def test_company_admin_creates_projects_in_its_own_company_only(rt: Runtime, world: World) -> None:
    lead = who(rt, world.bank_admin)

    made = companies.create_project(rt, lead, "bank", ProjectCreate(slug="risk", name="Risk"))

    assert (made.company, made.slug, made.name) == ("bank", "risk", "Risk")
    with pytest.raises(NotFound):
        companies.create_project(rt, lead, "card", ProjectCreate(slug="risk"))
    with pytest.raises(Forbidden) as err:
        companies.create_project(rt, who(rt, world.bank_member), "bank", ProjectCreate(slug="x"))
    assert err.value.status == 403
    with pytest.raises(AlreadyExists):
        companies.create_project(rt, lead, "bank", ProjectCreate(slug="risk"))
    same_slug_elsewhere = companies.create_project(rt, SYSTEM, "card", ProjectCreate(slug="web"))
    assert same_slug_elsewhere.company == "card"
    assert [p.slug for p in companies.list_projects(rt, SYSTEM, "card").items] == ["pay", "web"]
    # the new project takes allocations at once
    out = allocations.allocate(rt, who(rt, world.bank_member), ask({"VCPU": 1}, project="risk"))
    assert out.project == "risk"


def test_only_group_admins_create_companies_and_zones(rt: Runtime, world: World) -> None:
    for secret in (world.bank_admin, world.bank_member):
        actor = who(rt, secret)
        with pytest.raises(Forbidden):
            companies.create_company(rt, actor, CompanyCreate(slug="capital", name="Capital"))
        with pytest.raises(Forbidden):
            zones.create_zone(rt, actor, ZoneCreate(name="edge"))
    with pytest.raises(AlreadyExists):
        companies.create_company(rt, SYSTEM, CompanyCreate(slug="bank", name="Again"))
    with pytest.raises(AlreadyExists):
        zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    with pytest.raises(InvalidInput):
        zones.create_zone(rt, SYSTEM, ZoneCreate(name="own", kind=ZoneKind.LOCAL))
    local = zones.create_zone(
        rt, SYSTEM, ZoneCreate(name="bank-local", kind=ZoneKind.LOCAL, owner_company="bank")
    )
    assert (local.kind, local.owner_company) == (ZoneKind.LOCAL, "bank")
    listed = zones.list_zones(rt, who(rt, world.card_member))
    assert [(z.name, z.kind) for z in listed] == [
        ("bank-local", ZoneKind.LOCAL),
        ("shared", ZoneKind.SHARED),
    ]
    assert [c.slug for c in companies.list_companies(rt, SYSTEM).items] == ["bank", "card"]


def test_companies_and_projects_page_with_cursors(rt: Runtime, world: World) -> None:
    for i in range(5):
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=f"co{i}", name=f"Co {i}"))
        companies.create_project(rt, SYSTEM, "bank", ProjectCreate(slug=f"p{i}"))

    listed, c_pages = all_pages(lambda c: companies.list_companies(rt, SYSTEM, cursor=c, limit=2))
    projects, p_pages = all_pages(
        lambda c: companies.list_projects(rt, SYSTEM, "bank", cursor=c, limit=3)
    )

    assert [c.slug for c in listed] == ["bank", "card", "co0", "co1", "co2", "co3", "co4"]
    assert c_pages == 4
    assert [p.slug for p in projects] == ["web", "batch", "p0", "p1", "p2", "p3", "p4"]
    assert p_pages == 3
    with pytest.raises(InvalidInput):
        companies.list_companies(rt, SYSTEM, limit=501)
    with pytest.raises(InvalidInput):
        companies.list_projects(rt, SYSTEM, "bank", cursor="%%%")


def test_allocations_page_with_a_cursor_within_the_callers_company(
    rt: Runtime, world: World
) -> None:
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    made = []
    for i in range(5):
        made.append(allocations.allocate(rt, bank, ask({"VCPU": 1})).id)
        allocations.allocate(rt, card, ask({"VCPU": 1}, project="pay"))
        if i == 2:
            allocations.release(rt, bank, made[-1])

    mine, pages = all_pages(lambda c: allocations.list_allocations(rt, bank, cursor=c, limit=2))
    everyone, _ = all_pages(lambda c: allocations.list_allocations(rt, SYSTEM, cursor=c, limit=3))

    assert [a.id for a in mine] == made
    assert pages == 3
    assert len(everyone) == 10
    assert {a.company for a in everyone} == {"bank", "card"}
    assert check_consistency(rt).ok

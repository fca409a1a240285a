"""The audit trail: every state change writes one event with its actor (invariant 5),
and a company sees only its own events (invariant 4)."""

from __future__ import annotations

import pytest

from groupcloud.domain.tenancy import Principal, Role
from groupcloud.errors import GroupcloudError, InvalidInput, NotFound
from groupcloud.schemas.audit import Event
from groupcloud.schemas.compute import InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.audit.events import list_events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import all_pages, ask, who
from tests.support import World, check_consistency, host


def _new_events(rt: Runtime, after: int) -> list[Event]:
    items, _ = all_pages(lambda c: list_events(rt, SYSTEM, cursor=c, limit=500))
    return [e for e in items if e.id > after]


def _last_id(rt: Runtime) -> int:
    items, _ = all_pages(lambda c: list_events(rt, SYSTEM, cursor=c, limit=500))
    return items[-1].id if items else 0


def test_every_state_change_records_one_event_with_its_actor(rt: Runtime, world: World) -> None:
    ops = who(rt, world.admin)
    lead = who(rt, world.bank_admin)
    dev = who(rt, world.bank_member)
    start = _last_id(rt)

    companies.create_company(rt, ops, CompanyCreate(slug="capital", name="Capital"))
    companies.create_project(rt, lead, "bank", ProjectCreate(slug="risk"))
    zones.create_zone(rt, ops, ZoneCreate(name="edge"))
    hosts.add_hosts(rt, ops, [host("x1")])
    hosts.drain_host(rt, ops, "x1")
    hosts.resume_host(rt, ops, "x1")
    hosts.set_inventories(rt, ops, "x1", {"VCPU": InventoryIn(total=8)})
    hosts.remove_host(rt, ops, "x1")
    quotas.set_quota(rt, ops, "capital", "VCPU", QuotaSet(nominal=4))
    out = allocations.allocate(rt, dev, ask({"VCPU": 2, "MEMORY_MB": 512}, count=2))
    allocations.release(rt, dev, out.id)
    issued = tokens.issue_token(rt, lead, TokenCreate(name="ci", role=Role.MEMBER, company="bank"))
    tokens.revoke_token(rt, lead, issued.id)

    seen = [(e.kind, e.subject, e.actor, e.company) for e in _new_events(rt, start)]
    assert seen == [
        ("company.created", "company/capital", "token:ops", "capital"),
        ("project.created", "project/bank/risk", "token:bank-lead@bank", "bank"),
        ("zone.created", "zone/edge", "token:ops", None),
        ("host.added", "host/x1", "token:ops", None),
        ("host.drained", "host/x1", "token:ops", None),
        ("host.resumed", "host/x1", "token:ops", None),
        ("host.inventory_changed", "host/x1", "token:ops", None),
        ("host.removed", "host/x1", "token:ops", None),
        ("quota.set", "quota/capital/VCPU", "token:ops", "capital"),
        ("allocation.created", f"allocation/{out.id}", "token:bank-dev@bank", "bank"),
        ("allocation.released", f"allocation/{out.id}", "token:bank-dev@bank", "bank"),
        ("token.issued", f"token/{issued.id}", "token:bank-lead@bank", "bank"),
        ("token.revoked", f"token/{issued.id}", "token:bank-lead@bank", "bank"),
    ]
    assert check_consistency(rt).ok


def test_allocation_events_carry_what_was_claimed_and_returned(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    out = allocations.allocate(rt, dev, ask({"VCPU": 2, "MEMORY_MB": 512}, count=2))
    allocations.release(rt, dev, out.id)

    trail = list_events(rt, dev, subject=f"allocation/{out.id}").items

    assert [e.kind for e in trail] == ["allocation.created", "allocation.released"]
    created, released = trail[0].data, trail[1].data
    assert created["claimed"] == {"MEMORY_MB": 1024, "VCPU": 4}
    assert created["hosts"] == [u.host for u in out.units]
    assert created["count"] == 2
    assert created["project"] == "web"
    assert released["returned"] == {"MEMORY_MB": 1024, "VCPU": 4}
    assert check_consistency(rt).ok


def test_refusals_record_nothing(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    start = _last_id(rt)
    for body in (ask({"VCPU": 100}), ask({"VCPU": 20}), ask({"VCPU": 1}, traits=["nvme"])):
        with pytest.raises(GroupcloudError, match=r"quota|host"):
            allocations.allocate(rt, dev, body)
    assert _new_events(rt, start) == []
    assert check_consistency(rt).ok


def test_company_tokens_see_only_their_company_events(rt: Runtime, world: World) -> None:
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    allocations.allocate(rt, bank, ask({"VCPU": 1}))
    allocations.allocate(rt, card, ask({"VCPU": 1}, project="pay"))

    def seen_by(actor: Principal) -> list[Event]:
        items, _ = all_pages(lambda c: list_events(rt, actor, cursor=c, limit=3))
        return items

    for actor, mine in ((bank, "bank"), (card, "card")):
        items = seen_by(actor)
        assert items
        assert {e.company for e in items} == {mine}
        assert {"allocation.created", "project.created", "quota.set", "token.issued"} <= {
            e.kind for e in items
        }
    with pytest.raises(NotFound):  # as every list: another company's slug is not_found
        list_events(rt, bank, company="card")
    everything = list_events(rt, SYSTEM, limit=500).items
    assert {e.company for e in everything} == {"bank", "card", None}
    assert {e.company for e in list_events(rt, SYSTEM, company="card", limit=500).items} == {"card"}


def test_events_filter_by_kind_prefix_and_page_with_a_cursor(rt: Runtime, world: World) -> None:
    hosts.add_hosts(rt, SYSTEM, [host(f"x{i}") for i in range(5)])
    added = list_events(rt, SYSTEM, kind="host.added", limit=500).items
    assert [e.subject for e in added] == [f"host/h{i}" for i in range(1, 5)] + [
        f"host/x{i}" for i in range(5)
    ]
    by_prefix = list_events(rt, SYSTEM, kind="host.", limit=500).items
    assert by_prefix == added
    assert list_events(rt, SYSTEM, kind="host%", limit=500).items == []  # no LIKE wildcards

    everything = list_events(rt, SYSTEM, limit=500).items
    paged, pages = all_pages(lambda c: list_events(rt, SYSTEM, cursor=c, limit=4))
    assert paged == everything
    assert pages == (len(everything) + 3) // 4
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    with pytest.raises(InvalidInput):
        list_events(rt, SYSTEM, cursor="djI6MQ")  # "v2:1": a cursor of another version

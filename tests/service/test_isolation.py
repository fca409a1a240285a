"""Network isolation on the services, on SQLite and PostgreSQL: security rules, peerings
(request -> accept/reject -> delete), bans, reachability, company isolation, the audit
trail, and racing requests and acceptances of one pair."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from groupcloud.db.models import EventRow, PeeringRow
from groupcloud.domain.isolation import Direction, PeeringState, Protocol, Reason
from groupcloud.domain.tenancy import Principal, Role
from groupcloud.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    NotFound,
    PeeringAddressFamiliesDiffer,
    PeeringForbidden,
    PeeringNotPending,
    PeeringPrefixesOverlap,
    PrefixInUse,
)
from groupcloud.schemas.isolation import (
    FlowQuery,
    PeeringBanCreate,
    PeeringCreate,
    SecurityRuleCreate,
)
from groupcloud.schemas.network import SupernetCreate, VpcCreate
from groupcloud.schemas.tenancy import CompanyCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network import peerings, prefixes, reachability, security_rules
from groupcloud.services.tenancy import companies as tenancy_service
from groupcloud.services.tenancy.tokens import SYSTEM, issue_token
from groupcloud.services.zones import zones
from tests.service.helpers import who
from tests.support import World, import_supernet


@dataclass
class Plan:
    """bank/core 10.0.0.0/16 and bank/batch 10.1.0.0/16, card/pay 10.2.0.0/16 (all in
    supernet corp, zone shared); the principals acting on them."""

    bank_admin: Principal
    bank_member: Principal
    card_admin: Principal
    card_member: Principal


def _vpc(rt: Runtime, company: str, name: str, supernet: str = "corp", **kw: object) -> str:
    fields = {"name": name, "supernet": supernet, "company": company, "prefixlen": 16, **kw}
    return prefixes.create_vpc(rt, SYSTEM, VpcCreate.model_validate(fields)).cidr


def _token(rt: Runtime, name: str, company: str) -> Principal:
    made = issue_token(rt, SYSTEM, TokenCreate(name=name, role=Role.COMPANY_ADMIN, company=company))
    return who(rt, made.secret)


def _plan(rt: Runtime, world: World) -> Plan:
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    _vpc(rt, "bank", "core")
    _vpc(rt, "bank", "batch")
    _vpc(rt, "card", "pay")
    return Plan(
        bank_admin=who(rt, world.bank_admin),
        bank_member=who(rt, world.bank_member),
        card_admin=_token(rt, "card-lead", "card"),
        card_member=who(rt, world.card_member),
    )


def _rule(
    direction: Direction, cidr: str, protocol: Protocol = Protocol.TCP, **kw: object
) -> SecurityRuleCreate:
    return SecurityRuleCreate.model_validate(
        {"direction": direction, "protocol": protocol, "cidr": cidr, **kw}
    )


def _peer(vpc: str, peer: str) -> PeeringCreate:
    return PeeringCreate(vpc=vpc, peer=peer)


def _flow(
    source: str, destination: str, port: int | None = 443, protocol: str = "tcp"
) -> FlowQuery:
    return FlowQuery.model_validate(
        {"source": source, "destination": destination, "protocol": protocol, "port": port}
    )


def _live(rt: Runtime) -> list[tuple[int, str]]:
    with rt.db.read() as s:
        rows = s.execute(
            select(PeeringRow.id, PeeringRow.state)
            .where(PeeringRow.ended_at.is_(None))
            .order_by(PeeringRow.id)
        )
        return [(i, state) for i, state in rows]


def _event_count(rt: Runtime, prefix: str) -> int:
    with rt.db.read() as s:
        query = select(func.count()).select_from(EventRow).where(EventRow.kind.startswith(prefix))
        return int(s.scalar(query) or 0)


def test_rules_are_managed_by_the_owners_admins_and_invisible_to_other_companies(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    web = security_rules.add_rule(
        rt, plan.bank_admin, "bank", "core", _rule(Direction.INGRESS, "10.2.0.0/16", port_from=443)
    )
    assert (web.company, web.vpc, web.port_from, web.port_to) == ("bank", "core", 443, 443)
    out = security_rules.add_rule(
        rt, SYSTEM, "bank", "core", _rule(Direction.EGRESS, "0.0.0.0/0", Protocol.ANY)
    )
    with pytest.raises(AlreadyExists, match=f"rule {web.id}"):
        security_rules.add_rule(
            rt,
            plan.bank_admin,
            "bank",
            "core",
            _rule(Direction.INGRESS, "10.2.0.0/16", port_from=443, port_to=443),
        )
    with pytest.raises(InvalidInput, match="IPv6 but VPC bank/core"):
        security_rules.add_rule(
            rt, plan.bank_admin, "bank", "core", _rule(Direction.INGRESS, "fd00::/8")
        )
    with pytest.raises(Forbidden):
        security_rules.add_rule(
            rt, plan.bank_member, "bank", "core", _rule(Direction.INGRESS, "10.9.0.0/16")
        )
    with pytest.raises(NotFound):  # another company's VPC, as every object of it
        security_rules.add_rule(
            rt, plan.card_admin, "bank", "core", _rule(Direction.INGRESS, "10.9.0.0/16")
        )
    with pytest.raises(NotFound):
        security_rules.list_rules(rt, plan.card_member, "bank", "core")
    with pytest.raises(NotFound):
        security_rules.delete_rule(rt, plan.card_admin, web.id)
    with pytest.raises(NotFound, match="VPC bank/nope not found"):
        security_rules.list_rules(rt, plan.bank_member, "bank", "nope")

    first = security_rules.list_rules(rt, plan.bank_member, "bank", "core", limit=1)
    assert [r.id for r in first.items] == [web.id]
    assert first.next_cursor is not None
    rest = security_rules.list_rules(rt, plan.bank_member, "bank", "core", cursor=first.next_cursor)
    assert ([r.id for r in rest.items], rest.next_cursor) == ([out.id], None)
    egress = security_rules.list_rules(
        rt, plan.bank_member, "bank", "core", direction=Direction.EGRESS
    )
    assert [r.id for r in egress.items] == [out.id]

    with pytest.raises(Forbidden):
        security_rules.delete_rule(rt, plan.bank_member, web.id)
    assert security_rules.delete_rule(rt, plan.bank_admin, web.id) == web
    with pytest.raises(NotFound):
        security_rules.delete_rule(rt, plan.bank_admin, web.id)
    trail = events.list_events(rt, plan.bank_member, subject="vpc/bank/core", kind="network.rule")
    assert [(e.kind, e.data["id"]) for e in trail.items] == [
        ("network.rule_added", web.id),
        ("network.rule_added", out.id),
        ("network.rule_deleted", web.id),
    ]
    assert events.list_events(rt, plan.card_member, kind="network.rule").items == []


def test_a_peering_between_companies_is_requested_by_one_and_accepted_by_the_other(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    tenancy_service.create_company(rt, SYSTEM, CompanyCreate(slug="capital", name="Capital"))
    capital = _token(rt, "capital-lead", "capital")

    asked = peerings.request_peering(rt, plan.bank_admin, _peer("core", "card/pay"))
    assert asked.state is PeeringState.PENDING
    assert (asked.requester.company, asked.requester.vpc, asked.requester.cidr) == (
        "bank",
        "core",
        "10.0.0.0/16",
    )
    # Until card accepts, bank learns nothing of card's VPC but the name it asked for.
    hidden = asked.accepter
    assert (hidden.company, hidden.vpc, hidden.cidr, hidden.zone, hidden.data_class) == (
        "card",
        "pay",
        None,
        None,
        None,
    )
    assert asked.decided_at is None
    shown = peerings.get_peering(rt, plan.card_member, asked.id)  # card sees both sides
    assert (shown.accepter.zone, shown.requester.cidr) == ("shared", "10.0.0.0/16")
    assert shown.requested_by == "company:bank"  # card is shown bank, not bank's token
    assert peerings.get_peering(rt, plan.bank_member, asked.id).requested_by == (
        "token:bank-lead@bank"
    )
    with pytest.raises(Forbidden, match="card"):  # the asking side cannot accept for the other
        peerings.accept_peering(rt, plan.bank_admin, asked.id)
    with pytest.raises(Forbidden):
        peerings.accept_peering(rt, plan.card_member, asked.id)
    for outsider in (capital,):
        with pytest.raises(NotFound):
            peerings.accept_peering(rt, outsider, asked.id)
        with pytest.raises(NotFound):
            peerings.get_peering(rt, outsider, asked.id)
        assert peerings.list_peerings(rt, outsider).items == []
    with pytest.raises(AlreadyExists, match=f"pending peering already \\(peering {asked.id}\\)"):
        peerings.request_peering(rt, plan.card_admin, _peer("pay", "bank/core"))

    accepted = peerings.accept_peering(rt, plan.card_admin, asked.id)
    assert accepted.state is PeeringState.ACTIVE
    assert accepted.decided_by == "token:card-lead@card"
    seen_by_bank = peerings.get_peering(rt, plan.bank_member, asked.id)
    assert (seen_by_bank.accepter.zone, seen_by_bank.decided_by) == ("shared", "company:card")
    assert peerings.accept_peering(rt, plan.card_admin, asked.id) == accepted  # idempotent
    assert [p.id for p in peerings.list_peerings(rt, plan.bank_member).items] == [asked.id]
    assert [p.id for p in peerings.list_peerings(rt, plan.card_member).items] == [asked.id]
    assert peerings.list_peerings(rt, SYSTEM, company="capital").items == []
    assert peerings.list_peerings(rt, SYSTEM, state=PeeringState.PENDING).items == []
    with pytest.raises(PeeringNotPending, match="active"):
        peerings.reject_peering(rt, plan.card_admin, asked.id)

    ended = peerings.delete_peering(rt, plan.card_admin, asked.id)
    assert (ended.state, ended.ended_at is not None) == (PeeringState.DELETED, True)
    again = peerings.delete_peering(rt, plan.bank_admin, asked.id)  # idempotent
    assert (again.state, again.ended_at) == (ended.state, ended.ended_at)
    with pytest.raises(PeeringNotPending, match="deleted"):
        peerings.accept_peering(rt, plan.card_admin, asked.id)
    assert _live(rt) == []
    # Each company sees the whole story in its own audit trail.
    for member in (plan.bank_member, plan.card_member):
        trail = events.list_events(rt, member, kind="network.peering")
        assert [e.kind for e in trail.items] == [
            "network.peering_requested",
            "network.peering_accepted",
            "network.peering_deleted",
        ]
        assert {e.subject for e in trail.items} == {f"peering/{asked.id}"}


def test_within_one_company_a_peering_is_active_at_once_and_rejection_ends_a_request(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    own = peerings.request_peering(rt, plan.bank_admin, _peer("bank/core", "batch"))
    assert own.state is PeeringState.ACTIVE
    assert own.decided_by == own.requested_by == "token:bank-lead@bank"
    assert [
        e.data.get("automatic")
        for e in events.list_events(rt, plan.bank_member, kind="network.peering").items
    ] == [None, True]
    with pytest.raises(InvalidInput, match="cannot peer with itself"):
        peerings.request_peering(rt, plan.bank_admin, _peer("core", "core"))
    with pytest.raises(Forbidden):
        peerings.request_peering(rt, plan.bank_member, _peer("core", "card/pay"))
    with pytest.raises(NotFound, match="VPC bank/nope not found"):  # one's own: no secret
        peerings.request_peering(rt, plan.bank_admin, _peer("core", "nope"))
    with pytest.raises(NotFound):  # the requesting VPC must be one's own
        peerings.request_peering(rt, plan.bank_admin, _peer("card/pay", "bank/core"))
    with pytest.raises(InvalidInput, match="company/vpc"):  # a group admin names companies
        peerings.request_peering(rt, SYSTEM, _peer("core", "card/pay"))

    asked = peerings.request_peering(rt, plan.card_admin, _peer("pay", "bank/batch"))
    with pytest.raises(Forbidden):
        peerings.reject_peering(rt, plan.card_admin, asked.id)
    rejected = peerings.reject_peering(rt, plan.bank_admin, asked.id)
    assert rejected.state is PeeringState.REJECTED
    assert peerings.reject_peering(rt, plan.bank_admin, asked.id) == rejected  # idempotent
    again = peerings.request_peering(rt, plan.card_admin, _peer("pay", "bank/batch"))
    assert again.id != asked.id
    assert _live(rt) == [(own.id, "active"), (again.id, "pending")]


def test_overlapping_prefixes_and_mixed_address_families_are_refused_without_disclosure(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    import_supernet(rt, "legacy", "10.0.0.0/16")  # the card's old plan reuses the bank's space
    old = _vpc(rt, "card", "old", supernet="legacy", prefixlen=20)
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="six", cidr="fd00::/8"))
    six = _vpc(rt, "card", "six", supernet="six", prefixlen=48)
    before = _event_count(rt, "network.peering")

    # Between companies the request cannot be refused for the other VPC's prefix (that
    # would tell it): it waits, and the other side's acceptance is refused.
    overlapping = peerings.request_peering(rt, plan.bank_admin, _peer("core", "card/old"))
    mixed = peerings.request_peering(rt, plan.card_admin, _peer("six", "bank/core"))
    assert (overlapping.accepter.cidr, mixed.accepter.cidr) == (None, None)
    with pytest.raises(
        PeeringPrefixesOverlap,
        match=r"bank/core \(10\.0\.0\.0/16\) and card/old \(10\.0\.0\.0/20\) overlap",
    ) as overlap:
        peerings.accept_peering(rt, plan.card_admin, overlapping.id)
    assert overlap.value.extra["cidrs"] == ["10.0.0.0/16", old]
    with pytest.raises(PeeringAddressFamiliesDiffer) as families:
        peerings.accept_peering(rt, plan.bank_admin, mixed.id)
    assert families.value.extra["cidrs"] == ["10.0.0.0/16", six]
    assert [p.state for p in peerings.list_peerings(rt, SYSTEM).items] == [
        PeeringState.PENDING,
        PeeringState.PENDING,
    ]
    assert _event_count(rt, "network.peering") == before + 4  # two requests, each side
    # Within one company nothing is hidden: refused at once, nothing stored.
    bank_old = _vpc(rt, "bank", "old", supernet="legacy", prefixlen=20)
    with pytest.raises(PeeringPrefixesOverlap) as own:
        peerings.request_peering(rt, plan.bank_admin, _peer("core", "old"))
    assert own.value.extra["cidrs"] == ["10.0.0.0/16", bank_old]
    assert _event_count(rt, "network.peering") == before + 4
    # The most specific VPC holds an address: 10.0.3.1 is card/old's, 10.0.200.1 bank/core's.
    held = reachability.check(rt, SYSTEM, _flow("10.0.3.1", "10.0.200.1"))
    assert (held.source_vpc, held.destination_vpc) == ("card/old", "bank/core")


def test_bans_refuse_new_peerings_and_acceptances_but_leave_live_ones_listed(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="dmz"))
    prefixes.create_supernet(
        rt, SYSTEM, SupernetCreate(name="edge", cidr="172.16.0.0/12", zone="dmz")
    )
    _vpc(rt, "card", "web", supernet="edge", data_class="public")
    live = peerings.request_peering(rt, plan.card_admin, _peer("web", "bank/core"))
    pending = peerings.request_peering(rt, plan.card_admin, _peer("web", "bank/batch"))
    peerings.accept_peering(rt, plan.bank_admin, live.id)

    with pytest.raises(Forbidden):
        peerings.add_ban(
            rt, plan.bank_admin, PeeringBanCreate(kind="zone", side_a="dmz", side_b="shared")
        )
    with pytest.raises(NotFound, match="zone 'mars'"):
        peerings.add_ban(rt, SYSTEM, PeeringBanCreate(kind="zone", side_a="mars", side_b="shared"))
    ban = peerings.add_ban(rt, SYSTEM, PeeringBanCreate(kind="zone", side_a="shared", side_b="dmz"))
    assert (ban.side_a, ban.side_b, ban.violating_peerings) == (
        "dmz",
        "shared",
        [live.id, pending.id],
    )
    with pytest.raises(AlreadyExists):
        peerings.add_ban(rt, SYSTEM, PeeringBanCreate(kind="zone", side_a="dmz", side_b="shared"))
    by_class = peerings.add_ban(
        rt, SYSTEM, PeeringBanCreate(kind="data_class", side_a="public", side_b="restricted")
    )
    assert by_class.violating_peerings == []
    assert [b.id for b in peerings.list_bans(rt, plan.card_member)] == [ban.id, by_class.id]

    with pytest.raises(
        PeeringForbidden, match=f"zones dmz and shared \\(ban {ban.id}\\)"
    ) as refused:
        peerings.request_peering(rt, plan.card_admin, _peer("pay", "card/web"))
    assert refused.value.extra["ban"] == {
        "id": ban.id,
        "kind": "zone",
        "side_a": "dmz",
        "side_b": "shared",
    }
    with pytest.raises(PeeringForbidden):
        peerings.accept_peering(rt, plan.bank_admin, pending.id)
    with pytest.raises(AlreadyExists):  # what exists is named first, banned or not
        peerings.request_peering(rt, plan.card_admin, _peer("web", "bank/core"))
    listed = {p.id: p for p in peerings.list_peerings(rt, plan.bank_member).items}
    assert {i: (p.state, p.banned_by) for i, p in listed.items()} == {
        live.id: (PeeringState.ACTIVE, ban.id),
        pending.id: (PeeringState.PENDING, ban.id),
    }
    # Existing traffic is not cut silently: the operator (or a side) deletes the peering.
    assert peerings.delete_peering(rt, SYSTEM, live.id).state is PeeringState.DELETED
    peerings.delete_ban(rt, SYSTEM, ban.id)
    with pytest.raises(NotFound):
        peerings.delete_ban(rt, SYSTEM, ban.id)
    assert peerings.accept_peering(rt, plan.bank_admin, pending.id).banned_by is None
    kinds = [e.kind for e in events.list_events(rt, SYSTEM, kind="network.peering_ban").items]
    assert kinds == ["network.peering_ban_added"] * 2 + ["network.peering_ban_deleted"]


def test_reachability_follows_peerings_and_rules_and_shows_each_company_its_side(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    bank, card = plan.bank_member, plan.card_member
    web = _flow("10.0.0.5", "10.2.0.9")

    inside = reachability.check(
        rt, bank, _flow("10.0.0.5", "10.0.200.1", protocol="icmp", port=None)
    )
    assert (inside.allowed, inside.reason, inside.source_vpc) == (
        True,
        Reason.SAME_VPC,
        "bank/core",
    )
    outside = reachability.check(rt, SYSTEM, _flow("192.168.0.1", "10.0.0.5"))
    assert (outside.allowed, outside.reason) == (False, Reason.NOT_IN_ANY_VPC)
    assert "192.168.0.1 is not in any VPC" in outside.detail
    assert reachability.check(rt, SYSTEM, web).reason is Reason.NO_PEERING
    hidden = reachability.check(rt, bank, web)  # card/pay is not the bank's to see
    assert (hidden.reason, hidden.destination_vpc) == (Reason.NOT_IN_ANY_VPC, None)
    assert "that bank can see" in hidden.detail
    own_pair = reachability.check(rt, bank, _flow("10.0.0.5", "10.1.0.5"))
    assert (own_pair.reason, own_pair.destination_vpc) == (Reason.NO_PEERING, "bank/batch")
    with pytest.raises(NotFound):  # a flow between two of another company's VPCs
        reachability.check(rt, card, _flow("10.0.0.5", "10.1.0.5"))

    asked = peerings.request_peering(rt, plan.bank_admin, _peer("core", "card/pay"))
    # The asker learns nothing of card/pay (not that it holds this address) until card
    # accepts; card, asked, sees the request's VPC, as the request shows it in full.
    pending = reachability.check(rt, bank, web)
    assert (pending.reason, pending.destination_vpc) == (Reason.NOT_IN_ANY_VPC, None)
    on_card = reachability.check(rt, card, _flow("10.2.0.5", "10.0.0.5"))
    assert (on_card.reason, on_card.source_vpc, on_card.destination_vpc) == (
        Reason.NO_PEERING,
        "card/pay",
        "bank/core",
    )
    assert "only a pending peering" in on_card.detail
    peerings.accept_peering(rt, plan.card_admin, asked.id)
    assert reachability.check(rt, bank, web).reason is Reason.NO_EGRESS_RULE
    out = security_rules.add_rule(
        rt, plan.bank_admin, "bank", "core", _rule(Direction.EGRESS, "10.2.0.0/16")
    )
    assert reachability.check(rt, bank, web).reason is Reason.NO_INGRESS_RULE
    into = security_rules.add_rule(
        rt,
        plan.card_admin,
        "card",
        "pay",
        _rule(Direction.INGRESS, "10.0.0.0/24", port_from=443, port_to=444),
    )
    admin = reachability.check(rt, SYSTEM, web)
    assert (admin.allowed, admin.reason, admin.peering) == (True, Reason.ALLOWED_BY_RULES, asked.id)
    assert (admin.egress_rule, admin.ingress_rule) == (out, into)
    seen_by_bank = reachability.check(rt, bank, web)
    assert (seen_by_bank.allowed, seen_by_bank.egress_rule, seen_by_bank.ingress_rule) == (
        True,
        out,
        None,
    )
    seen_by_card = reachability.check(rt, card, web)
    assert (seen_by_card.egress_rule, seen_by_card.ingress_rule) == (None, into)
    assert (
        reachability.check(rt, bank, _flow("10.0.0.5", "10.2.0.9", port=22)).reason
        is Reason.NO_INGRESS_RULE
    )
    assert (
        reachability.check(rt, bank, _flow("10.0.1.5", "10.2.0.9")).reason is Reason.NO_INGRESS_RULE
    )
    assert (
        reachability.check(rt, card, _flow("10.2.0.9", "10.0.0.5")).reason is Reason.NO_EGRESS_RULE
    )


def test_racing_requests_and_acceptances_of_one_pair_end_with_one_live_peering(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    made: list[int] = []
    unexpected: list[BaseException] = []
    start = threading.Barrier(16)

    def work(i: int) -> None:
        actor, body = (
            (plan.bank_admin, _peer("core", "card/pay"))
            if i % 2
            else (plan.card_admin, _peer("pay", "bank/core"))
        )
        try:
            start.wait()
            try:
                made.append(peerings.request_peering(rt, actor, body).id)
            except AlreadyExists as exc:
                # The other side's request is accepted; our own side's is for the other to.
                with contextlib.suppress(Forbidden):
                    peerings.accept_peering(rt, actor, exc.extra["peering"])
        except Exception as exc:  # anything else (an IntegrityError, a deadlock) is a bug
            unexpected.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    assert len(made) == 1
    assert _live(rt) == [(made[0], "active")]


def test_a_vpc_is_deleted_only_without_live_peerings_and_takes_its_rules_along(
    rt: Runtime, world: World
) -> None:
    plan = _plan(rt, world)
    live = peerings.request_peering(rt, plan.bank_admin, _peer("bank/core", "batch"))
    with pytest.raises(PrefixInUse, match="live peerings"):
        prefixes.delete_prefix(rt, plan.bank_admin, prefixes.VPC, "bank", "batch")
    peerings.delete_peering(rt, plan.bank_admin, live.id)
    security_rules.add_rule(
        rt, plan.bank_admin, "bank", "batch", _rule(Direction.INGRESS, "10.0.0.0/16")
    )
    gone = prefixes.delete_prefix(rt, plan.bank_admin, prefixes.VPC, "bank", "batch")
    assert gone.name == "batch"
    assert _live(rt) == []
    with pytest.raises(NotFound):
        security_rules.list_rules(rt, plan.bank_admin, "bank", "batch")


def test_a_request_does_not_tell_an_existing_vpc_or_company_from_a_missing_one(
    rt: Runtime, world: World
) -> None:
    """Issue #14: a peering request was a VPC-name oracle (201 vs 404). Now a request is
    addressed to a company and a name and resolved only when that company accepts."""
    plan = _plan(rt, world)

    def answer(peer: str) -> tuple[object, ...]:
        p = peerings.request_peering(rt, plan.bank_admin, _peer("core", peer))
        a = p.accepter
        return (p.state, p.decided_at, p.banned_by, a.cidr, a.zone, a.data_class, a.vpc)

    real = answer("card/pay")
    ghost = answer("card/nope")
    nowhere = answer("nosuch/vpc")
    assert (
        real[:-1]
        == ghost[:-1]
        == nowhere[:-1]
        == (PeeringState.PENDING, None, None, None, None, None)
    )
    live = peerings.list_peerings(rt, plan.bank_member).items
    assert [(p.accepter.company, p.accepter.vpc) for p in live] == [
        ("card", "pay"),
        ("card", "nope"),
        ("nosuch", "vpc"),
    ]
    with pytest.raises(AlreadyExists):  # asked already, whether the name exists or not
        peerings.request_peering(rt, plan.bank_admin, _peer("core", "card/nope"))
    # The company asked sees what is asked of it; accepting a name it has no VPC of is
    # not found for it, and the request stays pending until withdrawn or rejected.
    on_card = peerings.list_peerings(rt, plan.card_member).items
    assert [p.accepter.vpc for p in on_card] == ["pay", "nope"]
    assert on_card[0].accepter.cidr is not None  # its own VPC, in full
    with pytest.raises(NotFound, match="VPC card/nope not found"):
        peerings.accept_peering(rt, plan.card_admin, live[1].id)
    assert peerings.get_peering(rt, plan.bank_member, live[1].id).state is PeeringState.PENDING
    with pytest.raises(Forbidden):  # a request to no company: nobody but the asker acts on it
        peerings.accept_peering(rt, plan.bank_admin, live[2].id)
    assert peerings.reject_peering(rt, plan.card_admin, live[1].id).state is PeeringState.REJECTED
    assert peerings.delete_peering(rt, plan.bank_admin, live[2].id).state is PeeringState.DELETED
    accepted = peerings.accept_peering(rt, plan.card_admin, live[0].id)
    assert (accepted.state, accepted.accepter.cidr) == (PeeringState.ACTIVE, "10.2.0.0/16")

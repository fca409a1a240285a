"""Security rules of VPCs: allow rules for traffic in (ingress) and out (egress) by CIDR,
protocol and port range. What no rule allows is denied; traffic inside a VPC is not
filtered (see ``ipam.isolation``).

Company admins of the owner and group admins add and delete rules; every role of the
company may read them; other companies never see them (not_found). Adding locks the
VPC row, so two identical rules cannot be added at once.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import NetPrefixRow, NetRuleRow
from groupcloud.domain.isolation import Direction, Protocol
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AlreadyExists, InvalidInput, NotFound
from groupcloud.ipam.isolation import PortRange, Rule
from groupcloud.schemas.base import Page
from groupcloud.schemas.isolation import SecurityRule, SecurityRuleCreate
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network.vpc_refs import owned_vpc, vpc_views
from groupcloud.services.tenancy.access import require

__all__ = ["add_rule", "delete_rule", "engine_rule", "list_rules", "rule_out"]


def add_rule(
    rt: Runtime, actor: Principal, company: str, vpc: str, body: SecurityRuleCreate
) -> SecurityRule:
    """Allow one kind of traffic into or out of a VPC. A rule equal to an existing one is
    refused (``already_exists``, naming it), so retries do not pile up copies."""
    now = rt.clock()
    with rt.db.write() as s:
        owner = owned_vpc(s, actor, company, vpc, manage=True, lock=True)
        peer, own = ipaddress.ip_network(body.cidr), ipaddress.ip_network(owner.cidr)
        if peer.version != own.version:
            raise InvalidInput(
                f"cidr {peer} is IPv{peer.version} but VPC {company}/{vpc} ({own}) is "
                f"IPv{own.version}: the rule could never match",
                errors=[{"field": "cidr", "message": f"must be IPv{own.version}"}],
            )
        same = s.scalars(
            select(NetRuleRow).where(
                NetRuleRow.vpc_id == owner.id,
                NetRuleRow.direction == body.direction.value,
                NetRuleRow.protocol == body.protocol.value,
                NetRuleRow.cidr == str(peer),
            )
        )
        for other in same:
            if (other.port_from, other.port_to) == (body.port_from, body.port_to):
                raise AlreadyExists(
                    f"VPC {company}/{vpc} has this rule already (rule {other.id})", rule=other.id
                )
        row = NetRuleRow(
            vpc_id=owner.id,
            direction=body.direction.value,
            protocol=body.protocol.value,
            port_from=body.port_from,
            port_to=body.port_to,
            cidr=str(peer),
            description=body.description,
            created_by=actor.actor,
            created_at=now,
        )
        s.add(row)
        s.flush()
        out = rule_out(row, company, vpc)
        _record(s, actor, "network.rule_added", owner, out, now)
        return out


def list_rules(
    rt: Runtime,
    actor: Principal,
    company: str,
    vpc: str,
    *,
    direction: Direction | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[SecurityRule]:
    """A VPC's rules, oldest first (the order in which a check names the one that matched)."""
    size = page_limit(limit)
    with rt.db.read() as s:
        owner = owned_vpc(s, actor, company, vpc, manage=False)
        query = (
            select(NetRuleRow)
            .where(NetRuleRow.vpc_id == owner.id)
            .order_by(NetRuleRow.id)
            .limit(size + 1)
        )
        if direction is not None:
            query = query.where(NetRuleRow.direction == direction.value)
        if cursor:
            query = query.where(NetRuleRow.id > cursor_key(cursor))
        rows = s.scalars(query).all()
    page, next_cursor = split_page(rows, size, lambda r: r.id)
    return Page(items=[rule_out(r, company, vpc) for r in page], next_cursor=next_cursor)


def delete_rule(rt: Runtime, actor: Principal, rule_id: int) -> SecurityRule:
    """Remove a rule; the traffic it allowed is denied from now on. Returns the rule."""
    now = rt.clock()
    with rt.db.write() as s:
        row = s.get(NetRuleRow, rule_id, with_for_update=True)
        view = vpc_views(s, [row.vpc_id]).get(row.vpc_id) if row is not None else None
        if row is None or view is None or not actor.can_see(view.row.company_id):
            raise NotFound(f"rule {rule_id} not found", resource="rule", name=str(rule_id))
        require(actor, Action.MANAGE, view.row.company_id, f"deleting a rule of {view.ref}")
        out = rule_out(row, view.company, view.row.name)
        s.delete(row)
        _record(s, actor, "network.rule_deleted", view.row, out, now)
        return out


def rule_out(row: NetRuleRow, company: str, vpc: str) -> SecurityRule:
    return SecurityRule(
        id=row.id,
        company=company,
        vpc=vpc,
        direction=Direction(row.direction),
        protocol=Protocol(row.protocol),
        cidr=row.cidr,
        port_from=row.port_from,
        port_to=row.port_to,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def engine_rule(row: NetRuleRow) -> Rule:
    """A stored rule as the isolation engine takes it."""
    ports = None
    if row.port_from is not None and row.port_to is not None:
        ports = PortRange(row.port_from, row.port_to)
    return Rule(
        row.id,
        row.vpc_id,
        Direction(row.direction),
        Protocol(row.protocol),
        ipaddress.ip_network(row.cidr),
        ports,
    )


def _record(
    s: Session, actor: Principal, kind: str, vpc: NetPrefixRow, rule: SecurityRule, now: datetime
) -> None:
    events.record(
        s,
        actor.actor,
        kind,
        f"vpc/{rule.company}/{rule.vpc}",
        vpc.company_id,
        rule.model_dump(
            mode="json", include={"id", "direction", "protocol", "cidr", "port_from", "port_to"}
        ),
        at=now,
    )

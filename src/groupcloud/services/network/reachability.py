"""Reachability checks: may traffic go from one address to another (protocol, port)?

The service finds the VPC of each address, the live peering between them and the rules
that matter (egress of the source's VPC, ingress of the destination's), and lets the
engine (``ipam.isolation``) decide, so the answer is the one the network applies.

A company sees the flow as its network looks to it (invariant 4): one address must be
in one of its VPCs (otherwise ``not_found``), another company's VPC shows only through
a live peering with that VPC (otherwise the address is in no VPC it can see:
``not_in_any_vpc``, which is as denied as the whole truth, ``no_peering``), and another
company's rules are never shown, only whether they let the flow through.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import and_, or_, select

from groupcloud.db.models import NetRuleRow
from groupcloud.domain.isolation import Direction, PeeringState, Reason
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import NotFound
from groupcloud.ipam.isolation import Flow, Rule, Topology, Verdict
from groupcloud.schemas.isolation import FlowQuery, Reachability, SecurityRule
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network.peerings import asked_between, live_peering
from groupcloud.services.network.security_rules import engine_rule, rule_out
from groupcloud.services.network.vpc_refs import VpcView, vpc_at, vpc_views

__all__ = ["check"]


def check(rt: Runtime, actor: Principal, query: FlowQuery) -> Reachability:
    """The verdict on one flow, with its stable reason and what decided it."""
    flow = Flow(
        ipaddress.ip_address(query.source),
        ipaddress.ip_address(query.destination),
        query.protocol,
        query.port,
    )
    with rt.db.read() as s:
        found = [vpc_at(s, flow.source), vpc_at(s, flow.destination)]
        views = vpc_views(s, [r.id for r in found if r is not None])
        source, destination = (views[r.id] if r is not None else None for r in found)
        peering = None
        if source is not None and destination is not None and source.row.id != destination.row.id:
            peering = live_peering(s, *sorted((source.row.id, destination.row.id)))
            if peering is None:
                peering = asked_between(s, source, destination)
        rows = s.scalars(
            select(NetRuleRow)
            .where(
                or_(
                    and_(
                        NetRuleRow.vpc_id == (source.row.id if source else None),
                        NetRuleRow.direction == Direction.EGRESS.value,
                    ),
                    and_(
                        NetRuleRow.vpc_id == (destination.row.id if destination else None),
                        NetRuleRow.direction == Direction.INGRESS.value,
                    ),
                )
            )
            .order_by(NetRuleRow.id)
        ).all()
    pairs = []  # an active peering is resolved: both its VPCs are known
    if peering is not None and peering.state == PeeringState.ACTIVE and peering.vpc_b_id:
        pairs.append((peering.vpc_a_id, peering.vpc_b_id))
    topology = Topology([v.vpc() for v in views.values()], [engine_rule(r) for r in rows], pairs)
    verdict = topology.check(flow)
    if not actor.sees_all:
        own = [v for v in (source, destination) if v and v.row.company_id == actor.company_id]
        if not own:
            raise NotFound(
                f"neither {flow.source} nor {flow.destination} is in a VPC of {actor.company}",
                resource="vpc",
                name=str(flow.source),
            )
        # Another company's VPC is visible through a peering, or through a request it made
        # to the caller's VPC; not through the caller's own request (until accepted).
        hidden = peering is None or (
            peering.vpc_b_id is None
            and any(v.row.id == peering.requester_vpc_id for v in own)
            and len(own) == 1
        )
        if hidden:
            source, destination = (v if v in own else None for v in (source, destination))
            if source is None or destination is None:
                verdict = Verdict(Reason.NOT_IN_ANY_VPC)
    shown = {v.row.id: v for v in (source, destination) if v is not None}
    rules = {r.id: r for r in rows}

    def visible(rule: Rule | None) -> SecurityRule | None:
        view = shown.get(rule.vpc_id) if rule is not None else None
        if rule is None or view is None or not actor.can_see(view.row.company_id):
            return None
        return rule_out(rules[rule.id], view.company, view.row.name)

    return Reachability(
        source=str(flow.source),
        destination=str(flow.destination),
        protocol=flow.protocol,
        port=flow.port,
        allowed=verdict.allowed,
        reason=verdict.reason,
        detail=_detail(verdict, flow, source, destination, peering is not None, actor),
        source_vpc=source.ref if source else None,
        destination_vpc=destination.ref if destination else None,
        peering=peering.id if peering is not None and pairs else None,
        egress_rule=visible(verdict.egress_rule),
        ingress_rule=visible(verdict.ingress_rule),
    )


def _detail(
    verdict: Verdict,
    flow: Flow,
    source: VpcView | None,
    destination: VpcView | None,
    pending: bool,
    actor: Principal,
) -> str:
    what = flow.protocol.value + (f" port {flow.port}" if flow.port is not None else "")
    reason = verdict.reason
    if reason is Reason.NOT_IN_ANY_VPC:
        seen = "" if actor.sees_all else f" that {actor.company} can see"
        outside = flow.source if source is None else flow.destination
        return f"{outside} is not in any VPC{seen}: nothing reaches it or leaves it"
    assert source is not None
    assert destination is not None
    if reason is Reason.SAME_VPC:
        return f"both addresses are in {source.ref}: traffic inside a VPC is not filtered"
    if reason is Reason.NO_PEERING:
        state = "only a pending peering" if pending else "no active peering"
        return f"{source.ref} and {destination.ref} have {state}: VPCs are isolated by default"
    if reason is Reason.NO_EGRESS_RULE:
        return f"no egress rule of {source.ref} allows {what} to {flow.destination}"
    if reason is Reason.NO_INGRESS_RULE:
        return f"no ingress rule of {destination.ref} allows {what} from {flow.source}"
    return (
        f"{source.ref} and {destination.ref} are peered; an egress rule of {source.ref} and an "
        f"ingress rule of {destination.ref} allow {what}"
    )

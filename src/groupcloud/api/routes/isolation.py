"""Network isolation: security rules of VPCs, peerings between VPCs, the operator's peering
bans, and reachability checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from groupcloud.api.deps import Caller, Cursor, IdPath, Limit, Rt
from groupcloud.domain.isolation import Direction, PeeringState
from groupcloud.schemas.base import Page
from groupcloud.schemas.isolation import (
    FlowQuery,
    Peering,
    PeeringBan,
    PeeringBanCreate,
    PeeringBanCreated,
    PeeringCreate,
    Reachability,
    SecurityRule,
    SecurityRuleCreate,
)
from groupcloud.services.network import peerings, reachability, security_rules

router = APIRouter(prefix="/v1/networks", tags=["network isolation"])
CREATED = status.HTTP_201_CREATED

_PEERING_REFUSALS = {
    409: {
        "description": "already_exists (a live peering of the pair), peering_prefixes_overlap, "
        "peering_forbidden (a ban) or peering_not_pending"
    },
    422: {"description": "validation_error (a VPC with itself) or peering_address_families_differ"},
}


@router.get("/vpcs/{company}/{vpc}/rules", summary="List a VPC's security rules (oldest first)")
def list_rules(
    rt: Rt,
    caller: Caller,
    company: str,
    vpc: str,
    direction: Direction | None = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[SecurityRule]:
    return security_rules.list_rules(
        rt, caller, company, vpc, direction=direction, cursor=cursor, limit=limit
    )


@router.post(
    "/vpcs/{company}/{vpc}/rules",
    status_code=CREATED,
    summary="Allow traffic into (ingress) or out of (egress) a VPC by CIDR, protocol and ports",
)
def add_rule(
    rt: Rt, caller: Caller, company: str, vpc: str, body: SecurityRuleCreate
) -> SecurityRule:
    return security_rules.add_rule(rt, caller, company, vpc, body)


@router.delete("/rules/{rule_id}", summary="Delete a security rule (its traffic is denied)")
def delete_rule(rt: Rt, caller: Caller, rule_id: IdPath) -> SecurityRule:
    return security_rules.delete_rule(rt, caller, rule_id)


@router.get("/peerings", summary="List the peerings of your company's VPCs")
def list_peerings(
    rt: Rt,
    caller: Caller,
    company: str | None = None,
    state: PeeringState | None = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[Peering]:
    return peerings.list_peerings(
        rt, caller, company=company, state=state, cursor=cursor, limit=limit
    )


@router.post(
    "/peerings",
    status_code=CREATED,
    summary="Request a peering: pending until the other company accepts (active at once "
    "within one company)",
    responses=_PEERING_REFUSALS,  # type: ignore[arg-type]
)
def request_peering(rt: Rt, caller: Caller, body: PeeringCreate) -> Peering:
    return peerings.request_peering(rt, caller, body)


@router.get("/peerings/{peering_id}", summary="Show a peering")
def get_peering(rt: Rt, caller: Caller, peering_id: IdPath) -> Peering:
    return peerings.get_peering(rt, caller, peering_id)


@router.post(
    "/peerings/{peering_id}/accept",
    summary="Accept a pending peering (the other side's company admins)",
    responses=_PEERING_REFUSALS,  # type: ignore[arg-type]
)
def accept_peering(rt: Rt, caller: Caller, peering_id: IdPath) -> Peering:
    return peerings.accept_peering(rt, caller, peering_id)


@router.post(
    "/peerings/{peering_id}/reject",
    summary="Reject a pending peering (the other side's company admins)",
)
def reject_peering(rt: Rt, caller: Caller, peering_id: IdPath) -> Peering:
    return peerings.reject_peering(rt, caller, peering_id)


@router.delete(
    "/peerings/{peering_id}", summary="Delete a peering, pending or active (either side)"
)
def delete_peering(rt: Rt, caller: Caller, peering_id: IdPath) -> Peering:
    return peerings.delete_peering(rt, caller, peering_id)


@router.get("/peering-bans", summary="List the operator's peering bans")
def list_bans(rt: Rt, caller: Caller) -> list[PeeringBan]:
    return peerings.list_bans(rt, caller)


@router.post(
    "/peering-bans",
    status_code=CREATED,
    summary="Forbid peering between two zones or data classes (group admins); lists the "
    "live peerings it forbids, which stay until deleted",
)
def add_ban(rt: Rt, caller: Caller, body: PeeringBanCreate) -> PeeringBanCreated:
    return peerings.add_ban(rt, caller, body)


@router.delete("/peering-bans/{ban_id}", summary="Lift a peering ban (group admins)")
def delete_ban(rt: Rt, caller: Caller, ban_id: IdPath) -> PeeringBan:
    return peerings.delete_ban(rt, caller, ban_id)


@router.get(
    "/reachability",
    summary="May traffic go from one address to another? Allowed or denied, with the reason "
    "and the rules that decided",
)
def check_reachability(
    rt: Rt, caller: Caller, query: Annotated[FlowQuery, Query()]
) -> Reachability:
    return reachability.check(rt, caller, query)

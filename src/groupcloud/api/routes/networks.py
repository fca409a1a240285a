"""Networks: supernets, VPCs, subnets, IP addresses, floating addresses, segment pools,
network quotas and a company's addressing plan."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from groupcloud.api.deps import Caller, Cursor, IdempotencyKey, IdPath, Limit, Rt
from groupcloud.domain.network import NetQuotaKind
from groupcloud.schemas.base import Page
from groupcloud.schemas.network import (
    AddressPlan,
    FloatingIpCreate,
    FloatingIpUpdate,
    IpAddress,
    IpCreate,
    NetQuota,
    NetQuotaSet,
    NetworkPrefix,
    SegmentPool,
    SegmentPoolCreate,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.services.network import address_plan, ips, net_quotas, prefixes, segments

router = APIRouter(prefix="/v1/networks", tags=["networks"])
CREATED = status.HTTP_201_CREATED
Zone = Annotated[str | None, Query(description="Only prefixes of this zone.")]
Company = Annotated[str | None, Query(description="Only this company's (group admins).")]


@router.get("/supernets", summary="List the group's supernets with their utilisation")
def list_supernets(
    rt: Rt, caller: Caller, zone: Zone = None, cursor: Cursor = None, limit: Limit = None
) -> Page[NetworkPrefix]:
    return prefixes.list_prefixes(
        rt, caller, prefixes.SUPERNET, zone=zone, cursor=cursor, limit=limit
    )


@router.post("/supernets", status_code=CREATED, summary="Register a supernet (group admins)")
def create_supernet(rt: Rt, caller: Caller, body: SupernetCreate) -> NetworkPrefix:
    return prefixes.create_supernet(rt, caller, body)


@router.get("/supernets/{name}", summary="A supernet with its utilisation")
def get_supernet(rt: Rt, caller: Caller, name: str) -> NetworkPrefix:
    return prefixes.get_prefix(rt, caller, prefixes.SUPERNET, None, name)


@router.delete("/supernets/{name}", summary="Remove a supernet that holds no VPCs or addresses")
def delete_supernet(rt: Rt, caller: Caller, name: str) -> NetworkPrefix:
    return prefixes.delete_prefix(rt, caller, prefixes.SUPERNET, None, name)


@router.get("/vpcs", summary="List VPCs (a company token sees its own)")
def list_vpcs(
    rt: Rt,
    caller: Caller,
    company: Company = None,
    zone: Zone = None,
    supernet: Annotated[str | None, Query(description="Only VPCs of this supernet.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[NetworkPrefix]:
    return prefixes.list_prefixes(
        rt, caller, prefixes.VPC, company, zone=zone, parent=supernet, cursor=cursor, limit=limit
    )


@router.post("/vpcs", status_code=CREATED, summary="Carve a VPC out of a supernet")
def create_vpc(rt: Rt, caller: Caller, body: VpcCreate) -> NetworkPrefix:
    return prefixes.create_vpc(rt, caller, body)


@router.get("/vpcs/{company}/{vpc}", summary="A VPC with its utilisation")
def get_vpc(rt: Rt, caller: Caller, company: str, vpc: str) -> NetworkPrefix:
    return prefixes.get_prefix(rt, caller, prefixes.VPC, company, vpc)


@router.delete("/vpcs/{company}/{vpc}", summary="Give an empty VPC back to its supernet")
def delete_vpc(rt: Rt, caller: Caller, company: str, vpc: str) -> NetworkPrefix:
    return prefixes.delete_prefix(rt, caller, prefixes.VPC, company, vpc)


@router.get("/subnets", summary="List subnets (a company token sees its own)")
def list_subnets(
    rt: Rt,
    caller: Caller,
    company: Company = None,
    zone: Zone = None,
    vpc: Annotated[str | None, Query(description="Only subnets of this VPC.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[NetworkPrefix]:
    return prefixes.list_prefixes(
        rt, caller, prefixes.SUBNET, company, zone=zone, parent=vpc, cursor=cursor, limit=limit
    )


@router.post(
    "/vpcs/{company}/{vpc}/subnets", status_code=CREATED, summary="Carve a subnet out of a VPC"
)
def create_subnet(
    rt: Rt, caller: Caller, company: str, vpc: str, body: SubnetCreate
) -> NetworkPrefix:
    return prefixes.create_subnet(rt, caller, company, vpc, body)


@router.get("/subnets/{company}/{subnet}", summary="A subnet with its utilisation")
def get_subnet(rt: Rt, caller: Caller, company: str, subnet: str) -> NetworkPrefix:
    return prefixes.get_prefix(rt, caller, prefixes.SUBNET, company, subnet)


@router.delete(
    "/subnets/{company}/{subnet}", summary="Give a subnet without held addresses back to its VPC"
)
def delete_subnet(rt: Rt, caller: Caller, company: str, subnet: str) -> NetworkPrefix:
    return prefixes.delete_prefix(rt, caller, prefixes.SUBNET, company, subnet)


@router.get("/subnets/{company}/{subnet}/ips", summary="Addresses handed out in a subnet")
def list_ips(
    rt: Rt,
    caller: Caller,
    company: str,
    subnet: str,
    released: Annotated[
        bool, Query(description="Include released addresses still in quarantine.")
    ] = False,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[IpAddress]:
    return ips.list_ips(rt, caller, company, subnet, released=released, cursor=cursor, limit=limit)


@router.post(
    "/subnets/{company}/{subnet}/ips",
    status_code=CREATED,
    summary="Hand out the next free address of a subnet (or a given one)",
)
def allocate_ip(
    rt: Rt,
    caller: Caller,
    company: str,
    subnet: str,
    body: IpCreate,
    idempotency_key: IdempotencyKey = None,
) -> IpAddress:
    return ips.allocate_ip(rt, caller, company, subnet, body, idempotency_key)


@router.get("/ips/{ip_id}", summary="An address (fixed or floating)")
def get_ip(rt: Rt, caller: Caller, ip_id: IdPath) -> IpAddress:
    return ips.get_ip(rt, caller, ip_id)


@router.post("/ips/{ip_id}/release", summary="Release an address into quarantine (idempotent)")
def release_ip(rt: Rt, caller: Caller, ip_id: IdPath) -> IpAddress:
    return ips.release_ip(rt, caller, ip_id)


@router.get("/floating-ips", summary="Floating addresses held (a company token sees its own)")
def list_floating_ips(
    rt: Rt, caller: Caller, company: Company = None, cursor: Cursor = None, limit: Limit = None
) -> Page[IpAddress]:
    return ips.list_floating_ips(rt, caller, company, cursor=cursor, limit=limit)


@router.post(
    "/floating-ips", status_code=CREATED, summary="Take a floating address from a public pool"
)
def allocate_floating_ip(
    rt: Rt, caller: Caller, body: FloatingIpCreate, idempotency_key: IdempotencyKey = None
) -> IpAddress:
    return ips.allocate_floating_ip(rt, caller, body, idempotency_key)


@router.patch("/floating-ips/{ip_id}", summary="Attach a floating address, or detach it")
def update_floating_ip(rt: Rt, caller: Caller, ip_id: IdPath, body: FloatingIpUpdate) -> IpAddress:
    return ips.update_floating_ip(rt, caller, ip_id, body)


@router.get("/segment-pools", summary="VLAN and VXLAN pools with their use")
def list_segment_pools(rt: Rt, caller: Caller) -> list[SegmentPool]:
    return segments.list_pools(rt, caller)


@router.post(
    "/segment-pools", status_code=CREATED, summary="Give a zone VLAN ids or VNIs (group admins)"
)
def create_segment_pool(rt: Rt, caller: Caller, body: SegmentPoolCreate) -> SegmentPool:
    return segments.create_pool(rt, caller, body)


@router.delete("/segment-pools/{name}", summary="Remove a pool none of whose ids is held")
def delete_segment_pool(rt: Rt, caller: Caller, name: str) -> SegmentPool:
    return segments.delete_pool(rt, caller, name)


@router.get("/quotas", summary="Network quotas with their use")
def list_net_quotas(rt: Rt, caller: Caller, company: Company = None) -> list[NetQuota]:
    return net_quotas.list_net_quotas(rt, caller, company)


@router.put("/quotas/{company}/{kind}", summary="Set a company's network quota (group admins)")
def set_net_quota(
    rt: Rt, caller: Caller, company: str, kind: NetQuotaKind, body: NetQuotaSet
) -> NetQuota:
    return net_quotas.set_net_quota(rt, caller, company, kind, body)


@router.get(
    "/plan/{company}",
    summary="A company's addressing plan: VPCs, subnets, segment ids and held addresses",
    response_model=AddressPlan,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_plan(
    rt: Rt,
    caller: Caller,
    company: str,
    format: Annotated[
        Literal["json", "csv"], Query(description="json (default) or csv (one row per item).")
    ] = "json",
) -> AddressPlan | Response:
    plan = address_plan.plan(rt, caller, company)
    if format == "csv":
        return Response(address_plan.to_csv(plan), media_type="text/csv")
    return plan

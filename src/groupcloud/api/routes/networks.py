"""Networks: supernets, VPCs, subnets and IP addresses."""

from __future__ import annotations

from fastapi import APIRouter, status

from groupcloud.api.deps import Caller, Rt
from groupcloud.schemas import (
    IpAddress,
    IpCreate,
    NetworkPrefix,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.services import networks

router = APIRouter(prefix="/v1/networks", tags=["networks"])
CREATED = status.HTTP_201_CREATED


@router.get("/supernets", summary="List the group's supernets with their utilisation")
def list_supernets(rt: Rt, caller: Caller) -> list[NetworkPrefix]:
    return networks.list_prefixes(rt, caller, networks.SUPERNET)


@router.post("/supernets", status_code=CREATED, summary="Register a supernet (group admins)")
def create_supernet(rt: Rt, caller: Caller, body: SupernetCreate) -> NetworkPrefix:
    return networks.create_supernet(rt, caller, body)


@router.get("/vpcs", summary="List VPCs (a company token sees its own)")
def list_vpcs(rt: Rt, caller: Caller, company: str | None = None) -> list[NetworkPrefix]:
    return networks.list_prefixes(rt, caller, networks.VPC, company)


@router.post("/vpcs", status_code=CREATED, summary="Carve a VPC out of a supernet")
def create_vpc(rt: Rt, caller: Caller, body: VpcCreate) -> NetworkPrefix:
    return networks.create_vpc(rt, caller, body)


@router.get("/subnets", summary="List subnets (a company token sees its own)")
def list_subnets(rt: Rt, caller: Caller, company: str | None = None) -> list[NetworkPrefix]:
    return networks.list_prefixes(rt, caller, networks.SUBNET, company)


@router.post(
    "/vpcs/{company}/{vpc}/subnets", status_code=CREATED, summary="Carve a subnet out of a VPC"
)
def create_subnet(
    rt: Rt, caller: Caller, company: str, vpc: str, body: SubnetCreate
) -> NetworkPrefix:
    return networks.create_subnet(rt, caller, company, vpc, body)


@router.get("/subnets/{company}/{subnet}/ips", summary="Addresses handed out in a subnet")
def list_ips(rt: Rt, caller: Caller, company: str, subnet: str) -> list[IpAddress]:
    return networks.list_ips(rt, caller, company, subnet)


@router.post(
    "/subnets/{company}/{subnet}/ips",
    status_code=CREATED,
    summary="Hand out the next free address of a subnet (or a given one)",
)
def allocate_ip(rt: Rt, caller: Caller, company: str, subnet: str, body: IpCreate) -> IpAddress:
    return networks.allocate_ip(rt, caller, company, subnet, body)


@router.post("/ips/{ip_id}/release", summary="Release an address (idempotent)")
def release_ip(rt: Rt, caller: Caller, ip_id: int) -> IpAddress:
    return networks.release_ip(rt, caller, ip_id)

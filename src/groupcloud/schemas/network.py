"""Address space (supernets, VPCs, subnets), addresses, segment pools, network quotas
and addressing plans."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from groupcloud.domain.network import DataClass, NetQuotaKind, SegmentKind, SupernetPurpose
from groupcloud.schemas.base import (
    Amount,
    Input,
    Int,
    Key,
    Output,
    Slug,
)

__all__ = [
    "AddressPlan",
    "Cidr",
    "FloatingIpCreate",
    "FloatingIpUpdate",
    "IpAddress",
    "IpAddressText",
    "IpCreate",
    "NetQuota",
    "NetQuotaSet",
    "NetworkPrefix",
    "PlanAddress",
    "PlanSubnet",
    "PlanVpc",
    "SegmentPool",
    "SegmentPoolCreate",
    "SubnetCreate",
    "SupernetCreate",
    "VpcCreate",
]


def _check_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR prefix like 10.0.0.0/8 ({exc})") from None


def _check_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


_IPV4 = (
    r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
)
_IPV6 = r"[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*"
Cidr = Annotated[
    str,
    AfterValidator(_check_cidr),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^({_IPV4}/(3[0-2]|[12]?[0-9])|{_IPV6}/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
        }
    ),
]
"""A prefix whose host bits are zero (10.0.0.0/8, not 10.0.0.1/8)."""


IpAddressText = Annotated[
    str,
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
    ),
    AfterValidator(_check_address),
]


class _Carve(Input):
    prefixlen: Int | None = Field(
        None, ge=0, le=128, description="Size to carve, e.g. 20 for 'a /20' (next best fit)."
    )
    cidr: Cidr | None = Field(None, description="A specific prefix instead, e.g. 10.1.0.0/20.")

    @model_validator(mode="after")
    def _one_of(self) -> _Carve:
        if (self.prefixlen is None) == (self.cidr is None):
            raise ValueError("give exactly one of prefixlen and cidr")
        return self


class SupernetCreate(Input):
    name: Slug
    cidr: Cidr = Field(description="The group's address block, e.g. 10.0.0.0/8 or fd00::/8.")
    zone: Slug = "shared"
    purpose: SupernetPurpose = Field(
        SupernetPurpose.PRIVATE,
        description="private: VPCs are carved from it; public: floating addresses are "
        "handed out from it.",
    )


class VpcCreate(_Carve):
    name: Slug
    supernet: Slug = Field(description="Supernet to carve the VPC from.")
    company: Slug | None = Field(None, description="Owner; implied by company tokens.")
    data_class: DataClass = Field(
        DataClass.INTERNAL,
        description="Data classification; peering policy may keep classes apart.",
    )


class SubnetCreate(_Carve):
    name: Slug


class IpCreate(Input):
    address: IpAddressText | None = Field(None, description="A given address (default: next free).")
    description: str = Field("", max_length=200)


class FloatingIpCreate(Input):
    pool: Slug = Field(description="Public supernet to take the address from.")
    company: Slug | None = Field(None, description="Owner; implied by company tokens.")
    address: IpAddressText | None = Field(None, description="A given address (default: next free).")
    attach_to: Key | None = Field(None, description="Id of one of the company's fixed addresses.")
    description: str = Field("", max_length=200)


class FloatingIpUpdate(Input):
    attach_to: Key | None = Field(description="Fixed address to attach to; null detaches.")


class SegmentPoolCreate(Input):
    name: Slug
    zone: Slug = "shared"
    kind: SegmentKind = Field(description="vlan (ids for subnets) or vxlan (VNIs for VPCs).")
    first: Int = Field(ge=1, le=2**24 - 1, description="First id of the range.")
    last: Int = Field(ge=1, le=2**24 - 1, description="Last id of the range (inclusive).")

    @model_validator(mode="after")
    def _in_range(self) -> SegmentPoolCreate:
        top = 4094 if self.kind is SegmentKind.VLAN else 2**24 - 1
        if self.first > self.last:
            raise ValueError(f"first ({self.first}) is above last ({self.last})")
        if self.last > top:
            raise ValueError(f"{self.kind.value} ids go up to {top}")
        return self


class SegmentPool(Output):
    name: str
    zone: str
    kind: SegmentKind
    first: int
    last: int
    size: int
    used: int
    free: int
    created_at: datetime
    created_by: str


class PlanAddress(Output):
    id: int
    address: str
    kind: Literal["fixed", "floating"]
    state: Literal["held", "quarantined"]
    allocation: str | None
    unit: int | None
    attached_to: str | None = Field(description="A floating address's fixed address.")
    description: str


class PlanSubnet(Output):
    name: str
    cidr: str
    gateway: str | None
    vlan: int | None
    addresses: list[PlanAddress]


class PlanVpc(Output):
    name: str
    cidr: str
    supernet: str
    zone: str
    data_class: DataClass | None
    vni: int | None
    subnets: list[PlanSubnet]


class AddressPlan(Output):
    """Everything a company holds of the group's address space, for its network team."""

    company: str
    generated_at: datetime
    vpcs: list[PlanVpc]
    floating: list[PlanAddress]


class NetQuotaSet(Input):
    limit: Amount | None = Field(description="Most the company may hold; null: no limit.")


class NetQuota(Output):
    company: str
    kind: NetQuotaKind
    limit: int | None = Field(description="Most the company may hold (null: no limit).")
    used: int
    free: int | None = Field(description="What is left under the limit (null: no limit).")


class NetworkPrefix(Output):
    """A supernet, VPC or subnet with its utilisation."""

    name: str
    kind: Literal["supernet", "vpc", "subnet"]
    cidr: str
    parent: str | None
    company: str | None
    zone: str | None
    addresses: int
    used: int = Field(description="Addresses in allocated children (subnet: handed out).")
    free: int
    largest_free: str | None = Field(description="Largest free block, None when full.")
    quarantined: int = Field(0, description="Released addresses still held (subnets, pools).")
    data_class: DataClass | None = Field(None, description="A VPC's data classification.")
    purpose: SupernetPurpose | None = Field(None, description="A supernet's purpose.")
    segment: int | None = Field(None, description="VXLAN VNI of a VPC, VLAN id of a subnet.")
    created_at: datetime
    created_by: str


class IpAddress(Output):
    id: int
    kind: Literal["fixed", "floating"] = "fixed"
    subnet: str = Field(description="Subnet (fixed) or public pool (floating) it comes from.")
    company: str
    address: str
    description: str
    allocation: str | None = Field(None, description="Allocation whose interface it is.")
    unit: int | None = Field(None, description="Unit of that allocation.")
    attached_to: int | None = Field(None, description="A floating address's fixed address.")
    created_at: datetime
    created_by: str
    released_at: datetime | None
    reusable_at: datetime | None = Field(None, description="End of the quarantine.")

"""The public data contract of network isolation: security rules, peerings between VPCs,
peering bans and reachability checks.

These bodies follow the conventions of ``schemas.base`` (inputs forbid unknown fields,
outputs are built from services' values) and are shared the same way by the services,
the API and the Python client.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from groupcloud.domain.isolation import (
    MAX_PORT,
    BanKind,
    Direction,
    PeeringState,
    Protocol,
    Reason,
    check_flow_port,
    check_rule_ports,
)
from groupcloud.domain.network import DataClass
from groupcloud.domain.tenancy import SLUG, check_slug
from groupcloud.schemas.base import Input, Int, Output
from groupcloud.schemas.network import Cidr, IpAddressText

__all__ = [
    "FlowQuery",
    "Peering",
    "PeeringBan",
    "PeeringBanCreate",
    "PeeringBanCreated",
    "PeeringCreate",
    "PeeringSide",
    "Reachability",
    "SecurityRule",
    "SecurityRuleCreate",
    "VpcRef",
]


def _check_vpc_ref(value: str) -> str:
    parts = value.split("/")
    if len(parts) > 2:
        raise ValueError(f"{value!r}: expected 'company/vpc' or 'vpc'")
    for part in parts:
        check_slug(part, "name")
    return value


def _ip_version(address: str) -> int:
    return ipaddress.ip_address(address).version


VpcRef = Annotated[
    str,
    AfterValidator(_check_vpc_ref),
    WithJsonSchema({"type": "string", "pattern": "^([a-z][a-z0-9-]{0,62}/)?[a-z][a-z0-9-]{0,62}$"}),
]
"""A VPC named ``company/vpc``, or ``vpc`` alone for one of the caller's company."""

Port = Annotated[Int, Field(ge=0, le=MAX_PORT)]
QueryPort = Annotated[int, Field(ge=0, le=MAX_PORT)]
"""A port in a query string (text there by nature, so not strict)."""


class SecurityRuleCreate(Input):
    direction: Direction = Field(
        description="ingress: into the VPC from `cidr`; egress: out of the VPC to `cidr`."
    )
    protocol: Protocol = Field(description="tcp, udp, icmp, or any (every protocol and port).")
    cidr: Cidr = Field(
        description="The other end of the traffic, e.g. 10.1.0.0/16 (same address family as "
        "the VPC)."
    )
    port_from: Port | None = Field(None, description="First port (tcp, udp); omitted: all ports.")
    port_to: Port | None = Field(None, description="Last port (default: port_from).")
    description: str = Field("", max_length=200, description="What the rule is for.")

    # Field validators (not one model validator) so that a refusal names its field.
    @field_validator("port_from")
    @classmethod
    def _port_from(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "protocol" in info.data:
            check_rule_ports(info.data["protocol"], value, None)
        return value

    @field_validator("port_to")
    @classmethod
    def _port_to(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "protocol" in info.data and "port_from" in info.data:
            check_rule_ports(info.data["protocol"], info.data["port_from"], value)
        return value

    @model_validator(mode="after")
    def _one_port(self) -> SecurityRuleCreate:
        if self.port_from is not None and self.port_to is None:
            self.port_to = self.port_from
        return self


class SecurityRule(Output):
    """An allow rule of a VPC. What no rule allows is denied."""

    id: int
    company: str
    vpc: str
    direction: Direction
    protocol: Protocol
    cidr: str
    port_from: int | None = Field(description="None: every port (tcp, udp) or none apply.")
    port_to: int | None
    description: str
    created_at: datetime
    created_by: str


class PeeringCreate(Input):
    vpc: VpcRef = Field(description="The requesting VPC: 'company/vpc', or 'vpc' of your company.")
    peer: VpcRef = Field(
        description="The VPC to peer with: 'company/vpc' (another company's VPC is always named "
        "with its company)."
    )


class PeeringSide(Output):
    """One VPC of a peering. The requesting company sees the VPC it asked for by name only
    (cidr, zone and data_class null) until the other side accepts."""

    company: str
    vpc: str
    cidr: str | None = None
    zone: str | None = None
    data_class: DataClass | None = None


class Peering(Output):
    """A peering between two VPCs, visible to both companies (and only to them)."""

    id: int
    state: PeeringState
    requester: PeeringSide
    accepter: PeeringSide = Field(description="The side whose company accepts or rejects.")
    requested_at: datetime
    requested_by: str
    decided_at: datetime | None
    decided_by: str | None
    ended_at: datetime | None
    banned_by: int | None = Field(
        None,
        description="Id of a ban this peering violates (the ban came later): it stays until "
        "one side or the operator deletes it, and a pending one cannot be accepted.",
    )


_CLASSES: list[JsonValue] = [c.value for c in DataClass]


class PeeringBanCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={  # which sides a kind takes, for clients and generated tests
            "oneOf": [
                {
                    "properties": {
                        "kind": {"const": BanKind.ZONE.value},
                        "side_a": {"pattern": SLUG.pattern},
                        "side_b": {"pattern": SLUG.pattern},
                    }
                },
                {
                    "properties": {
                        "kind": {"const": BanKind.DATA_CLASS.value},
                        "side_a": {"enum": _CLASSES},
                        "side_b": {"enum": _CLASSES},
                    }
                },
            ]
        }
    )

    kind: BanKind = Field(description="zone: zones of the VPCs' supernets; data_class: theirs.")
    side_a: str = Field(description="A zone name or a data class.")
    side_b: str = Field(description="The other (equal to side_a: VPCs of that value apart).")

    @model_validator(mode="after")
    def _sides(self) -> PeeringBanCreate:
        for side in (self.side_a, self.side_b):
            if self.kind is BanKind.DATA_CLASS:
                if side not in set(DataClass):
                    classes = ", ".join(c.value for c in DataClass)
                    raise ValueError(f"{side!r} is not a data class ({classes})")
            else:
                check_slug(side, "zone")
        return self


class PeeringBan(Output):
    """The operator forbids new peerings between two zones or two data classes."""

    id: int
    kind: BanKind
    side_a: str
    side_b: str
    created_at: datetime
    created_by: str


class PeeringBanCreated(PeeringBan):
    violating_peerings: list[int] = Field(
        description="Live peerings that the ban forbids: they stay until deleted (a ban never "
        "cuts traffic silently); pending ones can no longer be accepted."
    )


class FlowQuery(Input):
    source: IpAddressText = Field(description="Address the traffic comes from.")
    destination: IpAddressText = Field(description="Address the traffic goes to.")
    protocol: Protocol = Field(description="tcp, udp or icmp.")
    port: QueryPort | None = Field(
        None, validate_default=True, description="Destination port (tcp, udp only)."
    )

    @field_validator("destination")
    @classmethod
    def _one_family(cls, value: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        if source is not None and _ip_version(source) != _ip_version(value):
            raise ValueError("source and destination must be of one address family")
        return value

    @field_validator("protocol")
    @classmethod
    def _one_protocol(cls, value: Protocol) -> Protocol:
        if value is Protocol.ANY:
            raise ValueError("a flow has one protocol: tcp, udp or icmp")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "protocol" in info.data:
            check_flow_port(info.data["protocol"], value)
        return value


class Reachability(Output):
    """Whether a flow is allowed, why (a stable reason), and what decided it."""

    source: str
    destination: str
    protocol: Protocol
    port: int | None
    allowed: bool
    reason: Reason
    detail: str = Field(description="The reason in words.")
    source_vpc: str | None = Field(description="'company/vpc' holding the source, if visible.")
    destination_vpc: str | None
    peering: int | None = Field(description="The active peering the flow crosses.")
    egress_rule: SecurityRule | None = Field(
        description="The source VPC's rule that lets it out (not shown to another company)."
    )
    ingress_rule: SecurityRule | None = Field(
        description="The destination VPC's rule that lets it in (not shown to another company)."
    )

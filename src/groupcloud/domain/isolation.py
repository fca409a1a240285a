"""Vocabulary of network isolation: security rules, peerings, peering bans, and the stable
reasons a reachability check gives."""

from __future__ import annotations

import enum

__all__ = [
    "MAX_PORT",
    "BanKind",
    "Direction",
    "PeeringState",
    "Protocol",
    "Reason",
    "check_flow_port",
    "check_rule_ports",
]

MAX_PORT = 65535


class Direction(enum.StrEnum):
    """Which traffic a security rule lets through."""

    INGRESS = "ingress"
    """Into the VPC, from addresses in the rule's CIDR."""
    EGRESS = "egress"
    """Out of the VPC, to addresses in the rule's CIDR."""


class Protocol(enum.StrEnum):
    """IP protocols a rule can name; ``any`` matches every protocol and port."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ANY = "any"

    @property
    def has_ports(self) -> bool:
        return self in (Protocol.TCP, Protocol.UDP)


class PeeringState(enum.StrEnum):
    """Life cycle of a peering: requested by one side, decided by the other."""

    PENDING = "pending"
    """Requested; waits for an admin of the other VPC's company. Carries no traffic."""
    ACTIVE = "active"
    """Accepted by both companies (at once between two VPCs of one company)."""
    REJECTED = "rejected"
    """Refused by the other side; the pair may be requested again."""
    DELETED = "deleted"
    """Withdrawn or ended by either side (or the operator); the pair may be requested again."""


class BanKind(enum.StrEnum):
    """What a peering ban keeps apart."""

    ZONE = "zone"
    """VPCs of two zones (the zones of their supernets)."""
    DATA_CLASS = "data_class"
    """VPCs of two data classes (e.g. ``restricted`` with ``public``)."""


class Reason(enum.StrEnum):
    """Why a flow is allowed or denied (stable, machine-readable)."""

    SAME_VPC = "same_vpc"
    """Allowed: both addresses are in one VPC (traffic inside a VPC is never filtered)."""
    ALLOWED_BY_RULES = "allowed_by_rules"
    """Allowed: the VPCs are peered, an egress rule of the source's VPC and an ingress rule
    of the destination's VPC both match."""
    NOT_IN_ANY_VPC = "not_in_any_vpc"
    """Denied: an address is in no VPC (that the caller can see); nothing outside the VPCs
    reaches them or is reached from them."""
    NO_PEERING = "no_peering"
    """Denied: the two VPCs have no active peering (isolation by default)."""
    NO_EGRESS_RULE = "no_egress_rule"
    """Denied: peered, but no egress rule of the source's VPC matches."""
    NO_INGRESS_RULE = "no_ingress_rule"
    """Denied: peered and let out, but no ingress rule of the destination's VPC matches."""

    @property
    def allowed(self) -> bool:
        return self in (Reason.SAME_VPC, Reason.ALLOWED_BY_RULES)


def check_rule_ports(protocol: Protocol, port_from: int | None, port_to: int | None) -> None:
    """Ports belong to tcp and udp rules only; a range is ordered and inside 0-65535. A tcp
    or udp rule without ports covers every port. Raises ValueError."""
    if not protocol.has_ports:
        if port_from is not None or port_to is not None:
            raise ValueError(f"{protocol.value} rules take no ports (only tcp and udp do)")
        return
    if port_from is None:
        if port_to is not None:
            raise ValueError("port_to needs port_from")
        return
    last = port_from if port_to is None else port_to
    if not 0 <= port_from <= last <= MAX_PORT:
        raise ValueError(f"ports must satisfy 0 <= port_from <= port_to <= {MAX_PORT}")


def check_flow_port(protocol: Protocol, port: int | None) -> None:
    """A flow is one packet's view: tcp and udp need a destination port, icmp has none,
    and ``any`` is not a protocol a packet can have. Raises ValueError."""
    if protocol is Protocol.ANY:
        raise ValueError("a flow has one protocol: tcp, udp or icmp")
    if protocol.has_ports and port is None:
        raise ValueError(f"a {protocol.value} flow needs a destination port")
    if not protocol.has_ports and port is not None:
        raise ValueError(f"{protocol.value} has no ports")
    if port is not None and not 0 <= port <= MAX_PORT:
        raise ValueError(f"port must be between 0 and {MAX_PORT}")

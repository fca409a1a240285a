"""Isolation between VPCs: which flows are allowed, and which pairs of VPCs may peer.

Pure (no I/O): services load the VPCs, rules, peerings and bans that matter for one
question, build these values and ask. The semantics, isolation by default:

1. An address belongs to the VPC with the longest prefix that holds it. Carved VPCs never
   overlap; address plans imported from a company's own systems may, and then the most
   specific VPC wins, as in a routing table.
2. An address in no VPC reaches nothing and is reached by nothing (``not_in_any_vpc``):
   groupcloud has no gateways, so no path leads into or out of the VPCs but peerings.
3. Inside one VPC everything is allowed (``same_vpc``): rules filter between VPCs.
4. Between two VPCs a flow needs an **active peering** (``no_peering``), an **egress rule
   of the source's VPC** matching the destination address, protocol and port
   (``no_egress_rule``), and an **ingress rule of the destination's VPC** matching the
   source address, protocol and port (``no_ingress_rule``); two VPCs of one company are
   no exception. Rules only allow (there are no deny rules), so their order never
   changes a verdict; it only decides which matching rule is named (the first given:
   services give them oldest first).

A peering is refused between a VPC and itself, between IPv4 and IPv6 (no traffic could
cross it), between overlapping prefixes (an address would be ambiguous on both sides),
and between VPCs the operator keeps apart by zone or data class (a ban).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from groupcloud.domain.isolation import BanKind, Direction, Protocol, Reason
from groupcloud.ipam.space import Network

__all__ = [
    "Address",
    "Ban",
    "Endpoint",
    "Flow",
    "PortRange",
    "Refusal",
    "Rule",
    "Topology",
    "Verdict",
    "Vpc",
    "containing_prefixes",
    "peering_refusal",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports ``first`` to ``last``, both included."""

    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last


@dataclass(frozen=True, slots=True)
class Rule:
    """An allow rule of VPC ``vpc_id``: ingress from ``cidr`` or egress to ``cidr``.
    ``ports`` None: every port (tcp, udp) or none apply (icmp, any)."""

    id: int
    vpc_id: int
    direction: Direction
    protocol: Protocol
    cidr: Network
    ports: PortRange | None = None

    def matches(self, peer: Address, protocol: Protocol, port: int | None) -> bool:
        """Whether the rule lets through a flow whose other end is ``peer``."""
        if peer.version != self.cidr.version or peer not in self.cidr:
            return False
        if self.protocol is Protocol.ANY:
            return True
        if self.protocol is not protocol:
            return False
        return self.ports is None or port in self.ports


@dataclass(frozen=True, slots=True)
class Vpc:
    id: int
    network: Network


@dataclass(frozen=True, slots=True)
class Flow:
    """One packet's view: from ``source`` to ``destination`` on ``port`` (tcp/udp)."""

    source: Address
    destination: Address
    protocol: Protocol
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed or denied, why, and the VPCs and rules that decided it."""

    reason: Reason
    source_vpc: Vpc | None = None
    destination_vpc: Vpc | None = None
    egress_rule: Rule | None = None
    ingress_rule: Rule | None = None

    @property
    def allowed(self) -> bool:
        return self.reason.allowed


def containing_prefixes(address: Address) -> list[Network]:
    """Every prefix that holds ``address``, longest first (33 for IPv4, 129 for IPv6): a
    service finds the VPC of an address by looking these up, never by scanning VPCs."""
    return [
        ipaddress.ip_network((address, length), strict=False)
        for length in range(address.max_prefixlen, -1, -1)
    ]


class Topology:
    """VPCs, their rules and the active peerings between them."""

    def __init__(
        self,
        vpcs: Iterable[Vpc],
        rules: Iterable[Rule] = (),
        peerings: Iterable[tuple[int, int]] = (),
    ) -> None:
        self._vpcs: dict[Network, Vpc] = {}
        for vpc in vpcs:
            self._vpcs.setdefault(vpc.network, vpc)  # the first given wins a tie
        self._rules: dict[tuple[int, Direction], list[Rule]] = {}
        for rule in rules:
            self._rules.setdefault((rule.vpc_id, rule.direction), []).append(rule)
        self._peered = {frozenset(pair) for pair in peerings}

    def vpc_of(self, address: Address) -> Vpc | None:
        """The most specific VPC holding ``address`` (longest-prefix match)."""
        for prefix in containing_prefixes(address):
            vpc = self._vpcs.get(prefix)
            if vpc is not None:
                return vpc
        return None

    def peered(self, a: int, b: int) -> bool:
        return frozenset((a, b)) in self._peered

    def _first(self, vpc: Vpc, direction: Direction, peer: Address, flow: Flow) -> Rule | None:
        for rule in self._rules.get((vpc.id, direction), ()):
            if rule.matches(peer, flow.protocol, flow.port):
                return rule
        return None

    def check(self, flow: Flow) -> Verdict:
        """The verdict on ``flow``; each stage that denies says so with its reason."""
        source, destination = self.vpc_of(flow.source), self.vpc_of(flow.destination)
        if source is None or destination is None:
            return Verdict(Reason.NOT_IN_ANY_VPC, source, destination)
        if source.id == destination.id:
            return Verdict(Reason.SAME_VPC, source, destination)
        if not self.peered(source.id, destination.id):
            return Verdict(Reason.NO_PEERING, source, destination)
        egress = self._first(source, Direction.EGRESS, flow.destination, flow)
        if egress is None:
            return Verdict(Reason.NO_EGRESS_RULE, source, destination)
        ingress = self._first(destination, Direction.INGRESS, flow.source, flow)
        if ingress is None:
            return Verdict(Reason.NO_INGRESS_RULE, source, destination, egress)
        return Verdict(Reason.ALLOWED_BY_RULES, source, destination, egress, ingress)


# --- peering policy ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A VPC as peering policy sees it: its prefix, zone and data class."""

    id: int
    network: Network
    zone: str
    data_class: str

    def side(self, kind: BanKind) -> str:
        return self.zone if kind is BanKind.ZONE else self.data_class


@dataclass(frozen=True, slots=True)
class Ban:
    """The operator forbids peering between ``side_a`` and ``side_b`` (zones or data
    classes; ``side_a <= side_b``, and equal sides keep VPCs of one value apart)."""

    id: int
    kind: BanKind
    side_a: str
    side_b: str

    def forbids(self, a: Endpoint, b: Endpoint) -> bool:
        return sorted((a.side(self.kind), b.side(self.kind))) == [self.side_a, self.side_b]


class Refusal(enum.StrEnum):
    """Why two VPCs may not peer."""

    SAME_VPC = "same_vpc"
    ADDRESS_FAMILIES_DIFFER = "address_families_differ"
    PREFIXES_OVERLAP = "prefixes_overlap"
    BANNED = "banned"


def peering_refusal(
    a: Endpoint, b: Endpoint, bans: Iterable[Ban] = ()
) -> tuple[Refusal, Ban | None] | None:
    """Why ``a`` and ``b`` may not peer (with the ban that forbids it), or None if they
    may. The first ban given that forbids the pair is named."""
    if a.id == b.id:
        return Refusal.SAME_VPC, None
    if a.network.version != b.network.version:
        return Refusal.ADDRESS_FAMILIES_DIFFER, None
    if a.network.overlaps(b.network):
        return Refusal.PREFIXES_OVERLAP, None
    for ban in bans:
        if ban.forbids(a, b):
            return Refusal.BANNED, ban
    return None

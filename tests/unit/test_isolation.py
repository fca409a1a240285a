"""The isolation engine: rule matching, the VPC of an address, reachability verdicts and
peering policy, with property tests against plain integer models of CIDRs and ports."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.isolation import (
    BanKind,
    Direction,
    Protocol,
    Reason,
    check_flow_port,
    check_rule_ports,
)
from groupcloud.ipam.isolation import (
    Address,
    Ban,
    Endpoint,
    Flow,
    PortRange,
    Refusal,
    Rule,
    Topology,
    Vpc,
    containing_prefixes,
    peering_refusal,
)
from groupcloud.ipam.space import Network

IN, OUT = Direction.INGRESS, Direction.EGRESS
TCP, UDP, ICMP, ANY = Protocol.TCP, Protocol.UDP, Protocol.ICMP, Protocol.ANY


def net(text: str) -> Network:
    return ipaddress.ip_network(text)


def ip(text: str) -> Address:
    return ipaddress.ip_address(text)


def rule(
    rule_id: int,
    vpc: int,
    direction: Direction,
    cidr: str,
    protocol: Protocol = TCP,
    ports: tuple[int, int] | None = None,
) -> Rule:
    span = PortRange(*ports) if ports else None
    return Rule(rule_id, vpc, direction, protocol, net(cidr), span)


CORE, EDGE, LAB = Vpc(1, net("10.0.0.0/24")), Vpc(2, net("10.0.1.0/24")), Vpc(3, net("10.0.2.0/24"))


def tcp(source: str, destination: str, port: int = 443) -> Flow:
    return Flow(ip(source), ip(destination), TCP, port)


# --- examples --------------------------------------------------------------------------


def test_traffic_inside_a_vpc_is_allowed_without_rules() -> None:
    verdict = Topology([CORE]).check(tcp("10.0.0.5", "10.0.0.9"))
    assert (verdict.allowed, verdict.reason) == (True, Reason.SAME_VPC)
    assert verdict.source_vpc == verdict.destination_vpc == CORE


def test_an_address_outside_every_vpc_reaches_nothing_and_is_reached_by_nothing() -> None:
    open_rules = [rule(1, 1, IN, "0.0.0.0/0", ANY), rule(2, 1, OUT, "0.0.0.0/0", ANY)]
    topology = Topology([CORE], open_rules)
    for flow in (tcp("192.168.1.1", "10.0.0.5"), tcp("10.0.0.5", "192.168.1.1")):
        verdict = topology.check(flow)
        assert (verdict.allowed, verdict.reason) == (False, Reason.NOT_IN_ANY_VPC)


def test_two_vpcs_are_isolated_until_peered_even_with_matching_rules() -> None:
    rules = [rule(1, 1, OUT, "10.0.1.0/24"), rule(2, 2, IN, "10.0.0.0/24")]
    flow = tcp("10.0.0.5", "10.0.1.7")
    assert Topology([CORE, EDGE], rules).check(flow).reason is Reason.NO_PEERING
    verdict = Topology([CORE, EDGE], rules, [(2, 1)]).check(flow)
    assert (verdict.allowed, verdict.reason) == (True, Reason.ALLOWED_BY_RULES)
    assert (verdict.egress_rule, verdict.ingress_rule) == (rules[0], rules[1])


def test_a_peered_flow_needs_both_the_egress_and_the_ingress_rule() -> None:
    egress, ingress = rule(1, 1, OUT, "10.0.1.0/24"), rule(2, 2, IN, "10.0.0.0/24")
    flow = tcp("10.0.0.5", "10.0.1.7")
    only_ingress = Topology([CORE, EDGE], [ingress], [(1, 2)]).check(flow)
    assert only_ingress.reason is Reason.NO_EGRESS_RULE
    only_egress = Topology([CORE, EDGE], [egress], [(1, 2)]).check(flow)
    assert only_egress.reason is Reason.NO_INGRESS_RULE
    assert only_egress.egress_rule == egress  # what did match is still named
    # Rules are directional: the answer traffic's rules are the other VPC's.
    back = Topology([CORE, EDGE], [egress, ingress], [(1, 2)]).check(tcp("10.0.1.7", "10.0.0.5"))
    assert back.reason is Reason.NO_EGRESS_RULE


def test_ports_protocols_and_address_families_of_rules() -> None:
    web = rule(1, 1, IN, "10.0.0.0/8", TCP, (8000, 8100))
    assert web.matches(ip("10.1.2.3"), TCP, 8000)
    assert web.matches(ip("10.1.2.3"), TCP, 8100)
    assert not web.matches(ip("10.1.2.3"), TCP, 8101)
    assert not web.matches(ip("10.1.2.3"), UDP, 8000)
    assert not web.matches(ip("11.0.0.1"), TCP, 8000)
    every_port = rule(2, 1, IN, "10.0.0.0/8", UDP)
    assert every_port.matches(ip("10.0.0.1"), UDP, 0)
    assert every_port.matches(ip("10.0.0.1"), UDP, 65535)
    ping = rule(3, 1, IN, "10.0.0.0/8", ICMP)
    assert ping.matches(ip("10.0.0.1"), ICMP, None)
    assert not ping.matches(ip("10.0.0.1"), TCP, 22)
    anything = rule(4, 1, IN, "0.0.0.0/0", ANY)
    assert all(anything.matches(ip("1.2.3.4"), p, 53) for p in (TCP, UDP))
    assert not anything.matches(ip("fd00::1"), TCP, 53)  # an IPv4 rule never matches IPv6
    assert rule(5, 1, IN, "::/0", ANY).matches(ip("fd00::1"), ICMP, None)


def test_the_first_matching_rule_is_named_and_order_never_changes_the_verdict() -> None:
    broad, narrow = rule(1, 1, OUT, "10.0.0.0/8", ANY), rule(2, 1, OUT, "10.0.1.0/24")
    ingress = rule(3, 2, IN, "10.0.0.0/24")
    flow = tcp("10.0.0.5", "10.0.1.7")
    first = Topology([CORE, EDGE], [broad, narrow, ingress], [(1, 2)]).check(flow)
    second = Topology([CORE, EDGE], [narrow, broad, ingress], [(1, 2)]).check(flow)
    assert first.allowed
    assert second.allowed
    assert (first.egress_rule, second.egress_rule) == (broad, narrow)


def test_the_most_specific_vpc_holds_an_address() -> None:
    wide, inner = Vpc(7, net("10.0.0.0/16")), Vpc(8, net("10.0.4.0/22"))
    topology = Topology([wide, inner])
    assert topology.vpc_of(ip("10.0.5.1")) == inner
    assert topology.vpc_of(ip("10.0.9.1")) == wide
    assert topology.vpc_of(ip("10.1.0.0")) is None
    assert Topology([Vpc(1, net("fd00::/48"))]).vpc_of(ip("fd00::abcd")) == Vpc(1, net("fd00::/48"))


def test_containing_prefixes_go_from_the_address_itself_to_everything() -> None:
    prefixes = containing_prefixes(ip("10.1.2.3"))
    assert len(prefixes) == 33
    assert (prefixes[0], prefixes[8], prefixes[-1]) == (
        net("10.1.2.3/32"),
        net("10.1.2.0/24"),
        net("0.0.0.0/0"),
    )
    assert len(containing_prefixes(ip("fd00::1"))) == 129


def endpoint(
    vpc_id: int, cidr: str, zone: str = "shared", data_class: str = "internal"
) -> Endpoint:
    return Endpoint(vpc_id, net(cidr), zone, data_class)


def test_peering_policy_refuses_self_mixed_families_overlaps_and_bans() -> None:
    core = endpoint(1, "10.0.0.0/16")
    assert peering_refusal(core, core) == (Refusal.SAME_VPC, None)
    assert peering_refusal(core, endpoint(2, "fd00::/48")) == (
        Refusal.ADDRESS_FAMILIES_DIFFER,
        None,
    )
    assert peering_refusal(core, endpoint(2, "10.0.128.0/20")) == (Refusal.PREFIXES_OVERLAP, None)
    dmz = endpoint(2, "10.1.0.0/16", zone="dmz", data_class="public")
    assert peering_refusal(core, dmz) is None
    by_zone = Ban(5, BanKind.ZONE, "dmz", "shared")
    by_class = Ban(6, BanKind.DATA_CLASS, "internal", "public")
    assert peering_refusal(core, dmz, [by_zone, by_class]) == (Refusal.BANNED, by_zone)
    assert peering_refusal(dmz, core, [by_class]) == (Refusal.BANNED, by_class)
    # Equal sides keep VPCs of one value apart; other values are untouched.
    restricted = Ban(7, BanKind.DATA_CLASS, "restricted", "restricted")
    secret_a = endpoint(3, "10.2.0.0/16", data_class="restricted")
    secret_b = endpoint(4, "10.3.0.0/16", data_class="restricted")
    assert peering_refusal(secret_a, secret_b, [restricted]) == (Refusal.BANNED, restricted)
    assert peering_refusal(secret_a, core, [restricted]) is None


def test_ports_of_rules_and_flows_are_checked() -> None:
    check_rule_ports(TCP, None, None)
    check_rule_ports(TCP, 443, None)
    check_rule_ports(UDP, 0, 65535)
    check_rule_ports(ICMP, None, None)
    for protocol, first, last, message in [
        (ICMP, 1, None, "icmp rules take no ports"),
        (ANY, None, 2, "any rules take no ports"),
        (TCP, None, 80, "port_to needs port_from"),
        (TCP, 90, 80, "port_from <= port_to"),
        (UDP, 1, 65536, "<= 65535"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_rule_ports(protocol, first, last)
    check_flow_port(TCP, 443)
    check_flow_port(ICMP, None)
    for protocol, port, message in [
        (ANY, None, "one protocol"),
        (UDP, None, "needs a destination port"),
        (ICMP, 8, "has no ports"),
        (TCP, 70000, "between 0 and 65535"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_flow_port(protocol, port)


# --- properties ------------------------------------------------------------------------

SPACE = net("10.0.0.0/20")  # small, so that random rules, VPCs and addresses meet often
# Three fixed VPCs in SPACE; much of SPACE is in none of them.
VPCS = [Vpc(1, net("10.0.0.0/24")), Vpc(2, net("10.0.1.0/24")), Vpc(3, net("10.0.4.0/22"))]


# Strategies are built once: hypothesis validates each new strategy object it is given.
# Short prefixes come more often than long ones, so that rules and VPCs hold many of the
# addresses drawn.
prefixes = st.builds(
    lambda start, length: ipaddress.ip_network((start, length), strict=False),
    st.integers(int(SPACE.network_address), int(SPACE.broadcast_address)),
    st.sampled_from([20, 21, 22, 23, 24, 24, 25, 26, 28, 30, 32]),
)


def _within(network: Network) -> st.SearchStrategy[Address]:
    first, last = int(network.network_address), int(network.broadcast_address)
    return st.integers(first, last).map(ipaddress.IPv4Address)


addresses = _within(SPACE)
flow_protocols = st.sampled_from([TCP, UDP, ICMP])
protocols = st.sampled_from(list(Protocol))
directions = st.sampled_from(list(Direction))
rule_ids = st.integers(1, 10**6)
port_starts = st.sampled_from([0, 22, 443, 8000]) | st.integers(0, 65535)
port_spans = st.sampled_from([0, 100, 65535])
rule_cidrs = st.sampled_from([v.network for v in VPCS]) | prefixes


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    protocol = draw(protocols)
    ports = None
    if protocol.has_ports and draw(st.booleans()):
        first = draw(port_starts)
        ports = PortRange(first, min(first + draw(port_spans), 65535))
    vpc_id = draw(st.sampled_from([v.id for v in VPCS]))
    return Rule(draw(rule_ids), vpc_id, draw(directions), protocol, draw(rule_cidrs), ports)


def _holds(network: Network, address: Address) -> bool:
    """Containment by integers, independent of ipaddress's operators."""
    first, last = int(network.network_address), int(network.broadcast_address)
    return network.version == address.version and first <= int(address) <= last


def _model_match(r: Rule, peer: Address, protocol: Protocol, port: int | None) -> bool:
    if not _holds(r.cidr, peer):
        return False
    if r.protocol is ANY:
        return True
    if r.protocol is not protocol:
        return False
    return r.ports is None or (port is not None and r.ports.first <= port <= r.ports.last)


@settings(max_examples=200, deadline=None)
@given(rules(), addresses, flow_protocols, st.integers(0, 65535))
def test_rule_matching_agrees_with_integer_arithmetic(
    r: Rule, peer: Address, protocol: Protocol, port: int
) -> None:
    port_or_none = port if protocol.has_ports else None
    assert r.matches(peer, protocol, port_or_none) == _model_match(r, peer, protocol, port_or_none)


@settings(max_examples=200, deadline=None)
@given(prefixes, addresses)
def test_an_address_is_in_a_prefix_exactly_when_the_prefix_is_one_of_its_containers(
    network: Network, address: Address
) -> None:
    assert (network in containing_prefixes(address)) == _holds(network, address)


@settings(max_examples=200, deadline=None)
@given(st.lists(prefixes, max_size=8), addresses)
def test_the_vpc_of_an_address_is_the_longest_prefix_that_holds_it(
    networks: list[Network], address: Address
) -> None:
    vpcs = [Vpc(i, n) for i, n in enumerate(networks)]
    holding = [v for v in vpcs if _holds(v.network, address)]
    expected = max(holding, key=lambda v: (v.network.prefixlen, -v.id)) if holding else None
    assert Topology(vpcs).vpc_of(address) == expected


pairs = st.lists(st.sampled_from([(1, 2), (1, 3), (2, 3)]), unique=True)


def _model_allowed(flow: Flow, all_rules: list[Rule], peerings: list[tuple[int, int]]) -> bool:
    src = next((v for v in VPCS if _holds(v.network, flow.source)), None)
    dst = next((v for v in VPCS if _holds(v.network, flow.destination)), None)
    if src is None or dst is None:
        return False
    if src == dst:
        return True
    return (
        tuple(sorted((src.id, dst.id))) in peerings
        and any(
            r.vpc_id == src.id
            and r.direction is OUT
            and _model_match(r, flow.destination, flow.protocol, flow.port)
            for r in all_rules
        )
        and any(
            r.vpc_id == dst.id
            and r.direction is IN
            and _model_match(r, flow.source, flow.protocol, flow.port)
            for r in all_rules
        )
    )


# Ends of flows: mostly inside one of the VPCs (often two different ones), sometimes
# anywhere in SPACE.
WHERE = [v.network for v in VPCS] + [SPACE]


ends = st.sampled_from(list(itertools.product(WHERE, WHERE)))
inside = {network: _within(network) for network in WHERE}
flow_ports = st.sampled_from([22, 443, 8080]) | st.integers(0, 65535)


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    source, destination = draw(ends)
    protocol = draw(flow_protocols)
    port = draw(flow_ports) if protocol.has_ports else None
    return Flow(draw(inside[source]), draw(inside[destination]), protocol, port)


def _vpc_id(address: Address) -> int:
    return next((v.id for v in VPCS if _holds(v.network, address)), 1)


aimed_protocols = st.sampled_from([None, ANY, TCP, UDP, ICMP])  # None: the flow's


@st.composite
def aimed(draw: st.DrawFn, flow: Flow) -> Rule:
    """A rule of one end's VPC about the other end, that may or may not match the flow."""
    direction = draw(directions)
    own, peer = (
        (flow.source, flow.destination) if direction is OUT else (flow.destination, flow.source)
    )
    protocol = draw(aimed_protocols) or flow.protocol
    ports = None
    if protocol.has_ports and flow.port is not None and draw(st.booleans()):
        first = max(0, flow.port + draw(st.integers(-2, 1)))
        ports = PortRange(first, min(65535, first + draw(st.integers(0, 2))))
    cidr = ipaddress.ip_network((peer, draw(st.integers(18, 32))), strict=False)
    return Rule(draw(rule_ids), _vpc_id(own), direction, protocol, cidr, ports)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Rule], list[tuple[int, int]], Flow]:
    """Random rules and peerings, plus rules aimed at the flow and often its own peering,
    so that every stage of the verdict is reached."""
    flow = draw(flows())
    some = draw(st.lists(rules(), max_size=6)) + [
        draw(aimed(flow)) for _ in range(draw(st.integers(2, 4)))
    ]
    peerings = draw(pairs)
    if draw(st.booleans()):
        pair = tuple(sorted((_vpc_id(flow.source), _vpc_id(flow.destination))))
        if pair[0] != pair[1]:
            peerings.append((pair[0], pair[1]))
    return draw(st.permutations(some)), peerings, flow


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_verdicts_agree_with_the_model_and_name_rules_that_match(
    scenario: tuple[list[Rule], list[tuple[int, int]], Flow],
) -> None:
    all_rules, peerings, flow = scenario
    verdict = Topology(VPCS, all_rules, peerings).check(flow)
    assert verdict.allowed == _model_allowed(flow, all_rules, peerings)
    assert verdict.reason.allowed == verdict.allowed
    if verdict.egress_rule is not None:
        assert verdict.egress_rule.direction is OUT
        assert verdict.source_vpc is not None
        assert verdict.egress_rule.vpc_id == verdict.source_vpc.id
        assert verdict.egress_rule.matches(flow.destination, flow.protocol, flow.port)
    if verdict.ingress_rule is not None:
        assert verdict.ingress_rule.direction is IN
        assert verdict.destination_vpc is not None
        assert verdict.ingress_rule.vpc_id == verdict.destination_vpc.id
        assert verdict.ingress_rule.matches(flow.source, flow.protocol, flow.port)
    assert (verdict.reason is Reason.ALLOWED_BY_RULES) == (
        verdict.egress_rule is not None and verdict.ingress_rule is not None
    )


@settings(max_examples=100, deadline=None)
@given(scenarios(), rules(), st.sampled_from([(1, 2), (1, 3), (2, 3)]))
def test_adding_a_rule_or_a_peering_never_denies_an_allowed_flow(
    scenario: tuple[list[Rule], list[tuple[int, int]], Flow], extra: Rule, pair: tuple[int, int]
) -> None:
    all_rules, peerings, flow = scenario
    before = Topology(VPCS, all_rules, peerings).check(flow).allowed
    assert Topology(VPCS, [*all_rules, extra], peerings).check(flow).allowed >= before
    assert Topology(VPCS, all_rules, [*peerings, pair]).check(flow).allowed >= before

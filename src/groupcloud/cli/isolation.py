"""Client commands for network isolation: security rules, peerings, peering bans and
reachability checks (``groupcloud net rule|peering|ban|check``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from groupcloud.cli.context import client
from groupcloud.cli.output import Cursor, JsonFlag, Limit, console, print_json, render, render_one
from groupcloud.cli.parsing import build
from groupcloud.domain.isolation import BanKind, Direction, PeeringState, Protocol, Reason
from groupcloud.schemas.isolation import (
    FlowQuery,
    Peering,
    PeeringBan,
    PeeringBanCreate,
    PeeringSide,
    SecurityRule,
    SecurityRuleCreate,
)

__all__ = ["ban_app", "check", "peering_app", "rule_app"]

rule_app = typer.Typer(
    help="Security rules of a VPC: allow traffic in (ingress) or out (egress) by CIDR, "
    "protocol and ports. What no rule allows is denied; traffic inside a VPC is not filtered."
)
peering_app = typer.Typer(
    help="Peerings between VPCs: one company requests, the other accepts (within one company "
    "a peering is active at once). VPCs exchange no traffic without an active peering."
)
ban_app = typer.Typer(
    help="The operator's peering bans: no new peering between two zones or two data classes."
)

RULE_COLUMNS = ["ID", "VPC", "DIRECTION", "PROTOCOL", "PORTS", "CIDR", "DESCRIPTION"]
PEERING_COLUMNS = ["ID", "STATE", "REQUESTER", "ACCEPTER", "REQUESTED BY", "DECIDED BY"]
BAN_COLUMNS = ["ID", "KIND", "BETWEEN", "CREATED BY"]
_STATE_STYLE = {
    PeeringState.PENDING: "yellow",
    PeeringState.ACTIVE: "green",
    PeeringState.REJECTED: "dim",
    PeeringState.DELETED: "dim",
}
PeeringId = Annotated[int, typer.Argument(help="The peering's id (see net peering list).")]


def _ports(r: SecurityRule) -> str:
    if not r.protocol.has_ports:
        return "-"
    if r.port_from is None:
        return "all"
    return str(r.port_from) if r.port_from == r.port_to else f"{r.port_from}-{r.port_to}"


def _rule_row(r: SecurityRule) -> list[str]:
    return [
        str(r.id),
        f"{r.company}/{r.vpc}",
        r.direction.value,
        r.protocol.value,
        _ports(r),
        r.cidr,
        r.description,
    ]


def _side(side: PeeringSide) -> str:
    return f"{side.company}/{side.vpc}\n{side.cidr}"


def _peering_row(p: Peering) -> list[str | Text]:
    state = Text(p.state.value, style=_STATE_STYLE[p.state])
    if p.banned_by is not None:
        state.append(f"\nbanned by {p.banned_by}", style="red")
    return [
        str(p.id),
        state,
        _side(p.requester),
        _side(p.accepter),
        p.requested_by,
        p.decided_by or "-",
    ]


def _ban_row(b: PeeringBan) -> list[str]:
    return [str(b.id), b.kind.value, f"{b.side_a} <-> {b.side_b}", b.created_by]


def _parse_ports(value: str | None) -> tuple[int | None, int | None]:
    """``443`` -> (443, 443); ``8000-8100`` -> (8000, 8100); none -> every port."""
    if value is None:
        return None, None
    first, sep, last = value.partition("-")
    if not first.strip().isdigit() or (sep and not last.strip().isdigit()):
        raise typer.BadParameter(f"{value!r}: expected PORT or FIRST-LAST, e.g. 443 or 8000-8100")
    return int(first), int(last) if sep else None


# --- rules -----------------------------------------------------------------------------


@rule_app.command("add")
def rule_add(
    ctx: typer.Context,
    company: str,
    vpc: str,
    direction: Annotated[Direction, typer.Argument(help="ingress (into the VPC) or egress.")],
    cidr: Annotated[str, typer.Argument(help="The other end, e.g. 10.2.0.0/16.")],
    protocol: Annotated[Protocol, typer.Option(help="tcp, udp, icmp or any.")],
    port: Annotated[
        str | None,
        typer.Option(help="Port or range (tcp, udp), e.g. 443 or 8000-8100; omitted: all."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the rule is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Allow traffic into or out of a VPC (company admins).

    Example: let card's payment VPC reach bank/core on HTTPS:

    groupcloud net rule add bank core ingress 10.2.0.0/16 --protocol tcp --port 443
    """
    first, last = _parse_ports(port)
    body = build(
        SecurityRuleCreate,
        direction=direction,
        protocol=protocol,
        cidr=cidr,
        port_from=first,
        port_to=last,
        description=description,
    )
    with client(ctx) as gc:
        render_one(gc.add_rule(company, vpc, body), as_json, RULE_COLUMNS, _rule_row)


@rule_app.command("list")
def rule_list(
    ctx: typer.Context,
    company: str,
    vpc: str,
    direction: Annotated[Direction | None, typer.Option(help="Only ingress or egress.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """A VPC's rules, oldest first, e.g. groupcloud net rule list bank core."""
    with client(ctx) as gc:
        page = gc.rules(company, vpc, direction=direction, cursor=cursor, limit=limit)
    render(page, as_json, RULE_COLUMNS, _rule_row)


@rule_app.command("delete")
def rule_delete(
    ctx: typer.Context,
    rule_id: Annotated[int, typer.Argument(help="The rule's id (see net rule list).")],
    as_json: JsonFlag = False,
) -> None:
    """Delete a rule: the traffic it allowed is denied from now on."""
    with client(ctx) as gc:
        render_one(gc.delete_rule(rule_id), as_json, RULE_COLUMNS, _rule_row)


# --- peerings --------------------------------------------------------------------------


@peering_app.command("request")
def peering_request(
    ctx: typer.Context,
    vpc: Annotated[str, typer.Argument(help="Your VPC: company/vpc, or vpc of your company.")],
    peer: Annotated[str, typer.Argument(help="The VPC to peer with: company/vpc.")],
    as_json: JsonFlag = False,
) -> None:
    """Ask to peer two VPCs (company admins of the first).

    The other company's admins accept it with net peering accept ID. Example:

    groupcloud net peering request core card/pay
    """
    with client(ctx) as gc:
        render_one(gc.request_peering(vpc, peer), as_json, PEERING_COLUMNS, _peering_row)


@peering_app.command("accept")
def peering_accept(ctx: typer.Context, peering_id: PeeringId, as_json: JsonFlag = False) -> None:
    """Accept a pending peering (company admins of the side that did not ask)."""
    with client(ctx) as gc:
        render_one(gc.accept_peering(peering_id), as_json, PEERING_COLUMNS, _peering_row)


@peering_app.command("reject")
def peering_reject(ctx: typer.Context, peering_id: PeeringId, as_json: JsonFlag = False) -> None:
    """Refuse a pending peering (company admins of the side that did not ask)."""
    with client(ctx) as gc:
        render_one(gc.reject_peering(peering_id), as_json, PEERING_COLUMNS, _peering_row)


@peering_app.command("delete")
def peering_delete(ctx: typer.Context, peering_id: PeeringId, as_json: JsonFlag = False) -> None:
    """End a peering, pending or active (either side): traffic between the VPCs stops."""
    with client(ctx) as gc:
        render_one(gc.delete_peering(peering_id), as_json, PEERING_COLUMNS, _peering_row)


@peering_app.command("list")
def peering_list(
    ctx: typer.Context,
    company: Annotated[
        str | None, typer.Option("--company", "-c", help="Group admins: one company's.")
    ] = None,
    state: Annotated[
        PeeringState | None, typer.Option(help="pending, active, rejected or deleted.")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """Peerings of your company's VPCs, e.g. groupcloud net peering list --state pending."""
    with client(ctx) as gc:
        page = gc.peerings(company=company, state=state, cursor=cursor, limit=limit)
    render(page, as_json, PEERING_COLUMNS, _peering_row)


# --- bans ------------------------------------------------------------------------------


@ban_app.command("add")
def ban_add(
    ctx: typer.Context,
    kind: Annotated[BanKind, typer.Argument(help="zone or data_class.")],
    side_a: Annotated[str, typer.Argument(help="A zone or a data class.")],
    side_b: Annotated[str, typer.Argument(help="The other (the same: keep them apart).")],
    as_json: JsonFlag = False,
) -> None:
    """Forbid new peerings between two zones or data classes (group admins).

    Live peerings it forbids are listed and stay until deleted. Example:

    groupcloud net ban add data_class restricted public
    """
    body = build(PeeringBanCreate, kind=kind, side_a=side_a, side_b=side_b)
    with client(ctx) as gc:
        made = gc.add_peering_ban(body)
    if as_json:
        print_json(made)
        return
    render_one(made, False, BAN_COLUMNS, _ban_row)
    if made.violating_peerings:
        ids = ", ".join(str(i) for i in made.violating_peerings)
        console.print(f"live peerings it forbids (they stay until deleted): {ids}", style="yellow")


@ban_app.command("list")
def ban_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The peering bans in force."""
    with client(ctx) as gc:
        render(gc.peering_bans(), as_json, BAN_COLUMNS, _ban_row)


@ban_app.command("delete")
def ban_delete(
    ctx: typer.Context,
    ban_id: Annotated[int, typer.Argument(help="The ban's id (see net ban list).")],
    as_json: JsonFlag = False,
) -> None:
    """Lift a ban (group admins)."""
    with client(ctx) as gc:
        render_one(gc.delete_peering_ban(ban_id), as_json, BAN_COLUMNS, _ban_row)


# --- check -----------------------------------------------------------------------------


def check(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Address the traffic comes from.")],
    destination: Annotated[str, typer.Argument(help="Address it goes to.")],
    protocol: Annotated[Protocol, typer.Option(help="tcp, udp or icmp.")] = Protocol.TCP,
    port: Annotated[int | None, typer.Option(help="Destination port (tcp, udp).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """May traffic go from SOURCE to DESTINATION? Allowed or denied, and why.

    Prints the reason (same_vpc, allowed_by_rules, not_in_any_vpc, no_peering,
    no_egress_rule, no_ingress_rule) and the rules that matched. Exit code 0 when allowed,
    1 when denied. Example:

    groupcloud net check 10.0.0.5 10.2.0.9 --protocol tcp --port 443
    """
    flow = build(FlowQuery, source=source, destination=destination, protocol=protocol, port=port)
    with client(ctx) as gc:
        verdict = gc.reachability(flow.source, flow.destination, flow.protocol, flow.port)
    if as_json:
        print_json(verdict)
    else:
        word = (
            Text("allowed", style="bold green")
            if verdict.allowed
            else Text("denied", style="bold red")
        )
        console.print(Text.assemble(word, f": {verdict.reason.value}: {verdict.detail}"))
        sides = (
            ("egress", verdict.egress_rule, verdict.source_vpc),
            ("ingress", verdict.ingress_rule, verdict.destination_vpc),
        )
        for label, rule, vpc in sides:
            if rule is not None:
                text = f"{rule.protocol.value} {_ports(rule)} {rule.cidr} {rule.description}"
                console.print(
                    f"  {label} rule {rule.id} of {vpc}: {text.rstrip()}", highlight=False
                )
            elif verdict.reason is Reason.ALLOWED_BY_RULES:
                console.print(f"  {label} rule of {vpc}: another company's (not shown)")
    if not verdict.allowed:
        raise typer.Exit(1)

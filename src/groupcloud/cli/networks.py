"""Client commands for networks: supernets, VPCs, subnets and IP addresses."""

from __future__ import annotations

from typing import Annotated

import typer

from groupcloud.cli import isolation
from groupcloud.cli.context import client
from groupcloud.cli.output import JsonFlag, render, render_one, stamp
from groupcloud.cli.parsing import build
from groupcloud.schemas import (
    IpAddress,
    IpCreate,
    NetworkPrefix,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)

__all__ = ["net_app"]

net_app = typer.Typer(
    help="Address space: supernets, VPCs, subnets and IP addresses; isolation: security rules, "
    "peerings, peering bans and reachability checks."
)
supernet_app = typer.Typer(help="The group's address blocks (group admins add them).")
vpc_app = typer.Typer(help="A company's VPCs, carved from a supernet.")
subnet_app = typer.Typer(help="Subnets, carved from a VPC.")
ip_app = typer.Typer(help="IP addresses handed out in a subnet.")
net_app.add_typer(supernet_app, name="supernet")
net_app.add_typer(vpc_app, name="vpc")
net_app.add_typer(subnet_app, name="subnet")
net_app.add_typer(ip_app, name="ip")
net_app.add_typer(isolation.rule_app, name="rule")
net_app.add_typer(isolation.peering_app, name="peering")
net_app.add_typer(isolation.ban_app, name="ban")
net_app.command("check")(isolation.check)

PREFIX_COLUMNS = ["NAME", "CIDR", "OWNER", "PARENT", "USED", "FREE", "LARGEST FREE"]
IP_COLUMNS = ["ID", "ADDRESS", "SUBNET", "COMPANY", "DESCRIPTION", "CREATED"]
Prefixlen = Annotated[
    int | None, typer.Option("--size", help="Prefix length to carve, e.g. 20 for a /20.")
]
Cidr = Annotated[str | None, typer.Option("--cidr", help="A specific prefix instead.")]


def _prefix_row(p: NetworkPrefix) -> list[str]:
    owner = p.company or (f"zone {p.zone}" if p.zone else "-")
    return [p.name, p.cidr, owner, p.parent or "-", str(p.used), str(p.free), p.largest_free or "-"]


def _ip_row(i: IpAddress) -> list[str]:
    return [str(i.id), i.address, i.subnet, i.company, i.description, stamp(i.created_at)]


@supernet_app.command("list")
def supernet_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List supernets with their utilisation."""
    with client(ctx) as gc:
        render(gc.supernets(), as_json, PREFIX_COLUMNS, _prefix_row)


@supernet_app.command("add")
def supernet_add(
    ctx: typer.Context,
    name: str,
    cidr: str,
    zone: Annotated[str, typer.Option(help="Zone the block serves.")] = "shared",
    as_json: JsonFlag = False,
) -> None:
    """Register a supernet, e.g. net supernet add corp 10.0.0.0/8."""
    body = build(SupernetCreate, name=name, cidr=cidr, zone=zone)
    with client(ctx) as gc:
        render_one(gc.create_supernet(body), as_json, PREFIX_COLUMNS, _prefix_row)


@vpc_app.command("list")
def vpc_list(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List VPCs with their utilisation."""
    with client(ctx) as gc:
        render(gc.vpcs(company), as_json, PREFIX_COLUMNS, _prefix_row)


@vpc_app.command("create")
def vpc_create(
    ctx: typer.Context,
    name: str,
    supernet: Annotated[str, typer.Option(help="Supernet to carve from.")],
    size: Prefixlen = None,
    cidr: Cidr = None,
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    data_class: Annotated[
        str,
        typer.Option(help="Data classification: public, internal, confidential or restricted."),
    ] = "internal",
    as_json: JsonFlag = False,
) -> None:
    """Carve a VPC, e.g. net vpc create core --supernet corp --size 16."""
    body = build(
        VpcCreate,
        name=name,
        supernet=supernet,
        prefixlen=size,
        cidr=cidr,
        company=company,
        data_class=data_class,
    )
    with client(ctx) as gc:
        render_one(gc.create_vpc(body), as_json, PREFIX_COLUMNS, _prefix_row)


@subnet_app.command("list")
def subnet_list(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List subnets with their utilisation."""
    with client(ctx) as gc:
        render(gc.subnets(company), as_json, PREFIX_COLUMNS, _prefix_row)


@subnet_app.command("create")
def subnet_create(
    ctx: typer.Context,
    company: str,
    vpc: str,
    name: str,
    size: Prefixlen = None,
    cidr: Cidr = None,
    as_json: JsonFlag = False,
) -> None:
    """Carve a subnet from a VPC, e.g. net subnet create bank core web --size 24."""
    body = build(SubnetCreate, name=name, prefixlen=size, cidr=cidr)
    with client(ctx) as gc:
        render_one(gc.create_subnet(company, vpc, body), as_json, PREFIX_COLUMNS, _prefix_row)


@ip_app.command("list")
def ip_list(ctx: typer.Context, company: str, subnet: str, as_json: JsonFlag = False) -> None:
    """Addresses handed out in a subnet."""
    with client(ctx) as gc:
        render(gc.ips(company, subnet), as_json, IP_COLUMNS, _ip_row)


@ip_app.command("allocate")
def ip_allocate(
    ctx: typer.Context,
    company: str,
    subnet: str,
    address: Annotated[str | None, typer.Option(help="A given address.")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Hand out the next free address of a subnet (or --address)."""
    body = build(IpCreate, address=address, description=description)
    with client(ctx) as gc:
        render_one(gc.allocate_ip(company, subnet, body), as_json, IP_COLUMNS, _ip_row)


@ip_app.command("release")
def ip_release(ctx: typer.Context, ip_id: int, as_json: JsonFlag = False) -> None:
    """Give an address back (repeating it is harmless)."""
    with client(ctx) as gc:
        render_one(gc.release_ip(ip_id), as_json, IP_COLUMNS, _ip_row)

"""Client commands for networks: supernets, VPCs, subnets, IP and floating addresses,
segment pools, network quotas and the addressing plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from groupcloud.cli import isolation
from groupcloud.cli.context import client
from groupcloud.cli.output import Cursor, JsonFlag, Limit, console, render, render_one, stamp
from groupcloud.cli.parsing import build
from groupcloud.schemas.network import (
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

__all__ = ["net_app"]

net_app = typer.Typer(
    help="Address space: supernets, VPCs, subnets, IP and floating addresses, VLAN/VXLAN "
    "pools, network quotas and the addressing plan; isolation: security rules, peerings, "
    "peering bans and reachability checks."
)
supernet_app = typer.Typer(help="The group's address blocks (group admins add them).")
vpc_app = typer.Typer(help="A company's VPCs, carved from a private supernet.")
subnet_app = typer.Typer(help="Subnets, carved from a VPC.")
ip_app = typer.Typer(help="IP addresses handed out in a subnet.")
fip_app = typer.Typer(help="Floating (public) addresses from a public supernet.")
pool_app = typer.Typer(help="VLAN ids (for subnets) and VXLAN VNIs (for VPCs) per zone.")
quota_app = typer.Typer(help="Network quotas: vpcs, floating_ips, ipv4_addresses.")
net_app.add_typer(supernet_app, name="supernet")
net_app.add_typer(vpc_app, name="vpc")
net_app.add_typer(subnet_app, name="subnet")
net_app.add_typer(ip_app, name="ip")
net_app.add_typer(fip_app, name="fip")
net_app.add_typer(pool_app, name="segment-pool")
net_app.add_typer(quota_app, name="quota")
net_app.add_typer(isolation.rule_app, name="rule")
net_app.add_typer(isolation.peering_app, name="peering")
net_app.add_typer(isolation.ban_app, name="ban")
net_app.command("check")(isolation.check)

PREFIX_COLUMNS = ["NAME", "CIDR", "OWNER", "PARENT", "SEGMENT", "USED", "FREE", "LARGEST FREE"]
IP_COLUMNS = ["ID", "ADDRESS", "SUBNET", "COMPANY", "USED BY", "CREATED", "RELEASED"]
POOL_COLUMNS = ["NAME", "ZONE", "KIND", "RANGE", "USED", "FREE"]
QUOTA_COLUMNS = ["COMPANY", "KIND", "LIMIT", "USED", "FREE"]
Prefixlen = Annotated[
    int | None, typer.Option("--size", help="Prefix length to carve, e.g. 20 for a /20.")
]
Cidr = Annotated[str | None, typer.Option("--cidr", help="A specific prefix instead.")]
CompanyOpt = Annotated[str | None, typer.Option("--company", "-c", help="Only this company's.")]
ZoneOpt = Annotated[str | None, typer.Option("--zone", help="Only this zone's.")]
IdempotencyKeyOpt = Annotated[
    str | None, typer.Option(help="Retry-safe key: repeating the command hands out one address.")
]


def _prefix_row(p: NetworkPrefix) -> list[str]:
    owner = p.company or (f"zone {p.zone}" if p.zone else "-")
    if p.purpose is not None and p.purpose.value == "public":
        owner += " (public)"
    used = str(p.used) + (f" ({p.quarantined} quarantined)" if p.quarantined else "")
    segment = "-" if p.segment is None else str(p.segment)
    return [
        p.name,
        p.cidr,
        owner,
        p.parent or "-",
        segment,
        used,
        str(p.free),
        p.largest_free or "-",
    ]


def _ip_row(i: IpAddress) -> list[str]:
    if i.allocation:
        used_by = f"{i.allocation} unit {i.unit}"
    elif i.attached_to:
        used_by = f"-> ip {i.attached_to}"
    else:
        used_by = i.description or "-"
    released = "-"
    if i.released_at:
        released = f"{stamp(i.released_at)} (reusable {stamp(i.reusable_at)})"
    return [str(i.id), i.address, i.subnet, i.company, used_by, stamp(i.created_at), released]


def _pool_row(p: SegmentPool) -> list[str]:
    return [p.name, p.zone, p.kind.value, f"{p.first}-{p.last}", str(p.used), str(p.free)]


def _quota_row(q: NetQuota) -> list[str]:
    limit = "no limit" if q.limit is None else str(q.limit)
    return [q.company, q.kind.value, limit, str(q.used), "-" if q.free is None else str(q.free)]


# --- supernets ---------------------------------------------------------------------------


@supernet_app.command("list")
def supernet_list(
    ctx: typer.Context,
    zone: ZoneOpt = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List supernets with their utilisation."""
    with client(ctx) as gc:
        render(
            gc.supernets(zone=zone, cursor=cursor, limit=limit),
            as_json,
            PREFIX_COLUMNS,
            _prefix_row,
        )


@supernet_app.command("add")
def supernet_add(
    ctx: typer.Context,
    name: str,
    cidr: str,
    zone: Annotated[str, typer.Option(help="Zone the block serves.")] = "shared",
    purpose: Annotated[
        str, typer.Option(help="private (VPCs are carved from it) or public (floating addresses).")
    ] = "private",
    as_json: JsonFlag = False,
) -> None:
    """Register a supernet, e.g. net supernet add corp 10.0.0.0/8, or a pool of public
    addresses: net supernet add internet 203.0.113.0/24 --purpose public."""
    body = build(SupernetCreate, name=name, cidr=cidr, zone=zone, purpose=purpose)
    with client(ctx) as gc:
        render_one(gc.create_supernet(body), as_json, PREFIX_COLUMNS, _prefix_row)


@supernet_app.command("show")
def supernet_show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """One supernet with its utilisation."""
    with client(ctx) as gc:
        render_one(gc.prefix("supernet", name), as_json, PREFIX_COLUMNS, _prefix_row)


@supernet_app.command("delete")
def supernet_delete(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Remove a supernet that holds no VPCs or addresses."""
    with client(ctx) as gc:
        render_one(gc.delete_prefix("supernet", name), as_json, PREFIX_COLUMNS, _prefix_row)


# --- VPCs --------------------------------------------------------------------------------


@vpc_app.command("list")
def vpc_list(
    ctx: typer.Context,
    company: CompanyOpt = None,
    zone: ZoneOpt = None,
    supernet: Annotated[str | None, typer.Option(help="Only this supernet's.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List VPCs with their utilisation."""
    with client(ctx) as gc:
        page = gc.vpcs(company, zone=zone, supernet=supernet, cursor=cursor, limit=limit)
        render(page, as_json, PREFIX_COLUMNS, _prefix_row)


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
    """Carve a VPC, e.g. net vpc create core --supernet corp --size 16. It takes a VXLAN
    VNI when its zone has a pool, and counts against the vpcs and ipv4_addresses quotas."""
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


@vpc_app.command("show")
def vpc_show(ctx: typer.Context, company: str, vpc: str, as_json: JsonFlag = False) -> None:
    """One VPC with its utilisation."""
    with client(ctx) as gc:
        render_one(gc.prefix("vpc", vpc, company), as_json, PREFIX_COLUMNS, _prefix_row)


@vpc_app.command("delete")
def vpc_delete(ctx: typer.Context, company: str, vpc: str, as_json: JsonFlag = False) -> None:
    """Give a VPC without subnets back to its supernet (its VNI and quota too)."""
    with client(ctx) as gc:
        render_one(gc.delete_prefix("vpc", vpc, company), as_json, PREFIX_COLUMNS, _prefix_row)


# --- subnets -----------------------------------------------------------------------------


@subnet_app.command("list")
def subnet_list(
    ctx: typer.Context,
    company: CompanyOpt = None,
    zone: ZoneOpt = None,
    vpc: Annotated[str | None, typer.Option(help="Only this VPC's.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List subnets with their utilisation."""
    with client(ctx) as gc:
        page = gc.subnets(company, zone=zone, vpc=vpc, cursor=cursor, limit=limit)
        render(page, as_json, PREFIX_COLUMNS, _prefix_row)


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
    """Carve a subnet from a VPC, e.g. net subnet create bank core web --size 24. It takes
    a VLAN id when its zone has a pool."""
    body = build(SubnetCreate, name=name, prefixlen=size, cidr=cidr)
    with client(ctx) as gc:
        render_one(gc.create_subnet(company, vpc, body), as_json, PREFIX_COLUMNS, _prefix_row)


@subnet_app.command("show")
def subnet_show(ctx: typer.Context, company: str, subnet: str, as_json: JsonFlag = False) -> None:
    """One subnet with its utilisation."""
    with client(ctx) as gc:
        render_one(gc.prefix("subnet", subnet, company), as_json, PREFIX_COLUMNS, _prefix_row)


@subnet_app.command("delete")
def subnet_delete(ctx: typer.Context, company: str, subnet: str, as_json: JsonFlag = False) -> None:
    """Give a subnet back to its VPC (refused while it holds addresses, quarantined ones
    included)."""
    with client(ctx) as gc:
        out = gc.delete_prefix("subnet", subnet, company)
        render_one(out, as_json, PREFIX_COLUMNS, _prefix_row)


# --- addresses ---------------------------------------------------------------------------


@ip_app.command("list")
def ip_list(
    ctx: typer.Context,
    company: str,
    subnet: str,
    released: Annotated[
        bool, typer.Option("--released", help="Include addresses still in quarantine.")
    ] = False,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """Addresses handed out in a subnet."""
    with client(ctx) as gc:
        page = gc.ips(company, subnet, released=released, cursor=cursor, limit=limit)
        render(page, as_json, IP_COLUMNS, _ip_row)


@ip_app.command("allocate")
def ip_allocate(
    ctx: typer.Context,
    company: str,
    subnet: str,
    address: Annotated[str | None, typer.Option(help="A given address.")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    idempotency_key: IdempotencyKeyOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Hand out the next free address of a subnet (or --address)."""
    body = build(IpCreate, address=address, description=description)
    with client(ctx) as gc:
        out = gc.allocate_ip(company, subnet, body, idempotency_key)
        render_one(out, as_json, IP_COLUMNS, _ip_row)


@ip_app.command("show")
def ip_show(ctx: typer.Context, ip_id: int, as_json: JsonFlag = False) -> None:
    """One address (fixed or floating)."""
    with client(ctx) as gc:
        render_one(gc.ip(ip_id), as_json, IP_COLUMNS, _ip_row)


@ip_app.command("release")
def ip_release(ctx: typer.Context, ip_id: int, as_json: JsonFlag = False) -> None:
    """Give an address back (repeating it is harmless). It stays in quarantine for
    GROUPCLOUD_IP_QUARANTINE_S before anyone gets it again."""
    with client(ctx) as gc:
        render_one(gc.release_ip(ip_id), as_json, IP_COLUMNS, _ip_row)


@fip_app.command("list")
def fip_list(
    ctx: typer.Context,
    company: CompanyOpt = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """Floating addresses held."""
    with client(ctx) as gc:
        render(gc.floating_ips(company, cursor=cursor, limit=limit), as_json, IP_COLUMNS, _ip_row)


@fip_app.command("allocate")
def fip_allocate(
    ctx: typer.Context,
    pool: Annotated[str, typer.Argument(help="Public supernet to take it from.")],
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    attach_to: Annotated[
        int | None, typer.Option(help="Id of a fixed address of the company.")
    ] = None,
    address: Annotated[str | None, typer.Option(help="A given address.")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    idempotency_key: IdempotencyKeyOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Take a floating address (counts against the floating_ips quota), e.g. net fip
    allocate internet --attach-to 42."""
    body = build(
        FloatingIpCreate,
        pool=pool,
        company=company,
        attach_to=attach_to,
        address=address,
        description=description,
    )
    with client(ctx) as gc:
        render_one(gc.allocate_floating_ip(body, idempotency_key), as_json, IP_COLUMNS, _ip_row)


@fip_app.command("attach")
def fip_attach(ctx: typer.Context, ip_id: int, fixed_id: int, as_json: JsonFlag = False) -> None:
    """Attach floating address IP_ID to fixed address FIXED_ID."""
    with client(ctx) as gc:
        out = gc.update_floating_ip(ip_id, FloatingIpUpdate(attach_to=fixed_id))
        render_one(out, as_json, IP_COLUMNS, _ip_row)


@fip_app.command("detach")
def fip_detach(ctx: typer.Context, ip_id: int, as_json: JsonFlag = False) -> None:
    """Detach a floating address (it stays held; release it with net ip release)."""
    with client(ctx) as gc:
        out = gc.update_floating_ip(ip_id, FloatingIpUpdate(attach_to=None))
        render_one(out, as_json, IP_COLUMNS, _ip_row)


# --- segment pools, quotas, plan ---------------------------------------------------------


@pool_app.command("list")
def pool_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """VLAN and VXLAN pools with their use."""
    with client(ctx) as gc:
        render(gc.segment_pools(), as_json, POOL_COLUMNS, _pool_row)


@pool_app.command("add")
def pool_add(
    ctx: typer.Context,
    name: str,
    kind: Annotated[str, typer.Argument(help="vlan or vxlan.")],
    id_range: Annotated[str, typer.Argument(metavar="FIRST-LAST", help="e.g. 100-999.")],
    zone: Annotated[str, typer.Option(help="Zone the ids serve.")] = "shared",
    as_json: JsonFlag = False,
) -> None:
    """Give a zone segment ids, e.g. net segment-pool add shared-vni vxlan 10000-19999."""
    first, sep, last = id_range.partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise typer.BadParameter(f"{id_range!r}: expected FIRST-LAST, e.g. 100-999")
    body = build(
        SegmentPoolCreate, name=name, kind=kind, first=int(first), last=int(last), zone=zone
    )
    with client(ctx) as gc:
        render_one(gc.create_segment_pool(body), as_json, POOL_COLUMNS, _pool_row)


@pool_app.command("delete")
def pool_delete(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Remove a pool none of whose ids is held."""
    with client(ctx) as gc:
        render_one(gc.delete_segment_pool(name), as_json, POOL_COLUMNS, _pool_row)


@quota_app.command("list")
def quota_list(ctx: typer.Context, company: CompanyOpt = None, as_json: JsonFlag = False) -> None:
    """Network quotas with their use."""
    with client(ctx) as gc:
        render(gc.net_quotas(company), as_json, QUOTA_COLUMNS, _quota_row)


@quota_app.command("set")
def quota_set(
    ctx: typer.Context,
    company: str,
    kind: Annotated[str, typer.Argument(help="vpcs, floating_ips or ipv4_addresses.")],
    limit: Annotated[str, typer.Argument(help="A number, or 'none' for no limit.")],
    as_json: JsonFlag = False,
) -> None:
    """Set a network quota, e.g. net quota set bank ipv4_addresses 65536."""
    if limit.lower() == "none":
        value: int | None = None
    elif limit.isdigit():
        value = int(limit)
    else:
        raise typer.BadParameter(f"{limit!r}: expected a number or 'none'")
    body = build(NetQuotaSet, limit=value)
    with client(ctx) as gc:
        render_one(gc.set_net_quota(company, kind, body), as_json, QUOTA_COLUMNS, _quota_row)


@net_app.command("plan")
def plan(
    ctx: typer.Context,
    company: str,
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead.")
    ] = None,
) -> None:
    """Export a company's addressing plan (VPCs, subnets, segment ids, held addresses)."""
    if fmt not in ("json", "csv"):
        raise typer.BadParameter(f"{fmt!r}: expected json or csv")
    with client(ctx) as gc:
        if fmt == "csv":
            text = gc.address_plan_csv(company)
        else:
            text = gc.address_plan(company).model_dump_json(indent=2) + "\n"
    if output is None:
        console.file.write(text)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")

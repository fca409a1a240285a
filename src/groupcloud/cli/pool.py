"""Client commands for the pool: hosts, quotas and usage."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from groupcloud.cli.context import client
from groupcloud.cli.output import (
    Cursor,
    JsonFlag,
    Limit,
    bar,
    console,
    print_json,
    render,
    render_one,
)
from groupcloud.cli.parsing import parse_inventories
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import STANDARD_CLASSES
from groupcloud.schemas.compute import Host, HostCreate, Quota, UsageLine
from groupcloud.services.compute.usage import UsageScope

__all__ = ["host_app", "quota_app", "usage"]

host_app = typer.Typer(help="Hosts of the pool and their inventories (group admins change them).")
quota_app = typer.Typer(help="What each company may use, per resource class.")

Inventory = Annotated[
    list[str],
    typer.Option(
        "--resource",
        "-r",
        help="CLASS=TOTAL[,reserved=N][,ratio=F], repeatable, e.g. -r VCPU=64,ratio=4",
    ),
]


def _capacity(host: Host, rc: str) -> str:
    inv = host.inventories.get(rc)
    return f"{inv.used}/{inv.capacity}" if inv else "-"


def _host_row(host: Host) -> list[str | Text]:
    state = Text(
        host.state.value, style={"active": "green", "draining": "yellow"}.get(host.state, "dim")
    )
    custom = sorted(set(host.inventories) - set(STANDARD_CLASSES))
    extra = ", ".join(f"{rc} {_capacity(host, rc)}" for rc in custom)
    return [
        host.name,
        host.zone,
        state,
        *(_capacity(host, rc) for rc in STANDARD_CLASSES),
        ", ".join(host.traits) + (f"; {extra}" if extra else ""),
    ]


HOST_COLUMNS = ["NAME", "ZONE", "STATE", *STANDARD_CLASSES, "TRAITS"]


@host_app.command("list")
def host_list(
    ctx: typer.Context,
    zone: Annotated[str | None, typer.Option(help="Only this zone.")] = None,
    state: Annotated[HostState | None, typer.Option(help="Only hosts in this state.")] = None,
    trait: Annotated[str | None, typer.Option(help="Only hosts with this trait.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List hosts with used/capacity per resource class."""
    with client(ctx) as gc:
        page = gc.hosts(zone=zone, state=state, trait=trait, cursor=cursor, limit=limit)
    render(page, as_json, HOST_COLUMNS, _host_row, title="hosts (used/capacity per class)")


@host_app.command("show")
def host_show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one host with its inventories."""
    with client(ctx) as gc:
        host = gc.host(name)
    if as_json:
        print_json(host)
        return
    traits = " ".join(host.traits) or "-"
    console.print(
        f"[bold]{host.name}[/] zone {host.zone}, {host.state.value}, traits: {traits}",
        highlight=False,
    )
    table = Table("CLASS", "TOTAL", "RESERVED", "RATIO", "CAPACITY", "USED", "FREE", "% USED")
    for rc, inv in sorted(host.inventories.items()):
        table.add_row(
            rc, str(inv.total), str(inv.reserved), f"{inv.allocation_ratio:g}",
            str(inv.capacity), str(inv.used), str(inv.free), bar(inv.used, inv.capacity),
        )  # fmt: skip
    console.print(table)


@host_app.command("add")
def host_add(
    ctx: typer.Context,
    name: str,
    resources: Inventory,
    zone: Annotated[str, typer.Option(help="Zone of the host.")] = "shared",
    trait: Annotated[
        list[str] | None, typer.Option("--trait", "-t", help="Trait or label, repeatable.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a host, e.g. host add cpu-041 -r VCPU=64,ratio=4 -r MEMORY_MB=262144 -t ssd."""
    body = HostCreate(
        name=name, zone=zone, inventories=parse_inventories(resources), traits=trait or []
    )
    with client(ctx) as gc:
        render_one(gc.add_host(body), as_json, HOST_COLUMNS, _host_row)


@host_app.command("drain")
def host_drain(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Stop new placements on a host (its allocations stay)."""
    with client(ctx) as gc:
        render_one(gc.drain_host(name), as_json, HOST_COLUMNS, _host_row)


@host_app.command("resume")
def host_resume(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Let a drained host take new placements again."""
    with client(ctx) as gc:
        render_one(gc.resume_host(name), as_json, HOST_COLUMNS, _host_row)


@host_app.command("remove")
def host_remove(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Take an empty host out of the pool (refused while it holds allocations)."""
    with client(ctx) as gc:
        render_one(gc.remove_host(name), as_json, HOST_COLUMNS, _host_row)


@host_app.command("set-inventory")
def host_set_inventory(
    ctx: typer.Context, name: str, resources: Inventory, as_json: JsonFlag = False
) -> None:
    """Replace a host's whole inventory (classes left out are removed)."""
    with client(ctx) as gc:
        render_one(
            gc.set_inventories(name, parse_inventories(resources)), as_json, HOST_COLUMNS, _host_row
        )


QUOTA_COLUMNS = [
    "COMPANY", "CLASS", "NOMINAL", "BORROW LIMIT", "LEND LIMIT", "USED", "BORROWED", "LENT",
    "FREE", "% USED",
]  # fmt: skip


def _limit(value: int | None, unlimited: str) -> str:
    return unlimited if value is None else str(value)


def _quota_row(q: Quota) -> list[str | Text]:
    return [
        q.company,
        q.resource_class,
        str(q.nominal),
        _limit(q.borrowing_limit, "unlimited"),
        _limit(q.lending_limit, "all"),
        str(q.used),
        str(q.borrowed),
        str(q.lent),
        str(q.free),
        f"{q.used_pct:.1f}",
    ]


def _parse_limit(value: str | None, option: str) -> int | None:
    if value is None or value.lower() in ("none", "unlimited", "-"):
        return None
    try:
        number = int(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a number or 'none'", param_hint=option
        ) from None
    if number < 0:
        raise typer.BadParameter("must be >= 0 (or 'none')", param_hint=option)
    return number


@quota_app.command("show")
def quota_show(
    ctx: typer.Context,
    company: Annotated[
        str | None, typer.Argument(help="Company (default: every visible one).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Quotas and current usage."""
    with client(ctx) as gc:
        quotas = gc.quotas(company)
    render(quotas, as_json, QUOTA_COLUMNS, _quota_row)


@quota_app.command("set")
def quota_set(
    ctx: typer.Context,
    company: str,
    resource_class: Annotated[str, typer.Argument(help="e.g. VCPU, MEMORY_MB, GPU, CUSTOM_X")],
    nominal: Annotated[int, typer.Argument(help="Guaranteed amount.", min=0)],
    borrowing_limit: Annotated[
        str | None,
        typer.Option(
            help="How far above nominal it may borrow; 'none' = no limit. "
            "Left out: unchanged (0 for a new quota)."
        ),
    ] = None,
    lending_limit: Annotated[
        str | None,
        typer.Option(
            help="How much idle nominal others may borrow; 'none' = all of it. "
            "Left out: unchanged (all for a new quota)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a company's quota for a resource class (refused below what it uses and lends),
    e.g. quota set bank GPU 16 --borrowing-limit 8 --lending-limit none."""
    limits: dict[str, int | None] = {}
    if borrowing_limit is not None:
        limits["borrowing_limit"] = _parse_limit(borrowing_limit, "--borrowing-limit")
    if lending_limit is not None:
        limits["lending_limit"] = _parse_limit(lending_limit, "--lending-limit")
    with client(ctx) as gc:
        quota = gc.set_quota(company, resource_class, nominal, **limits)
    render_one(quota, as_json, QUOTA_COLUMNS, _quota_row)


def usage(
    ctx: typer.Context,
    by: Annotated[UsageScope, typer.Option(help="Group by pool, zone, host or company.")] = (
        UsageScope.POOL
    ),
    zone: Annotated[str | None, typer.Option(help="Only this zone.")] = None,
    company: Annotated[str | None, typer.Option(help="Only this company (by=company).")] = None,
    resource_class: Annotated[str | None, typer.Option("--class", help="Only this class.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """Capacity, used, free and % used per pool, zone, host or company (quota)."""
    with client(ctx) as gc:
        page = gc.usage(
            by.value, zone=zone, company=company, resource_class=resource_class,
            cursor=cursor, limit=limit,
        )  # fmt: skip

    def row(u: UsageLine) -> list[str | ProgressBar]:
        return [u.name, u.resource_class, str(u.capacity), str(u.used), str(u.free),
                f"{u.used_pct:5.1f}", bar(u.used, u.capacity)]  # fmt: skip

    columns = [by.value.upper(), "CLASS", "CAPACITY", "USED", "FREE", "% USED", ""]
    render(page, as_json, columns, row)

"""Client commands for allocations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from groupcloud.cli.context import client
from groupcloud.cli.output import (
    Cursor,
    JsonFlag,
    Limit,
    console,
    print_json,
    render,
    render_one,
    stamp,
)
from groupcloud.cli.parsing import parse_amounts
from groupcloud.domain.allocation import AllocationState, Strategy
from groupcloud.schemas import Allocation, AllocationCreate

__all__ = ["alloc_app"]

alloc_app = typer.Typer(help="Claim capacity from the pool and give it back.")

COLUMNS = ["ID", "OWNER", "STATE", "UNITS", "PER UNIT", "HOSTS"]


def _row(a: Allocation) -> list[str | Text]:
    hosts = sorted({u.host for u in a.units})
    shown = "\n".join(hosts[:3]) + (f"\n+{len(hosts) - 3} more" if len(hosts) > 3 else "")
    return [
        a.id,
        f"{a.company}/{a.project}",
        Text(a.state.value, style="green" if a.state is AllocationState.ACTIVE else "dim"),
        str(a.count),
        "\n".join(f"{rc}={n}" for rc, n in a.resources.items()),
        shown,
    ]


@alloc_app.command("create")
def create(
    ctx: typer.Context,
    project: Annotated[str, typer.Option("--project", "-p", help="Project that owns it.")],
    resources: Annotated[
        list[str],
        typer.Option("--resource", "-r", help="CLASS=AMOUNT per unit, repeatable: -r VCPU=2"),
    ],
    count: Annotated[int, typer.Option("--count", "-n", help="Units (all or none).", min=1)] = 1,
    company: Annotated[
        str | None, typer.Option("--company", "-c", help="Company (group-admin tokens only).")
    ] = None,
    zone: Annotated[str | None, typer.Option(help="Only place in this zone.")] = None,
    trait: Annotated[
        list[str] | None, typer.Option("--trait", "-t", help="Required host trait, repeatable.")
    ] = None,
    anti_affinity_group: Annotated[
        str | None, typer.Option(help="Units of this group go to different hosts.")
    ] = None,
    strategy: Annotated[
        Strategy, typer.Option(help="pack (fill hosts) or spread.")
    ] = Strategy.PACK,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retry-safe key: repeating the command claims once.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Request capacity, e.g. alloc create -p web -r VCPU=2 -r MEMORY_MB=4096 -n 3."""
    body = AllocationCreate(
        company=company,
        project=project,
        resources=parse_amounts(resources),
        count=count,
        zone=zone,
        required_traits=trait or [],
        anti_affinity_group=anti_affinity_group,
        strategy=strategy,
    )
    with client(ctx) as gc:
        render_one(gc.allocate(body, idempotency_key), as_json, COLUMNS, _row)


@alloc_app.command("list")
def list_(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    state: Annotated[AllocationState | None, typer.Option(help="active or released")] = None,
    host: Annotated[str | None, typer.Option(help="Only allocations on this host.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List allocations (a company token sees only its own company's)."""
    with client(ctx) as gc:
        page = gc.allocations(
            company=company, project=project, state=state, host=host, cursor=cursor, limit=limit
        )
    render(page, as_json, COLUMNS, _row)


@alloc_app.command("show")
def show(ctx: typer.Context, allocation_id: str, as_json: JsonFlag = False) -> None:
    """Show an allocation and where each unit is."""
    with client(ctx) as gc:
        a = gc.allocation(allocation_id)
    if as_json:
        print_json(a)
        return
    render_one(a, False, COLUMNS, _row)
    console.print(f"created {stamp(a.created_at)} by {a.created_by}", highlight=False)
    if a.released_at:
        console.print(f"released {stamp(a.released_at)} by {a.released_by}", highlight=False)
    for unit in a.units:
        console.print(f"  unit {unit.unit}: {unit.host}", highlight=False)


@alloc_app.command("release")
def release(ctx: typer.Context, allocation_id: str, as_json: JsonFlag = False) -> None:
    """Give an allocation's capacity back to the pool (repeating it is harmless)."""
    with client(ctx) as gc:
        render_one(gc.release(allocation_id), as_json, COLUMNS, _row)

"""Client commands for allocations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from groupcloud.cli.parsing import build, parse_amounts, parse_duration, parse_gpu_share
from groupcloud.domain.allocation import GPU_MILLI, AllocationState, OnExpiry, OnReclaim, Strategy
from groupcloud.domain.inventory import ZoneChoice
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.schemas.compute import (
    Allocation,
    AllocationCreate,
    AllocationUpdate,
    UtilisationReport,
)

__all__ = ["alloc_app"]

alloc_app = typer.Typer(help="Claim capacity from the pool and give it back.")

COLUMNS = ["ID", "OWNER", "STATE", "PRIO", "UNITS", "PER UNIT", "HOSTS / WHY PENDING"]
_STATE_STYLE = {
    AllocationState.ACTIVE: "green",
    AllocationState.PENDING: "yellow",
    AllocationState.RECLAIMING: "magenta",
    AllocationState.RELEASED: "dim",
    AllocationState.PROVISIONING: "cyan",
    AllocationState.RELEASING: "cyan",
    AllocationState.FAILED: "red",
}


def _row(a: Allocation) -> list[str | Text]:
    hosts = sorted({u.host for u in a.units})
    shown = "\n".join(hosts[:3]) + (f"\n+{len(hosts) - 3} more" if len(hosts) > 3 else "")
    addresses = [f"{x.address} ({x.subnet})" for u in a.units for x in u.addresses]
    if addresses:
        shown += "\n" + "\n".join(addresses[:4])
        shown += f"\n+{len(addresses) - 4} addresses" if len(addresses) > 4 else ""
    if a.state is AllocationState.PENDING:
        shown = a.pending_reason.value if a.pending_reason else "pending"
    state = a.state.value + (" (borrowed)" if a.borrowed and a.state.holds_capacity else "")
    return [
        a.id,
        f"{a.company}/{a.project}",
        Text(state, style=_STATE_STYLE[a.state]),
        str(a.priority),
        str(a.count),
        "\n".join(
            [f"{rc}={n}" for rc, n in a.resources.items()]
            + ([f"GPU share={a.gpu_share / GPU_MILLI:g}"] if a.gpu_share else [])
        ),
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
    zone_kind: Annotated[
        ZoneChoice | None,
        typer.Option(help="Only zones of this kind: shared, local, external or private."),
    ] = None,
    burst: Annotated[
        bool,
        typer.Option(
            help="Private first, then burst: when no private zone has room now, take the "
            "cheapest external zone the rules allow (see groupcloud offers)."
        ),
    ] = False,
    repatriate: Annotated[
        bool, typer.Option(help="External: flag it when a private zone could take it back.")
    ] = False,
    data_class: Annotated[
        Sensitivity | None,
        typer.Option(
            help="D1 non-important, D2 important, D3 personal credit data (default: the "
            "project's, D3 unless set: the safest; private zones take every class)."
        ),
    ] = None,
    system_type: Annotated[
        SystemType | None,
        typer.Option(
            help="internal_business systems run only on internet-separated zones (default: "
            "the project's)."
        ),
    ] = None,
    trait: Annotated[
        list[str] | None, typer.Option("--trait", "-t", help="Required host trait, repeatable.")
    ] = None,
    anti_affinity_group: Annotated[
        str | None, typer.Option(help="Units of this group go to different hosts.")
    ] = None,
    strategy: Annotated[
        Strategy, typer.Option(help="pack (fill hosts) or spread.")
    ] = Strategy.PACK,
    priority: Annotated[
        int | None,
        typer.Option(
            help="Queue priority 0-1000, higher first (default: the project's).", min=0, max=1000
        ),
    ] = None,
    queue: Annotated[
        bool,
        typer.Option(
            help="Wait in the queue when quota or capacity is short now (--no-queue: fail at once)."
        ),
    ] = True,
    lease: Annotated[
        str | None, typer.Option(help="Lease length, e.g. 90m, 8h, 2d (default: no lease).")
    ] = None,
    on_expiry: Annotated[OnExpiry, typer.Option(help="At the lease's end.")] = OnExpiry.RELEASE,
    minimum_runtime: Annotated[
        str | None, typer.Option(help="Not reclaimed before it ran this long, e.g. 30m.")
    ] = None,
    on_reclaim: Annotated[
        OnReclaim, typer.Option(help="When borrowed capacity is reclaimed.")
    ] = OnReclaim.REQUEUE,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retry-safe key: repeating the command claims once.")
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            "-i",
            help="SUBNET[:N]: N addresses (default 1) per unit on one of the company's "
            "subnets, claimed with the capacity; repeatable.",
        ),
    ] = None,
    gpu_share: Annotated[
        str | None,
        typer.Option(
            help="GPU sharing: a part of ONE GPU device per unit, e.g. 0.25 or 25% (units "
            "share devices; charged as whole GPUs, rounded up per allocation)."
        ),
    ] = None,
    gpu_model: Annotated[
        list[str] | None,
        typer.Option(
            help="Only hosts with this GPU model (their trait gpu_model=NAME); repeatable: any of."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Request capacity, e.g. alloc create -p web -r VCPU=2 -r MEMORY_MB=4096 -n 3 -i web.

    Claimed at once when the company's own quota and free hosts allow; otherwise queued
    (state pending; see alloc explain ID) unless --no-queue. GPUs: -r GPU=2 for whole
    devices, or --gpu-share 0.25 for a quarter of one (a notebook); --gpu-model A100."""
    body = build(
        AllocationCreate,
        company=company,
        project=project,
        resources=parse_amounts(resources),
        count=count,
        zone=zone,
        zone_kind=zone_kind,
        burst=burst or None,
        repatriate=repatriate or None,
        data_class=data_class,
        system_type=system_type,
        required_traits=trait or [],
        anti_affinity_group=anti_affinity_group,
        strategy=strategy,
        priority=priority,
        queue=queue,
        lease_s=parse_duration(lease, "--lease") if lease else None,
        on_expiry=on_expiry,
        minimum_runtime_s=parse_duration(minimum_runtime, "--minimum-runtime")
        if minimum_runtime
        else 0,
        on_reclaim=on_reclaim,
        interfaces=[_interface(i) for i in interface or []],
        gpu_share=parse_gpu_share(gpu_share) if gpu_share else None,
        gpu_models=gpu_model,
    )
    with client(ctx) as gc:
        render_one(gc.allocate(body, idempotency_key), as_json, COLUMNS, _row)


def _interface(value: str) -> dict[str, object]:
    subnet, sep, count = value.partition(":")
    if sep and not count.isdigit():
        raise typer.BadParameter(f"{value!r}: expected SUBNET[:N], e.g. web:2")
    return {"subnet": subnet, "count": int(count) if sep else 1}


@alloc_app.command("list")
def list_(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    state: Annotated[
        AllocationState | None,
        typer.Option(
            help="pending, active, reclaiming, released, or (external) provisioning, "
            "releasing, failed"
        ),
    ] = None,
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
    if a.gpu_models:
        console.print(f"GPU models: {', '.join(a.gpu_models)}", highlight=False)
    console.print(
        f"data class {a.data_class.value}, system type {a.system_type.value}"
        + (f", zone {a.zone}" if a.zone else ""),
        highlight=False,
    )
    for unit in a.units:
        device = f" (GPU {unit.gpu_device})" if unit.gpu_device is not None else ""
        if unit.instance_type:
            device = (
                f" {unit.instance_type} {unit.instance_id or '(not created yet)'} "
                f"{unit.instance_state}, {unit.price_per_hour:,} KRW/h"
            )
        console.print(f"  unit {unit.unit}: {unit.host}{device}", highlight=False)
    if a.cost_per_hour is not None:
        console.print(f"cost {a.cost_per_hour:,} KRW/h (external)", highlight=False)
    if a.repatriable_at:
        console.print(f"repatriable since {stamp(a.repatriable_at)}: a private zone could take it")
    for lender, held in sorted(a.borrowed.items()):
        amounts = ", ".join(f"{rc}={n}" for rc, n in sorted(held.items()))
        console.print(f"  borrowed from {lender}: {amounts}", highlight=False)
    if a.expires_at:
        console.print(f"lease ends {stamp(a.expires_at)} (then {a.on_expiry.value})")
    if a.reclaim_at:
        console.print(f"reclaimed at {stamp(a.reclaim_at)}", style="magenta")
    if a.end_reason:
        console.print(f"ended: {a.end_reason.value}", highlight=False)


@alloc_app.command("explain")
def explain(ctx: typer.Context, allocation_id: str, as_json: JsonFlag = False) -> None:
    """Why an allocation is pending, what it borrows, why it was reclaimed, in words."""
    with client(ctx) as gc:
        e = gc.explain(allocation_id)
    if as_json:
        print_json(e)
        return
    console.print(f"[bold]{e.allocation}[/] {e.state.value}", highlight=False)
    console.print(e.summary, highlight=False)
    for reason in e.reasons:
        console.print(f"  - {reason}", highlight=False)
    if any(not z["allowed"] for z in e.zones):
        console.print("zones (placement rules for regulated data):", style="bold")
        for z in e.zones:
            if z["allowed"]:
                line = f"allowed by {', '.join(z['allowed_by']) or 'no rule'}"
            else:
                line = f"removed by {z['reason']}"
            console.print(f"  {z['zone']}: {line}", highlight=False)
    if e.events:
        console.print("history:", style="bold")
        for ev in e.events[-10:]:
            console.print(f"  {stamp(ev.at)}  {ev.kind}  by {ev.actor}", highlight=False)


@alloc_app.command("update")
def update(
    ctx: typer.Context,
    allocation_id: str,
    keep: Annotated[
        bool | None, typer.Option("--keep/--no-keep", help="Never release it for being idle.")
    ] = None,
    extend: Annotated[
        str | None, typer.Option(help="Make the lease end this long from now, e.g. 4h.")
    ] = None,
    on_expiry: Annotated[OnExpiry | None, typer.Option(help="At the lease's end.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark an allocation keep, or extend its lease (subject to quota)."""
    fields: dict[str, object] = {}
    if keep is not None:
        fields["keep"] = keep
    if extend is not None:
        fields["expires_at"] = datetime.now(UTC) + timedelta(
            seconds=parse_duration(extend, "--extend")
        )
    if on_expiry is not None:
        fields["on_expiry"] = on_expiry
    if not fields:
        raise typer.BadParameter("give --keep/--no-keep, --extend or --on-expiry")
    with client(ctx) as gc:
        a = gc.update_allocation(allocation_id, build(AllocationUpdate, **fields))
    render_one(a, as_json, COLUMNS, _row)


@alloc_app.command("report")
def report(
    ctx: typer.Context,
    allocation_id: str,
    utilisation: Annotated[float, typer.Argument(help="Busy fraction 0-1.", min=0, max=1)],
) -> None:
    """Report an allocation's utilisation (what agents do; feeds idle reclaim)."""
    with client(ctx) as gc:
        gc.report_utilisation(
            [UtilisationReport(allocation=allocation_id, utilisation=utilisation)]
        )
    console.print(f"reported {utilisation:g} for {allocation_id}", highlight=False)


@alloc_app.command("release")
def release(ctx: typer.Context, allocation_id: str, as_json: JsonFlag = False) -> None:
    """Give an allocation's capacity back to the pool (repeating it is harmless)."""
    with client(ctx) as gc:
        render_one(gc.release(allocation_id), as_json, COLUMNS, _row)

"""``groupcloud provider ...`` and ``groupcloud offers``: the public clouds external
zones reach, and what a unit would cost there."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from groupcloud.cli.context import client
from groupcloud.cli.output import JsonFlag, console, print_json, render, render_one, stamp
from groupcloud.cli.parsing import build, parse_key_values
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.schemas.providers import (
    OfferOut,
    ProviderCreate,
    ProviderKind,
    ProviderOut,
    ProviderUpdate,
)

__all__ = ["offers", "provider_app"]

provider_app = typer.Typer(
    help="Providers: the public clouds (or simulations) that external zones are regions of.",
    no_args_is_help=True,
)

PROVIDER_COLUMNS = ["NAME", "KIND", "ZONES", "REGIONS", "CREATED", "DESCRIPTION"]
OFFER_COLUMNS = ["ZONE", "PROVIDER", "REGION", "TYPE", "VCPU", "MEMORY GB", "GPU", "KRW/H"]


def _provider_row(p: ProviderOut) -> list[str]:
    return [p.name, p.kind.value, ",".join(p.zones) or "-", ",".join(p.regions) or "-",
            stamp(p.created_at), p.description]  # fmt: skip


def _offer_row(o: OfferOut) -> list[str]:
    gpu = f"{o.gpu} x {o.gpu_model}" if o.gpu else "-"
    return [o.zone, o.provider, o.region, o.instance_type, str(o.vcpu),
            f"{o.memory_mb / 1024:g}", gpu, f"{o.price_per_hour:,}"]  # fmt: skip


def _settings(values: list[str] | None) -> dict[str, Any] | None:
    """``--set key=value`` (repeat); None when no ``--set`` was given (nothing to change)."""
    return None if values is None else parse_key_values(values, "--set")


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Adapter setting key=value (repeat), e.g. latency_s=0.2, failure_rate=0.1, "
        "endpoint_url=http://127.0.0.1:5000 (docs/providers.md).",
    ),
]


@provider_app.command("list")
def provider_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List providers and the external zones that are their regions."""
    with client(ctx) as gc:
        render(gc.providers(), as_json, PROVIDER_COLUMNS, _provider_row)


@provider_app.command("show")
def provider_show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one provider (its settings to group admins)."""
    with client(ctx) as gc:
        found = gc.provider(name)
    if as_json:
        print_json(found)
        return
    render_one(found, False, PROVIDER_COLUMNS, _provider_row)
    if found.settings:
        console.print("settings: " + json.dumps(found.settings, sort_keys=True))


@provider_app.command("add")
def provider_add(
    ctx: typer.Context,
    name: str,
    kind: Annotated[ProviderKind, typer.Option(help="simulated or aws.")],
    setting: SetOpt = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Add a provider (group admins). Credentials are never stored: the AWS adapter takes
    them from the server's environment."""
    body = build(ProviderCreate, name=name, kind=kind, settings=_settings(setting),
                 description=description)  # fmt: skip
    with client(ctx) as gc:
        created = gc.create_provider(body)
    render_one(created, as_json, PROVIDER_COLUMNS, _provider_row)


@provider_app.command("set")
def provider_set(
    ctx: typer.Context,
    name: str,
    setting: SetOpt = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace a provider's settings and/or description (group admins)."""
    body = build(ProviderUpdate, settings=_settings(setting), description=description)
    if not body.model_fields_set:
        raise typer.BadParameter("nothing to change: give --set or --description")
    with client(ctx) as gc:
        changed = gc.update_provider(name, body)
    render_one(changed, as_json, PROVIDER_COLUMNS, _provider_row)


@provider_app.command("remove")
def provider_remove(ctx: typer.Context, name: str) -> None:
    """Remove a provider no zone uses (group admins)."""
    with client(ctx) as gc:
        gc.delete_provider(name)
    console.print(f"provider {name} removed")


def offers(
    ctx: typer.Context,
    data_class: Annotated[Sensitivity, typer.Option(help="D1, D2 or D3.")] = Sensitivity.D3,
    system_type: Annotated[
        SystemType, typer.Option(help="internal_business or external_service.")
    ] = SystemType.EXTERNAL_SERVICE,
    vcpu: Annotated[int, typer.Option(min=0, help="vCPUs per unit.")] = 1,
    memory_gb: Annotated[float, typer.Option(min=0, help="Memory per unit, GiB.")] = 0,
    gpu: Annotated[int, typer.Option(min=0, help="Whole GPUs per unit.")] = 0,
    gpu_model: Annotated[str | None, typer.Option(help="Only this GPU model (A100).")] = None,
    company: Annotated[str | None, typer.Option(help="Whose request (group admins).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Offers to show.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """The cheapest instance types for one unit in the external zones the placement rules
    allow for this data class and system type (what a burst would get)."""
    with client(ctx) as gc:
        found = gc.offers(data_class=data_class.value, system_type=system_type.value,
                          vcpu=vcpu, memory_gb=memory_gb, gpu=gpu, gpu_model=gpu_model,
                          company=company, limit=limit)  # fmt: skip
    if as_json:
        print_json(found)
        return
    render(found.offers, False, OFFER_COLUMNS, _offer_row,
           title=f"offers for {data_class.value} {system_type.value}")  # fmt: skip
    for v in found.zones:
        if not v["allowed"]:
            console.print(f"[dim]{v['zone']}: removed by {', '.join(v['removed_by'])}[/dim]")
        elif v.get("blocked_until"):
            console.print(f"[yellow]{v['zone']}: blocked until {v['blocked_until']}[/yellow]")
    if not found.offers:
        console.print("no external offer fits" + ("" if found.zones else ": no external zone"))

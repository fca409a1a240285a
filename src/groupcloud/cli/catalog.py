"""``groupcloud catalog ...``: the PaaS/SaaS templates, their plans and parameters."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from groupcloud.cli.context import client
from groupcloud.cli.output import JsonFlag, console, fail, print_json, render, render_one
from groupcloud.cli.parsing import build, parse_key_values
from groupcloud.client import Client
from groupcloud.domain.service import ServiceState
from groupcloud.schemas.catalog import (
    Binding,
    ResolveRequest,
    ServiceCreate,
    ServiceInstance,
    ServiceUpdate,
    TemplateAdd,
    TemplateSummary,
)

__all__ = ["catalog_app", "svc_app"]

catalog_app = typer.Typer(
    help="The service catalog: templates of platforms and software, their plans.",
    no_args_is_help=True,
)
COLUMNS = ["NAME", "VERSION", "KIND", "PLANS", "SHIPPED", "DESCRIPTION"]


def _row(t: TemplateSummary) -> list[str]:
    return [t.name, t.version, t.kind, ",".join(t.plans), "yes" if t.shipped else "no",
            t.description]  # fmt: skip


@catalog_app.command("list")
def catalog_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the templates (newest version of each)."""
    with client(ctx) as gc:
        render(gc.templates(), as_json, COLUMNS, _row)


@catalog_app.command("show")
def catalog_show(
    ctx: typer.Context,
    name: str,
    version: Annotated[str | None, typer.Option(help="Default: the newest.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a template: its parameters (JSON Schema) and its plans' parts."""
    with client(ctx) as gc:
        t = gc.template(name, version)
    if as_json:
        print_json(t)
        return
    console.print(f"[bold]{t.name}[/bold] {t.version} ({t.kind}): {t.description}")
    for prop, schema in sorted(t.parameters.get("properties", {}).items()):
        default = f" (default {json.dumps(schema['default'])})" if "default" in schema else ""
        console.print(f"  --param {prop}=...  {schema.get('type', '')}{default}", highlight=False)
    for plan in t.plans:
        console.print(f"plan [bold]{plan.name}[/bold] {plan.description}")
        for part in plan.parts:
            amounts = ", ".join(f"{rc}={n}" for rc, n in part.resources.items())
            console.print(f"  {part.name}: {part.count} x {amounts}", highlight=False)


@catalog_app.command("add")
def catalog_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_json: JsonFlag = False,
) -> None:
    """Add a template from a YAML file (group admins)."""
    body = build(TemplateAdd, source=file.read_text(encoding="utf-8"))
    with client(ctx) as gc:
        t = gc.add_template(body)
    if as_json:
        print_json(t)
        return
    console.print(f"template {t.name} {t.version} added ({', '.join(p.name for p in t.plans)})")


@catalog_app.command("remove")
def catalog_remove(ctx: typer.Context, name: str, version: str) -> None:
    """Remove an operator's template version (group admins; shipped ones stay)."""
    with client(ctx) as gc:
        gc.remove_template(name, version)
    console.print(f"template {name} {version} removed")


@catalog_app.command("resolve")
def catalog_resolve(
    ctx: typer.Context,
    name: str,
    plan: Annotated[str, typer.Option(help="The plan (catalog show NAME lists them).")],
    param: Annotated[list[str] | None, typer.Option("--param", help="key=value, repeat.")] = None,
    version: Annotated[str | None, typer.Option(help="Default: the newest.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate parameters and show what the plan would ask of the pool (holds nothing)."""
    params = parse_key_values(param, "--param")
    body = build(ResolveRequest, plan=plan, parameters=params, version=version)
    with client(ctx) as gc:
        r = gc.resolve_template(name, body)
    if as_json:
        print_json(r)
        return
    console.print(f"{r.template} {r.version} plan {r.plan}: {json.dumps(r.parameters)}")
    for part in r.parts:
        amounts = ", ".join(f"{rc}={n}" for rc, n in part.resources.items())
        console.print(f"  {part.name}: {part.count} x {amounts}", highlight=False)
    console.print("in all: " + ", ".join(f"{rc}={n}" for rc, n in r.demand.items()))


svc_app = typer.Typer(
    help="Services of the catalog: create one from a template's plan, list, show, delete.",
    no_args_is_help=True,
)
SVC_COLUMNS = ["ID", "COMPANY", "PROJECT", "TEMPLATE", "PLAN", "STATE", "PARTS"]


def _svc_row(i: ServiceInstance) -> list[str]:
    parts = "\n".join(f"{p.name}: {p.count} on {','.join(p.hosts) or '-'}" for p in i.parts)
    return [i.id, i.company, i.project, f"{i.template} {i.version}", i.plan, i.state, parts]


Wait = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Show progress until the operation has finished (a failure exits 1), or "
        "answer at once with the state it is in.",
    ),
]
Timeout = Annotated[
    float, typer.Option(help="Seconds --wait waits before giving up (exit 2).", min=1)
]


def _wait(gc: Client, made: ServiceInstance, wait: bool, timeout: float) -> ServiceInstance:
    """Poll the service while its operation is under way, a spinner showing its state."""
    if not wait or not made.state.busy:
        return made
    deadline = time.monotonic() + timeout
    with console.status(f"{made.template} {made.id}: {made.state} ...") as status:
        while made.state.busy:
            if time.monotonic() > deadline:
                raise fail(
                    f"service {made.id} is still {made.state} after {timeout:g} s "
                    f"({made.failure or 'no error yet'}); svc show {made.id} follows it",
                    2,
                )
            time.sleep(0.25)
            made = gc.service(made.id)
            status.update(f"{made.template} {made.id}: {made.state} ...")
    return made


def _done(made: ServiceInstance, as_json: bool) -> None:
    render_one(made, as_json, SVC_COLUMNS, _svc_row)
    if made.state is ServiceState.FAILED:
        raise fail(f"service {made.id} failed: {made.failure}", 1)


@svc_app.command("create")
def svc_create(
    ctx: typer.Context,
    template: str,
    project: Annotated[str, typer.Option("--project", "-p", help="The owning project.")],
    plan: Annotated[str, typer.Option(help="The plan (catalog show TEMPLATE lists them).")],
    param: Annotated[list[str] | None, typer.Option("--param", help="key=value, repeat.")] = None,
    company: Annotated[
        str | None, typer.Option("--company", "-c", help="Company (group-admin tokens only).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Default: the newest.")] = None,
    wait: Wait = True,
    timeout: Timeout = 300.0,
    as_json: JsonFlag = False,
) -> None:
    """Create a service: its parts are claimed together on the group cloud or not at all
    (what was short is named), then its backend is provisioned, e.g. svc create
    postgresql -p web --plan medium --param replicas=1."""
    params = parse_key_values(param, "--param")
    body = build(ServiceCreate, template=template, project=project, plan=plan,
                 parameters=params, company=company, version=version)  # fmt: skip
    with client(ctx) as gc:
        with console.status(f"claiming the parts of {template} {plan} ..."):
            made = gc.create_service(body)
        made = _wait(gc, made, wait, timeout)
    _done(made, as_json)


@svc_app.command("list")
def svc_list(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", "-c")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List live services (a company token sees its own company's)."""
    with client(ctx) as gc:
        render(gc.services(company), as_json, SVC_COLUMNS, _svc_row)


@svc_app.command("show")
def svc_show(ctx: typer.Context, service_id: str, as_json: JsonFlag = False) -> None:
    """Show a service, its state (and why it failed), and where its parts run."""
    with client(ctx) as gc:
        made = gc.service(service_id)
    render_one(made, as_json, SVC_COLUMNS, _svc_row)
    if made.failure and not as_json:
        console.print(f"{made.state}: {made.failure}", style="yellow")


@svc_app.command("update")
def svc_update(
    ctx: typer.Context,
    service_id: str,
    plan: Annotated[str | None, typer.Option(help="The new plan.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="key=value, repeat; merged.")
    ] = None,
    wait: Wait = True,
    timeout: Timeout = 300.0,
    as_json: JsonFlag = False,
) -> None:
    """Change a ready service's plan or parameters: the new parts are claimed as one gang
    beside the old ones (quota must take both for the switch), then the old are released;
    refused as a whole, the service stays as it was."""
    body = build(ServiceUpdate, plan=plan, parameters=parse_key_values(param, "--param"))
    with client(ctx) as gc:
        with console.status(f"claiming the parts of {service_id}'s new plan ..."):
            made = gc.update_service(service_id, body)
        made = _wait(gc, made, wait, timeout)
    _done(made, as_json)


@svc_app.command("delete")
def svc_delete(
    ctx: typer.Context,
    service_id: str,
    wait: Wait = True,
    timeout: Timeout = 300.0,
    as_json: JsonFlag = False,
) -> None:
    """Delete a service: bindings and backend removed, every part released (capacity and
    quota back)."""
    with client(ctx) as gc:
        made = _wait(gc, gc.delete_service(service_id), wait, timeout)
    _done(made, as_json)


BINDING_COLUMNS = ["ID", "SERVICE", "STATE", "CREATED", "ROTATED"]


def _binding_row(b: Binding) -> list[str]:
    return [b.id, b.service, b.state, b.created_at.isoformat(timespec="seconds"),
            b.rotated_at.isoformat(timespec="seconds") if b.rotated_at else ""]  # fmt: skip


def _credentials(b: Binding, as_json: bool) -> None:
    """A binding and its credentials: the one moment a person sees the password."""
    if as_json:
        print_json(b)
        return
    render([b], False, BINDING_COLUMNS, _binding_row)
    for key, value in (b.credentials or {}).items():
        console.print(f"{key}: {value}", highlight=False, soft_wrap=True)


@svc_app.command("bind")
def svc_bind(ctx: typer.Context, service_id: str, as_json: JsonFlag = False) -> None:
    """Bind an app to a ready service: new credentials (a login of its own; for
    postgresql a connection URI), printed once here and sealed at rest."""
    with client(ctx) as gc:
        _credentials(gc.bind_service(service_id), as_json)


@svc_app.command("bindings")
def svc_bindings(ctx: typer.Context, service_id: str, as_json: JsonFlag = False) -> None:
    """List a service's bindings (without credentials)."""
    with client(ctx) as gc:
        render(gc.bindings(service_id), as_json, BINDING_COLUMNS, _binding_row)


@svc_app.command("credentials")
def svc_credentials(
    ctx: typer.Context, service_id: str, binding_id: str, as_json: JsonFlag = False
) -> None:
    """Show a binding's credentials again (callers who may use the company's services)."""
    with client(ctx) as gc:
        _credentials(gc.binding(service_id, binding_id), as_json)


@svc_app.command("rotate")
def svc_rotate(
    ctx: typer.Context, service_id: str, binding_id: str, as_json: JsonFlag = False
) -> None:
    """A new password for a binding; the old one stops working at once."""
    with client(ctx) as gc:
        _credentials(gc.rotate_binding(service_id, binding_id), as_json)


@svc_app.command("unbind")
def svc_unbind(
    ctx: typer.Context, service_id: str, binding_id: str, as_json: JsonFlag = False
) -> None:
    """Remove a binding: its login is dropped and its sessions end."""
    with client(ctx) as gc:
        render_one(gc.unbind_service(service_id, binding_id), as_json, BINDING_COLUMNS,
                   _binding_row)  # fmt: skip

"""``groupcloud catalog ...``: the PaaS/SaaS templates, their plans and parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from groupcloud.cli.context import client
from groupcloud.cli.output import JsonFlag, console, print_json, render, render_one
from groupcloud.cli.parsing import build, parse_key_values
from groupcloud.schemas.catalog import (
    ResolveRequest,
    ServiceCreate,
    ServiceInstance,
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
    as_json: JsonFlag = False,
) -> None:
    """Create a service: its parts are claimed together on the group cloud or not at all
    (what was short is named), e.g. svc create postgresql -p web --plan medium --param
    replicas=1."""
    params = parse_key_values(param, "--param")
    body = build(ServiceCreate, template=template, project=project, plan=plan,
                 parameters=params, company=company, version=version)  # fmt: skip
    with client(ctx) as gc, console.status(f"claiming the parts of {template} {plan} ..."):
        made = gc.create_service(body)
    render_one(made, as_json, SVC_COLUMNS, _svc_row)


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
    """Show a service and where its parts run."""
    with client(ctx) as gc:
        render_one(gc.service(service_id), as_json, SVC_COLUMNS, _svc_row)


@svc_app.command("delete")
def svc_delete(ctx: typer.Context, service_id: str, as_json: JsonFlag = False) -> None:
    """Delete a service: every part released, capacity and quota back."""
    with client(ctx) as gc:
        render_one(gc.delete_service(service_id), as_json, SVC_COLUMNS, _svc_row)

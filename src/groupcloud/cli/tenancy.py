"""Client commands for companies, projects, zones, tokens, events and whoami."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated

import typer

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
from groupcloud.cli.parsing import build, parse_duration
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import (
    DEFAULT_DATA_CLASS,
    DEFAULT_SYSTEM_TYPE,
    Sensitivity,
    SystemType,
)
from groupcloud.domain.tenancy import Role
from groupcloud.schemas.audit import Event
from groupcloud.schemas.tenancy import Company, Project, Token, TokenCreate
from groupcloud.schemas.zones import Zone, ZoneCreate, ZoneUpdate

__all__ = ["company_app", "events", "project_app", "token_app", "whoami", "zone_app"]

company_app = typer.Typer(help="Companies of the group.")
project_app = typer.Typer(help="Projects of a company (the owners of allocations).")
zone_app = typer.Typer(help="Placement zones.")
token_app = typer.Typer(help="API tokens and their roles.")


def whoami(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show whose token is configured."""
    with client(ctx) as gc:
        me = gc.whoami()
    if as_json:
        print_json(me)
    else:
        console.print(f"{me.name}: {me.role.value}" + (f" of {me.company}" if me.company else ""))


COMPANY_COLUMNS = ["SLUG", "NAME", "FAIR WEIGHT", "CREATED"]
PROJECT_COLUMNS = ["COMPANY", "SLUG", "NAME", "DEFAULT PRIORITY", "DATA CLASS", "SYSTEM TYPE",
                   "CREATED"]  # fmt: skip


def _company_row(c: Company) -> list[str]:
    return [c.slug, c.name, f"{c.fair_weight:g}", stamp(c.created_at)]


@company_app.command("list")
def company_list(
    ctx: typer.Context, cursor: Cursor = None, limit: Limit = None, as_json: JsonFlag = False
) -> None:
    """List companies."""
    with client(ctx) as gc:
        page = gc.companies(cursor=cursor, limit=limit)
    render(page, as_json, COMPANY_COLUMNS, _company_row)


@company_app.command("add")
def company_add(
    ctx: typer.Context,
    slug: str,
    name: str,
    fair_weight: Annotated[
        float, typer.Option(help="Weight in fair sharing of borrowed capacity.", min=0.001)
    ] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Add a company (group admins)."""
    with client(ctx) as gc:
        company = gc.create_company(slug, name, fair_weight)
    render_one(company, as_json, COMPANY_COLUMNS, _company_row)


@company_app.command("update")
def company_update(
    ctx: typer.Context,
    slug: str,
    fair_weight: Annotated[
        float, typer.Option(help="Weight in fair sharing of borrowed capacity.", min=0.001)
    ],
    as_json: JsonFlag = False,
) -> None:
    """Change a company's fair-share weight (group admins)."""
    with client(ctx) as gc:
        company = gc.update_company(slug, fair_weight)
    render_one(company, as_json, COMPANY_COLUMNS, _company_row)


_PROJECT_DATA_CLASS = "Data class (D1, D2, D3) of its allocations that name none."
_PROJECT_SYSTEM_TYPE = "System type of its allocations that name none."
ProjectDataClass = Annotated[Sensitivity, typer.Option(help=_PROJECT_DATA_CLASS)]
ProjectSystemType = Annotated[SystemType, typer.Option(help=_PROJECT_SYSTEM_TYPE)]


def _project_row(p: Project) -> list[str]:
    return [p.company, p.slug, p.name, str(p.default_priority), p.default_data_class.value,
            p.default_system_type.value, stamp(p.created_at)]  # fmt: skip


@project_app.command("list")
def project_list(
    ctx: typer.Context,
    company: str,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List a company's projects."""
    with client(ctx) as gc:
        page = gc.projects(company, cursor=cursor, limit=limit)
    render(page, as_json, PROJECT_COLUMNS, _project_row)


@project_app.command("add")
def project_add(
    ctx: typer.Context,
    company: str,
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    default_priority: Annotated[
        int, typer.Option(help="Queue priority of its requests (0-1000).", min=0, max=1000)
    ] = 500,
    data_class: ProjectDataClass = DEFAULT_DATA_CLASS,
    system_type: ProjectSystemType = DEFAULT_SYSTEM_TYPE,
    as_json: JsonFlag = False,
) -> None:
    """Add a project to a company (company admins and group admins)."""
    with client(ctx) as gc:
        project = gc.create_project(
            company,
            slug,
            name,
            default_priority,
            default_data_class=data_class,
            default_system_type=system_type,
        )
    render_one(project, as_json, PROJECT_COLUMNS, _project_row)


@project_app.command("update")
def project_update(
    ctx: typer.Context,
    company: str,
    slug: str,
    default_priority: Annotated[
        int | None,
        typer.Option(help="Queue priority of its requests (0-1000).", min=0, max=1000),
    ] = None,
    data_class: Annotated[Sensitivity | None, typer.Option(help=_PROJECT_DATA_CLASS)] = None,
    system_type: Annotated[SystemType | None, typer.Option(help=_PROJECT_SYSTEM_TYPE)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a project's defaults: queue priority, data class, system type (company
    admins and group admins)."""
    if default_priority is None and data_class is None and system_type is None:
        raise typer.BadParameter("give --default-priority, --data-class or --system-type")
    with client(ctx) as gc:
        project = gc.update_project(
            company,
            slug,
            default_priority,
            default_data_class=data_class,
            default_system_type=system_type,
        )
    render_one(project, as_json, PROJECT_COLUMNS, _project_row)


ZONE_COLUMNS = ["NAME", "KIND", "OWNER", "COUNTRY", "SEPARATED", "CERTIFICATIONS",
                "DATA CLASSES", "APPROVED", "D3", "PROVIDER", "DESCRIPTION"]  # fmt: skip


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _zone_row(z: Zone) -> list[str]:
    return [
        z.name,
        z.kind.value,
        (z.owner_company or "-") + (f" (lent: {','.join(z.lent_to)})" if z.lent_to else ""),
        z.country or "-",
        _yes(z.internet_separated),
        ",".join(z.certifications) or "-",
        ",".join(c.value for c in z.data_classes) or "-",
        _yes(z.approved) if z.kind is ZoneKind.EXTERNAL else "private",
        _yes(z.approved_for_d3) if z.kind is ZoneKind.EXTERNAL else "private",
        f"{z.provider}/{z.region}" if z.provider else "-",
        z.description + (f" (blocked until {stamp(z.blocked_until)})" if z.blocked_until else ""),
    ]


Country = Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 country the zone is in (KR).")]
Separated = Annotated[
    bool | None,
    typer.Option(
        "--internet-separated/--internet-connected",
        help="No internet egress: may run internal business systems.",
    ),
]
Certification = Annotated[
    list[str] | None,
    typer.Option(
        "--certification",
        help="Certification or assessment passed (repeat): cloud_security_assessment, csap.",
    ),
]
DataClassOpt = Annotated[
    list[Sensitivity] | None,
    typer.Option("--data-class", help="Data class the zone may hold (repeat): D1, D2, D3."),
]
ProviderOpt = Annotated[
    str | None, typer.Option(help="External zones: the provider (groupcloud provider list).")
]
LendTo = Annotated[
    list[str] | None,
    typer.Option(
        "--lend-to",
        help="Local zones: lend the zone to this company (repeat; replaces the list).",
    ),
]
RegionOpt = Annotated[
    str | None, typer.Option(help="External zones: the provider's region (ap-northeast-2).")
]
Approved = Annotated[
    bool | None,
    typer.Option("--approved/--not-approved", help="External zones: approved by the group."),
]
ApprovedD3 = Annotated[
    bool | None,
    typer.Option(
        "--approved-for-d3/--not-approved-for-d3",
        help="External zones: approved for D3 data (also needs country KR and the "
        "cloud_security_assessment).",
    ),
]


@zone_app.command("list")
def zone_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List zones and the attributes the placement rules read."""
    with client(ctx) as gc:
        render(gc.zones(), as_json, ZONE_COLUMNS, _zone_row)


@zone_app.command("show")
def zone_show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one zone."""
    with client(ctx) as gc:
        zone = gc.zone(name)
    render_one(zone, as_json, ZONE_COLUMNS, _zone_row)


@zone_app.command("add")
def zone_add(
    ctx: typer.Context,
    name: str,
    kind: Annotated[ZoneKind, typer.Option(help="shared, local or external.")] = ZoneKind.SHARED,
    owner: Annotated[str | None, typer.Option(help="Owning company (local zones).")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    country: Country = None,
    internet_separated: Separated = None,
    certification: Certification = None,
    data_class: DataClassOpt = None,
    approved: Approved = None,
    approved_for_d3: ApprovedD3 = None,
    provider: ProviderOpt = None,
    region: RegionOpt = None,
    lend_to: LendTo = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a zone (group admins); an external zone names its provider and region."""
    body = build(
        ZoneCreate,
        name=name,
        kind=kind,
        owner_company=owner,
        description=description,
        country=country,
        internet_separated=internet_separated,
        certifications=certification,
        data_classes=data_class,
        approved=approved,
        approved_for_d3=approved_for_d3,
        provider=provider,
        region=region,
        lent_to=lend_to,
    )
    with client(ctx) as gc:
        zone = gc.create_zone(body)
    render_one(zone, as_json, ZONE_COLUMNS, _zone_row)


@zone_app.command("set")
def zone_set(
    ctx: typer.Context,
    name: str,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    country: Country = None,
    internet_separated: Separated = None,
    certification: Certification = None,
    data_class: DataClassOpt = None,
    approved: Approved = None,
    approved_for_d3: ApprovedD3 = None,
    provider: ProviderOpt = None,
    region: RegionOpt = None,
    lend_to: LendTo = None,
    clear: Annotated[
        list[str] | None,
        typer.Option(
            "--clear",
            help="Clear an attribute (repeat): country, provider (with region), or "
            "lending (a local zone lent to no one).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a zone's attributes (group admins); options left out stay as they are, a
    repeated option replaces the whole list."""
    cleared = _clearing(clear)
    body = build(
        ZoneUpdate,
        description=description,
        country=country,
        internet_separated=internet_separated,
        certifications=certification,
        data_classes=data_class,
        approved=approved,
        approved_for_d3=approved_for_d3,
        provider=provider,
        region=region,
        lent_to=lend_to,
    )
    for key in cleared:  # build leaves None out: assigning marks the field as sent
        setattr(body, key, [] if key == "lent_to" else None)
    if not body.model_fields_set:
        raise typer.BadParameter("nothing to change: give at least one option")
    with client(ctx) as gc:
        zone = gc.update_zone(name, body)
    render_one(zone, as_json, ZONE_COLUMNS, _zone_row)


def _clearing(names: list[str] | None) -> list[str]:
    out = []
    for name in names or []:
        if name == "country":
            out.append("country")
        elif name == "provider":
            out += ["provider", "region"]
        elif name == "lending":
            out.append("lent_to")
        else:
            raise typer.BadParameter(
                f"--clear {name}: only country, provider or lending can be cleared"
            )
    return out


def _token_row(t: Token) -> list[str]:
    return [str(t.id), t.name, t.role.value, t.company or "-", t.prefix + "...",
            stamp(t.created_at), stamp(t.expires_at), stamp(t.revoked_at)]  # fmt: skip


TOKEN_COLUMNS = ["ID", "NAME", "ROLE", "COMPANY", "PREFIX", "CREATED", "EXPIRES", "REVOKED"]


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option(help="Only this company's tokens.")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (never their secrets)."""
    with client(ctx) as gc:
        page = gc.tokens(company=company, cursor=cursor, limit=limit)
    render(page, as_json, TOKEN_COLUMNS, _token_row)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str,
    role: Annotated[
        Role,
        typer.Option(
            help="group-admin, group-auditor (reads all, changes nothing), company-admin, "
            "member or company-viewer (reads its company, changes nothing)."
        ),
    ],
    company: Annotated[str | None, typer.Option(help="Company of a company role.")] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(help="The token stops working after this, e.g. 8h, 30d (default: never)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue a token; its secret is printed once."""
    expires_at = (
        datetime.now(UTC) + timedelta(seconds=parse_duration(expires_in, "--expires-in"))
        if expires_in
        else None
    )
    body = build(TokenCreate, name=name, role=role, company=company, expires_at=expires_at)
    with client(ctx) as gc:
        created = gc.issue_token(body)
    if as_json:
        print_json(created)
        return
    console.print(f"token {created.id} ({created.role.value}) for {created.name}:", highlight=False)
    console.print(f"  {created.secret}", highlight=False)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: int, as_json: JsonFlag = False) -> None:
    """Revoke a token; it stops working at once."""
    with client(ctx) as gc:
        token = gc.revoke_token(token_id)
    render_one(token, as_json, TOKEN_COLUMNS, _token_row)


def events(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option(help="Only this company's events.")] = None,
    kind: Annotated[str | None, typer.Option(help="Kind or prefix, e.g. allocation.")] = None,
    subject: Annotated[str | None, typer.Option(help="e.g. host/cpu-001")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C stops).")
    ] = False,
    tail: Annotated[
        int | None, typer.Option(help="Only the newest N events (default 20 with --follow).")
    ] = None,
    interval: Annotated[
        float, typer.Option(help="Seconds between polls with --follow.", min=0.05)
    ] = 1.0,
    cursor: Cursor = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """The audit trail, oldest first; --follow keeps watching (one JSON object per line
    with --json)."""
    columns = ["ID", "AT", "ACTOR", "COMPANY", "KIND", "SUBJECT"]

    def row(e: Event) -> list[str]:
        return [str(e.id), stamp(e.at), e.actor, e.company or "-", e.kind, e.subject]

    if not follow:
        with client(ctx) as gc:
            page = gc.events(
                company=company, kind=kind, subject=subject, tail=tail, cursor=cursor, limit=limit
            )
        render(page, as_json, columns, row)
        return
    with client(ctx) as gc:
        fetch = partial(gc.events, company=company, kind=kind, subject=subject)
        last: int | None = None
        page = fetch(tail=tail or 20)
        try:
            while True:
                for e in page.items:
                    last = e.id
                    if as_json:
                        console.print_json(e.model_dump_json(), indent=None)
                    else:
                        console.print(
                            f"{e.id:>7}  {stamp(e.at)}  {e.actor:<14} {(e.company or '-'):<9} "
                            f"{e.kind:<28} {e.subject}  {_brief(e.data)}",
                            highlight=False,
                            soft_wrap=True,
                        )
                if page.next_cursor is None:
                    time.sleep(interval)
                page = fetch(after_id=last, cursor=page.next_cursor, limit=limit)
        except KeyboardInterrupt:
            return


def _brief(data: dict[str, object]) -> str:
    """The event's data in one short line (reasons first)."""
    keys = sorted(data, key=lambda k: (k != "reason", k))
    text = " ".join(f"{k}={data[k]}" for k in keys if k not in ("filters", "placement"))
    return text if len(text) <= 120 else text[:117] + "..."

"""Catalog templates: the shipped ones (YAML in the package, read once per process) and
those operators add (stored as sent, in ``service_templates``), listed, shown, added,
removed and resolved (a dry run of what an instance would ask, for forms and scripts).

Every role reads the catalog; group admins change it. A (name, version) is unique across
shipped and added templates, so a name always means one thing.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.catalog.templates import (
    ParameterError,
    Template,
    TemplateError,
    parse_template,
    resolve,
)
from groupcloud.db.models import ServiceTemplateRow
from groupcloud.db.unique import add_unique
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from groupcloud.schemas.catalog import (
    PartOut,
    PlanOut,
    ResolutionOut,
    ResolvedPartOut,
    ResolveRequest,
    TemplateAdd,
    TemplateOut,
    TemplateSummary,
)
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import require_group_admin

__all__ = [
    "add_template",
    "find_template",
    "get_template",
    "list_templates",
    "newest_templates",
    "remove_template",
    "resolve_template",
    "shipped_templates",
]


@cache
def shipped_templates() -> tuple[Template, ...]:
    """The templates in the package (``catalog/templates/*.yaml``); a broken one is a
    bug of the release, so it raises."""
    folder = resources.files("groupcloud.catalog").joinpath("templates")
    return tuple(
        parse_template(f.read_text(), f"groupcloud/catalog/templates/{f.name}")
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".yaml")
    )


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Versions compare numerically by dotted part where they are numbers (10 > 9)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.split("."))


def _all(s: Session) -> list[tuple[Template, ServiceTemplateRow | None]]:
    out: list[tuple[Template, ServiceTemplateRow | None]] = [(t, None) for t in shipped_templates()]
    for row in s.scalars(select(ServiceTemplateRow).order_by(ServiceTemplateRow.id)):
        out.append((parse_template(row.source, f"template {row.name} {row.version}"), row))
    return out


def newest_templates(s: Session) -> list[Template]:
    """The newest version of every template, by name."""
    newest: dict[str, Template] = {}
    for t, _ in _all(s):
        known = newest.get(t.name)
        if known is None or _version_key(t.version) > _version_key(known.version):
            newest[t.name] = t
    return [newest[name] for name in sorted(newest)]


def list_templates(rt: Runtime, actor: Principal) -> list[TemplateSummary]:
    """Every template name with its newest version (the catalog is small: listed whole)."""
    with rt.db.read() as s:
        found = _all(s)
    names: dict[str, list[tuple[Template, ServiceTemplateRow | None]]] = {}
    for t, row in found:
        names.setdefault(t.name, []).append((t, row))
    out = []
    for name in sorted(names):
        versions = sorted(names[name], key=lambda tr: _version_key(tr[0].version))
        newest, row = versions[-1]
        out.append(
            TemplateSummary(
                name=name,
                version=newest.version,
                versions=[t.version for t, _ in versions],
                kind=newest.kind,
                description=newest.description,
                plans=[p.name for p in newest.plans],
                shipped=row is None,
            )
        )
    return out


def find_template(
    s: Session, name: str, version: str | None
) -> tuple[Template, ServiceTemplateRow | None]:
    matches = [(t, r) for t, r in _all(s) if t.name == name]
    if version is not None:
        matches = [(t, r) for t, r in matches if t.version == version]
    if not matches:
        what = f"template {name!r}" + (f" version {version!r}" if version else "")
        raise NotFound(f"{what} not found in the catalog", resource="template", name=name)
    return max(matches, key=lambda tr: _version_key(tr[0].version))


def get_template(
    rt: Runtime, actor: Principal, name: str, version: str | None = None
) -> TemplateOut:
    with rt.db.read() as s:
        template, row = find_template(s, name, version)
    return _out(template, row)


def add_template(rt: Runtime, actor: Principal, body: TemplateAdd) -> TemplateOut:
    """Add an operator's template (group admins); refused listing every problem."""
    require_group_admin(actor, "adding a catalog template")
    try:
        template = parse_template(body.source, "source")
    except TemplateError as exc:
        raise InvalidInput(str(exc), errors=exc.errors) from None
    if any(t.name == template.name and t.version == template.version
           for t in shipped_templates()):  # fmt: skip
        raise AlreadyExists(
            f"template {template.name} {template.version} is shipped with groupcloud; "
            "give yours another version or name",
            resource="template",
            name=template.name,
        )
    now = rt.clock()
    with rt.db.write() as s:
        row = ServiceTemplateRow(
            name=template.name,
            version=template.version,
            source=body.source,
            created_at=now,
            created_by=actor.actor,
        )
        add_unique(s, row, f"template {template.name} {template.version}", name=template.name)
        events.record(
            s, actor.actor, "template.added", f"template/{template.name}",
            data={"version": template.version, "plans": [p.name for p in template.plans]},
            at=now,
        )  # fmt: skip
    return _out(template, row)


def remove_template(rt: Runtime, actor: Principal, name: str, version: str) -> None:
    """Remove an operator's template version (shipped ones stay)."""
    require_group_admin(actor, "removing a catalog template")
    with rt.db.write() as s:
        row = s.scalar(
            select(ServiceTemplateRow)
            .where(ServiceTemplateRow.name == name, ServiceTemplateRow.version == version)
            .with_for_update()
        )
        if row is None:
            if any(t.name == name and t.version == version for t in shipped_templates()):
                raise Conflict(f"template {name} {version} is shipped with groupcloud and stays")
            raise NotFound(
                f"template {name!r} version {version!r} not found", resource="template", name=name
            )
        s.delete(row)
        events.record(s, actor.actor, "template.removed", f"template/{name}",
                      data={"version": version}, at=rt.clock())  # fmt: skip


def resolve_template(
    rt: Runtime, actor: Principal, name: str, body: ResolveRequest
) -> ResolutionOut:
    """What an instance with ``body``'s plan and parameters would ask (nothing is held)."""
    with rt.db.read() as s:
        template, _ = find_template(s, name, body.version)
    try:
        resolved = resolve(template, body.plan, body.parameters)
    except ParameterError as exc:
        raise InvalidInput(str(exc), errors=exc.errors) from None
    return ResolutionOut(
        template=template.name,
        version=template.version,
        plan=resolved.plan,
        parameters=resolved.parameters,
        parts=[
            ResolvedPartOut(
                name=p.name,
                resources=p.resources,
                count=p.count,
                gpu_share=p.gpu_share,
                gpu_models=list(p.gpu_models),
                anti_affinity=p.anti_affinity,
            )
            for p in resolved.parts
        ],
        demand=resolved.demand,
    )


def _out(template: Template, row: ServiceTemplateRow | None) -> TemplateOut:
    return TemplateOut(
        name=template.name,
        version=template.version,
        kind=template.kind,
        backend=template.backend,
        description=template.description,
        parameters=template.parameters,
        plans=[
            PlanOut(
                name=p.name,
                description=p.description,
                parts=[PartOut.model_validate(part.model_dump()) for part in p.parts],
            )
            for p in template.plans
        ],
        shipped=row is None,
        created_at=row.created_at if row else None,
        created_by=row.created_by if row else None,
    )

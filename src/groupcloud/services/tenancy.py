"""Companies, projects and zones."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from groupcloud.db.models import Company, Project, Zone
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from groupcloud.schemas import Company as CompanyOut
from groupcloud.schemas import (
    CompanyCreate,
    CompanyUpdate,
    Page,
    ProjectCreate,
    ProjectUpdate,
    ZoneCreate,
)
from groupcloud.schemas import Project as ProjectOut
from groupcloud.schemas import Zone as ZoneOut
from groupcloud.services import events
from groupcloud.services.access import company_by_slug, require_group_admin
from groupcloud.services.pagination import cursor_key, page_limit, split_page
from groupcloud.services.runtime import Runtime

__all__ = [
    "create_company",
    "create_project",
    "create_zone",
    "get_company",
    "list_companies",
    "list_projects",
    "list_zones",
]


def create_company(rt: Runtime, actor: Principal, body: CompanyCreate) -> CompanyOut:
    require_group_admin(actor, "creating a company")
    try:
        with rt.db.write() as s:
            company = Company(slug=body.slug, name=body.name, fair_weight=body.fair_weight)
            s.add(company)
            s.flush()
            events.record(s, actor.actor, "company.created", f"company/{body.slug}", company.id)
    except IntegrityError:
        raise AlreadyExists(f"company {body.slug!r} already exists", name=body.slug) from None
    return CompanyOut.model_validate(company)


def get_company(rt: Runtime, actor: Principal, slug: str) -> CompanyOut:
    with rt.db.read() as s:
        return CompanyOut.model_validate(company_by_slug(s, actor, slug))


def list_companies(
    rt: Runtime, actor: Principal, *, cursor: str | None = None, limit: int | None = None
) -> Page[CompanyOut]:
    size = page_limit(limit)
    query = select(Company).order_by(Company.id).limit(size + 1)
    if cursor:
        query = query.where(Company.id > cursor_key(cursor))
    if not actor.is_group_admin:
        query = query.where(Company.id == actor.company_id)
    with rt.db.read() as s:
        rows = s.scalars(query).all()
    page, next_cursor = split_page(rows, size, lambda c: c.id)
    return Page(items=[CompanyOut.model_validate(c) for c in page], next_cursor=next_cursor)


def create_project(rt: Runtime, actor: Principal, company: str, body: ProjectCreate) -> ProjectOut:
    try:
        with rt.db.write() as s:
            owner = company_by_slug(s, actor, company)
            if not actor.can_administer(owner.id):
                raise Forbidden("creating a project needs a company-admin or group-admin token")
            project = Project(
                company_id=owner.id,
                slug=body.slug,
                name=body.name or body.slug,
                default_priority=body.default_priority,
            )
            s.add(project)
            s.flush()
            events.record(
                s, actor.actor, "project.created", f"project/{company}/{body.slug}", owner.id
            )
    except IntegrityError:
        raise AlreadyExists(
            f"project {body.slug!r} already exists in company {company!r}", name=body.slug
        ) from None
    return _project_out(company, project)


def list_projects(
    rt: Runtime,
    actor: Principal,
    company: str,
    *,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[ProjectOut]:
    size = page_limit(limit)
    with rt.db.read() as s:
        owner = company_by_slug(s, actor, company)
        query = (
            select(Project)
            .where(Project.company_id == owner.id)
            .order_by(Project.id)
            .limit(size + 1)
        )
        if cursor:
            query = query.where(Project.id > cursor_key(cursor))
        rows = s.scalars(query).all()
    page, next_cursor = split_page(rows, size, lambda p: p.id)
    return Page(
        items=[_project_out(company, p) for p in page],
        next_cursor=next_cursor,
    )


def create_zone(rt: Runtime, actor: Principal, body: ZoneCreate) -> ZoneOut:
    require_group_admin(actor, "creating a zone")
    if (body.kind is ZoneKind.LOCAL) != (body.owner_company is not None):
        raise InvalidInput(
            "a local zone needs owner_company; shared and external zones have none",
            errors=[{"field": "owner_company", "message": "required exactly for kind=local"}],
        )
    try:
        with rt.db.write() as s:
            owner_id = (
                company_by_slug(s, actor, body.owner_company).id if body.owner_company else None
            )
            zone = Zone(
                name=body.name,
                kind=body.kind.value,
                owner_company_id=owner_id,
                description=body.description,
            )
            s.add(zone)
            s.flush()
            events.record(
                s, actor.actor, "zone.created", f"zone/{body.name}", data={"kind": body.kind.value}
            )
    except IntegrityError:
        raise AlreadyExists(f"zone {body.name!r} already exists", name=body.name) from None
    return ZoneOut(
        name=zone.name,
        kind=ZoneKind(zone.kind),
        owner_company=body.owner_company,
        description=zone.description,
        created_at=zone.created_at,
    )


def list_zones(rt: Runtime, actor: Principal) -> list[ZoneOut]:
    """Zones are few; listed whole (every role may read them to place allocations)."""
    with rt.db.read() as s:
        rows = s.execute(
            select(Zone, Company.slug)
            .outerjoin(Company, Company.id == Zone.owner_company_id)
            .order_by(Zone.name)
        ).all()
    return [
        ZoneOut(
            name=z.name,
            kind=ZoneKind(z.kind),
            owner_company=owner,
            description=z.description,
            created_at=z.created_at,
        )
        for z, owner in rows
    ]


def _project_out(company: str, p: Project) -> ProjectOut:
    return ProjectOut(
        company=company,
        slug=p.slug,
        name=p.name,
        default_priority=p.default_priority,
        created_at=p.created_at,
    )


def update_company(rt: Runtime, actor: Principal, slug: str, body: CompanyUpdate) -> CompanyOut:
    """Change a company's fair-share weight (group admins); the next scheduler cycle uses it."""
    require_group_admin(actor, "changing a company")
    with rt.db.write() as s:
        company = company_by_slug(s, actor, slug)
        company.fair_weight = body.fair_weight
        events.record(
            s,
            actor.actor,
            "company.updated",
            f"company/{slug}",
            company.id,
            {"fair_weight": body.fair_weight},
        )
        s.flush()
        return CompanyOut.model_validate(company)


def update_project(
    rt: Runtime, actor: Principal, company: str, slug: str, body: ProjectUpdate
) -> ProjectOut:
    """Change a project's default priority (company admins); requests queued from now on
    use it (within ``token_cache_s`` in other API processes)."""
    with rt.db.write() as s:
        owner = company_by_slug(s, actor, company)
        if not actor.can_administer(owner.id):
            raise Forbidden("changing a project needs a company-admin or group-admin token")
        project = s.scalar(
            select(Project).where(Project.company_id == owner.id, Project.slug == slug)
        )
        if project is None:
            raise NotFound(
                f"project {slug!r} not found in company {company!r}", resource="project", name=slug
            )
        project.default_priority = body.default_priority
        events.record(
            s,
            actor.actor,
            "project.updated",
            f"project/{company}/{slug}",
            owner.id,
            {"default_priority": body.default_priority},
        )
        s.flush()
        out = _project_out(company, project)
    rt.names.forget_priority(project.id)
    return out

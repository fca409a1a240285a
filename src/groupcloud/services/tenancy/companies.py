"""Companies and projects."""

from __future__ import annotations

from sqlalchemy import select

from groupcloud.db.models import CompanyRow, ProjectRow
from groupcloud.db.unique import add_unique
from groupcloud.domain.policy import Action
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import NotFound
from groupcloud.schemas.base import Page
from groupcloud.schemas.tenancy import (
    Company,
    CompanyCreate,
    CompanyUpdate,
    Project,
    ProjectCreate,
    ProjectUpdate,
)
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require, require_group_admin

__all__ = [
    "create_company",
    "create_project",
    "get_company",
    "list_companies",
    "list_projects",
]


def create_company(rt: Runtime, actor: Principal, body: CompanyCreate) -> Company:
    require_group_admin(actor, "creating a company")
    now = rt.clock()
    with rt.db.write() as s:
        company = CompanyRow(
            slug=body.slug, name=body.name, fair_weight=body.fair_weight, created_at=now
        )
        add_unique(s, company, f"company {body.slug!r}", name=body.slug)
        events.record(s, actor.actor, "company.created", f"company/{body.slug}", company.id, at=now)
    return Company.model_validate(company)


def get_company(rt: Runtime, actor: Principal, slug: str) -> Company:
    with rt.db.read() as s:
        return Company.model_validate(company_by_slug(s, actor, slug))


def list_companies(
    rt: Runtime, actor: Principal, *, cursor: str | None = None, limit: int | None = None
) -> Page[Company]:
    size = page_limit(limit)
    query = select(CompanyRow).order_by(CompanyRow.id).limit(size + 1)
    if cursor:
        query = query.where(CompanyRow.id > cursor_key(cursor))
    if not actor.sees_all:
        query = query.where(CompanyRow.id == actor.company_id)
    with rt.db.read() as s:
        rows = s.scalars(query).all()
    page, next_cursor = split_page(rows, size, lambda c: c.id)
    return Page(items=[Company.model_validate(c) for c in page], next_cursor=next_cursor)


def create_project(rt: Runtime, actor: Principal, company: str, body: ProjectCreate) -> Project:
    now = rt.clock()
    with rt.db.write() as s:
        owner = company_by_slug(s, actor, company)
        require(actor, Action.MANAGE, owner.id, "creating a project")
        project = ProjectRow(
            company_id=owner.id,
            slug=body.slug,
            name=body.name or body.slug,
            default_priority=body.default_priority,
            default_data_class=body.default_data_class.value,
            default_system_type=body.default_system_type.value,
            created_at=now,
        )
        add_unique(s, project, f"project {body.slug!r} of company {company!r}", name=body.slug)
        events.record(
            s, actor.actor, "project.created", f"project/{company}/{body.slug}", owner.id, at=now
        )
    return _project_out(company, project)


def list_projects(
    rt: Runtime,
    actor: Principal,
    company: str,
    *,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Project]:
    size = page_limit(limit)
    with rt.db.read() as s:
        owner = company_by_slug(s, actor, company)
        query = (
            select(ProjectRow)
            .where(ProjectRow.company_id == owner.id)
            .order_by(ProjectRow.id)
            .limit(size + 1)
        )
        if cursor:
            query = query.where(ProjectRow.id > cursor_key(cursor))
        rows = s.scalars(query).all()
    page, next_cursor = split_page(rows, size, lambda p: p.id)
    return Page(
        items=[_project_out(company, p) for p in page],
        next_cursor=next_cursor,
    )


def _project_out(company: str, p: ProjectRow) -> Project:
    return Project(
        company=company,
        slug=p.slug,
        name=p.name,
        default_priority=p.default_priority,
        default_data_class=Sensitivity(p.default_data_class),
        default_system_type=SystemType(p.default_system_type),
        created_at=p.created_at,
    )


def update_company(rt: Runtime, actor: Principal, slug: str, body: CompanyUpdate) -> Company:
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
            at=rt.clock(),
        )
        s.flush()
        return Company.model_validate(company)


def update_project(
    rt: Runtime, actor: Principal, company: str, slug: str, body: ProjectUpdate
) -> Project:
    """Change a project's defaults: priority, data class, system type (company admins);
    requests from now on use them (within ``priority_cache_s`` in other API processes).
    Allocations made before keep what they were made with."""
    with rt.db.write() as s:
        owner = company_by_slug(s, actor, company)
        require(actor, Action.MANAGE, owner.id, "changing a project")
        project = s.scalar(
            select(ProjectRow).where(ProjectRow.company_id == owner.id, ProjectRow.slug == slug)
        )
        if project is None:
            raise NotFound(
                f"project {slug!r} not found in company {company!r}", resource="project", name=slug
            )
        changes = body.model_dump(exclude_none=True, mode="json")
        for key, value in changes.items():
            setattr(project, key, value)
        events.record(
            s,
            actor.actor,
            "project.updated",
            f"project/{company}/{slug}",
            owner.id,
            changes,
            at=rt.clock(),
        )
        s.flush()
        out = _project_out(company, project)
    rt.names.forget_priority(project.id)
    return out

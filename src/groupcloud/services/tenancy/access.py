"""Access checks shared by the services (the rules themselves are in domain/tenancy.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import CompanyRow
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import Forbidden, InvalidInput, NotFound
from groupcloud.services.common.runtime import Runtime

__all__ = ["company_by_slug", "owner_slug", "require_group_admin", "usable_company"]


def require_group_admin(actor: Principal, action: str) -> None:
    if not actor.is_group_admin:
        raise Forbidden(f"{action} needs a group-admin token (this token is {actor.role.value})")


def owner_slug(actor: Principal, given: str | None) -> str:
    """The company a request is for: the one it names, else the token's own. A group-admin
    token has no company of its own, so its requests must name one."""
    slug = given or actor.company
    if slug is None:
        raise InvalidInput(
            "company is required with a group-admin token",
            errors=[{"field": "company", "message": "required for group-admin tokens"}],
        )
    return slug


def usable_company(rt: Runtime, actor: Principal, slug: str) -> int:
    """The id of a company whose objects ``actor`` may use, from the process's name cache
    (not_found otherwise, as for every object of another company)."""
    company_id = rt.names.company(slug)
    if company_id is None or not actor.can_use(company_id):
        raise NotFound(f"company {slug!r} not found", resource="company", name=slug)
    return company_id


def company_by_slug(s: Session, actor: Principal, slug: str) -> CompanyRow:
    """The company, if it exists and ``actor`` may see it (otherwise not_found, not forbidden,
    so a company cannot even learn which other companies exist)."""
    company = s.scalar(select(CompanyRow).where(CompanyRow.slug == slug))
    if company is None or not actor.can_see(company.id):
        raise NotFound(f"company {slug!r} not found", resource="company", name=slug)
    return company

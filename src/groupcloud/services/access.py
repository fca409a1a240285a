"""Access checks shared by the services (the rules themselves are in domain/tenancy.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import Company
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import Forbidden, InvalidInput, NotFound

__all__ = ["company_by_slug", "owner_slug", "require_group_admin"]


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


def company_by_slug(s: Session, actor: Principal, slug: str) -> Company:
    """The company, if it exists and ``actor`` may see it (otherwise not_found, not forbidden,
    so a company cannot even learn which other companies exist)."""
    company = s.scalar(select(Company).where(Company.slug == slug))
    if company is None or not actor.can_see(company.id):
        raise NotFound(f"company {slug!r} not found", resource="company", name=slug)
    return company

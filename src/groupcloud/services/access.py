"""Access checks shared by the services (the rules themselves are in domain/tenancy.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import Company
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import Forbidden, NotFound

__all__ = ["company_by_slug", "require_group_admin"]


def require_group_admin(actor: Principal, action: str) -> None:
    if not actor.is_group_admin:
        raise Forbidden(f"{action} needs a group-admin token (this token is {actor.role.value})")


def company_by_slug(s: Session, actor: Principal, slug: str) -> Company:
    """The company, if it exists and ``actor`` may see it (otherwise not_found, not forbidden,
    so a company cannot even learn which other companies exist)."""
    company = s.scalar(select(Company).where(Company.slug == slug))
    if company is None or not actor.can_see(company.id):
        raise NotFound(f"company {slug!r} not found", resource="company", name=slug)
    return company

"""Access checks shared by the services: the policy's answers (domain.policy) turned into
the API's errors (403 forbidden, or not_found for what the caller may not see)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import CompanyRow
from groupcloud.domain.policy import ROLES, Action, Decision
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import Forbidden, InvalidInput, NotFound
from groupcloud.services.common.runtime import Runtime

__all__ = [
    "company_by_slug",
    "company_not_found",
    "owner_slug",
    "require",
    "require_group_admin",
    "roles_allowed",
    "shown_companies",
    "usable_company",
]


def roles_allowed(action: Action) -> str:
    """The roles granted ``action``, for error messages: 'a company-admin or group-admin'."""
    names = [role.value for role, grant in ROLES.items() if action in grant.actions]
    return "a " + " or ".join(names)


def require(
    actor: Principal,
    action: Action,
    company_id: int | None,
    what: str,
    hidden: Callable[[], Exception] | None = None,
) -> None:
    """Raise unless the policy allows ``action`` on objects of ``company_id``: ``hidden()``
    (a not_found of the object asked for) when the caller may not even see them,
    forbidden when it sees them but its role lacks the action."""
    decision = actor.decide(action, company_id)
    if decision is Decision.HIDE and hidden is not None:
        raise hidden()
    if decision is not Decision.ALLOW:
        raise Forbidden(
            f"{what} needs {roles_allowed(action)} token (this token is {actor.role.value})"
        )


def require_group_admin(actor: Principal, what: str) -> None:
    """Changes to the group's pool (companies, zones, hosts, quotas, supernets, ...)."""
    if not actor.may(Action.OPERATE, None):
        raise Forbidden(f"{what} needs a group-admin token (this token is {actor.role.value})")


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


def usable_company(
    rt: Runtime, actor: Principal, slug: str, action: Action = Action.USE, what: str = "this"
) -> int:
    """The id of a company on whose objects ``actor`` may do ``action``, from the process's
    name cache (not_found if it cannot see the company, as for every object of another
    company; forbidden if it sees it but its role lacks the action)."""
    company_id = rt.names.company(slug)
    if company_id is None:
        raise company_not_found(slug)
    require(actor, action, company_id, what, lambda: company_not_found(slug))
    return company_id


def shown_companies(actor: Principal) -> frozenset[str] | None:
    """The companies whose lines of a group-wide report ``actor`` may read (None: all).
    Company roles read their own company's lines and the group's totals."""
    if actor.sees_all:
        return None
    return frozenset({actor.company} if actor.company else set())


def company_not_found(slug: str) -> NotFound:
    return NotFound(f"company {slug!r} not found", resource="company", name=slug)


def company_by_slug(s: Session, actor: Principal, slug: str) -> CompanyRow:
    """The company, if it exists and ``actor`` may see it (otherwise not_found, not forbidden,
    so a company cannot even learn which other companies exist)."""
    company = s.scalar(select(CompanyRow).where(CompanyRow.slug == slug))
    if company is None or not actor.can_see(company.id):
        raise company_not_found(slug)
    return company

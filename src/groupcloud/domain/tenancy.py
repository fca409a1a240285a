"""The authenticated caller and the names of tenants.

Invariant 4 of the design (a company never sees or changes another company's objects
unless a group role allows it) is decided by ``domain.policy``; services ask the
predicates of ``Principal``, routes never decide access themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from groupcloud.domain.policy import Action, Decision, Role, Scope, decide, grant_of

__all__ = ["LOCAL_TOKEN_ID", "SLUG", "Principal", "Role", "check_slug", "shown_actor"]

LOCAL_TOKEN_ID = 0
"""The token id of the principal of local commands (no API token involved)."""

SLUG = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def check_slug(value: str, what: str = "name") -> str:
    """Names of companies, projects and zones: lower-case, digits and dashes, <= 63 chars."""
    if not SLUG.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter and use only a-z, 0-9 and '-' "
            "(at most 63 characters)"
        )
    return value


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    token_id: int
    name: str
    role: Role
    company_id: int | None = None
    company: str | None = None

    @property
    def sees_all(self) -> bool:
        """Reads every company's objects (lists are not narrowed to one company)."""
        return grant_of(self.role).scope is Scope.GROUP

    def decide(self, action: Action, company_id: int | None) -> Decision:
        """The policy's answer for ``action`` on objects of ``company_id`` (domain.policy)."""
        return decide(self.role, self.company_id, action, company_id)

    def may(self, action: Action, company_id: int | None) -> bool:
        return self.decide(action, company_id) is Decision.ALLOW

    def can_see(self, company_id: int | None) -> bool:
        """Objects of ``company_id`` (None = group-wide objects such as hosts) are visible."""
        return self.may(Action.READ, company_id)

    def can_administer(self, company_id: int) -> bool:
        """May manage projects, tokens and the network layout of that company."""
        return self.may(Action.MANAGE, company_id)

    @property
    def actor(self) -> str:
        """How the caller appears in the audit trail: ``token:<name>`` for group tokens,
        ``token:<name>@<company>`` for a company's, ``local`` for administrative commands
        run against the database directly. The company is part of it so that another
        company is shown the company, never the token (``shown_actor``)."""
        if self.token_id == LOCAL_TOKEN_ID:
            return "local"
        return f"token:{self.name}" + (f"@{self.company}" if self.company else "")


def shown_actor(stored: str, viewer: Principal) -> str:
    """``stored`` (a ``Principal.actor``) as ``viewer`` may see it: a token of another
    company becomes ``company:<slug>`` for company roles, whose business another
    company's token names are not. Slugs hold no ``@``, so the last one splits."""
    name, at, company = stored.rpartition("@")
    if not at or not name.startswith("token:") or viewer.sees_all or company == viewer.company:
        return stored
    return f"company:{company}"

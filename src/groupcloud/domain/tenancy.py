"""Who may do what: roles bound to API tokens, and the visibility rule between companies.

Invariant 4 of the design (a company never sees or changes another company's objects
unless a group role allows it) is decided here and only here; services ask these
predicates, routes never decide access themselves.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["LOCAL_TOKEN_ID", "SLUG", "Principal", "Role", "check_slug"]

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


class Role(enum.StrEnum):
    """Roles of API tokens."""

    GROUP_ADMIN = "group-admin"
    """Operates the whole group cloud: companies, zones, hosts, quotas, every allocation."""
    COMPANY_ADMIN = "company-admin"
    """Runs one company: its projects, tokens and allocations."""
    MEMBER = "member"
    """An engineer of one company: creates and releases that company's allocations."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    token_id: int
    name: str
    role: Role
    company_id: int | None = None
    company: str | None = None

    @property
    def is_group_admin(self) -> bool:
        return self.role is Role.GROUP_ADMIN

    def can_see(self, company_id: int | None) -> bool:
        """Objects of ``company_id`` (None = group-wide objects such as hosts) are visible."""
        return self.is_group_admin or company_id is None or company_id == self.company_id

    def can_use(self, company_id: int) -> bool:
        """May create and release allocations of that company."""
        return self.is_group_admin or company_id == self.company_id

    def can_administer(self, company_id: int) -> bool:
        """May manage projects and tokens of that company."""
        return self.is_group_admin or (
            self.role is Role.COMPANY_ADMIN and company_id == self.company_id
        )

    @property
    def actor(self) -> str:
        """How the caller appears in the audit trail: ``token:<name>`` for API callers,
        ``local`` for administrative commands run against the database directly."""
        return "local" if self.token_id == LOCAL_TOKEN_ID else f"token:{self.name}"

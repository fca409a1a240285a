"""Who may do what: the one table of roles, actions and scopes.

Every access decision of the services comes from ``decide`` (through the predicates of
``domain.tenancy.Principal`` and ``services.tenancy.access``), so a role's rights are read
in one place and the role matrix test (tests/api/test_role_matrix.py) checks this table
against every route of the API.

Three answers, not two: an object of a company the caller may not see is *hidden* (the
services answer not_found, exactly as for a missing one, so a company cannot learn what
another has), while an action the caller's role lacks on objects it can see is
*forbidden* (403, so that the caller knows to ask for another token).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ROLES",
    "Action",
    "Decision",
    "Grant",
    "Role",
    "Scope",
    "decide",
    "grant_of",
    "has_company",
]


class Role(enum.StrEnum):
    """Roles of API tokens."""

    GROUP_ADMIN = "group-admin"
    """Operates the whole group cloud: companies, zones, hosts, quotas, every allocation."""
    GROUP_AUDITOR = "group-auditor"
    """Reads everything of every company, the audit trail included; changes nothing."""
    COMPANY_ADMIN = "company-admin"
    """Runs one company: its projects, tokens, allocations and network layout."""
    MEMBER = "member"
    """An engineer of one company: creates and releases that company's allocations and
    addresses."""
    COMPANY_VIEWER = "company-viewer"
    """Reads one company's objects (and the shared pool); changes nothing."""


class Action(enum.StrEnum):
    """What a request does to the objects it touches."""

    READ = "read"
    """See objects: a company's allocations, quotas, networks, usage; the pool's hosts."""
    USE = "use"
    """Create, change and release a company's allocations, addresses and reachability
    checks."""
    MANAGE = "manage"
    """Shape a company: its projects, tokens, subnets, security rules and peerings."""
    OPERATE = "operate"
    """Run the group's pool: companies, zones, hosts, quotas, supernets, VPCs, segment
    pools, peering bans, activity loading."""
    AUDIT = "audit"
    """Read the audit trail."""
    REVIEW_ACCESS = "review-access"
    """List who has access: API tokens (never their secrets)."""


class Scope(enum.Enum):
    GROUP = "group"
    """Every company."""
    COMPANY = "company"
    """The token's own company (and objects of no company, such as hosts)."""


class Decision(enum.Enum):
    ALLOW = "allow"
    FORBID = "forbid"
    """The caller sees the object but its role may not do this: 403."""
    HIDE = "hide"
    """The object belongs to a company the caller may not see: not_found."""


@dataclass(frozen=True, slots=True)
class Grant:
    actions: frozenset[Action]
    scope: Scope


_READ_ONLY = frozenset({Action.READ, Action.AUDIT})

ROLES: dict[Role, Grant] = {
    Role.GROUP_ADMIN: Grant(frozenset(Action), Scope.GROUP),
    Role.GROUP_AUDITOR: Grant(_READ_ONLY | {Action.REVIEW_ACCESS}, Scope.GROUP),
    Role.COMPANY_ADMIN: Grant(
        frozenset({Action.READ, Action.USE, Action.MANAGE, Action.AUDIT, Action.REVIEW_ACCESS}),
        Scope.COMPANY,
    ),
    Role.MEMBER: Grant(frozenset({Action.READ, Action.USE, Action.AUDIT}), Scope.COMPANY),
    Role.COMPANY_VIEWER: Grant(_READ_ONLY, Scope.COMPANY),
}
"""The whole policy. Company roles audit their own company's events only (the scope);
OPERATE is granted only with the group scope, so group-wide objects are changed by group
admins alone."""


def grant_of(role: Role) -> Grant:
    return ROLES[role]


def has_company(role: Role) -> bool:
    """Company roles belong to one company; group roles to none."""
    return ROLES[role].scope is Scope.COMPANY


def decide(role: Role, own_company: int | None, action: Action, company: int | None) -> Decision:
    """May a token of ``role`` (of ``own_company``) do ``action`` on objects of ``company``
    (None: objects of the group, such as hosts, zones and supernets)?"""
    grant = ROLES[role]
    visible = grant.scope is Scope.GROUP or company is None or company == own_company
    if not visible:
        return Decision.HIDE
    if action not in grant.actions:
        return Decision.FORBID
    if company is None and action is not Action.READ and grant.scope is not Scope.GROUP:
        return Decision.FORBID  # the group's own objects are changed by group roles only
    return Decision.ALLOW

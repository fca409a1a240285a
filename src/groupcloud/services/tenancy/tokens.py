"""API tokens: issue, authenticate, list, revoke.

A token is ``gc_`` + 43 random URL-safe characters (256 bits). Only its SHA-256 is
stored: with that much entropy a slow password hash adds nothing, and lookup stays one
indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, or_, select, update

from groupcloud.db.models import ApiTokenRow, CompanyRow
from groupcloud.domain.limits import MAX_KEY
from groupcloud.domain.policy import Action, has_company
from groupcloud.domain.tenancy import LOCAL_TOKEN_ID, Principal, Role
from groupcloud.errors import InvalidInput, NotFound, Unauthenticated
from groupcloud.schemas.base import Page
from groupcloud.schemas.tenancy import Token, TokenCreate, TokenCreated
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require, require_group_admin

__all__ = [
    "SYSTEM",
    "authenticate",
    "hash_secret",
    "issue_token",
    "list_tokens",
    "revoke_token",
]

SYSTEM = Principal(token_id=LOCAL_TOKEN_ID, name="local", role=Role.GROUP_ADMIN)
"""The actor of local administrative commands (seeding, bootstrap tokens)."""

PREFIX = "gc_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(rt: Runtime, actor: Principal, body: TokenCreate) -> TokenCreated:
    """Group admins issue any token; company admins issue tokens of their own company."""
    if has_company(body.role) != (body.company is not None):
        raise InvalidInput(
            "group roles (group-admin, group-auditor) have no company; company roles "
            "(company-admin, member, company-viewer) need one",
            errors=[{"field": "company", "message": "required exactly for company roles"}],
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    now = rt.clock()
    if body.expires_at is not None and body.expires_at <= now:
        raise InvalidInput(
            "expires_at is in the past", errors=[{"field": "expires_at", "message": "past"}]
        )
    with rt.db.write() as s:
        company_id = company_by_slug(s, actor, body.company).id if body.company else None
        if company_id is None:
            require_group_admin(actor, f"issuing {body.role.value} tokens")
        else:
            require(actor, Action.MANAGE, company_id, "issuing tokens")
        token = ApiTokenRow(
            name=body.name,
            token_hash=hash_secret(secret),
            prefix=secret[:10],
            role=body.role.value,
            company_id=company_id,
            created_by=actor.actor,
            created_at=now,
            expires_at=body.expires_at,
        )
        s.add(token)
        s.flush()
        events.record(
            s,
            actor.actor,
            "token.issued",
            f"token/{token.id}",
            company_id,
            {
                "name": body.name,
                "role": body.role.value,
                "expires_at": body.expires_at.isoformat() if body.expires_at else None,
            },
            at=now,
        )
    return TokenCreated(**_out(token, body.company).model_dump(), secret=secret)


_AUTHENTICATE = (
    select(
        ApiTokenRow.id, ApiTokenRow.name, ApiTokenRow.role, ApiTokenRow.company_id, CompanyRow.slug
    )
    .outerjoin(CompanyRow, CompanyRow.id == ApiTokenRow.company_id)
    .where(
        ApiTokenRow.token_hash == bindparam("token_hash"),
        ApiTokenRow.revoked_at.is_(None),
        or_(ApiTokenRow.expires_at.is_(None), ApiTokenRow.expires_at > bindparam("now")),
    )
)


def authenticate(rt: Runtime, secret: str | None) -> Principal:
    """The token's principal, read from the database on every request: one indexed
    equality, so a revocation or an expiry holds at once in every process (a cache
    would let a revoked token work on elsewhere for its lifetime)."""
    if not secret:
        raise Unauthenticated("send an API token: 'Authorization: Bearer <token>'")
    with rt.db.read_conn() as conn:
        row = conn.execute(
            _AUTHENTICATE, {"token_hash": hash_secret(secret), "now": rt.clock()}
        ).first()
    if row is None:
        raise Unauthenticated("the API token is unknown, expired or revoked")
    token_id, name, role, company_id, company = row
    return Principal(
        token_id=token_id, name=name, role=Role(role), company_id=company_id, company=company
    )


def list_tokens(
    rt: Runtime,
    actor: Principal,
    *,
    company: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Token]:
    """Tokens a caller may administer: all for group admins, its company's for company admins."""
    size = page_limit(limit)
    query = (
        select(ApiTokenRow, CompanyRow.slug)
        .outerjoin(CompanyRow, CompanyRow.id == ApiTokenRow.company_id)
        .order_by(ApiTokenRow.id)
        .limit(size + 1)
    )
    with rt.db.read() as s:
        if company:
            query = query.where(ApiTokenRow.company_id == company_by_slug(s, actor, company).id)
        require(actor, Action.REVIEW_ACCESS, actor.company_id, "listing tokens")
        if not actor.sees_all:
            query = query.where(ApiTokenRow.company_id == actor.company_id)
        if cursor:
            query = query.where(ApiTokenRow.id > cursor_key(cursor))
        rows = s.execute(query).all()
    page, next_cursor = split_page(rows, size, lambda r: r[0].id)
    return Page(items=[_out(t, slug) for t, slug in page], next_cursor=next_cursor)


def revoke_token(rt: Runtime, actor: Principal, token_id: int) -> Token:
    """Revoke a token (idempotent). The token stops working at once, in every process."""
    if not 0 < token_id <= MAX_KEY:  # no such token; the database would overflow on it
        raise _token_not_found(token_id)
    with rt.db.write() as s:
        row = s.execute(
            select(ApiTokenRow, CompanyRow.slug)
            .outerjoin(CompanyRow, CompanyRow.id == ApiTokenRow.company_id)
            .where(ApiTokenRow.id == token_id)
        ).first()
        if row is None:
            raise _token_not_found(token_id)
        token, company = row
        if token.company_id is None:
            require_group_admin(actor, "revoking group tokens")
        else:
            require(
                actor,
                Action.MANAGE,
                token.company_id,
                "revoking tokens",
                lambda: _token_not_found(token_id),
            )
        if token.revoked_at is None:
            now = rt.clock()
            s.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(revoked_at=now))
            events.record(
                s,
                actor.actor,
                "token.revoked",
                f"token/{token_id}",
                token.company_id,
                at=now,
            )
            s.refresh(token)
        return _out(token, company)


def _token_not_found(token_id: int) -> NotFound:
    return NotFound(f"token {token_id} not found", resource="token", name=str(token_id))


def _out(token: ApiTokenRow, company: str | None) -> Token:
    return Token(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        role=Role(token.role),
        company=company,
        created_at=token.created_at,
        created_by=token.created_by,
        revoked_at=token.revoked_at,
        expires_at=token.expires_at,
    )

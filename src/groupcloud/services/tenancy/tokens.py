"""API tokens: issue, authenticate, list, revoke.

A token is ``gc_`` + 43 random URL-safe characters (256 bits). Only its SHA-256 is
stored: with that much entropy a slow password hash adds nothing, and lookup stays one
indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, select, update

from groupcloud.db.models import ApiTokenRow, CompanyRow
from groupcloud.domain.limits import MAX_KEY
from groupcloud.domain.tenancy import LOCAL_TOKEN_ID, Principal, Role
from groupcloud.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from groupcloud.schemas.base import Page
from groupcloud.schemas.tenancy import Token, TokenCreate, TokenCreated
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug

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
    if (body.role is Role.GROUP_ADMIN) == (body.company is not None):
        raise InvalidInput(
            "group-admin tokens have no company; company-admin and member tokens need one",
            errors=[{"field": "company", "message": "required exactly for company roles"}],
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    now = rt.clock()
    with rt.db.write() as s:
        company_id = company_by_slug(s, actor, body.company).id if body.company else None
        if body.role is Role.GROUP_ADMIN and not actor.is_group_admin:
            raise Forbidden("only a group admin can issue group-admin tokens")
        if company_id is not None and not actor.can_administer(company_id):
            raise Forbidden("issuing tokens needs a company-admin or group-admin token")
        token = ApiTokenRow(
            name=body.name,
            token_hash=hash_secret(secret),
            prefix=secret[:10],
            role=body.role.value,
            company_id=company_id,
            created_by=actor.actor,
            created_at=now,
        )
        s.add(token)
        s.flush()
        events.record(
            s,
            actor.actor,
            "token.issued",
            f"token/{token.id}",
            company_id,
            {"name": body.name, "role": body.role.value},
            at=now,
        )
    return TokenCreated(**_out(token, body.company).model_dump(), secret=secret)


_AUTHENTICATE = (
    select(
        ApiTokenRow.id, ApiTokenRow.name, ApiTokenRow.role, ApiTokenRow.company_id, CompanyRow.slug
    )
    .outerjoin(CompanyRow, CompanyRow.id == ApiTokenRow.company_id)
    .where(ApiTokenRow.token_hash == bindparam("token_hash"), ApiTokenRow.revoked_at.is_(None))
)


def authenticate(rt: Runtime, secret: str | None) -> Principal:
    if not secret:
        raise Unauthenticated("send an API token: 'Authorization: Bearer <token>'")
    token_hash = hash_secret(secret)
    cached = rt.principals.get(token_hash)
    if cached is not None:
        return cached
    with rt.db.read_conn() as conn:
        row = conn.execute(_AUTHENTICATE, {"token_hash": token_hash}).first()
    if row is None:
        raise Unauthenticated("the API token is unknown or revoked")
    token_id, name, role, company_id, company = row
    principal = Principal(
        token_id=token_id, name=name, role=Role(role), company_id=company_id, company=company
    )
    rt.principals.put(token_hash, principal)
    return principal


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
        if not actor.is_group_admin:
            if actor.company_id is None or not actor.can_administer(actor.company_id):
                raise Forbidden("listing tokens needs a company-admin or group-admin token")
            query = query.where(ApiTokenRow.company_id == actor.company_id)
        if cursor:
            query = query.where(ApiTokenRow.id > cursor_key(cursor))
        rows = s.execute(query).all()
    page, next_cursor = split_page(rows, size, lambda r: r[0].id)
    return Page(items=[_out(t, slug) for t, slug in page], next_cursor=next_cursor)


def revoke_token(rt: Runtime, actor: Principal, token_id: int) -> Token:
    """Revoke a token (idempotent). The token stops working at once."""
    if not 0 < token_id <= MAX_KEY:  # no such token; the database would overflow on it
        raise NotFound(f"token {token_id} not found", resource="token", name=str(token_id))
    with rt.db.write() as s:
        row = s.execute(
            select(ApiTokenRow, CompanyRow.slug)
            .outerjoin(CompanyRow, CompanyRow.id == ApiTokenRow.company_id)
            .where(ApiTokenRow.id == token_id)
        ).first()
        if row is None:
            raise NotFound(f"token {token_id} not found", resource="token", name=str(token_id))
        token, company = row
        allowed = actor.is_group_admin or (
            token.company_id is not None and actor.can_administer(token.company_id)
        )
        if not allowed:
            if token.company_id is not None and actor.can_see(token.company_id):
                raise Forbidden("revoking tokens needs a company-admin or group-admin token")
            raise NotFound(f"token {token_id} not found", resource="token", name=str(token_id))
        rt.principals.forget(token_id)
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
    )

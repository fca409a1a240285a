"""The audit trail: one row per state change, written inside the changing transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from groupcloud.db.models import Company, Event, table_of, utcnow
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas import Event as EventOut
from groupcloud.schemas import Page
from groupcloud.services.access import company_by_slug
from groupcloud.services.pagination import cursor_key, page_limit, split_page
from groupcloud.services.runtime import Runtime

__all__ = ["COLUMNS", "INSERT", "list_events", "record", "row"]

INSERT = insert(table_of(Event)).inline()  # built once, so every cache lookup hits
COLUMNS = ("at", "actor", "company_id", "kind", "subject", "data")


def row(
    actor: str,
    kind: str,
    subject: str,
    company_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of one event row (what ``record`` inserts; the claim path inserts it raw)."""
    return {
        "at": utcnow(),
        "actor": actor,
        "company_id": company_id,
        "kind": kind,
        "subject": subject,
        "data": data or {},
    }


def record(
    conn: Connection | Session,
    actor: str,
    kind: str,
    subject: str,
    company_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append an event (e.g. kind ``allocation.created``, subject ``allocation/<id>``)."""
    conn.execute(INSERT, row(actor, kind, subject, company_id, data))


def list_events(
    rt: Runtime,
    actor: Principal,
    *,
    company: str | None = None,
    kind: str | None = None,
    subject: str | None = None,
    after_id: int | None = None,
    tail: int | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[EventOut]:
    """Events visible to ``actor``, oldest first; a company sees only its own events.

    ``after_id`` skips what a follower has seen; ``tail`` keeps only the newest N matching
    events (still oldest first), so ``events --follow`` starts from the recent past."""
    size = page_limit(limit)
    query = (
        select(Event, Company.slug)
        .outerjoin(Company, Company.id == Event.company_id)
        .order_by(Event.id)
        .limit(size + 1)
    )
    if cursor:
        query = query.where(Event.id > cursor_key(cursor))
    if after_id is not None:
        query = query.where(Event.id > after_id)
    if not actor.is_group_admin:
        query = query.where(Event.company_id == actor.company_id)
    if kind:
        query = query.where(Event.kind.startswith(kind, autoescape=True))
    if subject:
        query = query.where(Event.subject == subject)
    with rt.db.read() as s:
        if company:  # not_found for a company the caller may not see, as in every list
            query = query.where(Event.company_id == company_by_slug(s, actor, company).id)
        if tail is not None:
            newest = query.with_only_columns(Event.id).order_by(None).order_by(Event.id.desc())
            first = s.scalars(newest.limit(tail)).all()
            if first:
                query = query.where(Event.id >= first[-1])
        rows = s.execute(query).all()
    page, next_cursor = split_page(rows, size, lambda r: r[0].id)
    items = [
        EventOut(
            id=e.id,
            at=e.at,
            actor=e.actor,
            company=slug,
            kind=e.kind,
            subject=e.subject,
            data=e.data,
        )
        for e, slug in page
    ]
    return Page(items=items, next_cursor=next_cursor)

"""The audit trail: one row per state change, written inside the changing transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from groupcloud.db.audit import INSERT, row
from groupcloud.db.models import CompanyRow, EventRow
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal, shown_actor
from groupcloud.schemas.audit import Event
from groupcloud.schemas.base import Page
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require

__all__ = ["event_out", "list_events", "record"]


def record(
    conn: Connection | Session,
    actor: str,
    kind: str,
    subject: str,
    company_id: int | None = None,
    data: dict[str, Any] | None = None,
    *,
    at: datetime,
) -> None:
    """Append an event (e.g. kind ``allocation.created``, subject ``allocation/<id>``) that
    happened at ``at`` (the runtime's clock, read once by the changing use case)."""
    conn.execute(INSERT, row(actor, kind, subject, company_id, data, at=at))


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
) -> Page[Event]:
    """Events visible to ``actor``, oldest first; a company sees only its own events.

    ``after_id`` skips what a follower has seen; ``tail`` keeps only the newest N matching
    events (still oldest first), so ``events --follow`` starts from the recent past."""
    size = page_limit(limit)
    query = (
        select(EventRow, CompanyRow.slug)
        .outerjoin(CompanyRow, CompanyRow.id == EventRow.company_id)
        .order_by(EventRow.id)
        .limit(size + 1)
    )
    if cursor:
        query = query.where(EventRow.id > cursor_key(cursor))
    if after_id is not None:
        query = query.where(EventRow.id > after_id)
    require(actor, Action.AUDIT, actor.company_id, "reading the audit trail")
    if not actor.sees_all:
        query = query.where(EventRow.company_id == actor.company_id)
    if kind:
        query = query.where(EventRow.kind.startswith(kind, autoescape=True))
    if subject:
        query = query.where(EventRow.subject == subject)
    with rt.db.read() as s:
        if company:  # not_found for a company the caller may not see, as in every list
            query = query.where(EventRow.company_id == company_by_slug(s, actor, company).id)
        if tail is not None:
            newest = (
                query.with_only_columns(EventRow.id).order_by(None).order_by(EventRow.id.desc())
            )
            first = s.scalars(newest.limit(tail)).all()
            if first:
                query = query.where(EventRow.id >= first[-1])
        rows = s.execute(query).all()
    page, next_cursor = split_page(rows, size, lambda r: r[0].id)
    return Page(items=[event_out(e, slug, actor) for e, slug in page], next_cursor=next_cursor)


def event_out(e: EventRow, company: str | None, viewer: Principal) -> Event:
    """A stored event as the API shows it to ``viewer`` (``company``: the slug of its
    company; another company's token shown as that company)."""
    return Event(
        id=e.id,
        at=e.at,
        actor=shown_actor(e.actor, viewer),
        company=company,
        kind=e.kind,
        subject=e.subject,
        data=e.data,
    )

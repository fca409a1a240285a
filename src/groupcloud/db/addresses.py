"""Statements on address rows that the claim path shares with the address use cases:
releasing an allocation's (or a hand-asked) addresses into quarantine."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from groupcloud.db.models import IpAddressRow, table_of

__all__ = ["release_rows"]

_IP = table_of(IpAddressRow)


def release_rows(
    conn: Connection, where: Any, now: datetime, quarantine_s: float
) -> list[tuple[int, str, str]]:
    """Release the held, unreleased addresses matching ``where``: they enter quarantine
    (they stay held, so nobody's free space changes and no lock is needed). Returns (id,
    address, kind) of each released."""
    rows = conn.execute(
        select(_IP.c.id, _IP.c.address, _IP.c.kind)
        .where(where, _IP.c.released_at.is_(None))
        .order_by(_IP.c.id)
        .with_for_update()
    ).all()
    if rows:
        conn.execute(
            update(_IP)
            .where(_IP.c.id.in_([r.id for r in rows]), _IP.c.released_at.is_(None))
            .values(
                released_at=now,
                reusable_at=now + timedelta(seconds=quarantine_s),
                attached_to=None,
            )
        )
        # floating addresses attached to a released one are detached, not released
        conn.execute(
            update(_IP).where(_IP.c.attached_to.in_([r.id for r in rows])).values(attached_to=None)
        )
    return [(r.id, r.address, r.kind) for r in rows]

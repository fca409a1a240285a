"""Leases: warnings before an allocation's lease ends, and what happens when it does.

Run by the worker. Each warning threshold (``lease_warnings_s``, e.g. one hour and ten
minutes before) is written once as an ``allocation.lease_warning`` event; an extension
re-arms them. At the end, ``on_expiry=release`` releases the allocation (a pending one
is cancelled) and ``notify`` writes ``allocation.expired`` once and keeps it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from groupcloud.db import claims
from groupcloud.db.models import AllocationRow, table_of
from groupcloud.domain.allocation import AllocationState, EndReason, OnExpiry
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime

__all__ = ["tick"]

ACTOR = "lease-expiry"
_ALLOC = table_of(AllocationRow)
_NOTIFIED = 0
"""``lease_warned_s`` of an allocation whose expiry was notified (``on_expiry=notify``)."""


def tick(rt: Runtime, now: datetime) -> tuple[int, int]:
    """Write due warnings and end expired leases: (warnings written, leases ended)."""
    thresholds = sorted({int(t) for t in rt.settings.lease_warnings_s if t > 0}, reverse=True)
    horizon = now + timedelta(seconds=thresholds[0] if thresholds else 0)
    live = (
        AllocationState.PENDING.value,
        AllocationState.ACTIVE.value,
        AllocationState.RECLAIMING.value,
    )
    with rt.db.read_conn() as conn:
        rows = conn.execute(
            select(
                _ALLOC.c.id,
                _ALLOC.c.company_id,
                _ALLOC.c.state,
                _ALLOC.c.expires_at,
                _ALLOC.c.on_expiry,
                _ALLOC.c.lease_warned_s,
            )
            .where(
                _ALLOC.c.state.in_(live),
                _ALLOC.c.expires_at <= horizon,
                or_(_ALLOC.c.lease_warned_s.is_(None), _ALLOC.c.lease_warned_s != _NOTIFIED),
            )
            .order_by(_ALLOC.c.expires_at)
        ).all()
    warned = ended = 0
    for r in rows:
        left = (r.expires_at - now).total_seconds()
        if left <= 0:
            if r.on_expiry == OnExpiry.RELEASE.value or r.state == AllocationState.PENDING.value:
                ended += _expire(rt, r.id, now)
            else:
                warned += _mark(
                    rt,
                    r.id,
                    r.company_id,
                    r.lease_warned_s,
                    _NOTIFIED,
                    "allocation.expired",
                    {"on_expiry": r.on_expiry},
                    now,
                )
            continue
        due = [t for t in thresholds if left <= t]
        if due and (r.lease_warned_s is None or due[-1] < r.lease_warned_s):
            warned += _mark(
                rt,
                r.id,
                r.company_id,
                r.lease_warned_s,
                due[-1],
                "allocation.lease_warning",
                {
                    "expires_at": r.expires_at.isoformat(),
                    "seconds_left": int(left),
                    "on_expiry": r.on_expiry,
                },
                now,
            )
    return warned, ended


def _mark(
    rt: Runtime,
    alloc_id: str,
    company_id: int,
    was: int | None,
    to: int,
    kind: str,
    data: dict[str, object],
    now: datetime,
) -> int:
    with rt.db.write() as s:
        conn = s.connection()
        same = _ALLOC.c.lease_warned_s.is_(None) if was is None else _ALLOC.c.lease_warned_s == was
        moved = conn.execute(
            update(_ALLOC).where(_ALLOC.c.id == alloc_id, same).values(lease_warned_s=to)
        )
        if moved.rowcount != 1:
            return 0  # another worker (or an extension) got there first
        events.record(conn, ACTOR, kind, f"allocation/{alloc_id}", company_id, data, at=now)
        return 1


def _expire(rt: Runtime, alloc_id: str, now: datetime) -> int:
    def attempt() -> claims.HostChanges | None:
        with rt.db.write() as s:
            return claims.end(
                s.connection(),
                ACTOR,
                alloc_id,
                EndReason.EXPIRED,
                quarantine_s=rt.settings.ip_quarantine_s,
                now=now,
            )

    deltas = rt.db.retrying(attempt)
    if deltas is None:
        return 0
    rt.index.apply(deltas)
    return 1

"""Idle reclaim: allocations that report low utilisation for long are flagged, then released.

Agents (or anybody allowed to use the allocation) report a busy fraction per allocation.
An allocation below ``idle_threshold`` since ``idle_since`` is flagged after
``idle_window_s`` (event ``allocation.idle_flagged``: the owner is told) and released
``idle_grace_s`` later, unless it reported busy again meanwhile or is marked ``keep``.
Allocations that never report are never called idle: no data is not evidence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import case, select, update

from groupcloud.db import claims
from groupcloud.db.models import AllocationRow, CompanyRow, table_of
from groupcloud.domain.allocation import AllocationState, EndReason
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas.compute import UtilisationReport
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.allocations import allocation_not_found
from groupcloud.services.tenancy.access import require

__all__ = ["report", "tick"]

ACTOR = "idle-reclaim"
_ALLOC = table_of(AllocationRow)
_HOLDING = (AllocationState.ACTIVE.value, AllocationState.RECLAIMING.value)


def report(rt: Runtime, actor: Principal, reports: list[UtilisationReport]) -> int:
    """Store utilisation reports (all or none); the number stored (reports for allocations
    that hold nothing -- pending or released -- are ignored). An unknown or foreign
    allocation fails the whole batch with not_found."""
    threshold = rt.settings.idle_threshold
    now = rt.clock()
    with rt.db.write() as s:
        conn = s.connection()
        ids = sorted({r.allocation for r in reports})
        owners: dict[str, int] = dict(
            conn.execute(select(_ALLOC.c.id, _ALLOC.c.company_id).where(_ALLOC.c.id.in_(ids))).all()
        )
        for alloc_id in ids:
            if alloc_id not in owners:
                raise allocation_not_found(alloc_id)
            require(
                actor,
                Action.USE,
                owners[alloc_id],
                "reporting utilisation",
                partial(allocation_not_found, alloc_id),
            )
        stored = 0
        for r in sorted(reports, key=lambda r: (r.allocation, r.at or now)):
            at = r.at or now
            idle = r.utilisation < threshold
            was_flagged = conn.scalar(
                select(_ALLOC.c.idle_flagged_at).where(
                    _ALLOC.c.id == r.allocation, _ALLOC.c.state.in_(_HOLDING)
                )
            )
            stored += conn.execute(
                update(_ALLOC)
                .where(_ALLOC.c.id == r.allocation, _ALLOC.c.state.in_(_HOLDING))
                .values(
                    utilisation=r.utilisation,
                    reported_at=at,
                    idle_since=case((_ALLOC.c.idle_since.is_(None), at), else_=_ALLOC.c.idle_since)
                    if idle
                    else None,
                    idle_flagged_at=_ALLOC.c.idle_flagged_at if idle else None,
                )
            ).rowcount
            if was_flagged is not None and not idle:
                events.record(
                    conn,
                    actor.actor,
                    "allocation.idle_cleared",
                    f"allocation/{r.allocation}",
                    owners[r.allocation],
                    {"utilisation": r.utilisation},
                    at=now,
                )
    return stored


def tick(rt: Runtime, now: datetime) -> tuple[int, int]:
    """Flag allocations idle for the window, release flagged ones after the grace period:
    (flagged, released)."""
    settings = rt.settings
    window_start = now - timedelta(seconds=settings.idle_window_s)
    grace_start = now - timedelta(seconds=settings.idle_grace_s)
    with rt.db.read_conn() as conn:
        to_flag = conn.execute(
            select(_ALLOC.c.id, _ALLOC.c.company_id, _ALLOC.c.idle_since, CompanyRow.slug)
            .join(CompanyRow, CompanyRow.id == _ALLOC.c.company_id)
            .where(
                _ALLOC.c.state.in_(_HOLDING),
                _ALLOC.c.keep.is_(False),
                _ALLOC.c.idle_flagged_at.is_(None),
                _ALLOC.c.idle_since <= window_start,
            )
        ).all()
        to_release = conn.scalars(
            select(_ALLOC.c.id).where(
                _ALLOC.c.state.in_(_HOLDING),
                _ALLOC.c.keep.is_(False),
                _ALLOC.c.idle_flagged_at <= grace_start,
            )
        ).all()
    flagged = released = 0
    for alloc_id, company_id, since, _slug in to_flag:
        with rt.db.write() as s:
            conn = s.connection()
            moved = conn.execute(
                update(_ALLOC)
                .where(
                    _ALLOC.c.id == alloc_id,
                    _ALLOC.c.idle_flagged_at.is_(None),
                    _ALLOC.c.idle_since == since,
                    _ALLOC.c.keep.is_(False),
                )
                .values(idle_flagged_at=now)
            )
            if moved.rowcount == 1:
                flagged += 1
                release_at = now + timedelta(seconds=settings.idle_grace_s)
                events.record(
                    conn,
                    ACTOR,
                    "allocation.idle_flagged",
                    f"allocation/{alloc_id}",
                    company_id,
                    {"idle_since": since.isoformat(), "release_at": release_at.isoformat()},
                    at=now,
                )
    for alloc_id in to_release:
        deltas = rt.db.retrying(partial(_release_idle, rt, alloc_id, grace_start, now))
        if deltas is not None:
            released += 1
            rt.index.apply(deltas)
    return flagged, released


def _release_idle(
    rt: Runtime, alloc_id: str, grace_start: datetime, now: datetime
) -> claims.HostChanges | None:
    with rt.db.write() as s:
        conn = s.connection()
        still = conn.scalar(
            select(_ALLOC.c.id)
            .where(
                _ALLOC.c.id == alloc_id,
                _ALLOC.c.keep.is_(False),
                _ALLOC.c.idle_flagged_at <= grace_start,
            )
            .with_for_update()  # a keep mark or a busy report may land concurrently
        )
        if still is None:  # busy again or marked keep since the snapshot
            return None
        return claims.end(
            conn,
            ACTOR,
            alloc_id,
            EndReason.IDLE,
            from_states=(AllocationState.ACTIVE, AllocationState.RECLAIMING),
            quarantine_s=rt.settings.ip_quarantine_s,
            now=now,
        )

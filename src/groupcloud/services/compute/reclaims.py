"""Reclaim: borrowed capacity goes back to its lender, with notice.

``start`` picks the victims (``quota.reclaim.select_victims``: Kueue's reclaim within the
cohort -- the running allocations of the companies above nominal in the classes the
lenders miss, lowest priority first, then most recently started, none before its minimum
runtime, no more of a company than brings it back within its nominal) and moves them to
``reclaiming`` with a deadline.
``start_zone_reclaims`` does the same for local zones lent to other companies, when their
owner needs the zone back.
``finish_due`` ends those whose notice is over: the capacity and the loans go back, and
the allocation either queues again after a backoff (``on_reclaim=requeue``, doubling
with every reclaim of the same allocation) or ends (``release``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select, update

from groupcloud.db import claims
from groupcloud.db.models import (
    AllocationItemRow,
    AllocationRow,
    HostRow,
    InventoryRow,
    LoanRow,
    ZoneRow,
    table_of,
)
from groupcloud.domain.allocation import AllocationState, EndReason, OnReclaim, PendingReason
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.resources import scale
from groupcloud.quota.reclaim import Candidate, backoff, select_victims, select_zone_victims
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.quotas import gpu_share_charges

__all__ = ["finish_due", "start", "start_zone_reclaims"]

ACTOR = "scheduler"
_ALLOC = table_of(AllocationRow)


def start(
    rt: Runtime,
    needs: dict[tuple[int, str], int],
    above: dict[tuple[int, str], int],
    waiting_for: dict[int, str],
    slugs: dict[int, str],
    now: datetime,
) -> int:
    """Send reclaim notices covering ``needs`` ((lender, class) -> amount); the number sent.

    ``above`` says how far each company is above nominal per class (the cycle's
    snapshot); ``waiting_for`` names, per lender, the request the capacity comes back for."""
    per_class: dict[str, int] = defaultdict(int)
    for (_, rc), n in needs.items():
        per_class[rc] += n
    borrowers = sorted({c for (c, rc) in above if rc in per_class and (c, rc) not in needs})
    if not borrowers:
        return 0
    live = (AllocationRow.state == AllocationState.ACTIVE.value) & AllocationRow.company_id.in_(
        borrowers
    )
    with rt.db.read_conn() as conn:
        candidates = _candidates(conn, live, now)
    victims = select_victims(candidates, needs, above, now)
    if not victims:
        return 0
    notice = rt.settings.reclaim_notice_s
    deadline = now + timedelta(seconds=notice)
    sent = 0
    with rt.db.write() as s:
        conn = s.connection()
        for victim in victims:
            # the lenders waiting for the classes it gives back
            owed = sorted(
                {
                    lender
                    for lender, rc in needs
                    if victim.uses.get(rc, 0) > 0 and lender != victim.company
                }
            )
            reclaim_for = waiting_for.get(owed[0]) if owed else None
            moved = conn.execute(
                update(_ALLOC)
                .where(
                    _ALLOC.c.id == victim.allocation_id,
                    _ALLOC.c.state == AllocationState.ACTIVE.value,
                )
                .values(
                    state=AllocationState.RECLAIMING.value,
                    reclaim_at=deadline,
                    reclaim_for=reclaim_for,
                )
            )
            if moved.rowcount != 1:
                continue  # released meanwhile: what it held is back already
            sent += 1
            events.record(
                conn,
                ACTOR,
                "allocation.reclaim_notice",
                f"allocation/{victim.allocation_id}",
                victim.company,
                {
                    "lenders": [slugs.get(lender, str(lender)) for lender in owed],
                    "for": reclaim_for,
                    "reclaim_at": deadline.isoformat(),
                    "notice_s": notice,
                },
                at=now,
            )
    return sent


def finish_due(rt: Runtime, now: datetime) -> int:
    """End the reclaims whose notice is over; the number ended."""
    with rt.db.read_conn() as conn:
        due = conn.execute(
            select(_ALLOC.c.id, _ALLOC.c.on_reclaim, _ALLOC.c.reclaim_count, _ALLOC.c.reclaim_for)
            .where(_ALLOC.c.state == AllocationState.RECLAIMING.value, _ALLOC.c.reclaim_at <= now)
            .order_by(_ALLOC.c.reclaim_at, _ALLOC.c.seq)
        ).all()
    ended = 0
    for alloc_id, on_reclaim, count, reclaim_for in due:
        requeue_at = None
        if on_reclaim == OnReclaim.REQUEUE.value:
            settings = rt.settings
            wait = backoff(count + 1, settings.reclaim_backoff_s, settings.reclaim_backoff_max_s)
            requeue_at = now + timedelta(seconds=wait)
        deltas = rt.db.retrying(partial(_finish, rt, alloc_id, requeue_at, reclaim_for, now))
        if deltas is not None:
            ended += 1
            rt.index.apply(deltas)
    return ended


def _finish(
    rt: Runtime,
    alloc_id: str,
    requeue_at: datetime | None,
    reclaim_for: str | None,
    now: datetime,
) -> claims.HostChanges | None:
    with rt.db.write() as s:
        conn = s.connection()
        row = conn.execute(
            select(_ALLOC.c.company_id, _ALLOC.c.state)
            .where(_ALLOC.c.id == alloc_id)
            .with_for_update()  # its owner may release it concurrently
        ).first()
        if row is None or row.state != AllocationState.RECLAIMING.value:
            return None  # released by its owner meanwhile
        events.record(
            conn,
            ACTOR,
            "allocation.reclaimed",
            f"allocation/{alloc_id}",
            row.company_id,
            {"for": reclaim_for},
            at=now,
        )
        return claims.end(
            conn,
            ACTOR,
            alloc_id,
            EndReason.RECLAIMED,
            from_states=(AllocationState.RECLAIMING,),
            requeue_at=requeue_at,
            data={"for": reclaim_for},
            quarantine_s=rt.settings.ip_quarantine_s,
            now=now,
        )


def start_zone_reclaims(rt: Runtime, now: datetime) -> int:
    """Take lent local zones back for their owners: when an owner's request that only a
    local zone may take (it names the zone, or asks ``zone_kind=local``) waits for
    capacity, the other companies' allocations in that zone get reclaim notices
    (``select_zone_victims``), as borrowed nominal does; ``finish_due`` ends them. One
    request per zone at a time: none while notices for it are still running."""
    sent = 0
    with rt.db.read_conn() as conn:
        zones = conn.execute(
            select(ZoneRow.id, ZoneRow.name, ZoneRow.owner_company_id, ZoneRow.lent_to).where(
                ZoneRow.kind == ZoneKind.LOCAL.value
            )
        ).all()
    for zone_id, name, owner, lent_to in zones:
        if lent_to and owner is not None:
            sent += _reclaim_zone(rt, zone_id, name, owner, now)
    return sent


def _reclaim_zone(rt: Runtime, zone_id: int, zone: str, owner: int, now: datetime) -> int:
    with rt.db.read_conn() as conn:
        waiting = conn.execute(
            select(_ALLOC.c.id, _ALLOC.c.resources, _ALLOC.c.count)
            .where(
                _ALLOC.c.company_id == owner,
                _ALLOC.c.state == AllocationState.PENDING.value,
                _ALLOC.c.pending_reason == PendingReason.NO_CAPACITY.value,
                (_ALLOC.c.zone == zone) | (_ALLOC.c.zone_kind == ZoneKind.LOCAL.value),
            )
            .order_by(_ALLOC.c.priority.desc(), _ALLOC.c.seq)
            .limit(1)
        ).first()
        if waiting is None or conn.scalar(
            select(func.count()).where(
                _ALLOC.c.state == AllocationState.RECLAIMING.value,
                _ALLOC.c.reclaim_for == waiting.id,
            )
        ):
            return 0
        hosts = select(HostRow.id).where(HostRow.zone_id == zone_id)
        free = dict(
            conn.execute(
                select(
                    InventoryRow.resource_class, func.sum(InventoryRow.capacity - InventoryRow.used)
                )
                .where(InventoryRow.host_id.in_(hosts))
                .group_by(InventoryRow.resource_class)
            ).all()
        )
        need = {
            rc: n - int(free.get(rc, 0))
            for rc, n in scale(waiting[1], int(waiting[2])).items()
            if n > int(free.get(rc, 0))
        }
        if not need:
            return 0  # it fits by the sums: fragmentation, not the lent capacity
        in_zone = AllocationItemRow.host_id.in_(hosts)
        live = (
            (AllocationRow.state == AllocationState.ACTIVE.value)
            & (AllocationRow.company_id != owner)
            & AllocationRow.id.in_(select(AllocationItemRow.allocation_id).where(in_zone))
        )
        candidates = _candidates(conn, live, now, in_zone)
    victims = select_zone_victims(candidates, need, now)
    deadline = now + timedelta(seconds=rt.settings.reclaim_notice_s)
    sent = 0
    with rt.db.write() as s:
        conn = s.connection()
        for victim in victims:
            moved = conn.execute(
                update(_ALLOC)
                .where(
                    _ALLOC.c.id == victim.allocation_id,
                    _ALLOC.c.state == AllocationState.ACTIVE.value,
                )
                .values(
                    state=AllocationState.RECLAIMING.value,
                    reclaim_at=deadline,
                    reclaim_for=waiting.id,
                )
            )
            if moved.rowcount != 1:
                continue
            sent += 1
            events.record(
                conn,
                ACTOR,
                "allocation.reclaim_notice",
                f"allocation/{victim.allocation_id}",
                victim.company,
                {
                    "zone": zone,
                    "reason": "zone_lending",
                    "for": waiting.id,
                    "reclaim_at": deadline.isoformat(),
                    "notice_s": rt.settings.reclaim_notice_s,
                },
                at=now,
            )
    return sent


def _candidates(
    conn: Connection, live: ColumnElement[bool], now: datetime, items: Any = None
) -> list[Candidate]:
    """The running allocations ``live`` selects, as reclaim candidates: what each holds
    per class (``items``: only its items matching this, e.g. on a zone's hosts; GPU
    shares as the whole GPUs they are charged), its loans, priority and runtime."""
    uses: dict[str, dict[str, int]] = defaultdict(dict)
    loans: dict[str, dict[tuple[int, str], int]] = defaultdict(dict)
    meta: dict[str, tuple[int, datetime, int, int, int]] = {}  # priority, started, runtime,
    # owner, seq
    columns = (
        AllocationItemRow.allocation_id,
        AllocationItemRow.resource_class,
        AllocationRow.priority,
        AllocationRow.started_at,
        AllocationRow.minimum_runtime_s,
        AllocationRow.company_id,
        AllocationRow.seq,
    )
    query = (
        select(*columns[:2], func.sum(AllocationItemRow.amount), *columns[2:])
        .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
        .where(live if items is None else live & items)
        .group_by(*columns)
    )
    for alloc_id, rc, amount, priority, started, min_run, company, seq in conn.execute(query):
        uses[alloc_id][rc] = int(amount)
        meta[alloc_id] = (priority, started or now, min_run, company, seq)
    for alloc_id, _, gpus in gpu_share_charges(conn, live):
        uses[alloc_id]["GPU"] = uses[alloc_id].get("GPU", 0) + gpus
    for alloc_id, lender, rc, amount in conn.execute(
        select(LoanRow.allocation_id, LoanRow.lender_id, LoanRow.resource_class, LoanRow.amount)
        .join(AllocationRow, AllocationRow.id == LoanRow.allocation_id)
        .where(live)
    ):
        loans[alloc_id][lender, rc] = amount
    return [
        Candidate(a, m[0], m[1], loans.get(a, {}), m[2], m[4], m[3], uses[a])
        for a, m in meta.items()
        if a in uses
    ]

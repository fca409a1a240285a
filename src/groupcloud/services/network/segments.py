"""VLAN and VXLAN segment pools per zone, and the segment ids handed to VPCs and subnets.

A VPC in a zone with a ``vxlan`` pool gets the lowest free VNI, a subnet in a zone with a
``vlan`` pool the lowest free VLAN id, in the transaction that carves it; the id goes
back when the prefix is deleted. Pools are locked by bumping their ``generation`` (the
same protocol as prefixes, see ``services.common.free_space``), and the partial unique index on
held ids repeats the rule, so no id is ever handed out twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select, update

from groupcloud.db.models import SegmentPoolRow, SegmentRow, ZoneRow, table_of
from groupcloud.db.unique import add_unique
from groupcloud.domain.network import SegmentKind
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AlreadyExists, NotFound, PrefixInUse, SegmentPoolExhausted
from groupcloud.ipam.segments import Segments, SegmentsExhausted
from groupcloud.schemas.network import SegmentPool, SegmentPoolCreate
from groupcloud.services.audit import events
from groupcloud.services.common.free_space import FreeSpaceCache
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import require_group_admin

__all__ = [
    "create_pool",
    "delete_pool",
    "list_pools",
    "release_segments",
    "take_segment",
]

SEGMENTS = "segments"  # cache kind
_POOLS = table_of(SegmentPoolRow)
_SEGS = table_of(SegmentRow)
_LOCK = (
    update(_POOLS)
    .where(_POOLS.c.id == bindparam("b_id"))
    .values(generation=_POOLS.c.generation + 1)
    .returning(_POOLS.c.generation, _POOLS.c.first, _POOLS.c.last)
)


def take_segment(
    conn: Connection,
    cache: FreeSpaceCache[Segments],
    zone_id: int,
    kind: SegmentKind,
    prefix_id: int,
    company_id: int,
    actor: str,
    now: datetime,
) -> tuple[int, list[tuple[int, Segments, int]]] | None:
    """Hand the prefix the lowest free id of the zone's pools of ``kind`` (oldest pool
    first); None when the zone has no such pool. Returns the id and what to put back in
    the cache after the commit: (pool id, free ids, generation)."""
    pools = conn.execute(
        select(_POOLS.c.id, _POOLS.c.name)
        .where(_POOLS.c.zone_id == zone_id, _POOLS.c.kind == kind.value)
        .order_by(_POOLS.c.id)
    ).all()
    if not pools:
        return None
    changed: list[tuple[int, Segments, int]] = []
    for pool_id, _name in pools:
        generation, first, last = conn.execute(_LOCK, {"b_id": pool_id}).one()
        free = cache.take(SEGMENTS, pool_id, generation - 1)
        if free is None:
            held = conn.scalars(
                select(_SEGS.c.value).where(
                    _SEGS.c.pool_id == pool_id, _SEGS.c.released_at.is_(None)
                )
            ).all()
            free = Segments(first, last, held)
        changed.append((pool_id, free, generation))
        try:
            value = free.lowest()
        except SegmentsExhausted:
            continue
        conn.execute(
            _SEGS.insert().values(
                pool_id=pool_id,
                value=value,
                prefix_id=prefix_id,
                company_id=company_id,
                created_at=now,
                created_by=actor,
                released_at=None,
            )
        )
        return value, changed
    names = ", ".join(name for _, name in pools)
    raise SegmentPoolExhausted(
        f"every {kind.value} id of the zone's pools ({names}) is held", kind=kind.value
    )


def release_segments(
    conn: Connection, prefix_id: int, now: datetime, *, forget: bool = False
) -> list[int]:
    """Give back the ids a prefix holds (at once: a segment id carries no stale state);
    ``forget`` also deletes the prefix's segment history (the prefix is being deleted)."""
    held = conn.execute(
        select(_SEGS.c.id, _SEGS.c.pool_id, _SEGS.c.value).where(
            _SEGS.c.prefix_id == prefix_id, _SEGS.c.released_at.is_(None)
        )
    ).all()
    for _, pool_id, _value in sorted(held, key=lambda h: h.pool_id):
        conn.execute(_LOCK, {"b_id": pool_id})  # the pool's free ids change
    if held:
        conn.execute(
            update(_SEGS).where(_SEGS.c.id.in_([h.id for h in held])).values(released_at=now)
        )
    if forget:
        conn.execute(_SEGS.delete().where(_SEGS.c.prefix_id == prefix_id))
    return [h.value for h in held]


def segment_of(conn: Connection, prefix_id: int) -> int | None:
    return conn.scalar(
        select(_SEGS.c.value).where(_SEGS.c.prefix_id == prefix_id, _SEGS.c.released_at.is_(None))
    )


def create_pool(rt: Runtime, actor: Principal, body: SegmentPoolCreate) -> SegmentPool:
    """Give a zone a range of VLAN ids or VNIs (group admins). Pools of one kind in one
    zone never overlap."""
    require_group_admin(actor, "adding a segment pool")
    now = rt.clock()
    with rt.db.write() as s:
        zone = s.scalar(select(ZoneRow).where(ZoneRow.name == body.zone).with_for_update())
        if zone is None:
            raise NotFound(f"zone {body.zone!r} not found", resource="zone", name=body.zone)
        for other in s.scalars(
            select(SegmentPoolRow).where(
                SegmentPoolRow.zone_id == zone.id, SegmentPoolRow.kind == body.kind.value
            )
        ):
            if other.first <= body.last and body.first <= other.last:
                raise AlreadyExists(
                    f"{body.kind.value} ids {body.first}-{body.last} overlap pool {other.name} "
                    f"({other.first}-{other.last}) of zone {body.zone}",
                    name=other.name,
                )
        row = SegmentPoolRow(
            name=body.name,
            zone_id=zone.id,
            kind=body.kind.value,
            first=body.first,
            last=body.last,
            created_by=actor.actor,
            created_at=now,
        )
        add_unique(s, row, f"segment pool {body.name!r}", name=body.name)
        events.record(
            s,
            actor.actor,
            "network.segment_pool_created",
            f"segment-pool/{body.name}",
            None,
            {"zone": body.zone, "kind": body.kind.value, "first": body.first, "last": body.last},
            at=now,
        )
        return _out(s.connection(), row, body.zone)


def delete_pool(rt: Runtime, actor: Principal, name: str) -> SegmentPool:
    """Remove a pool whose ids are all free (group admins); returns it as it was."""
    require_group_admin(actor, "removing a segment pool")
    now = rt.clock()
    with rt.db.write() as s:
        row = s.scalar(select(SegmentPoolRow).where(SegmentPoolRow.name == name).with_for_update())
        if row is None:
            raise NotFound(f"segment pool {name!r} not found", resource="segment_pool", name=name)
        held = _held(s.connection(), row.id)
        if held:
            raise PrefixInUse(f"segment pool {name} still has {held} ids held", holds=held)
        zone = s.get(ZoneRow, row.zone_id)
        out = _out(s.connection(), row, zone.name if zone else "")
        s.execute(_SEGS.delete().where(_SEGS.c.pool_id == row.id))
        s.delete(row)
        events.record(
            s, actor.actor, "network.segment_pool_removed", f"segment-pool/{name}", at=now
        )
        return out


def list_pools(rt: Runtime, actor: Principal) -> list[SegmentPool]:
    """Every pool with its use (any token may read them: they hold no company's data)."""
    with rt.db.read() as s:
        rows = s.execute(
            select(SegmentPoolRow, ZoneRow.name).join(ZoneRow).order_by(SegmentPoolRow.id)
        ).all()
        return [_out(s.connection(), pool, zone) for pool, zone in rows]


def _held(conn: Connection, pool_id: int) -> int:
    return int(
        conn.scalar(
            select(func.count()).where(_SEGS.c.pool_id == pool_id, _SEGS.c.released_at.is_(None))
        )
        or 0
    )


def _out(conn: Connection, row: SegmentPoolRow, zone: str) -> SegmentPool:
    used = _held(conn, row.id)
    size = row.last - row.first + 1
    return SegmentPool(
        name=row.name,
        zone=zone,
        kind=SegmentKind(row.kind),
        first=row.first,
        last=row.last,
        size=size,
        used=used,
        free=size - used,
        created_at=row.created_at,
        created_by=row.created_by,
    )

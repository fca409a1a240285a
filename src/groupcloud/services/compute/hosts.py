"""Hosts and their inventories: add, list, drain, resume, change inventory, remove.

Every change to hosts or inventories bumps ``pool_state.generation`` in the same
transaction so that all processes rebuild their capacity index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.orm import Session

from groupcloud.db.models import (
    AllocationItemRow,
    AllocationRow,
    HostRow,
    InventoryRow,
    PoolStateRow,
    ZoneRow,
    table_of,
)
from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import capacity
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AlreadyExists, HostNotEmpty, InvalidInput, InventoryInUse, NotFound
from groupcloud.schemas.base import Page
from groupcloud.schemas.compute import Host, HostCreate, Inventory, InventoryIn
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import require_group_admin

__all__ = [
    "add_hosts",
    "drain_host",
    "get_host",
    "list_hosts",
    "remove_host",
    "resume_host",
    "set_inventories",
]


def add_hosts(rt: Runtime, actor: Principal, bodies: Sequence[HostCreate]) -> list[Host]:
    """Add hosts in one transaction: all of them or none."""
    require_group_admin(actor, "adding hosts")
    names = [b.name for b in bodies]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(
            f"host names repeat in the request: {', '.join(dupes)}",
            errors=[{"field": "name", "message": f"duplicate: {n}"} for n in dupes],
        )
    now = rt.clock()
    with rt.db.write() as s:
        zones = {z.name: z.id for z in s.scalars(select(ZoneRow))}
        for b in bodies:
            if b.zone not in zones:
                raise NotFound(f"zone {b.zone!r} not found", resource="zone", name=b.zone)
        taken = _live_names(s, names)
        if taken:
            raise AlreadyExists(f"hosts already exist: {', '.join(taken)}", names=taken)
        hosts = [
            HostRow(
                name=b.name, zone_id=zones[b.zone], traits=b.traits, created_at=now, updated_at=now
            )
            for b in bodies
        ]
        s.add_all(hosts)
        s.flush()
        s.execute(
            table_of(InventoryRow).insert(),
            [
                _inventory_values(h.id, rc, inv)
                for h, b in zip(hosts, bodies, strict=True)
                for rc, inv in b.inventories.items()
            ],
        )
        _bump_generation(s)
        for h, b in zip(hosts, bodies, strict=True):
            events.record(
                s,
                actor.actor,
                "host.added",
                f"host/{h.name}",
                data={
                    "zone": b.zone,
                    "inventories": {rc: inv.model_dump() for rc, inv in b.inventories.items()},
                    "traits": b.traits,
                },
                at=now,
            )
        out = [_host_out(s, h) for h in hosts]
    rt.index.invalidate()
    return out


def get_host(rt: Runtime, actor: Principal, name: str) -> Host:
    with rt.db.read() as s:
        return _host_out(s, _live_host(s, name))


def list_hosts(
    rt: Runtime,
    actor: Principal,
    *,
    zone: str | None = None,
    state: HostState | None = None,
    trait: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Host]:
    """Hosts in the pool (removed ones only when ``state=removed`` is asked for)."""
    size = page_limit(limit)
    query = (
        select(HostRow, ZoneRow.name)
        .join(ZoneRow, ZoneRow.id == HostRow.zone_id)
        .order_by(HostRow.id)
    )
    query = query.where(
        HostRow.state == state.value if state else HostRow.state != HostState.REMOVED
    )
    if zone:
        query = query.where(ZoneRow.name == zone)
    if cursor:
        query = query.where(HostRow.id > cursor_key(cursor))
    if trait:
        query = query.where(_has_trait(rt, trait))
    with rt.db.read() as s:
        rows = s.execute(query.limit(size + 1)).all()
        page, next_cursor = split_page(rows, size, lambda r: r[0].id)
        invs = _inventories_of(s, [h.id for h, _ in page])
        items = [_render(h, zone_name, invs.get(h.id, [])) for h, zone_name in page]
    return Page(items=items, next_cursor=next_cursor)


def drain_host(rt: Runtime, actor: Principal, name: str) -> Host:
    """Stop new placements on the host; what it holds stays. Idempotent."""
    return _set_state(rt, actor, name, HostState.DRAINING, "host.drained")


def resume_host(rt: Runtime, actor: Principal, name: str) -> Host:
    """Take new placements again after a drain. Idempotent."""
    return _set_state(rt, actor, name, HostState.ACTIVE, "host.resumed")


def remove_host(rt: Runtime, actor: Principal, name: str) -> Host:
    """Take an empty host out of the pool.

    Deleting only inventory rows with ``used = 0`` and then counting what is left makes
    this safe against a concurrent claim on either database: the claim either commits
    first (a row survives, the removal is refused) or finds its row gone and retries
    elsewhere.
    """
    require_group_admin(actor, "removing hosts")
    with rt.db.write() as s:
        host = _live_host(s, name)
        s.execute(
            delete(InventoryRow).where(InventoryRow.host_id == host.id, InventoryRow.used == 0)
        )
        left = s.scalar(select(func.count()).where(InventoryRow.host_id == host.id))
        if left:
            raise HostNotEmpty(
                f"host {name!r} still holds {_active_allocations(s, host.id)} allocation(s); "
                "drain it and release them first",
                host=name,
            )
        host.state = HostState.REMOVED.value
        now = rt.clock()
        host.updated_at = now
        _bump_generation(s)
        events.record(s, actor.actor, "host.removed", f"host/{name}", at=now)
        out = _host_out(s, host)
    rt.index.invalidate()
    return out


def set_inventories(
    rt: Runtime, actor: Principal, name: str, inventories: dict[str, InventoryIn]
) -> Host:
    """Replace the host's inventory. Refused if any class would end below what is allocated
    (the condition is part of each UPDATE, so a concurrent claim cannot slip under it)."""
    require_group_admin(actor, "changing inventories")
    with rt.db.write() as s:
        host = _live_host(s, name)
        current = {i.resource_class for i in _inventories_of(s, [host.id]).get(host.id, [])}
        for rc in sorted(current - inventories.keys()):
            gone = s.execute(
                delete(InventoryRow).where(
                    InventoryRow.host_id == host.id,
                    InventoryRow.resource_class == rc,
                    InventoryRow.used == 0,
                )
            )
            if gone.rowcount != 1:  # type: ignore[attr-defined]
                raise InventoryInUse(
                    f"{rc} on host {name!r} is in use; it cannot be removed", resource_class=rc
                )
        for rc, inv in sorted(inventories.items()):
            values = _inventory_values(host.id, rc, inv)
            if rc not in current:
                s.execute(table_of(InventoryRow).insert(), [values])
                continue
            changed = s.execute(
                update(InventoryRow)
                .where(
                    InventoryRow.host_id == host.id,
                    InventoryRow.resource_class == rc,
                    InventoryRow.used <= values["capacity"],
                )
                .values(
                    total=inv.total,
                    reserved=inv.reserved,
                    allocation_ratio=inv.allocation_ratio,
                    capacity=values["capacity"],
                )
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                raise InventoryInUse(
                    f"{rc} on host {name!r}: new capacity {values['capacity']} is below what is "
                    "allocated",
                    resource_class=rc,
                    capacity=values["capacity"],
                )
        now = rt.clock()
        host.updated_at = now
        _bump_generation(s)
        events.record(
            s,
            actor.actor,
            "host.inventory_changed",
            f"host/{name}",
            data={"inventories": {rc: inv.model_dump() for rc, inv in inventories.items()}},
            at=now,
        )
        s.expire_all()
        out = _host_out(s, _live_host(s, name))
    rt.index.invalidate()
    return out


# --- helpers -----------------------------------------------------------------------------


def _set_state(rt: Runtime, actor: Principal, name: str, state: HostState, kind: str) -> Host:
    require_group_admin(actor, "draining and resuming hosts")
    with rt.db.write() as s:
        host = _live_host(s, name)
        if host.state != state.value:
            host.state = state.value
            now = rt.clock()
            host.updated_at = now
            _bump_generation(s)
            events.record(s, actor.actor, kind, f"host/{name}", at=now)
        out = _host_out(s, host)
    rt.index.invalidate()
    return out


def _inventory_values(host_id: int, rc: str, inv: InventoryIn) -> dict[str, int | float | str]:
    try:
        cap = capacity(inv.total, inv.reserved, inv.allocation_ratio)
    except ValueError as exc:
        raise InvalidInput(
            f"{rc}: {exc}", errors=[{"field": f"inventories.{rc}", "message": str(exc)}]
        ) from None
    return {
        "host_id": host_id,
        "resource_class": rc,
        "total": inv.total,
        "reserved": inv.reserved,
        "allocation_ratio": inv.allocation_ratio,
        "capacity": cap,
        "used": 0,
    }


def _has_trait(rt: Runtime, trait: str) -> ColumnElement[bool]:
    """JSON-array membership, spelled for each database."""
    if rt.db.is_sqlite:
        clause = "EXISTS (SELECT 1 FROM json_each(hosts.traits) WHERE json_each.value = :trait)"
        return text(clause).bindparams(trait=trait)  # type: ignore[return-value]
    return text("hosts.traits @> CAST(:trait AS jsonb)").bindparams(  # type: ignore[return-value]
        trait=json.dumps([trait])
    )


def _bump_generation(s: Session) -> None:
    s.execute(
        update(PoolStateRow)
        .where(PoolStateRow.id == 1)
        .values(generation=PoolStateRow.generation + 1)
        .execution_options(synchronize_session=False)
    )


def _live_names(s: Session, names: Sequence[str]) -> list[str]:
    taken: list[str] = []
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        taken.extend(
            s.scalars(
                select(HostRow.name).where(
                    HostRow.name.in_(chunk), HostRow.state != HostState.REMOVED
                )
            )
        )
    return sorted(taken)


def _live_host(s: Session, name: str) -> HostRow:
    host = s.scalar(select(HostRow).where(HostRow.name == name, HostRow.state != HostState.REMOVED))
    if host is None:
        raise NotFound(f"host {name!r} not found", resource="host", name=name)
    return host


def _active_allocations(s: Session, host_id: int) -> int:
    return (
        s.scalar(
            select(func.count(func.distinct(AllocationItemRow.allocation_id)))
            .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
            .where(
                AllocationItemRow.host_id == host_id, AllocationRow.state == AllocationState.ACTIVE
            )
        )
        or 0
    )


def _inventories_of(s: Session, host_ids: Sequence[int]) -> dict[int, list[InventoryRow]]:
    out: dict[int, list[InventoryRow]] = {}
    for start in range(0, len(host_ids), 500):
        chunk = host_ids[start : start + 500]
        for inv in s.scalars(
            select(InventoryRow)
            .where(InventoryRow.host_id.in_(chunk))
            .order_by(InventoryRow.host_id, InventoryRow.resource_class)
        ):
            out.setdefault(inv.host_id, []).append(inv)
    return out


def _host_out(s: Session, host: HostRow) -> Host:
    zone = s.scalar(select(ZoneRow.name).where(ZoneRow.id == host.zone_id)) or ""
    return _render(host, zone, _inventories_of(s, [host.id]).get(host.id, []))


def _render(host: HostRow, zone: str, invs: Sequence[InventoryRow]) -> Host:
    return Host(
        name=host.name,
        zone=zone,
        state=HostState(host.state),
        traits=list(host.traits),
        inventories={
            i.resource_class: Inventory(
                total=i.total,
                reserved=i.reserved,
                allocation_ratio=i.allocation_ratio,
                capacity=i.capacity,
                used=i.used,
                free=i.capacity - i.used,
            )
            for i in invs
        },
        created_at=host.created_at,
        updated_at=host.updated_at,
    )

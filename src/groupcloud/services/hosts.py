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
    Allocation,
    AllocationItem,
    Host,
    Inventory,
    PoolState,
    Zone,
    table_of,
    utcnow,
)
from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import capacity
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AlreadyExists, HostNotEmpty, InvalidInput, InventoryInUse, NotFound
from groupcloud.schemas import Host as HostOut
from groupcloud.schemas import HostCreate, InventoryIn, Page
from groupcloud.schemas import Inventory as InventoryOut
from groupcloud.services import events
from groupcloud.services.access import require_group_admin
from groupcloud.services.pagination import cursor_key, page_limit, split_page
from groupcloud.services.runtime import Runtime

__all__ = [
    "add_hosts",
    "drain_host",
    "get_host",
    "list_hosts",
    "remove_host",
    "resume_host",
    "set_inventories",
]


def add_hosts(rt: Runtime, actor: Principal, bodies: Sequence[HostCreate]) -> list[HostOut]:
    """Add hosts in one transaction: all of them or none."""
    require_group_admin(actor, "adding hosts")
    names = [b.name for b in bodies]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInput(
            f"host names repeat in the request: {', '.join(dupes)}",
            errors=[{"field": "name", "message": f"duplicate: {n}"} for n in dupes],
        )
    with rt.db.write() as s:
        zones = {z.name: z.id for z in s.scalars(select(Zone))}
        for b in bodies:
            if b.zone not in zones:
                raise NotFound(f"zone {b.zone!r} not found", resource="zone", name=b.zone)
        taken = _live_names(s, names)
        if taken:
            raise AlreadyExists(f"hosts already exist: {', '.join(taken)}", names=taken)
        hosts = [Host(name=b.name, zone_id=zones[b.zone], traits=b.traits) for b in bodies]
        s.add_all(hosts)
        s.flush()
        s.execute(
            table_of(Inventory).insert(),
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
            )
        out = [_host_out(s, h) for h in hosts]
    rt.index.invalidate()
    return out


def get_host(rt: Runtime, actor: Principal, name: str) -> HostOut:
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
) -> Page[HostOut]:
    """Hosts in the pool (removed ones only when ``state=removed`` is asked for)."""
    size = page_limit(limit)
    query = select(Host, Zone.name).join(Zone, Zone.id == Host.zone_id).order_by(Host.id)
    query = query.where(Host.state == state.value if state else Host.state != HostState.REMOVED)
    if zone:
        query = query.where(Zone.name == zone)
    if cursor:
        query = query.where(Host.id > cursor_key(cursor))
    if trait:
        query = query.where(_has_trait(rt, trait))
    with rt.db.read() as s:
        rows = s.execute(query.limit(size + 1)).all()
        page, next_cursor = split_page(rows, size, lambda r: r[0].id)
        invs = _inventories_of(s, [h.id for h, _ in page])
        items = [_render(h, zone_name, invs.get(h.id, [])) for h, zone_name in page]
    return Page(items=items, next_cursor=next_cursor)


def drain_host(rt: Runtime, actor: Principal, name: str) -> HostOut:
    """Stop new placements on the host; what it holds stays. Idempotent."""
    return _set_state(rt, actor, name, HostState.DRAINING, "host.drained")


def resume_host(rt: Runtime, actor: Principal, name: str) -> HostOut:
    """Take new placements again after a drain. Idempotent."""
    return _set_state(rt, actor, name, HostState.ACTIVE, "host.resumed")


def remove_host(rt: Runtime, actor: Principal, name: str) -> HostOut:
    """Take an empty host out of the pool.

    Deleting only inventory rows with ``used = 0`` and then counting what is left makes
    this safe against a concurrent claim on either database: the claim either commits
    first (a row survives, the removal is refused) or finds its row gone and retries
    elsewhere.
    """
    require_group_admin(actor, "removing hosts")
    with rt.db.write() as s:
        host = _live_host(s, name)
        s.execute(delete(Inventory).where(Inventory.host_id == host.id, Inventory.used == 0))
        left = s.scalar(select(func.count()).where(Inventory.host_id == host.id))
        if left:
            raise HostNotEmpty(
                f"host {name!r} still holds {_active_allocations(s, host.id)} allocation(s); "
                "drain it and release them first",
                host=name,
            )
        host.state = HostState.REMOVED.value
        host.updated_at = utcnow()
        _bump_generation(s)
        events.record(s, actor.actor, "host.removed", f"host/{name}")
        out = _host_out(s, host)
    rt.index.invalidate()
    return out


def set_inventories(
    rt: Runtime, actor: Principal, name: str, inventories: dict[str, InventoryIn]
) -> HostOut:
    """Replace the host's inventory. Refused if any class would end below what is allocated
    (the condition is part of each UPDATE, so a concurrent claim cannot slip under it)."""
    require_group_admin(actor, "changing inventories")
    with rt.db.write() as s:
        host = _live_host(s, name)
        current = {i.resource_class for i in _inventories_of(s, [host.id]).get(host.id, [])}
        for rc in sorted(current - inventories.keys()):
            gone = s.execute(
                delete(Inventory).where(
                    Inventory.host_id == host.id,
                    Inventory.resource_class == rc,
                    Inventory.used == 0,
                )
            )
            if gone.rowcount != 1:  # type: ignore[attr-defined]
                raise InventoryInUse(
                    f"{rc} on host {name!r} is in use; it cannot be removed", resource_class=rc
                )
        for rc, inv in sorted(inventories.items()):
            values = _inventory_values(host.id, rc, inv)
            if rc not in current:
                s.execute(table_of(Inventory).insert(), [values])
                continue
            changed = s.execute(
                update(Inventory)
                .where(
                    Inventory.host_id == host.id,
                    Inventory.resource_class == rc,
                    Inventory.used <= values["capacity"],
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
        host.updated_at = utcnow()
        _bump_generation(s)
        events.record(
            s,
            actor.actor,
            "host.inventory_changed",
            f"host/{name}",
            data={"inventories": {rc: inv.model_dump() for rc, inv in inventories.items()}},
        )
        s.expire_all()
        out = _host_out(s, _live_host(s, name))
    rt.index.invalidate()
    return out


# --- helpers -----------------------------------------------------------------------------


def _set_state(rt: Runtime, actor: Principal, name: str, state: HostState, kind: str) -> HostOut:
    require_group_admin(actor, "draining and resuming hosts")
    with rt.db.write() as s:
        host = _live_host(s, name)
        if host.state != state.value:
            host.state = state.value
            host.updated_at = utcnow()
            _bump_generation(s)
            events.record(s, actor.actor, kind, f"host/{name}")
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
        update(PoolState)
        .where(PoolState.id == 1)
        .values(generation=PoolState.generation + 1)
        .execution_options(synchronize_session=False)
    )


def _live_names(s: Session, names: Sequence[str]) -> list[str]:
    taken: list[str] = []
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        taken.extend(
            s.scalars(
                select(Host.name).where(Host.name.in_(chunk), Host.state != HostState.REMOVED)
            )
        )
    return sorted(taken)


def _live_host(s: Session, name: str) -> Host:
    host = s.scalar(select(Host).where(Host.name == name, Host.state != HostState.REMOVED))
    if host is None:
        raise NotFound(f"host {name!r} not found", resource="host", name=name)
    return host


def _active_allocations(s: Session, host_id: int) -> int:
    return (
        s.scalar(
            select(func.count(func.distinct(AllocationItem.allocation_id)))
            .join(Allocation, Allocation.id == AllocationItem.allocation_id)
            .where(AllocationItem.host_id == host_id, Allocation.state == AllocationState.ACTIVE)
        )
        or 0
    )


def _inventories_of(s: Session, host_ids: Sequence[int]) -> dict[int, list[Inventory]]:
    out: dict[int, list[Inventory]] = {}
    for start in range(0, len(host_ids), 500):
        chunk = host_ids[start : start + 500]
        for inv in s.scalars(
            select(Inventory)
            .where(Inventory.host_id.in_(chunk))
            .order_by(Inventory.host_id, Inventory.resource_class)
        ):
            out.setdefault(inv.host_id, []).append(inv)
    return out


def _host_out(s: Session, host: Host) -> HostOut:
    zone = s.scalar(select(Zone.name).where(Zone.id == host.zone_id)) or ""
    return _render(host, zone, _inventories_of(s, [host.id]).get(host.id, []))


def _render(host: Host, zone: str, invs: Sequence[Inventory]) -> HostOut:
    return HostOut(
        name=host.name,
        zone=zone,
        state=HostState(host.state),
        traits=list(host.traits),
        inventories={
            i.resource_class: InventoryOut(
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

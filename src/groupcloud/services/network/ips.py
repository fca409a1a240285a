"""IP addresses: handed out in a company's subnets (fixed) or from the group's public
pools (floating, optionally attached to a fixed address), released into quarantine.

The rules of taking and giving back are in ``services.network.addresses``; this module resolves
names, checks who may do what, and renders.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groupcloud.db import audit
from groupcloud.db.addresses import release_rows
from groupcloud.db.models import CompanyRow, IpAddressRow, NetPrefixRow, table_of
from groupcloud.domain.network import NetQuotaKind
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound
from groupcloud.schemas.base import Page
from groupcloud.schemas.network import FloatingIpCreate, FloatingIpUpdate, IpAddress, IpCreate
from groupcloud.services.audit import events
from groupcloud.services.common.idempotency import request_hash
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network import addresses, net_quotas
from groupcloud.services.network.prefixes import SUBNET, owned
from groupcloud.services.tenancy.access import company_by_slug, owner_slug, require, usable_company

__all__ = [
    "allocate_floating_ip",
    "allocate_ip",
    "get_ip",
    "ip_out",
    "list_floating_ips",
    "list_ips",
    "release_ip",
    "update_floating_ip",
]

_IP = table_of(IpAddressRow)
_EVENT = "network.ip_allocated"


def allocate_ip(
    rt: Runtime,
    actor: Principal,
    company: str,
    subnet: str,
    body: IpCreate,
    idempotency_key: str | None = None,
) -> IpAddress:
    """Hand out the next free address of a subnet (lowest first) or a given one; the
    subnet's network, gateway and broadcast addresses are never handed out. With an
    ``idempotency_key``, a repeated request gets the address of the first one."""
    company_id = usable_company(rt, actor, company, what="taking addresses")
    keyed = _keyed(rt, company_id, idempotency_key, body, company=company, subnet=subnet)
    if isinstance(keyed, IpAddress):
        return keyed
    db = rt.db
    try:
        with db.fast_write() as cur:
            tx = addresses.Transaction.begin(rt, cur, rt.clock())
            prefix = tx.lock_subnet(company_id, subnet, company)
            (taken,) = tx.take(
                prefix,
                company_id=company_id,
                actor=actor.actor,
                address=body.address,
                description=body.description,
                idempotency=keyed,
            )
            cur.run(
                db.prepare(audit.INSERT, audit.COLUMNS),
                audit.row(
                    actor.actor,
                    _EVENT,
                    f"ip/{taken.address}",
                    company_id,
                    {"subnet": subnet, "address": taken.address, "id": taken.id},
                    at=tx.now,
                ),
            )
    except IntegrityError as error:
        return _raced(rt, company_id, keyed, error)
    tx.keep()
    return IpAddress.model_construct(
        id=taken.id,
        kind=addresses.FIXED,
        subnet=subnet,
        company=company,
        address=taken.address,
        description=body.description,
        allocation=None,
        unit=None,
        attached_to=None,
        created_at=tx.now,
        created_by=actor.actor,
        released_at=None,
        reusable_at=None,
    )


def allocate_floating_ip(
    rt: Runtime, actor: Principal, body: FloatingIpCreate, idempotency_key: str | None = None
) -> IpAddress:
    """Hand out a floating address from a public pool, counted against the company's
    ``floating_ips`` quota, optionally attached to one of its fixed addresses. With an
    ``idempotency_key``, a repeated request gets the address of the first one."""
    company = owner_slug(actor, body.company)
    company_id = usable_company(rt, actor, company, what="taking addresses")
    keyed = _keyed(rt, company_id, idempotency_key, body, company=company)
    if isinstance(keyed, IpAddress):
        return keyed
    try:
        return _allocate_floating(rt, actor, body, company_id, keyed)
    except IntegrityError as error:
        return _raced(rt, company_id, keyed, error)


def _allocate_floating(
    rt: Runtime,
    actor: Principal,
    body: FloatingIpCreate,
    company_id: int,
    keyed: tuple[str, str] | None,
) -> IpAddress:
    now = rt.clock()
    with rt.db.write() as s:
        conn = s.connection()
        net_quotas.charge(conn, company_id, [(NetQuotaKind.FLOATING_IPS, 1)], now)
        attach = _fixed(s, company_id, body.attach_to) if body.attach_to is not None else None
        # The quota row is locked first, then the pool: the same order as every release.
        tx = addresses.Transaction.begin(rt, conn, now)
        pool = tx.lock_pool(body.pool)
        (taken,) = tx.take(
            pool,
            company_id=company_id,
            actor=actor.actor,
            address=body.address,
            kind=addresses.FLOATING,
            description=body.description,
            idempotency=keyed,
        )
        if attach is not None:
            conn.execute(update(_IP).where(_IP.c.id == taken.id).values(attached_to=attach))
        events.record(
            conn,
            actor.actor,
            _EVENT,
            f"ip/{taken.address}",
            company_id,
            {"pool": body.pool, "address": taken.address, "id": taken.id, "attached_to": attach},
            at=tx.now,
        )
        out = ip_out(s, _get(s, taken.id))
    tx.keep()
    return out


def update_floating_ip(
    rt: Runtime, actor: Principal, ip_id: int, body: FloatingIpUpdate
) -> IpAddress:
    """Attach a floating address to one of the company's fixed addresses, or detach it."""
    with rt.db.write() as s:
        row = _visible(s, actor, ip_id, lock=True)
        if row.kind != addresses.FLOATING:  # the floating address asked for does not exist
            raise NotFound(
                f"floating address {ip_id} not found (address {ip_id} is a fixed one)",
                resource="floating_ip",
                name=str(ip_id),
            )
        if row.released_at is not None:
            raise Conflict(f"floating address {row.address} is released")
        target = _fixed(s, row.company_id, body.attach_to) if body.attach_to is not None else None
        if target != row.attached_to:
            row.attached_to = target
            events.record(
                s,
                actor.actor,
                "network.ip_attached" if target is not None else "network.ip_detached",
                f"ip/{row.address}",
                row.company_id,
                {"attached_to": target},
                at=rt.clock(),
            )
        s.flush()
        return ip_out(s, row)


def release_ip(rt: Runtime, actor: Principal, ip_id: int) -> IpAddress:
    """Give an address back (idempotent). It stays held for ``ip_quarantine_s`` before
    anyone can get it again; addresses of an allocation go back with the allocation."""
    now = rt.clock()
    with rt.db.write() as s:
        row = _visible(s, actor, ip_id, lock=True)
        if row.allocation_id is not None and row.released_at is None:
            raise Conflict(
                f"address {row.address} is an interface of allocation {row.allocation_id}: "
                "it is released with the allocation",
                allocation=row.allocation_id,
            )
        if row.released_at is None:
            conn = s.connection()
            if row.kind == addresses.FLOATING:
                net_quotas.charge(conn, row.company_id, [(NetQuotaKind.FLOATING_IPS, -1)], now)
            release_rows(conn, _IP.c.id == row.id, now, rt.settings.ip_quarantine_s)
            events.record(
                conn,
                actor.actor,
                "network.ip_released",
                f"ip/{row.address}",
                row.company_id,
                {"address": row.address, "id": row.id},
                at=now,
            )
            s.refresh(row)
        return ip_out(s, row)


def get_ip(rt: Runtime, actor: Principal, ip_id: int) -> IpAddress:
    with rt.db.read() as s:
        return ip_out(s, _visible(s, actor, ip_id, lock=False))


def list_ips(
    rt: Runtime,
    actor: Principal,
    company: str,
    subnet: str,
    *,
    released: bool = False,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[IpAddress]:
    """Addresses handed out in a subnet and not released (``released``: those in
    quarantine too), in the order they were handed out."""
    with rt.db.read() as s:
        parent = owned(s, actor, company, SUBNET, subnet)
        query = select(IpAddressRow).where(_IP.c.subnet_id == parent.id)
        query = query.where(_IP.c.freed_at.is_(None) if released else _IP.c.released_at.is_(None))
        return _page(s, query, cursor, limit)


def list_floating_ips(
    rt: Runtime,
    actor: Principal,
    company: str | None = None,
    *,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[IpAddress]:
    """Floating addresses held by visible companies (a company token: its own)."""
    with rt.db.read() as s:
        query = select(IpAddressRow).where(
            _IP.c.kind == addresses.FLOATING, _IP.c.released_at.is_(None)
        )
        if company is not None:
            query = query.where(_IP.c.company_id == company_by_slug(s, actor, company).id)
        elif not actor.sees_all:
            query = query.where(_IP.c.company_id == actor.company_id)
        return _page(s, query, cursor, limit)


def ip_out(s: Session, row: IpAddressRow) -> IpAddress:
    prefix = s.get(NetPrefixRow, row.subnet_id)
    company = s.get(CompanyRow, row.company_id)
    assert prefix is not None
    assert company is not None
    return IpAddress(
        id=row.id,
        kind=row.kind,
        subnet=prefix.name,
        company=company.slug,
        address=row.address,
        description=row.description,
        allocation=row.allocation_id,
        unit=row.unit,
        attached_to=row.attached_to,
        created_at=row.created_at,
        created_by=row.created_by,
        released_at=row.released_at,
        reusable_at=row.reusable_at,
    )


# --- helpers -----------------------------------------------------------------------------


def _keyed(
    rt: Runtime, company_id: int, key: str | None, body: BaseModel, **context: str
) -> tuple[str, str] | IpAddress | None:
    """None without a key; the address of an earlier request with this key and body (a
    different body: ``idempotency_key_reused``); else (key, hash) to store with it."""
    if key is None:
        return None
    digest = request_hash(body, **context)
    with rt.db.read() as s:
        replay = _replay(s, company_id, key, digest)
    return replay if replay is not None else (key, digest)


def _raced(
    rt: Runtime, company_id: int, keyed: tuple[str, str] | None, error: IntegrityError
) -> IpAddress:
    """After a unique violation: the address of a concurrent request with the same key
    (which won); any other violation is raised again."""
    replay = None
    if keyed is not None:
        with rt.db.read() as s:
            replay = _replay(s, company_id, *keyed)
    if replay is None:
        raise error
    return replay


def _replay(s: Session, company_id: int, key: str, digest: str) -> IpAddress | None:
    row = s.scalar(
        select(IpAddressRow).where(
            IpAddressRow.company_id == company_id, IpAddressRow.idempotency_key == key
        )
    )
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for a different request (address {row.address}, "
            f"id {row.id})",
            ip=row.id,
        )
    return ip_out(s, row)


def _get(s: Session, ip_id: int) -> IpAddressRow:
    row = s.get(IpAddressRow, ip_id, populate_existing=True)
    assert row is not None
    return row


def _visible(s: Session, actor: Principal, ip_id: int, *, lock: bool) -> IpAddressRow:
    """The address if the caller may see it; locked (to change it) if it may use it."""
    row = s.get(IpAddressRow, ip_id, with_for_update=lock or None)
    if row is None:
        raise _ip_not_found(ip_id)
    action = Action.USE if lock else Action.READ
    require(actor, action, row.company_id, "changing addresses", partial(_ip_not_found, ip_id))
    return row


def _ip_not_found(ip_id: int) -> NotFound:
    return NotFound(f"IP address {ip_id} not found", resource="ip", name=str(ip_id))


def _fixed(s: Session, company_id: int, ip_id: int) -> int:
    """A fixed, held address of the company (what a floating address attaches to)."""
    row = s.get(IpAddressRow, ip_id)
    if row is None or row.company_id != company_id:
        raise NotFound(f"IP address {ip_id} not found", resource="ip", name=str(ip_id))
    if row.kind != addresses.FIXED or row.released_at is not None:
        raise InvalidInput(
            f"address {ip_id} ({row.address}) is not a held fixed address",
            errors=[{"field": "attach_to", "message": "not a held fixed address"}],
        )
    return row.id


def _page(s: Session, query: Any, cursor: str | None, limit: int | None) -> Page[IpAddress]:
    size = page_limit(limit)
    query = query.order_by(_IP.c.id).limit(size + 1)
    if cursor:
        query = query.where(_IP.c.id > cursor_key(cursor))
    rows, next_cursor = split_page(s.scalars(query).all(), size, lambda r: r.id)
    return Page(items=[ip_out(s, r) for r in rows], next_cursor=next_cursor)

"""Address space per company: group supernets, VPCs carved from them, subnets carved from
VPCs (their addresses are ``services.network.ips``).

Every carving locks its parent by bumping the parent row's ``generation`` (the statement
takes the row lock on PostgreSQL; SQLite's writers are serialised by ``BEGIN
IMMEDIATE``), lets the engine (``ipam.space.Space``) choose or check the block -- from the
process's cached free space of the parent when the generation matches, else rebuilt from
the parent's children -- and inserts it in the same transaction, with the company's
network quota and the prefix's segment id (VNI or VLAN). No prefix is ever handed out
twice, and the unique (parent, cidr) repeats the rule. Nothing is enumerated address by
address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groupcloud.db.models import (
    CompanyRow,
    IpAddressRow,
    NetPrefixRow,
    NetRuleRow,
    PeeringRow,
    ZoneRow,
    table_of,
)
from groupcloud.db.unique import add_unique
from groupcloud.domain.network import DataClass, NetQuotaKind, SegmentKind, SupernetPurpose
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    AddressSpaceExhausted,
    AlreadyExists,
    InvalidInput,
    NotFound,
    PrefixInUse,
    PrefixOutsideParent,
    PrefixOverlaps,
)
from groupcloud.ipam.space import Network, Space, SpaceError, SpaceExhausted
from groupcloud.schemas.base import Page
from groupcloud.schemas.network import NetworkPrefix, SubnetCreate, SupernetCreate, VpcCreate
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network import net_quotas, segments
from groupcloud.services.network.addresses import HELD, PREFIX, address_space, stored_space
from groupcloud.services.tenancy.access import (
    company_by_slug,
    owner_slug,
    require,
    require_group_admin,
    usable_company,
)

__all__ = [
    "SUBNET",
    "SUPERNET",
    "VPC",
    "create_subnet",
    "create_supernet",
    "create_vpc",
    "delete_prefix",
    "get_prefix",
    "list_prefixes",
    "owned",
    "prefix_out",
]

SUPERNET, VPC, SUBNET = "supernet", "vpc", "subnet"
_P = table_of(NetPrefixRow)
_IP = table_of(IpAddressRow)
_RULES = table_of(NetRuleRow)
_PEER = table_of(PeeringRow)


@dataclass
class _Carving:
    """A parent locked for carving in this transaction, and what to cache after commit."""

    row: NetPrefixRow
    space: Space
    generation: int


def create_supernet(rt: Runtime, actor: Principal, body: SupernetCreate) -> NetworkPrefix:
    """Register a group address block in a zone (group admins); supernets never overlap."""
    require_group_admin(actor, "registering a supernet")
    network = ipaddress.ip_network(body.cidr)
    now = rt.clock()
    with rt.db.write() as s:
        zone = s.scalar(select(ZoneRow).where(ZoneRow.name == body.zone).with_for_update())
        if zone is None:
            raise NotFound(f"zone {body.zone!r} not found", resource="zone", name=body.zone)
        for other in s.scalars(select(NetPrefixRow).where(NetPrefixRow.kind == SUPERNET)):
            if ipaddress.ip_network(other.cidr).overlaps(network):
                raise PrefixOverlaps(
                    f"{network} overlaps supernet {other.name} ({other.cidr})",
                    overlaps=other.cidr,
                )
        row = NetPrefixRow(
            kind=SUPERNET,
            zone_id=zone.id,
            name=body.name,
            cidr=str(network),
            created_by=actor.actor,
            purpose=body.purpose.value,
            generation=0,
            created_at=now,
        )
        add_unique(s, row, f"supernet {body.name!r}", name=body.name)
        events.record(
            s,
            actor.actor,
            "network.supernet_created",
            f"supernet/{body.name}",
            None,
            {"cidr": row.cidr, "zone": body.zone, "purpose": body.purpose.value},
            at=now,
        )
        return prefix_out(s, row)


def create_vpc(rt: Runtime, actor: Principal, body: VpcCreate) -> NetworkPrefix:
    """Carve a VPC for a company out of a private supernet: the next best-fitting free
    block of ``prefixlen``, or the given ``cidr`` if it is free. Counts against the
    company's ``vpcs`` and ``ipv4_addresses`` quotas; takes a VNI if the zone has a VXLAN
    pool."""
    slug = owner_slug(actor, body.company)
    company_id = usable_company(rt, actor, slug, Action.MANAGE, "creating a VPC")
    return _create_child(
        rt, actor, VPC, company_id, slug, body, _LOCK_SUPERNET, {"b_name": body.supernet}
    )


def create_subnet(
    rt: Runtime, actor: Principal, company: str, vpc: str, body: SubnetCreate
) -> NetworkPrefix:
    """Carve a subnet out of one of the company's VPCs; takes a VLAN id if the zone has a
    VLAN pool."""
    company_id = usable_company(rt, actor, company, Action.MANAGE, "carving a subnet")
    params = {"b_company": company_id, "b_name": vpc}
    return _create_child(rt, actor, SUBNET, company_id, company, body, _LOCK_VPC, params)


def _create_child(
    rt: Runtime,
    actor: Principal,
    kind: str,
    company_id: int,
    company: str,
    body: VpcCreate | SubnetCreate,
    lock_parent: Any,
    params: dict[str, Any],
) -> NetworkPrefix:
    """Carve a VPC or subnet in one transaction: lock the parent, carve, count the quota,
    record it with its event, take its segment id (a VNI for a VPC, a VLAN id for a
    subnet, from the zone's pools); after the commit, the changed free spaces go back to
    the process's caches."""
    parent_kind = SUPERNET if kind == VPC else VPC
    parent_name = params["b_name"]
    now = rt.clock()
    try:
        with rt.db.write() as s:
            parent = _lock(rt, s, lock_parent, params)
            if parent is None:
                where = "" if kind == VPC else f" in {company!r}"
                raise NotFound(
                    f"{parent_kind} {parent_name!r} not found{where}",
                    resource=parent_kind,
                    name=parent_name,
                )
            if parent.row.purpose != SupernetPurpose.PRIVATE:
                raise InvalidInput(
                    f"supernet {parent_name} is a public pool (floating addresses); carve "
                    "VPCs from a private supernet",
                    errors=[{"field": "supernet", "message": "public pools hold no VPCs"}],
                )
            data_class = body.data_class if isinstance(body, VpcCreate) else None
            row = _carve_child(s, actor, parent, kind, company_id, company, body, data_class, now)
            zone_id = parent.row.zone_id if kind == VPC else _zone_of(s, parent.row)
            assert zone_id is not None
            taken = segments.take_segment(
                s.connection(),
                rt.segments,
                zone_id,
                SegmentKind.VXLAN if kind == VPC else SegmentKind.VLAN,
                row.id,
                company_id,
                actor.actor,
                now,
            )
            out = _fresh_out(row, parent.row, company, taken[0] if taken else None)
    except IntegrityError:  # the name was taken by a concurrent request (the index says so)
        raise AlreadyExists(
            f"{kind} {body.name!r} of {company} already exists", name=body.name
        ) from None
    _keep(rt, parent)
    if taken is not None:
        _keep_segments(rt, taken[1])
    return out


def delete_prefix(
    rt: Runtime, actor: Principal, kind: str, company: str | None, name: str
) -> NetworkPrefix:
    """Give a VPC or subnet back to its parent (its company's admins), or remove a supernet
    (group admins). Refused with ``prefix_in_use`` while it holds children or addresses --
    quarantined ones included, so a deleted subnet cannot hand a stale address to the next
    tenant through a new subnet."""
    now = rt.clock()
    with rt.db.write() as s:
        if kind == SUPERNET:
            require_group_admin(actor, "removing a supernet")
            row = s.scalar(select(NetPrefixRow).where(_P.c.kind == kind, _P.c.name == name))
        else:
            assert company is not None
            owner = company_by_slug(s, actor, company)
            require(actor, Action.MANAGE, owner.id, f"deleting a {kind}")
            row = s.scalar(
                select(NetPrefixRow).where(
                    _P.c.kind == kind, _P.c.company_id == owner.id, _P.c.name == name
                )
            )
        if row is None:
            raise NotFound(f"{kind} {name!r} not found", resource=kind, name=name)
        conn = s.connection()
        if row.parent_id is not None:  # lock order: parent first, as carving does
            conn.execute(_LOCK_ID, {"b_id": row.parent_id})
        conn.execute(_LOCK_ID, {"b_id": row.id})
        holds = _holds(conn, row.id)
        if holds:
            raise PrefixInUse(
                f"{kind} {name} still holds {holds} "
                + (
                    "addresses (quarantined included)"
                    if kind == SUBNET
                    else "prefixes or addresses"
                ),
                holds=holds,
            )
        if kind == VPC:
            live = conn.scalar(
                select(func.count()).where(
                    _PEER.c.ended_at.is_(None),
                    (_PEER.c.vpc_a_id == row.id) | (_PEER.c.vpc_b_id == row.id),
                )
            )
            if live:
                raise PrefixInUse(
                    f"vpc {name} has {live} live peerings: delete them first", holds=live
                )
            conn.execute(_RULES.delete().where(_RULES.c.vpc_id == row.id))
            conn.execute(
                _PEER.delete().where(
                    (_PEER.c.vpc_a_id == row.id)
                    | (_PEER.c.vpc_b_id == row.id)
                    | (_PEER.c.requester_vpc_id == row.id)
                )
            )
            net_quotas.charge(
                conn,
                row.company_id or 0,
                [
                    (NetQuotaKind.VPCS, -1),
                    (NetQuotaKind.IPV4_ADDRESSES, -net_quotas.ipv4_size(row.cidr)),
                ],
                now,
            )
        out = prefix_out(s, row)
        freed = segments.release_segments(conn, row.id, now, forget=True)
        conn.execute(_IP.delete().where(_IP.c.subnet_id == row.id))  # freed history
        s.delete(row)
        events.record(
            s,
            actor.actor,
            f"network.{kind}_deleted",
            f"{kind}/{company}/{name}" if company else f"{kind}/{name}",
            row.company_id,
            {"cidr": row.cidr, "segments": freed},
            at=now,
        )
        return out


def get_prefix(
    rt: Runtime, actor: Principal, kind: str, company: str | None, name: str
) -> NetworkPrefix:
    with rt.db.read() as s:
        if kind == SUPERNET:
            row = s.scalar(select(NetPrefixRow).where(_P.c.kind == kind, _P.c.name == name))
            if row is None:
                raise NotFound(f"supernet {name!r} not found", resource=kind, name=name)
        else:
            assert company is not None
            row = owned(s, actor, company, kind, name)
        return prefix_out(s, row)


def list_prefixes(
    rt: Runtime,
    actor: Principal,
    kind: str,
    company: str | None = None,
    *,
    zone: str | None = None,
    parent: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[NetworkPrefix]:
    """Supernets (every role may read them), or the VPCs/subnets of visible companies,
    optionally of one zone or one parent (a supernet for VPCs, a VPC for subnets)."""
    size = page_limit(limit)
    with rt.db.read() as s:
        query = select(NetPrefixRow).where(_P.c.kind == kind).order_by(_P.c.id).limit(size + 1)
        if cursor:
            query = query.where(_P.c.id > cursor_key(cursor))
        if company:
            query = query.where(_P.c.company_id == company_by_slug(s, actor, company).id)
        elif kind != SUPERNET and not actor.sees_all:
            query = query.where(_P.c.company_id == actor.company_id)
        if zone:
            zone_id = s.scalar(select(ZoneRow.id).where(ZoneRow.name == zone))
            query = query.where(_zone_filter(kind, zone_id or -1))
        if parent:
            parents = select(_P.c.id).where(_P.c.name == parent).scalar_subquery()
            query = query.where(_P.c.parent_id.in_(parents))
        page, next_cursor = split_page(s.scalars(query).all(), size, lambda r: r.id)
        return Page(items=[prefix_out(s, row) for row in page], next_cursor=next_cursor)


# --- helpers shared with the other network services --------------------------------------


def owned(s: Session, actor: Principal, company: str, kind: str, name: str) -> NetPrefixRow:
    """A company's VPC or subnet by name; not_found for one the caller may not see."""
    owner = company_by_slug(s, actor, company)
    row = s.scalar(
        select(NetPrefixRow).where(
            _P.c.kind == kind, _P.c.company_id == owner.id, _P.c.name == name
        )
    )
    if row is None:
        raise NotFound(f"{kind} {name!r} not found in {company!r}", resource=kind, name=name)
    return row


def _fresh_out(
    row: NetPrefixRow, parent: NetPrefixRow, company: str, segment: int | None
) -> NetworkPrefix:
    """A prefix carved in this transaction: empty (a subnet: its reserved addresses used).
    Only supernets name a zone; VPCs and subnets have theirs through their supernet."""
    root = ipaddress.ip_network(row.cidr)
    space = address_space(root, ()) if row.kind == SUBNET else Space(root)
    largest = space.largest_free()
    return NetworkPrefix(
        name=row.name,
        kind=row.kind,
        cidr=row.cidr,
        parent=parent.name,
        company=company,
        zone=None,
        addresses=root.num_addresses,
        used=space.used_addresses,
        free=space.free_addresses,
        largest_free=str(largest) if largest else None,
        quarantined=0,
        data_class=DataClass(row.data_class) if row.data_class else None,
        purpose=None,
        segment=segment,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def prefix_out(s: Session, row: NetPrefixRow) -> NetworkPrefix:
    """A prefix with its utilisation, counted from the rows."""
    conn = s.connection()
    root = ipaddress.ip_network(row.cidr)
    space = _space_of(conn, row, root)
    quarantined = 0
    if row.kind == SUBNET or row.purpose == SupernetPurpose.PUBLIC:
        quarantined = int(
            conn.scalar(
                select(func.count()).where(
                    _IP.c.subnet_id == row.id,
                    _IP.c.released_at.is_not(None),
                    _IP.c.freed_at.is_(None),
                )
            )
            or 0
        )
    parent = s.get(NetPrefixRow, row.parent_id) if row.parent_id else None
    company = s.get(CompanyRow, row.company_id) if row.company_id else None
    zone = s.get(ZoneRow, row.zone_id) if row.zone_id else None
    largest = space.largest_free()
    return NetworkPrefix(
        name=row.name,
        kind=row.kind,
        cidr=row.cidr,
        parent=parent.name if parent else None,
        company=company.slug if company else None,
        zone=zone.name if zone else None,
        addresses=root.num_addresses,
        used=space.used_addresses,
        free=space.free_addresses,
        largest_free=str(largest) if largest else None,
        quarantined=quarantined,
        data_class=DataClass(row.data_class) if row.data_class else None,
        purpose=SupernetPurpose(row.purpose) if row.kind == SUPERNET else None,
        segment=segments.segment_of(conn, row.id) if row.kind != SUPERNET else None,
        created_at=row.created_at,
        created_by=row.created_by,
    )


# --- internals ---------------------------------------------------------------------------


_BUMP = update(_P).values(generation=_P.c.generation + 1).returning(_P.c.id, _P.c.generation)
_LOCK_ID = _BUMP.where(_P.c.id == bindparam("b_id"))
_LOCK_SUPERNET = _BUMP.where(_P.c.kind == SUPERNET, _P.c.name == bindparam("b_name"))
_LOCK_VPC = _BUMP.where(
    _P.c.kind == VPC, _P.c.company_id == bindparam("b_company"), _P.c.name == bindparam("b_name")
)


def _lock(rt: Runtime, s: Session, statement: Any, params: dict[str, Any]) -> _Carving | None:
    """Lock the parent that ``statement`` bumps and get its free space (cached or
    rebuilt)."""
    got = s.connection().execute(statement, params).first()
    if got is None:
        return None
    prefix_id, generation = got
    row = s.get(NetPrefixRow, prefix_id, populate_existing=True)
    assert row is not None
    root = ipaddress.ip_network(row.cidr)
    space = rt.spaces.take(PREFIX, prefix_id, generation - 1) or _space_of(
        s.connection(), row, root
    )
    return _Carving(row, space, generation)


def _keep(rt: Runtime, carving: _Carving) -> None:
    """After the commit: the parent's free space is current at its new generation."""
    rt.spaces.put(PREFIX, carving.row.id, carving.generation, carving.space)


def _keep_segments(rt: Runtime, changed: Sequence[tuple[int, Any, int]]) -> None:
    for pool_id, free, generation in changed:
        rt.segments.put(segments.SEGMENTS, pool_id, generation, free)


def _space_of(conn: Connection, row: NetPrefixRow, root: Network) -> Space:
    """The prefix's free space from its rows: what its children leave (a subnet or a
    public pool: what its held and reserved addresses leave)."""
    if row.kind == SUBNET or row.purpose == SupernetPurpose.PUBLIC:
        return address_space(root, conn.scalars(HELD, {"b_id": row.id}))
    children = conn.scalars(select(_P.c.cidr).where(_P.c.parent_id == row.id))
    return stored_space(root, (ipaddress.ip_network(c) for c in children))


def _holds(conn: Connection, prefix_id: int) -> int:
    children = conn.scalar(select(func.count()).where(_P.c.parent_id == prefix_id)) or 0
    held = conn.scalar(
        select(func.count()).where(_IP.c.subnet_id == prefix_id, _IP.c.freed_at.is_(None))
    )
    return int(children) + int(held or 0)


def _zone_of(s: Session, vpc: NetPrefixRow) -> int:
    supernet = s.get(NetPrefixRow, vpc.parent_id)
    assert supernet is not None
    assert supernet.zone_id is not None
    return supernet.zone_id


def _zone_filter(kind: str, zone_id: int) -> ColumnElement[bool]:
    if kind == SUPERNET:
        return _P.c.zone_id == zone_id
    supernets = select(_P.c.id).where(_P.c.kind == SUPERNET, _P.c.zone_id == zone_id)
    if kind == VPC:
        return _P.c.parent_id.in_(supernets)
    vpcs = select(_P.c.id).where(_P.c.parent_id.in_(supernets))
    return _P.c.parent_id.in_(vpcs)


def _carve(carving: _Carving, prefixlen: int | None, cidr: str | None) -> Network:
    parent, space = carving.row, carving.space
    root = space.root
    try:
        if cidr is None:
            assert prefixlen is not None
            return space.allocate(prefixlen)
        return space.claim(ipaddress.ip_network(cidr))
    except SpaceExhausted:
        largest = space.largest_free()
        raise AddressSpaceExhausted(
            f"no free /{prefixlen} left in {parent.kind} {parent.name} ({root}); "
            + (f"the largest free block is {largest}" if largest else "it is full"),
            largest_free=str(largest) if largest else None,
        ) from None
    except SpaceError as exc:
        asked = cidr or f"a /{prefixlen}"
        text = str(exc)
        if "not inside" in text or "does not fit" in text:
            raise PrefixOutsideParent(
                f"{asked} does not fit inside {parent.kind} {parent.name} ({root})",
                parent=str(root),
            ) from None
        raise PrefixOverlaps(
            f"{asked} is not free in {parent.kind} {parent.name} ({root}): it overlaps an "
            "allocated block"
        ) from None


def _carve_child(
    s: Session,
    actor: Principal,
    carving: _Carving,
    kind: str,
    company_id: int,
    company: str,
    body: VpcCreate | SubnetCreate,
    data_class: DataClass | None,
    now: datetime,
) -> NetPrefixRow:
    """Carve a VPC (from a supernet) or a subnet (from a VPC) and record it, with the
    quota it counts against and its event. The carving changes only the cached copy of
    the parent's free space, which is put back after the commit (see ``_keep``)."""
    network = _carve(carving, body.prefixlen, body.cidr)
    if kind == VPC:
        net_quotas.charge(
            s.connection(),
            company_id,
            [
                (NetQuotaKind.VPCS, 1),
                (NetQuotaKind.IPV4_ADDRESSES, net_quotas.ipv4_size(str(network))),
            ],
            now,
        )
    row = NetPrefixRow(
        kind=kind,
        parent_id=carving.row.id,
        company_id=company_id,
        name=body.name,
        cidr=str(network),
        created_by=actor.actor,
        data_class=data_class.value if data_class else None,
        purpose=SupernetPurpose.PRIVATE.value,
        generation=0,
        created_at=now,
    )
    s.add(row)
    s.flush()  # a name taken already fails the transaction: see _create_child
    events.record(
        s,
        actor.actor,
        f"network.{kind}_created",
        f"{kind}/{company}/{body.name}",
        company_id,
        {"cidr": row.cidr, carving.row.kind: carving.row.name},
        at=now,
    )
    return row

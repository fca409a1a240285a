"""Address space per company: group supernets, VPCs carved from them, subnets carved from
VPCs, and IP addresses handed out in subnets.

Every carving locks its parent row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
writers are serialised by ``BEGIN IMMEDIATE``), reads the parent's allocated children,
lets the engine (``ipam.space.Space``) choose or check the block, and inserts it in the
same transaction: no prefix or address is ever handed out twice, and unique constraints
repeat the rule. Nothing is enumerated address by address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groupcloud.db.models import Company, IpAddress, NetPrefix, Zone, utcnow
from groupcloud.domain.network import DataClass
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    AddressSpaceExhausted,
    AlreadyExists,
    Forbidden,
    InvalidInput,
    NotFound,
    PrefixOutsideParent,
    PrefixOverlaps,
)
from groupcloud.ipam.space import Network, Space, SpaceError, SpaceExhausted
from groupcloud.schemas import IpAddress as IpAddressOut
from groupcloud.schemas import (
    IpCreate,
    NetworkPrefix,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.services import events
from groupcloud.services.access import company_by_slug, require_group_admin
from groupcloud.services.runtime import Runtime

__all__ = [
    "allocate_ip",
    "create_subnet",
    "create_supernet",
    "create_vpc",
    "list_ips",
    "list_prefixes",
    "release_ip",
]

SUPERNET, VPC, SUBNET = "supernet", "vpc", "subnet"


def create_supernet(rt: Runtime, actor: Principal, body: SupernetCreate) -> NetworkPrefix:
    """Register a group address block in a zone (group admins); supernets never overlap."""
    require_group_admin(actor, "registering a supernet")
    network = ipaddress.ip_network(body.cidr)
    with rt.db.write() as s:
        zone = s.scalar(select(Zone).where(Zone.name == body.zone).with_for_update())
        if zone is None:
            raise NotFound(f"zone {body.zone!r} not found", resource="zone", name=body.zone)
        for other in s.scalars(select(NetPrefix).where(NetPrefix.kind == SUPERNET)):
            if _net(other.cidr).overlaps(network):
                raise PrefixOverlaps(
                    f"{network} overlaps supernet {other.name} ({other.cidr})",
                    overlaps=other.cidr,
                )
        row = NetPrefix(
            kind=SUPERNET,
            zone_id=zone.id,
            name=body.name,
            cidr=str(network),
            created_by=actor.actor,
        )
        _insert(s, row, f"supernet {body.name!r}")
        events.record(
            s,
            actor.actor,
            "network.supernet_created",
            f"supernet/{body.name}",
            None,
            {"cidr": row.cidr, "zone": body.zone},
        )
        return _out(s, row)


def create_vpc(rt: Runtime, actor: Principal, body: VpcCreate) -> NetworkPrefix:
    """Carve a VPC for a company out of a supernet: the next best-fitting free block of
    ``prefixlen``, or the given ``cidr`` if it is free."""
    slug = body.company or actor.company
    if slug is None:
        raise InvalidInput(
            "company is required with a group-admin token",
            errors=[{"field": "company", "message": "required for group-admin tokens"}],
        )
    with rt.db.write() as s:
        company = company_by_slug(s, actor, slug)
        if not actor.can_administer(company.id):
            raise Forbidden("creating a VPC needs a company-admin or group-admin token")
        parent = s.scalar(
            select(NetPrefix)
            .where(NetPrefix.kind == SUPERNET, NetPrefix.name == body.supernet)
            .with_for_update()
        )
        if parent is None:
            raise NotFound(
                f"supernet {body.supernet!r} not found", resource="supernet", name=body.supernet
            )
        row = _carve_child(s, actor, parent, VPC, company.id, slug, body)
        return _out(s, row)


def create_subnet(
    rt: Runtime, actor: Principal, company: str, vpc: str, body: SubnetCreate
) -> NetworkPrefix:
    """Carve a subnet out of one of the company's VPCs."""
    with rt.db.write() as s:
        parent = _owned(s, actor, company, VPC, vpc, lock=True)
        row = _carve_child(s, actor, parent, SUBNET, parent.company_id, company, body)
        return _out(s, row)


def allocate_ip(
    rt: Runtime, actor: Principal, company: str, subnet: str, body: IpCreate
) -> IpAddressOut:
    """Hand out the next free address of a subnet (or a given one if it is free). The
    subnet's network and broadcast addresses and its first host (the gateway) are never
    handed out."""
    with rt.db.write() as s:
        parent = _owned(s, actor, company, SUBNET, subnet, lock=True)
        root, space = _space_of(s, parent)
        try:
            if body.address is None:
                chosen = space.allocate(root.max_prefixlen, lowest=True)
            else:
                chosen = space.claim(_host(body.address))
        except SpaceExhausted:
            raise AddressSpaceExhausted(
                f"subnet {subnet} ({root}) has no free address left", largest_free=None
            ) from None
        except SpaceError as exc:
            raise _space_error(exc, root, body.address) from None
        row = IpAddress(
            subnet_id=parent.id,
            company_id=parent.company_id,
            address=str(chosen.network_address),
            description=body.description,
            created_by=actor.actor,
        )
        s.add(row)
        s.flush()
        events.record(
            s,
            actor.actor,
            "network.ip_allocated",
            f"ip/{row.address}",
            parent.company_id,
            {"subnet": subnet, "address": row.address},
        )
        return _ip_out(row, subnet, company)


def release_ip(rt: Runtime, actor: Principal, ip_id: int) -> IpAddressOut:
    """Give an address back (idempotent: releasing it again changes nothing)."""
    with rt.db.write() as s:
        row = s.get(IpAddress, ip_id, with_for_update=True)
        if row is None or not actor.can_use(row.company_id):
            raise NotFound(f"IP address {ip_id} not found", resource="ip", name=str(ip_id))
        if row.released_at is None:
            row.released_at = row.reusable_at = row.freed_at = utcnow()
            events.record(
                s,
                actor.actor,
                "network.ip_released",
                f"ip/{row.address}",
                row.company_id,
                {"address": row.address},
            )
        subnet = s.get(NetPrefix, row.subnet_id)
        company = s.get(Company, row.company_id)
        assert subnet is not None
        assert company is not None
        return _ip_out(row, subnet.name, company.slug)


def list_prefixes(
    rt: Runtime, actor: Principal, kind: str, company: str | None = None
) -> list[NetworkPrefix]:
    """Supernets (every role may read them), or the VPCs/subnets of visible companies."""
    with rt.db.read() as s:
        query = select(NetPrefix).where(NetPrefix.kind == kind).order_by(NetPrefix.id)
        if company:
            query = query.where(NetPrefix.company_id == company_by_slug(s, actor, company).id)
        elif kind != SUPERNET and not actor.is_group_admin:
            query = query.where(NetPrefix.company_id == actor.company_id)
        return [_out(s, row) for row in s.scalars(query)]


def list_ips(rt: Runtime, actor: Principal, company: str, subnet: str) -> list[IpAddressOut]:
    """Addresses handed out in a subnet and not released."""
    with rt.db.read() as s:
        parent = _owned(s, actor, company, SUBNET, subnet, lock=False)
        rows = s.scalars(
            select(IpAddress)
            .where(IpAddress.subnet_id == parent.id, IpAddress.released_at.is_(None))
            .order_by(IpAddress.id)
        )
        return [_ip_out(r, subnet, company) for r in rows]


# --- helpers -----------------------------------------------------------------------------


def _net(cidr: str) -> Network:
    return ipaddress.ip_network(cidr)


def _host(address: str) -> Network:
    ip = ipaddress.ip_address(address)
    return ipaddress.ip_network((ip, ip.max_prefixlen))


def _reserved(root: Network) -> list[Network]:
    """Network, gateway (first host) and, on IPv4, broadcast: never handed out."""
    if root.num_addresses < 4:
        return []
    first = root.network_address
    out = [_host(str(first)), _host(str(first + 1))]
    if root.version == 4:
        out.append(_host(str(root.broadcast_address)))
    return out


def _space(root: Network, allocated: Iterable[Network]) -> Space:
    try:
        return Space(root, allocated)
    except SpaceError as exc:  # stored rows that do not fit: a bug, not the caller's input
        raise RuntimeError(f"stored allocations of {root} are inconsistent: {exc}") from exc


def _carve(s: Session, parent: NetPrefix, prefixlen: int | None, cidr: str | None) -> Network:
    root, space = _space_of(s, parent)
    try:
        if cidr is None:
            assert prefixlen is not None
            return space.allocate(prefixlen)
        return space.claim(_net(cidr))
    except SpaceExhausted:
        largest = space.largest_free()
        raise AddressSpaceExhausted(
            f"no free /{prefixlen} left in {parent.kind} {parent.name} ({root}); "
            + (f"the largest free block is {largest}" if largest else "it is full"),
            largest_free=str(largest) if largest else None,
        ) from None
    except SpaceError as exc:
        raise _space_error(exc, root, cidr or f"a /{prefixlen}") from None


def _space_error(exc: SpaceError, root: Network, asked: str | None) -> Exception:
    text = str(exc)
    if "not inside" in text or "does not fit" in text:
        return PrefixOutsideParent(f"{asked} does not fit inside {root}", parent=str(root))
    return PrefixOverlaps(f"{asked} is not free in {root}: it overlaps an allocated block")


def _insert(s: Session, row: NetPrefix, what: str) -> None:
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        raise AlreadyExists(f"{what} already exists", name=row.name) from None


def _owned(
    s: Session, actor: Principal, company: str, kind: str, name: str, *, lock: bool
) -> NetPrefix:
    """A company's VPC or subnet by name (locked for carving from it); not_found for one
    the caller may not use, as for every object of another company."""
    owner = company_by_slug(s, actor, company)
    if not actor.can_use(owner.id):
        raise NotFound(f"company {company!r} not found", resource="company", name=company)
    query = select(NetPrefix).where(
        NetPrefix.kind == kind, NetPrefix.company_id == owner.id, NetPrefix.name == name
    )
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"{kind} {name!r} not found in {company!r}", resource=kind, name=name)
    return row


def _space_of(s: Session, row: NetPrefix) -> tuple[Network, Space]:
    """The prefix and its free space: what its children (a subnet: its live addresses and
    reserved ones) leave."""
    root = _net(row.cidr)
    if row.kind == SUBNET:
        live = s.scalars(
            select(IpAddress.address).where(
                IpAddress.subnet_id == row.id, IpAddress.freed_at.is_(None)
            )
        ).all()
        return root, _space(root, [*_reserved(root), *(_host(a) for a in live)])
    children = s.scalars(select(NetPrefix.cidr).where(NetPrefix.parent_id == row.id)).all()
    return root, _space(root, [_net(c) for c in children])


def _carve_child(
    s: Session,
    actor: Principal,
    parent: NetPrefix,
    kind: str,
    company_id: int | None,
    company: str,
    body: VpcCreate | SubnetCreate,
) -> NetPrefix:
    """Carve a VPC (from a supernet) or a subnet (from a VPC) and record it, with its event."""
    network = _carve(s, parent, body.prefixlen, body.cidr)
    row = NetPrefix(
        kind=kind,
        parent_id=parent.id,
        company_id=company_id,
        name=body.name,
        cidr=str(network),
        created_by=actor.actor,
        data_class=body.data_class.value if isinstance(body, VpcCreate) else None,
    )
    _insert(s, row, f"{kind} {body.name!r} of {company}")
    events.record(
        s,
        actor.actor,
        f"network.{kind}_created",
        f"{kind}/{company}/{body.name}",
        company_id,
        {"cidr": row.cidr, parent.kind: parent.name},
    )
    return row


def _out(s: Session, row: NetPrefix) -> NetworkPrefix:
    root, space = _space_of(s, row)
    parent = s.get(NetPrefix, row.parent_id) if row.parent_id else None
    company = s.get(Company, row.company_id) if row.company_id else None
    zone = s.get(Zone, row.zone_id) if row.zone_id else None
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
        data_class=DataClass(row.data_class) if row.data_class else None,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _ip_out(row: IpAddress, subnet: str, company: str) -> IpAddressOut:
    return IpAddressOut(
        id=row.id,
        subnet=subnet,
        company=company,
        address=row.address,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        released_at=row.released_at,
    )

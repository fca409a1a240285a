"""Taking and giving back IP addresses inside a transaction: the one place for the rules
every path shares (an address asked for by hand, the interfaces of an allocation claimed
with its capacity, a floating address from a public pool).

* The prefix the address comes from (a subnet, or a public supernet) is locked by the
  statement that bumps its ``generation``; its free space comes from the process's cache
  when the generation matches (``services.common.free_space``), else from its held rows.
* Released addresses stay held for the quarantine (``ip_quarantine_s``); the first
  claim in the prefix after it has passed frees them, under the same lock.
* The network address, the first host (the gateway) and, on IPv4, the broadcast address
  of a prefix are never handed out.
* The partial unique index on held addresses repeats the rule in the database.

Statements run on the raw cursor (``db.prepared``), so a claim of one address is four
short statements plus the audit event.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, bindparam, insert, select, update

from groupcloud.db.engine import Database
from groupcloud.db.models import IpAddressRow, NetPrefixRow, table_of
from groupcloud.db.prepared import Cursor
from groupcloud.errors import AddressSpaceExhausted, NotFound, PrefixOutsideParent, PrefixOverlaps
from groupcloud.ipam.space import Network, Space, SpaceError, SpaceExhausted
from groupcloud.services.common.free_space import AddressSpace, FreeSpaceCache
from groupcloud.services.common.runtime import Runtime

__all__ = [
    "FIXED",
    "FLOATING",
    "HELD",
    "PREFIX",
    "Executor",
    "Locked",
    "Taken",
    "Transaction",
    "address_space",
    "event_data",
    "host_network",
    "reserved",
    "stored_space",
]

SWEEP_S = 1.0
"""At most this often per prefix, released addresses past their quarantine are freed."""
FIXED: Final = "fixed"
FLOATING: Final = "floating"
PREFIX = "prefix"  # cache kind

_P = table_of(NetPrefixRow)
_IP = table_of(IpAddressRow)

_BUMP = update(_P).values(generation=_P.c.generation + 1).returning(_P.c.id, _P.c.generation)
_LOCK_OWNED = _BUMP.where(
    _P.c.kind == bindparam("b_kind"),
    _P.c.company_id == bindparam("b_company"),
    _P.c.name == bindparam("b_name"),
).returning(_P.c.cidr, _P.c.company_id)
_LOCK_POOL = _BUMP.where(
    _P.c.kind == "supernet", _P.c.purpose == "public", _P.c.name == bindparam("b_name")
).returning(_P.c.cidr, _P.c.company_id)
HELD = select(_IP.c.address).where(_IP.c.subnet_id == bindparam("b_id"), _IP.c.freed_at.is_(None))
_FREE_QUARANTINED = (
    update(_IP)
    .where(
        _IP.c.subnet_id == bindparam("b_id"),
        _IP.c.released_at.is_not(None),
        _IP.c.freed_at.is_(None),
        _IP.c.reusable_at <= bindparam("b_now"),
    )
    .values(freed_at=bindparam("b_now"))
    .returning(_IP.c.address)
)
_INSERT = insert(_IP).returning(_IP.c.id)
# The release and quarantine columns of a new address start NULL.
_INSERT_COLUMNS = (
    "subnet_id", "company_id", "address", "description", "created_at", "created_by", "kind",
    "allocation_id", "unit", "idempotency_key", "request_hash",
)  # fmt: skip


def host_network(address: str) -> Network:
    """One address as a one-address prefix (the unit the free-space engine hands out)."""
    ip = ipaddress.ip_address(address)
    return ipaddress.ip_network((ip, ip.max_prefixlen))


def stored_space(root: Network, allocated: Iterable[Network]) -> Space:
    """The free space of ``root`` given what its stored rows hold; rows that do not fit
    are a bug, not the caller's input."""
    try:
        return Space(root, allocated)
    except SpaceError as exc:
        raise RuntimeError(f"stored allocations of {root} are inconsistent: {exc}") from exc


def address_space(root: Network, held: Iterable[str]) -> Space:
    """The free addresses of a subnet or public pool: what its held addresses (quarantined
    ones included) and its reserved ones leave."""
    return stored_space(root, [*reserved(root), *(host_network(a) for a in held)])


def reserved(root: Network) -> list[Network]:
    """Network, gateway (first host) and, on IPv4, broadcast: never handed out."""
    if root.num_addresses < 4:
        return []
    first = root.network_address
    out = [host_network(str(first)), host_network(str(first + 1))]
    if root.version == 4:
        out.append(host_network(str(root.broadcast_address)))
    return out


@dataclass(slots=True)
class Locked:
    """A prefix locked in this transaction, with its free space."""

    id: int
    name: str
    company_id: int | None
    generation: int
    space: Space
    swept_at: datetime

    @property
    def root(self) -> Network:
        return self.space.root


@dataclass(frozen=True, slots=True)
class Taken:
    """An address handed out in this transaction."""

    id: int
    address: str
    prefix: Locked
    unit: int | None


class Executor:
    """Runs the statements of a ``Transaction``: on the raw cursor of ``db.fast_write``
    (the fast path) or on a SQLAlchemy connection (inside a session's transaction)."""

    def __init__(self, target: Cursor | Connection, db: Database) -> None:
        self._target = target
        self._db = db

    def rows(
        self, statement: Any, params: dict[str, Any], columns: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        if isinstance(self._target, Cursor):
            return self._target.rows(self._db.prepare(statement, columns), params)
        return [tuple(r) for r in self._target.execute(statement, params)]


@dataclass
class Transaction:
    """The address work of one transaction. Call ``keep`` after the commit so that the
    free spaces it changed go back to the process's cache.

    Addresses whose quarantine has ended are freed by the first claim in their prefix,
    at most once per ``sweep_s`` per prefix: a later sweep only delays their reuse (they
    stay held meanwhile), it never hands out one still held, and most claims save a
    statement."""

    run: Executor
    cache: FreeSpaceCache[AddressSpace]
    now: datetime
    sweep_s: float = 0.0
    locked: dict[int, Locked] = field(default_factory=dict)

    @classmethod
    def begin(cls, rt: Runtime, target: Cursor | Connection, now: datetime) -> Transaction:
        """The address work of a transaction of ``rt`` on ``target``."""
        sweep_s = min(SWEEP_S, rt.settings.ip_quarantine_s)
        return cls(Executor(target, rt.db), rt.addresses, now, sweep_s)

    def lock_subnet(self, company_id: int, name: str, company: str) -> Locked:
        """Lock a company's subnet by name (not_found when it has none of that name)."""
        got = self.run.rows(
            _LOCK_OWNED, {"b_kind": "subnet", "b_company": company_id, "b_name": name}
        )
        if not got:
            raise NotFound(
                f"subnet {name!r} not found in {company!r}", resource="subnet", name=name
            )
        return self._locked(got[0], name)

    def lock_pool(self, name: str) -> Locked:
        """Lock a public supernet (a pool of floating addresses) by name."""
        got = self.run.rows(_LOCK_POOL, {"b_name": name})
        if not got:
            raise NotFound(
                f"public address pool {name!r} not found (a supernet with purpose public)",
                resource="supernet",
                name=name,
            )
        return self._locked(got[0], name)

    def _locked(self, row: tuple[Any, ...], name: str) -> Locked:
        prefix_id, generation, cidr, company_id = row
        already = self.locked.get(prefix_id)
        if already is not None:  # locked twice in one transaction: keep the first space
            already.generation = generation
            return already
        cached = self.cache.take(PREFIX, prefix_id, generation - 1)
        if cached is not None and (self.now - cached.swept_at).total_seconds() < self.sweep_s:
            freed, swept_at = [], cached.swept_at
        else:
            freed = self.run.rows(_FREE_QUARANTINED, {"b_id": prefix_id, "b_now": self.now})
            swept_at = self.now
        if cached is None:
            held = self.run.rows(HELD, {"b_id": prefix_id})
            space = address_space(ipaddress.ip_network(cidr), (a for (a,) in held))
        else:
            space = cached.space
            for (address,) in freed:
                space.release(host_network(address))
        locked = Locked(prefix_id, name, company_id, generation, space, swept_at)
        self.locked[prefix_id] = locked
        return locked

    def take(
        self,
        prefix: Locked,
        *,
        company_id: int,
        actor: str,
        count: int = 1,
        address: str | None = None,
        kind: str = FIXED,
        description: str = "",
        allocation_id: str | None = None,
        unit: int | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> list[Taken]:
        """Hand out ``count`` next free addresses (lowest first) or the given ``address``;
        ``idempotency`` (key, request hash) is stored with a single address."""
        space = prefix.space
        chosen: list[str] = []
        try:
            if address is not None:
                chosen.append(str(space.claim(host_network(address)).network_address))
            else:
                for _ in range(count):
                    chosen.append(space.allocate_address())
        except SpaceExhausted:
            raise AddressSpaceExhausted(
                f"{prefix.name} ({prefix.root}) has no free address left"
                + (f" for {count} more" if count > 1 else ""),
                largest_free=None,
            ) from None
        except SpaceError:
            if address is not None and not _inside(host_network(address), prefix.root):
                raise PrefixOutsideParent(
                    f"{address} is not inside {prefix.name} ({prefix.root})",
                    parent=str(prefix.root),
                ) from None
            raise PrefixOverlaps(
                f"{address} is not free in {prefix.name} ({prefix.root}): it is held, "
                "reserved or in quarantine"
            ) from None
        out = []
        for text in chosen:
            (row_id,) = self.run.rows(
                _INSERT,
                {
                    "subnet_id": prefix.id,
                    "company_id": company_id,
                    "address": text,
                    "description": description,
                    "created_at": self.now,
                    "created_by": actor,
                    "kind": kind,
                    "allocation_id": allocation_id,
                    "unit": unit,
                    "idempotency_key": idempotency[0] if idempotency else None,
                    "request_hash": idempotency[1] if idempotency else None,
                },
                _INSERT_COLUMNS,
            )[0]
            out.append(Taken(row_id, text, prefix, unit))
        return out

    def take_interfaces(
        self,
        *,
        company_id: int,
        company: str,
        allocation_id: str,
        units: int,
        interfaces: Sequence[Mapping[str, Any]],
        actor: str,
    ) -> dict[int, list[Taken]]:
        """The addresses of an allocation's interfaces: for each unit, ``count`` next free
        addresses on each requested subnet. Subnets are locked in name order, so two
        claims never wait for each other's subnets in opposite orders."""
        wanted: dict[str, int] = {}
        for spec in interfaces:
            wanted[spec["subnet"]] = wanted.get(spec["subnet"], 0) + int(spec.get("count", 1))
        prefixes = {name: self.lock_subnet(company_id, name, company) for name in sorted(wanted)}
        out: dict[int, list[Taken]] = {unit: [] for unit in range(units)}
        for unit in range(units):
            for name, count in wanted.items():
                out[unit] += self.take(
                    prefixes[name],
                    company_id=company_id,
                    actor=actor,
                    count=count,
                    description="",
                    allocation_id=allocation_id,
                    unit=unit,
                )
        return out

    def keep(self) -> None:
        """After the commit: the changed free spaces are current at their new generation."""
        for locked in self.locked.values():
            entry = AddressSpace(locked.space, locked.swept_at)
            self.cache.put(PREFIX, locked.id, locked.generation, entry)


def _inside(network: Network, root: Network) -> bool:
    return network.version == root.version and network.subnet_of(root)  # type: ignore[arg-type]


def event_data(taken: Mapping[int, Sequence[Taken]]) -> dict[str, Any]:
    """The addresses of a claim per unit, for its event (nothing when it asked for none)."""
    if not taken:
        return {}
    return {"addresses": {str(u): [t.address for t in ts] for u, ts in taken.items()}}

"""VPCs as the isolation use cases find them: named ``company/vpc`` (rules, peerings) or
holding an address (reachability), with what peering policy needs to know of them.

Access follows invariant 4: a company sees and changes its own VPCs only; another
company's VPC can be *named* in a peering request (the name is agreed between the two
companies), which reveals nothing but what the peering itself shows both sides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from groupcloud.db.models import CompanyRow, NetPrefixRow, ZoneRow
from groupcloud.domain.network import DataClass
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput, NotFound
from groupcloud.ipam.isolation import Address, Endpoint, Vpc, containing_prefixes
from groupcloud.schemas.isolation import PeeringSide
from groupcloud.services.tenancy.access import company_by_slug, require

__all__ = [
    "VPC",
    "VpcView",
    "lock_vpcs",
    "owned_vpc",
    "split_ref",
    "vpc_at",
    "vpc_by_name",
    "vpc_named",
    "vpc_views",
]

VPC = "vpc"


@dataclass(frozen=True, slots=True)
class VpcView:
    """A VPC with its company's slug and its supernet's zone."""

    row: NetPrefixRow
    company: str
    zone: str | None

    @property
    def ref(self) -> str:
        return f"{self.company}/{self.row.name}"

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.row.cidr)

    def vpc(self) -> Vpc:
        return Vpc(self.row.id, self.network)

    def endpoint(self) -> Endpoint:
        return Endpoint(self.row.id, self.network, self.zone or "", self.row.data_class or "")

    def side(self, *, disclose: bool = True) -> PeeringSide:
        """The VPC as a side of a peering; without ``disclose``, its name only."""
        if not disclose:
            return PeeringSide(company=self.company, vpc=self.row.name)
        return PeeringSide(
            company=self.company,
            vpc=self.row.name,
            cidr=self.row.cidr,
            zone=self.zone,
            data_class=DataClass(self.row.data_class) if self.row.data_class else None,
        )


def split_ref(actor: Principal, ref: str, default_company: str | None = None) -> tuple[str, str]:
    """``bank/core`` -> (bank, core); ``core`` -> (the default or the caller's company, core)."""
    company, _, name = ref.rpartition("/")
    company = company or default_company or actor.company or ""
    if not company:
        raise InvalidInput(
            f"{ref!r}: name the VPC as 'company/vpc' with a group-admin token",
            errors=[{"field": "vpc", "message": "expected 'company/vpc'"}],
        )
    return company, name


def vpc_named(s: Session, company: str, name: str, *, lock: bool = False) -> NetPrefixRow | None:
    """Any company's VPC by name, without an access check; None if there is none."""
    query = (
        select(NetPrefixRow)
        .join(CompanyRow, CompanyRow.id == NetPrefixRow.company_id)
        .where(NetPrefixRow.kind == VPC, CompanyRow.slug == company, NetPrefixRow.name == name)
    )
    return s.scalar(query.with_for_update(of=NetPrefixRow) if lock else query)


def vpc_by_name(s: Session, company: str, name: str, *, lock: bool = False) -> NetPrefixRow:
    """Any company's VPC by name, without an access check (not_found if there is none)."""
    row = vpc_named(s, company, name, lock=lock)
    if row is None:
        raise NotFound(f"VPC {company}/{name} not found", resource="vpc", name=f"{company}/{name}")
    return row


def owned_vpc(
    s: Session, actor: Principal, company: str, name: str, *, manage: bool, lock: bool = False
) -> NetPrefixRow:
    """A VPC of a company the caller may see (not_found otherwise, as for every object of
    another company); with ``manage``, one it may administer (forbidden otherwise)."""
    owner = company_by_slug(s, actor, company)
    if manage:
        require(actor, Action.MANAGE, owner.id, f"changing the isolation of {company}'s VPCs")
    return vpc_by_name(s, company, name, lock=lock)


def lock_vpcs(s: Session, ids: Iterable[int]) -> None:
    """Lock VPC rows in id order (the one lock order of every isolation change, so that
    two of them never wait for each other); SQLite's writers are serialised anyway."""
    s.execute(
        select(NetPrefixRow.id)
        .where(NetPrefixRow.id.in_(sorted(set(ids))))
        .order_by(NetPrefixRow.id)
        .with_for_update()
    ).all()


def vpc_views(s: Session, ids: Iterable[int]) -> dict[int, VpcView]:
    """VPCs by id with their company and zone, in one query."""
    wanted = set(ids)
    if not wanted:
        return {}
    supernet = aliased(NetPrefixRow)
    rows = s.execute(
        select(NetPrefixRow, CompanyRow.slug, ZoneRow.name)
        .join(CompanyRow, CompanyRow.id == NetPrefixRow.company_id)
        .outerjoin(supernet, supernet.id == NetPrefixRow.parent_id)
        .outerjoin(ZoneRow, ZoneRow.id == supernet.zone_id)
        .where(NetPrefixRow.id.in_(wanted))
    ).all()
    return {row.id: VpcView(row, slug, zone) for row, slug, zone in rows}


def vpc_at(s: Session, address: Address) -> NetPrefixRow | None:
    """The VPC holding ``address`` (the most specific, as the engine decides; the oldest of
    equal ones). Looks up the prefixes that could hold it among the children of the
    supernets that could hold it: index lookups, never a scan of the VPCs."""
    candidates = [str(p) for p in containing_prefixes(address)]
    supernets = select(NetPrefixRow.id).where(
        NetPrefixRow.parent_id.is_(None), NetPrefixRow.cidr.in_(candidates)
    )
    rows = s.scalars(
        select(NetPrefixRow)
        .where(
            NetPrefixRow.parent_id.in_(supernets),
            NetPrefixRow.kind == VPC,
            NetPrefixRow.cidr.in_(candidates),
        )
        .order_by(NetPrefixRow.id)
    ).all()
    if not rows:
        return None
    return max(rows, key=lambda r: (ipaddress.ip_network(r.cidr).prefixlen, -r.id))

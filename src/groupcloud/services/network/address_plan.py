"""A company's addressing plan: what it holds of the group's address space, as one
document (JSON) or one row per item (CSV), for its network team and for audits."""

from __future__ import annotations

import csv
import io
import ipaddress

from sqlalchemy import select

from groupcloud.db.models import IpAddressRow, NetPrefixRow, ZoneRow
from groupcloud.domain.network import DataClass
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas.network import AddressPlan, PlanAddress, PlanSubnet, PlanVpc
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network import segments
from groupcloud.services.network.prefixes import SUBNET, VPC
from groupcloud.services.tenancy.access import company_by_slug

__all__ = ["CSV_COLUMNS", "plan", "to_csv"]

CSV_COLUMNS = (
    "kind", "vpc", "subnet", "prefix", "address", "segment", "zone", "data_class",
    "state", "allocation", "unit", "attached_to", "description",
)  # fmt: skip


def plan(rt: Runtime, actor: Principal, company: str) -> AddressPlan:
    """Read in one snapshot: VPCs with their VNI, subnets with their VLAN and gateway,
    every held address (quarantined ones marked) and the floating addresses."""
    with rt.db.read() as s:
        owner = company_by_slug(s, actor, company)
        conn = s.connection()
        prefixes = s.scalars(
            select(NetPrefixRow)
            .where(NetPrefixRow.company_id == owner.id, NetPrefixRow.kind.in_([VPC, SUBNET]))
            .order_by(NetPrefixRow.id)
        ).all()
        held = s.scalars(
            select(IpAddressRow)
            .where(IpAddressRow.company_id == owner.id, IpAddressRow.freed_at.is_(None))
            .order_by(IpAddressRow.id)
        ).all()
        by_id = {a.id: a.address for a in held}
        per_prefix: dict[int, list[PlanAddress]] = {}
        for a in held:
            per_prefix.setdefault(a.subnet_id, []).append(
                PlanAddress(
                    id=a.id,
                    address=a.address,
                    kind=a.kind,
                    state="held" if a.released_at is None else "quarantined",
                    allocation=a.allocation_id,
                    unit=a.unit,
                    attached_to=by_id.get(a.attached_to) if a.attached_to else None,
                    description=a.description,
                )
            )
        subnets: dict[int, list[PlanSubnet]] = {}
        for p in prefixes:
            if p.kind == SUBNET:
                root = ipaddress.ip_network(p.cidr)
                subnets.setdefault(p.parent_id or 0, []).append(
                    PlanSubnet(
                        name=p.name,
                        cidr=p.cidr,
                        gateway=str(root.network_address + 1) if root.num_addresses >= 4 else None,
                        vlan=segments.segment_of(conn, p.id),
                        addresses=per_prefix.get(p.id, []),
                    )
                )
        supernets = {
            n.id: (n.name, zone)
            for n, zone in s.execute(
                select(NetPrefixRow, ZoneRow.name).join(ZoneRow, ZoneRow.id == NetPrefixRow.zone_id)
            ).all()
        }
        vpcs = []
        for p in prefixes:
            if p.kind == VPC:
                supernet, zone = supernets.get(p.parent_id or 0, ("", ""))
                vpcs.append(
                    PlanVpc(
                        name=p.name,
                        cidr=p.cidr,
                        supernet=supernet,
                        zone=zone,
                        data_class=DataClass(p.data_class) if p.data_class else None,
                        vni=segments.segment_of(conn, p.id),
                        subnets=subnets.get(p.id, []),
                    )
                )
        mine = {p.id for p in prefixes}
        floating = [a for pid, rows in per_prefix.items() if pid not in mine for a in rows]
        return AddressPlan(
            company=owner.slug, generated_at=rt.clock(), vpcs=vpcs, floating=floating
        )


def to_csv(doc: AddressPlan) -> str:
    """One row per VPC, subnet and address (spreadsheet-friendly)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    blank = dict.fromkeys(CSV_COLUMNS, "")

    def address_row(a: PlanAddress, vpc: str, subnet: str) -> dict[str, object]:
        return {
            **blank,
            "kind": f"{a.kind}_ip",
            "vpc": vpc,
            "subnet": subnet,
            "address": a.address,
            "state": a.state,
            "allocation": a.allocation or "",
            "unit": "" if a.unit is None else a.unit,
            "attached_to": a.attached_to or "",
            "description": a.description,
        }

    for v in doc.vpcs:
        writer.writerow(
            {
                **blank,
                "kind": "vpc",
                "vpc": v.name,
                "prefix": v.cidr,
                "segment": "" if v.vni is None else v.vni,
                "zone": v.zone,
                "data_class": v.data_class.value if v.data_class else "",
            }
        )
        for sub in v.subnets:
            writer.writerow(
                {
                    **blank,
                    "kind": "subnet",
                    "vpc": v.name,
                    "subnet": sub.name,
                    "prefix": sub.cidr,
                    "segment": "" if sub.vlan is None else sub.vlan,
                    "zone": v.zone,
                    "data_class": v.data_class.value if v.data_class else "",
                }
            )
            for a in sub.addresses:
                writer.writerow(address_row(a, v.name, sub.name))
    for a in doc.floating:
        writer.writerow(address_row(a, "", ""))
    return out.getvalue()

"""The demo group: four companies sharing one pool of 40 hosts (8 with GPUs), a local
zone of two hosts per company, two external regions of a simulated public cloud (one in
Korea cleared for D3, one in the US for D1/D2) and the group's address space (a private
/8, a public pool, VLAN and VXLAN ranges).

Built through the same services as the API, so the demo exercises the real paths and
its audit trail reads like an operator's first day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from groupcloud.db.models import CompanyRow
from groupcloud.domain.allocation import Strategy
from groupcloud.domain.inventory import ZoneChoice, ZoneKind
from groupcloud.domain.network import DataClass, NetQuotaKind, SegmentKind, SupernetPurpose
from groupcloud.domain.regulation import Sensitivity
from groupcloud.domain.tenancy import Role
from groupcloud.schemas.compute import (
    AllocationCreate,
    HostCreate,
    InterfaceSpec,
    InventoryIn,
    QuotaSet,
)
from groupcloud.schemas.network import (
    NetQuotaSet,
    SegmentPoolCreate,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.schemas.providers import ProviderCreate, ProviderKind
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas
from groupcloud.services.network import net_quotas, prefixes, segments
from groupcloud.services.providers import catalog
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones

__all__ = ["DEMO_COMPANIES", "SeedResult", "demo_hosts", "seed_demo"]

DEMO_COMPANIES = {
    # slug: (display name, share of the CPU pool, GPUs, projects)
    "bank": ("Group Bank", 0.40, 16, ["mobile-banking", "core-batch"]),
    "card": ("Group Card", 0.30, 16, ["payments", "fraud-ml"]),
    "capital": ("Group Capital", 0.15, 8, ["loan-scoring"]),
    "savings": ("Group Savings Bank", 0.15, 8, ["deposit-app"]),
}


@dataclass
class SeedResult:
    created: bool
    admin_token: str | None = None
    summary: dict[str, int] = field(default_factory=dict)


def demo_hosts() -> list[HostCreate]:
    """32 CPU hosts and 8 GPU hosts (4 x 8 V100 32 GB, 4 x 4 A10), all in zone 'shared'."""
    out = [
        HostCreate(
            name=f"cpu-{i:03d}",
            inventories={
                "VCPU": InventoryIn(total=64, allocation_ratio=4.0),
                "MEMORY_MB": InventoryIn(total=262144, reserved=8192),
                "DISK_GB": InventoryIn(total=2000),
            },
            traits=["ssd"] if i % 2 else [],
        )
        for i in range(1, 33)
    ]
    for i in range(1, 9):
        v100 = i <= 4
        out.append(
            HostCreate(
                name=f"gpu-{i:03d}",
                inventories={
                    "VCPU": InventoryIn(total=96, allocation_ratio=2.0),
                    "MEMORY_MB": InventoryIn(total=786432, reserved=16384),
                    "DISK_GB": InventoryIn(total=4000),
                    "GPU": InventoryIn(total=8 if v100 else 4),
                },
                traits=["ssd", "gpu_model=V100M32" if v100 else "gpu_model=A10"],
            )
        )
    return out


def local_hosts(company: str, zone: str) -> list[HostCreate]:
    """Two CPU hosts in a company's local zone."""
    return [
        HostCreate(
            name=f"{company}-{i:02d}",
            zone=zone,
            inventories={
                "VCPU": InventoryIn(total=32, allocation_ratio=2.0),
                "MEMORY_MB": InventoryIn(total=131072, reserved=4096),
                "DISK_GB": InventoryIn(total=1000),
            },
            traits=["ssd"],
        )
        for i in (1, 2)
    ]


def _seed_external(rt: Runtime) -> None:
    """A simulated public cloud ``sim`` with a Korean region cleared for D3 and a US
    region approved for D1 and D2, so the placement rules show in offers and bursts."""
    catalog.create_provider(
        rt,
        SYSTEM,
        ProviderCreate(
            name="sim",
            kind=ProviderKind.SIMULATED,
            settings={"latency_s": 0.05},
            description="Simulated public cloud (no account needed)",
        ),
    )
    zones.create_zone(
        rt,
        SYSTEM,
        ZoneCreate(
            name="sim-kr",
            kind=ZoneKind.EXTERNAL,
            provider="sim",
            region="kr-central-1",
            country="KR",
            certifications=["cloud_security_assessment", "csap"],
            approved=True,
            approved_for_d3=True,
            description="Simulated Korean region, assessed and approved for D3",
        ),
    )
    zones.create_zone(
        rt,
        SYSTEM,
        ZoneCreate(
            name="sim-us",
            kind=ZoneKind.EXTERNAL,
            provider="sim",
            region="us-east-1",
            country="US",
            approved=True,
            data_classes=[Sensitivity.D1, Sensitivity.D2],
            description="Simulated US region, approved for D1 and D2",
        ),
    )


def seed_demo(rt: Runtime, *, if_empty: bool = True) -> SeedResult:
    """Create the demo group. With ``if_empty``, do nothing when companies already exist."""
    with rt.db.read() as s:
        existing = s.scalar(select(func.count()).select_from(CompanyRow)) or 0
    if existing and if_empty:
        return SeedResult(created=False)

    zones.create_zone(
        rt,
        SYSTEM,
        ZoneCreate(
            name="shared",
            description="The group pool",
            country="KR",
            internet_separated=True,
            certifications=["isms_p"],
        ),
    )
    added = hosts.add_hosts(rt, SYSTEM, demo_hosts())
    pool: dict[str, int] = {}
    for h in added:
        for rc, inv in h.inventories.items():
            pool[rc] = pool.get(rc, 0) + inv.capacity
    for slug, (name, share, gpus, projects) in DEMO_COMPANIES.items():
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=slug, name=name))
        local = f"{slug}-local"
        zones.create_zone(
            rt,
            SYSTEM,
            ZoneCreate(name=local, kind=ZoneKind.LOCAL, owner_company=slug, country="KR",
                       internet_separated=True, description=f"{name}'s own racks"),
        )  # fmt: skip
        added += hosts.add_hosts(rt, SYSTEM, local_hosts(slug, local))
        for project in projects:
            companies.create_project(rt, SYSTEM, slug, ProjectCreate(slug=project))
        # Each company may go half its nominal above it by borrowing others' idle
        # nominal, and lends all of its own idle nominal (the point of the group cloud).
        for rc in ("VCPU", "MEMORY_MB", "DISK_GB"):
            nominal = int(pool[rc] * share)
            quotas.set_quota(
                rt, SYSTEM, slug, rc, QuotaSet(nominal=nominal, borrowing_limit=nominal // 2)
            )
        quotas.set_quota(rt, SYSTEM, slug, "GPU", QuotaSet(nominal=gpus, borrowing_limit=gpus))

    _seed_networks(rt)
    _seed_external(rt)
    workloads = [
        ("bank", "mobile-banking", {"VCPU": 8, "MEMORY_MB": 32768, "DISK_GB": 100}, 12, None),
        ("bank", "core-batch", {"VCPU": 32, "MEMORY_MB": 131072, "DISK_GB": 500}, 4, None),
        ("card", "fraud-ml", {"VCPU": 16, "MEMORY_MB": 131072, "GPU": 4}, 2, "gpu_model=V100M32"),
        ("capital", "loan-scoring", {"VCPU": 4, "MEMORY_MB": 16384, "DISK_GB": 50}, 6, None),
    ]
    # Savings' deposit app is D2: the rules allow approved external zones, and the US
    # region is the cheapest; the worker's provisioner creates its instances.
    allocations.allocate(
        rt,
        SYSTEM,
        AllocationCreate(
            company="savings",
            project="deposit-app",
            resources={"VCPU": 2, "MEMORY_MB": 8192},
            count=2,
            data_class=Sensitivity.D2,
            zone_kind=ZoneChoice.EXTERNAL,
        ),
    )
    for company, project, resources, count, trait in workloads:
        interfaces = [InterfaceSpec(subnet="app")] if company == "bank" else []
        allocations.allocate(
            rt,
            SYSTEM,
            AllocationCreate(
                company=company,
                project=project,
                resources=resources,
                count=count,
                required_traits=[trait] if trait else [],
                anti_affinity_group=project if count > 1 and trait is None else None,
                strategy=Strategy.SPREAD,
                interfaces=interfaces,
            ),
        )
    admin = tokens.issue_token(
        rt, SYSTEM, TokenCreate(name="bootstrap-admin", role=Role.GROUP_ADMIN)
    )
    return SeedResult(
        created=True,
        admin_token=admin.secret,
        summary={
            "companies": len(DEMO_COMPANIES),
            "hosts": len(added),
            "allocations": len(workloads) + 1,
            "zones": 3 + len(DEMO_COMPANIES),
            **{f"pool_{rc.lower()}": n for rc, n in sorted(pool.items())},
            "vpcs": len(DEMO_COMPANIES),
        },
    )


def _seed_networks(rt: Runtime) -> None:
    """The group's address space and one VPC per company (a /16 with an ``app`` /22),
    each company limited to 8 VPCs, 16 floating addresses and 2^20 IPv4 addresses."""
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    prefixes.create_supernet(
        rt,
        SYSTEM,
        SupernetCreate(name="internet", cidr="203.0.113.0/24", purpose=SupernetPurpose.PUBLIC),
    )
    for name, kind, first, last in (
        ("shared-vni", SegmentKind.VXLAN, 10000, 19999),
        ("shared-vlan", SegmentKind.VLAN, 100, 999),
    ):
        segments.create_pool(
            rt, SYSTEM, SegmentPoolCreate(name=name, kind=kind, first=first, last=last)
        )
    for slug in DEMO_COMPANIES:
        for quota, limit in (
            (NetQuotaKind.VPCS, 8),
            (NetQuotaKind.FLOATING_IPS, 16),
            (NetQuotaKind.IPV4_ADDRESSES, 2**20),
        ):
            net_quotas.set_net_quota(rt, SYSTEM, slug, quota, NetQuotaSet(limit=limit))
        data_class = DataClass.RESTRICTED if slug in ("bank", "card") else DataClass.INTERNAL
        prefixes.create_vpc(
            rt,
            SYSTEM,
            VpcCreate(
                name="main", supernet="corp", company=slug, prefixlen=16, data_class=data_class
            ),
        )
        prefixes.create_subnet(rt, SYSTEM, slug, "main", SubnetCreate(name="app", prefixlen=22))

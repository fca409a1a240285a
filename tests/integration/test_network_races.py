"""Addresses, prefixes and segment ids under real concurrency: 64 clients on two server
processes sharing one PostgreSQL (32 on the embedded SQLite file), each process with its
own cached free spaces, all asking for the same subnets, VPC, public pool and segment
pools at once. Afterwards nothing is held twice, every answer a client got is what the
database holds, and the network counters equal the rows."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from groupcloud.db.models import CompanyRow, IpAddressRow, NetPrefixRow, SegmentRow
from groupcloud.domain.network import NetQuotaKind
from groupcloud.domain.tenancy import Role
from groupcloud.schemas.compute import QuotaSet
from groupcloud.schemas.network import (
    NetQuotaSet,
    SegmentPoolCreate,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import hosts, quotas
from groupcloud.services.network import net_quotas, prefixes, segments
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.conftest import open_runtime
from tests.support import check_consistency, host, server_processes

COMPANIES = ("bank", "card")
EXPECTED = {
    "created", "released", "address_space_exhausted", "network_quota_exceeded",
    "segment_pool_exhausted", "already_exists", "prefix_overlaps",
}  # fmt: skip


def net_world(rt: Runtime) -> dict[str, str]:
    """Small spaces so that they run out: per company a VPC with a /27 subnet ``hot`` (29
    addresses to hand out), VLAN ids 1-40 for subnets, VNIs 1-12 for VPCs, a public /28
    pool with a floating quota of 4 each. Returns an admin token per company."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    hosts.add_hosts(rt, SYSTEM, [host(f"n{i}", vcpu=64, memory=262144) for i in range(4)])
    segments.create_pool(rt, SYSTEM, SegmentPoolCreate(name="vlan", kind="vlan", first=1, last=40))
    segments.create_pool(rt, SYSTEM, SegmentPoolCreate(name="vni", kind="vxlan", first=1, last=12))
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/16"))
    prefixes.create_supernet(
        rt,
        SYSTEM,
        SupernetCreate(name="internet", cidr="198.51.100.0/28", purpose="public"),
    )
    secrets = {}
    for slug in COMPANIES:
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=slug, name=slug))
        companies.create_project(rt, SYSTEM, slug, ProjectCreate(slug="app"))
        quotas.set_quota(rt, SYSTEM, slug, "VCPU", QuotaSet(nominal=128))
        net_quotas.set_net_quota(rt, SYSTEM, slug, NetQuotaKind.FLOATING_IPS, NetQuotaSet(limit=4))
        prefixes.create_vpc(
            rt, SYSTEM, VpcCreate(name="core", supernet="corp", company=slug, prefixlen=20)
        )
        prefixes.create_subnet(rt, SYSTEM, slug, "core", SubnetCreate(name="hot", prefixlen=27))
        secrets[slug] = tokens.issue_token(
            rt, SYSTEM, TokenCreate(name=f"{slug}-lead", role=Role.COMPANY_ADMIN, company=slug)
        ).secret
    return secrets


@dataclass
class Seen:
    """What the clients were told."""

    statuses: Counter[str] = field(default_factory=Counter)
    addresses: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> subnet, address
    released: set[int] = field(default_factory=set)
    prefixes: dict[str, str] = field(default_factory=dict)  # company/name -> cidr
    allocations: dict[str, list[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    finished: int = 0  # clients that ran all their operations (a crashed thread is missing)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(seed: int, url: str, company: str, secret: str, ops: int, seen: Seen) -> None:
    rng = random.Random(seed)
    held: list[int] = []
    local = Seen()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=60) as c:
        for op in range(ops):
            roll = rng.random()
            if held and roll < 0.3:
                ip_id = held.pop(rng.randrange(len(held)))
                r = c.post(f"/v1/networks/ips/{ip_id}/release")
                kind = "released"
                if r.status_code == 200:
                    local.released.add(ip_id)
            elif roll < 0.6:
                r = c.post(f"/v1/networks/subnets/{company}/hot/ips", json={})
                kind = "created"
                if r.status_code == 201:
                    body = r.json()
                    local.addresses[body["id"]] = ("hot", body["address"])
                    held.append(body["id"])
            elif roll < 0.75:
                name = f"s{seed}-{op}"
                r = c.post(
                    f"/v1/networks/vpcs/{company}/core/subnets",
                    json={"name": name, "prefixlen": 28},
                )
                kind = "created"
                if r.status_code == 201:
                    local.prefixes[f"{company}/{name}"] = r.json()["cidr"]
            elif roll < 0.85:
                r = c.post("/v1/networks/floating-ips", json={"pool": "internet"})
                kind = "created"
                if r.status_code == 201:
                    body = r.json()
                    local.addresses[body["id"]] = ("internet", body["address"])
                    held.append(body["id"])
            elif roll < 0.92:
                name = f"v{seed}-{op}"
                r = c.post(
                    "/v1/networks/vpcs", json={"name": name, "supernet": "corp", "prefixlen": 26}
                )
                kind = "created"
                if r.status_code == 201:
                    local.prefixes[f"{company}/{name}"] = r.json()["cidr"]
            else:
                body = {"project": "app", "resources": {"VCPU": 1}, "count": 2,
                        "interfaces": [{"subnet": "hot"}], "queue": False}  # fmt: skip
                r = c.post("/v1/allocations", json=body)
                kind = "created"
                if r.status_code == 201:
                    made = r.json()
                    local.allocations[made["id"]] = [
                        a["address"] for u in made["units"] for a in u["addresses"]
                    ]
            if r.status_code >= 400:
                kind = r.json().get("code", str(r.status_code))
            local.statuses[kind] += 1
            if kind not in EXPECTED:
                local.unexpected.append(f"{r.status_code} {r.text[:300]}")
    with seen.lock:
        seen.statuses.update(local.statuses)
        seen.addresses.update(local.addresses)
        seen.released |= local.released
        seen.prefixes.update(local.prefixes)
        seen.allocations.update(local.allocations)
        seen.unexpected += local.unexpected
        seen.finished += 1


@pytest.fixture
def rt_on(tmp_path: Path) -> Iterator[list[Runtime]]:
    opened: list[Runtime] = []
    yield opened
    for rt in opened:
        rt.close()


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "clients", "ops"),
    [("postgresql", 64, 25), ("sqlite", 32, 25)],
    ids=["postgresql-64-clients", "sqlite-32-clients"],
)
def test_no_address_prefix_or_segment_is_handed_out_twice(
    backend: str,
    clients: int,
    ops: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rt_on: list[Runtime],
) -> None:
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt = open_runtime(url, tmp_path)
    rt_on.append(rt)
    secrets = net_world(rt)
    fast_reuse = {"GROUPCLOUD_IP_QUARANTINE_S": "0", "GROUPCLOUD_WORKER_INTERVAL_S": "3600"}
    seen = Seen()
    with server_processes(url, tmp_path, 2, fast_reuse) as urls:
        threads = [
            threading.Thread(
                target=client_loop,
                args=(
                    n,
                    urls[n % 2],
                    COMPANIES[n // 2 % 2],
                    secrets[COMPANIES[n // 2 % 2]],
                    ops,
                    seen,
                ),
            )
            for n in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert seen.finished == clients
    _check(rt, seen)


def _check(rt: Runtime, seen: Seen) -> None:
    assert not seen.unexpected, seen.unexpected[:5]
    for code in ("address_space_exhausted", "segment_pool_exhausted", "network_quota_exceeded"):
        assert seen.statuses[code] > 0, f"{code} never happened, nothing raced: {seen.statuses}"
    assert seen.statuses["created"] >= 200, seen.statuses
    consistency = check_consistency(rt)
    assert consistency.ok, consistency
    with rt.db.read() as s:
        rows = {
            r.id: r
            for r in s.scalars(
                select(IpAddressRow).where(IpAddressRow.id.in_(list(seen.addresses)))
            )
        }
        prefixes = {
            f"{company}/{name}": cidr
            for company, name, cidr in s.execute(
                select(CompanyRow.slug, NetPrefixRow.name, NetPrefixRow.cidr).join(
                    CompanyRow, CompanyRow.id == NetPrefixRow.company_id
                )
            )
        }
        doubled = s.execute(
            select(SegmentRow.pool_id, SegmentRow.value)
            .where(SegmentRow.released_at.is_(None))
            .group_by(SegmentRow.pool_id, SegmentRow.value)
            .having(func.count() > 1)
        ).all()
    assert doubled == []
    for ip_id, (_, address) in seen.addresses.items():
        assert rows[ip_id].address == address  # what the client was told is what is stored
        assert (rows[ip_id].released_at is not None) == (ip_id in seen.released)
    for key, cidr in seen.prefixes.items():
        assert prefixes[key] == cidr
    live = [a for got in seen.allocations.values() for a in got]
    assert len(live) == len(set(live))

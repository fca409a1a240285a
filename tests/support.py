"""Helpers for tests: a small group to work on, and servers to talk to over real HTTP."""

from __future__ import annotations

import ipaddress
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from groupcloud.api.app import create_app
from groupcloud.db.models import (
    AllocationDeviceRow,
    AllocationItemRow,
    AllocationRow,
    GpuDeviceRow,
    InventoryRow,
    IpAddressRow,
    LoanRow,
    NetPrefixRow,
    NetQuotaRow,
    QuotaRow,
    ServiceInstanceRow,
    ZoneRow,
)
from groupcloud.dbaas import PostgresService, SecretBox
from groupcloud.domain.allocation import GPU_MILLI, AllocationState, gpu_quota
from groupcloud.domain.clock import utcnow
from groupcloud.domain.network import NetQuotaKind
from groupcloud.domain.tenancy import Role
from groupcloud.schemas.compute import HostCreate, InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import hosts, quotas
from groupcloud.services.network import net_quotas
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones


@dataclass
class ManualClock:
    """A runtime clock (``rt.clock = ManualClock()``) that stands still until the test
    moves it: time-based rules (quarantine, leases, backoff, idle) are then tested at the
    instants that matter, without waiting for the wall clock."""

    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock ``seconds`` on; the new instant."""
        self.now += timedelta(seconds=seconds)
        return self.now


PG_ADMIN_URL = os.environ.get(
    "GROUPCLOUD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


DBAAS_ADMIN_URL = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://", 1)
"""The suite's PostgreSQL server as a libpq URL: the catalog's postgresql backend in
tests (its role is a superuser, as the backend needs)."""

DBAAS_SETTINGS: dict[str, object] = {
    "dbaas_postgres_url": DBAAS_ADMIN_URL,
    "secret_key": SecretBox.generate_key(),
}
"""Settings of a runtime whose postgresql services are real databases on that server."""


def drop_service_databases(rt: Runtime) -> None:
    """Remove, from the test server, every database the runtime's services made (a test
    that failed half-way leaves none behind)."""
    with rt.db.read() as s:
        made = list(
            s.scalars(select(ServiceInstanceRow.id).where(ServiceInstanceRow.backend.is_not(None)))
        )
    backend = PostgresService(DBAAS_ADMIN_URL)
    for instance_id in made:
        backend.deprovision(instance_id)


@dataclass
class World:
    """Tokens (secrets) of a small group: bank and card, each with projects and quotas."""

    admin: str
    bank_admin: str
    bank_member: str
    card_member: str


def host(name: str, vcpu: int = 16, memory: int = 65536, gpu: int = 0, **kw: object) -> HostCreate:
    inventories = {"VCPU": InventoryIn(total=vcpu), "MEMORY_MB": InventoryIn(total=memory)}
    if gpu:
        inventories["GPU"] = InventoryIn(total=gpu)
    return HostCreate(name=name, inventories=inventories, **kw)


def build_world(rt: Runtime, n_hosts: int = 4) -> World:
    """Zone ``shared``; companies bank (projects web, batch) and card (project pay);
    ``n_hosts`` hosts h1.. of 16 VCPU / 64 GiB, h1 with 4 GPUs and trait ssd;
    quotas: bank 32 VCPU / 128 GiB / 4 GPU, card 16 VCPU / 64 GiB."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    for slug, projects in {"bank": ["web", "batch"], "card": ["pay"]}.items():
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=slug, name=slug.title()))
        for p in projects:
            companies.create_project(rt, SYSTEM, slug, ProjectCreate(slug=p))
    hosts.add_hosts(
        rt,
        SYSTEM,
        [host("h1", gpu=4, traits=["ssd"])] + [host(f"h{i}") for i in range(2, n_hosts + 1)],
    )
    for company, amounts in {
        "bank": {"VCPU": 32, "MEMORY_MB": 131072, "GPU": 4},
        "card": {"VCPU": 16, "MEMORY_MB": 65536},
    }.items():
        for rc, n in amounts.items():
            quotas.set_quota(rt, SYSTEM, company, rc, QuotaSet(nominal=n))

    def issue(name: str, role: Role, company: str | None = None) -> str:
        return tokens.issue_token(
            rt, SYSTEM, TokenCreate(name=name, role=role, company=company)
        ).secret

    return World(
        admin=issue("ops", Role.GROUP_ADMIN),
        bank_admin=issue("bank-lead", Role.COMPANY_ADMIN, "bank"),
        bank_member=issue("bank-dev", Role.MEMBER, "bank"),
        card_member=issue("card-dev", Role.MEMBER, "card"),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def start_thread_server(rt: Runtime) -> Iterator[str]:
    """uvicorn in a thread of this process, serving ``rt`` over real HTTP on 127.0.0.1."""
    port = free_port()
    config = uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_ready(
    url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server at {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server at {url} not ready after {timeout} s")
        time.sleep(0.05)


def start_server_process(
    database_url: str, data_dir: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``groupcloud serve`` as a separate process on a free port (``env``: more settings);
    returns it and its URL."""
    port = free_port()
    env = {
        **os.environ,
        "GROUPCLOUD_DATABASE_URL": database_url,
        "GROUPCLOUD_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "groupcloud",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process=process)
    except BaseException:
        stop_processes([process])  # a server that did not come up must not outlive the test
        raise
    return process, url


@contextmanager
def server_processes(
    database_url: str, directory: Path, count: int, env: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """``count`` server processes on one database (logs ``server<i>.log`` in ``directory``);
    yields their URLs. Every one started is stopped on the way out, whatever happened,
    including those started before one failed to."""
    started: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for i in range(count):
            process, url = start_server_process(
                database_url, directory / f"s{i}", directory / f"server{i}.log", env
            )
            started.append(process)
            urls.append(url)
        yield urls
    finally:
        stop_processes(started)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30) -> list[int]:
    """SIGTERM each (still running) process, wait for all; their exit codes. One that does
    not stop in time is killed (and reports -9)."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in processes:
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait(timeout=10))
    return codes


@dataclass
class Consistency:
    """What the counters say against what the allocation rows say."""

    over_allocated: list[tuple[int, str, int, int]]  # host, class, used, capacity
    inventory_mismatch: list[tuple[int, str, int, int]]  # host, class, counter, recomputed
    quota_mismatch: list[tuple[int, str, int, int]]  # company, class, counter, recomputed
    over_quota: list[tuple[int, str, int, int]]  # company, class, used, nominal + borrowing
    orphan_items: int  # items whose allocation row is missing
    empty_active: int  # live allocations without items
    loan_mismatch: list[tuple[str, int, str, int, int]] = field(default_factory=list)
    # (borrowed|lent, company, class, counter, recomputed from the loans of live allocations)
    sharing_broken: list[tuple[int, str, str]] = field(default_factory=list)
    # company, class, which rule: own + lent <= nominal, borrowing/lending limits
    network_broken: list[str] = field(default_factory=list)
    # addresses held twice, interfaces not matching their allocations, network quota
    # counters not matching what the prefixes and addresses add up to
    devices_broken: list[str] = field(default_factory=list)
    # shared GPU devices whose free thousandths are not 1000 - the live shares on them

    @property
    def ok(self) -> bool:
        return not (
            self.over_allocated
            or self.inventory_mismatch
            or self.quota_mismatch
            or self.over_quota
            or self.orphan_items
            or self.empty_active
            or self.loan_mismatch
            or self.sharing_broken
            or self.network_broken
            or self.devices_broken
        )


_HOLDING = (AllocationState.ACTIVE.value, AllocationState.RECLAIMING.value)


def _active_sums(s: Session, key: InstrumentedAttribute[int]) -> dict[tuple[int, str], int]:
    """Amounts of live (active or reclaiming) allocations' items, summed per ``key`` (host
    or company) and class."""
    rows = s.execute(
        select(key, AllocationItemRow.resource_class, func.sum(AllocationItemRow.amount))
        .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
        .where(AllocationRow.state.in_(_HOLDING))
        .group_by(key, AllocationItemRow.resource_class)
    )
    return {(k, rc): int(n) for k, rc, n in rows}


def _loan_sums(s: Session, key: InstrumentedAttribute[int]) -> dict[tuple[int, str], int]:
    """Loans of live allocations summed per ``key`` (borrower or lender) and class."""
    rows = s.execute(
        select(key, LoanRow.resource_class, func.sum(LoanRow.amount))
        .join(AllocationRow, AllocationRow.id == LoanRow.allocation_id)
        .where(AllocationRow.state.in_(_HOLDING))
        .group_by(key, LoanRow.resource_class)
    )
    return {(k, rc): int(n) for k, rc, n in rows}


def _add_external(s: Session, per_company: dict[tuple[int, str], int]) -> None:
    """External allocations hold quota without hosts from placement until their last
    instance is deleted: their amounts per unit times their units."""
    holding = [st.value for st in AllocationState if st.holds_capacity]
    for company_id, resources, count in s.execute(
        select(AllocationRow.company_id, AllocationRow.resources, AllocationRow.count).where(
            AllocationRow.external.is_(True), AllocationRow.state.in_(holding)
        )
    ):
        for rc, n in resources.items():
            key = (company_id, rc)
            per_company[key] = per_company.get(key, 0) + n * count


def check_consistency(rt: Runtime) -> Consistency:
    """Recompute usage from allocation rows and compare with every counter (invariants 1-3),
    including the sharing counters: each company's borrowed = the loans its live
    allocations hold, its lent = the loans others hold from it, and the quota rules."""
    live = AllocationRow.state.in_(_HOLDING)
    with rt.db.read() as s:
        per_host = _active_sums(s, AllocationItemRow.host_id)
        per_company = _active_sums(s, AllocationRow.company_id)
        borrowed = _loan_sums(s, AllocationRow.company_id)
        lent = _loan_sums(s, LoanRow.lender_id)
        inventories = s.execute(
            select(
                InventoryRow.host_id,
                InventoryRow.resource_class,
                InventoryRow.used,
                InventoryRow.capacity,
            )
        ).all()
        quota_rows = s.scalars(select(QuotaRow)).all()
        orphans = (
            s.scalar(
                select(func.count())
                .select_from(AllocationItemRow)
                .where(~AllocationItemRow.allocation_id.in_(select(AllocationRow.id)))
            )
            or 0
        )
        empty = (
            s.scalar(
                select(func.count())
                .select_from(AllocationRow)
                .where(
                    live,
                    AllocationRow.external.is_(False),
                    ~AllocationRow.id.in_(select(AllocationItemRow.allocation_id)),
                )
            )
            or 0
        )
        _add_external(s, per_company)
    devices_broken = _add_shares(rt, per_host, per_company)
    inventory_keys = {(h, rc) for h, rc, _, _ in inventories}
    quota_keys = {(q.company_id, q.resource_class) for q in quota_rows}
    quota_mismatch: list[tuple[int, str, int, int]] = []
    over_quota: list[tuple[int, str, int, int]] = []
    loan_mismatch: list[tuple[str, int, str, int, int]] = []
    sharing_broken: list[tuple[int, str, str]] = []
    for q in quota_rows:
        key = (q.company_id, q.resource_class)
        if q.used != per_company.get(key, 0):
            quota_mismatch.append((*key, q.used, per_company.get(key, 0)))
        if q.borrowing_limit is not None and q.used > q.nominal + q.borrowing_limit:
            over_quota.append((*key, q.used, q.nominal + q.borrowing_limit))
        if q.borrowed != borrowed.get(key, 0):
            loan_mismatch.append(("borrowed", *key, q.borrowed, borrowed.get(key, 0)))
        if q.lent != lent.get(key, 0):
            loan_mismatch.append(("lent", *key, q.lent, lent.get(key, 0)))
        if q.used - q.borrowed + q.lent > q.nominal:
            sharing_broken.append((*key, "own + lent > nominal"))
        if q.borrowing_limit is not None and q.borrowed > q.borrowing_limit:
            sharing_broken.append((*key, "borrowed > borrowing_limit"))
        if q.lending_limit is not None and q.lent > q.lending_limit:
            sharing_broken.append((*key, "lent > lending_limit"))
    network_broken = _network_broken(rt)
    for key in (set(borrowed) | set(lent)) - quota_keys:
        loan_mismatch.append(("no quota line", *key, 0, borrowed.get(key, 0) + lent.get(key, 0)))
    return Consistency(
        over_allocated=[(h, rc, u, c) for h, rc, u, c in inventories if u > c],
        inventory_mismatch=[
            (h, rc, u, per_host.get((h, rc), 0))
            for h, rc, u, _ in inventories
            if u != per_host.get((h, rc), 0)
        ]
        + [(h, rc, 0, n) for (h, rc), n in per_host.items() if (h, rc) not in inventory_keys],
        quota_mismatch=quota_mismatch
        + [(c, rc, 0, n) for (c, rc), n in per_company.items() if (c, rc) not in quota_keys],
        over_quota=over_quota,
        orphan_items=int(orphans),
        empty_active=int(empty),
        loan_mismatch=loan_mismatch,
        sharing_broken=sharing_broken,
        network_broken=network_broken,
        devices_broken=devices_broken,
    )


def _add_shares(
    rt: Runtime, per_host: dict[tuple[int, str], int], per_company: dict[tuple[int, str], int]
) -> list[str]:
    """GPU shares of live allocations: each shared device counts as one GPU used on its
    host, each allocation is charged its shares rounded up to whole GPUs, and every
    device row says 1000 - the live shares on it (no row: no live share)."""
    with rt.db.read() as s:
        units = s.execute(
            select(
                AllocationDeviceRow.allocation_id,
                AllocationRow.company_id,
                AllocationDeviceRow.host_id,
                AllocationDeviceRow.device,
                AllocationDeviceRow.milli,
            )
            .join(AllocationRow, AllocationRow.id == AllocationDeviceRow.allocation_id)
            .where(AllocationRow.state.in_(_HOLDING))
        ).all()
        device_rows = select(GpuDeviceRow.host_id, GpuDeviceRow.device, GpuDeviceRow.free_milli)
        rows = {(h, d): free for h, d, free in s.execute(device_rows)}
    on_device: dict[tuple[int, int], int] = {}
    charged: dict[str, tuple[int, int, int]] = {}
    for alloc_id, company_id, host_id, device, milli in units:
        on_device[host_id, device] = on_device.get((host_id, device), 0) + milli
        _, n, _ = charged.get(alloc_id, (company_id, 0, milli))
        charged[alloc_id] = (company_id, n + 1, milli)
    for host_id, _ in on_device:
        per_host[host_id, "GPU"] = per_host.get((host_id, "GPU"), 0) + 1
    for company_id, n, milli in charged.values():
        key = (company_id, "GPU")
        per_company[key] = per_company.get(key, 0) + gpu_quota(n, milli)
    expected = {key: GPU_MILLI - milli for key, milli in on_device.items()}
    return [
        f"GPU device {key}: row says {rows.get(key)} free, the live shares leave "
        f"{expected.get(key)}"
        for key in sorted(set(expected) | set(rows))
        if rows.get(key) != expected.get(key)
    ]


def _network_broken(rt: Runtime) -> list[str]:
    """Network invariants: no address held twice in a prefix, no VPC overlapping another
    of its supernet; every live allocation holds exactly the interface addresses it asked
    for and no other allocation holds any; network quota counters equal the rows."""
    out: list[str] = []
    with rt.db.read() as s:
        held = s.execute(
            select(IpAddressRow.subnet_id, IpAddressRow.address, func.count())
            .where(IpAddressRow.freed_at.is_(None))
            .group_by(IpAddressRow.subnet_id, IpAddressRow.address)
            .having(func.count() > 1)
        ).all()
        out += [f"address {a} held {n} times in prefix {p}" for p, a, n in held]
        children: dict[int | None, list[str]] = {}
        for parent, cidr in s.execute(select(NetPrefixRow.parent_id, NetPrefixRow.cidr)):
            children.setdefault(parent, []).append(cidr)
        for parent, cidrs in children.items():
            if parent is None:
                continue
            blocks = sorted(ipaddress.ip_network(c) for c in cidrs)
            out += [f"{a} overlaps {b}" for a, b in itertools.pairwise(blocks) if a.overlaps(b)]
        interfaces = s.execute(
            select(
                AllocationRow.id, AllocationRow.state, AllocationRow.count, AllocationRow.interfaces
            )
        ).all()
        live_ips: dict[str | None, int] = dict(
            s.execute(
                select(IpAddressRow.allocation_id, func.count())
                .where(IpAddressRow.allocation_id.is_not(None), IpAddressRow.released_at.is_(None))
                .group_by(IpAddressRow.allocation_id)
            ).all()
        )
        for alloc_id, state, count, wanted in interfaces:
            expected = (
                count * sum(int(i.get("count", 1)) for i in wanted or [])
                if state in _HOLDING
                else 0
            )
            if live_ips.get(alloc_id, 0) != expected:
                out.append(
                    f"allocation {alloc_id} ({state}) holds {live_ips.get(alloc_id, 0)} "
                    f"interface addresses, not {expected}"
                )
        conn = s.connection()
        for row in s.scalars(select(NetQuotaRow)):
            measured = net_quotas.measure(conn, row.company_id, NetQuotaKind(row.kind))
            if row.used != measured:
                out.append(f"net quota {row.company_id}/{row.kind}: {row.used} != {measured}")
    return out


def import_supernet(rt: Runtime, name: str, cidr: str, zone: str = "shared") -> None:
    """A supernet written straight to the database, as an address plan imported from a
    company's own systems would be: unlike one registered through the API, it may overlap
    the others (peering must refuse VPCs that overlap)."""
    with rt.db.write() as s:
        zone_id = s.scalar(select(ZoneRow.id).where(ZoneRow.name == zone))
        s.add(
            NetPrefixRow(
                kind="supernet",
                zone_id=zone_id,
                name=name,
                cidr=cidr,
                created_by="import",
                created_at=rt.clock(),
            )
        )

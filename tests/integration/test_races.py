"""Invariants under real concurrency: many clients, several server processes, one database.

After every run the usage is recomputed from the allocation rows and compared with every
counter (tests.support.check_consistency): no host or quota over its limit, counters equal
to what the rows add up to, no orphan rows, and every allocation a client saw created is
stored in the state the client left it in.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from groupcloud.db.migrate import head_revision
from groupcloud.db.models import AllocationRow, CompanyRow, InventoryRow, QuotaRow
from groupcloud.domain.tenancy import Role
from groupcloud.errors import GroupcloudError
from groupcloud.schemas.compute import AllocationCreate, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.tenancy.tokens import SYSTEM, authenticate
from groupcloud.services.zones import zones
from tests.conftest import open_runtime
from tests.integration.load import SHAPES, LoadResult, run_load
from tests.support import (
    PG_ADMIN_URL,
    check_consistency,
    host,
    server_processes,
    start_server_process,
    stop_processes,
)

COMPANIES = ("bank", "card", "capital")


def race_world(rt: Runtime, n_hosts: int = 6) -> list[tuple[str, str]]:
    """A pool small enough to run out: ``n_hosts`` x (16 VCPU, 32 GiB). Each company's quota
    is half the pool, so together they ask for more than exists and both the quotas and the
    hosts are contended. Returns (member token, project) per company."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    hosts.add_hosts(rt, SYSTEM, [host(f"r{i}", vcpu=16, memory=32768) for i in range(n_hosts)])
    out = []
    for slug in COMPANIES:
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=slug, name=slug))
        companies.create_project(rt, SYSTEM, slug, ProjectCreate(slug="app"))
        quotas.set_quota(rt, SYSTEM, slug, "VCPU", QuotaSet(nominal=8 * n_hosts))
        quotas.set_quota(rt, SYSTEM, slug, "MEMORY_MB", QuotaSet(nominal=16384 * n_hosts))
        secret = tokens.issue_token(
            rt, SYSTEM, TokenCreate(name=f"{slug}-load", role=Role.MEMBER, company=slug)
        ).secret
        out.append((secret, "app"))
    return out


def assert_matches_database(rt: Runtime, result: LoadResult) -> None:
    """Invariants hold, and the rows say exactly what the clients were told."""
    consistency = check_consistency(rt)
    assert consistency.ok, consistency
    with rt.db.read() as s:
        states = dict(s.execute(select(AllocationRow.id, AllocationRow.state)).all())
    assert result.created <= states.keys(), "a 201 was answered for an allocation not stored"
    assert all(states[i] == "released" for i in result.released)
    assert all(states[i] == "active" for i in result.created - result.released - result.unknown)


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[Callable[[str], Runtime]]:
    """Opens runtimes on a database URL and closes them after the test, pass or fail."""
    opened: list[Runtime] = []

    def open_on(url: str) -> Runtime:
        opened.append(open_runtime(url, tmp_path))
        return opened[-1]

    yield open_on
    for rt in opened:
        rt.close()


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "clients", "operations"),
    [("postgresql", 64, 12), ("sqlite", 32, 15)],
    ids=["postgresql-64-clients", "sqlite-32-clients"],
)
def test_clients_on_two_server_processes_never_over_allocate(
    backend: str,
    clients: int,
    operations: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    runtimes: Callable[[str], Runtime],
) -> None:
    """Two API processes on one database (PostgreSQL in production; the embedded SQLite file
    with WAL and BEGIN IMMEDIATE), each with its own capacity index, hammered at once."""
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt = runtimes(url)
    company_tokens = race_world(rt)
    with server_processes(url, tmp_path, 2) as urls:
        result = run_load(urls, company_tokens, clients=clients, operations=operations)
    assert not result.unexpected, result.unexpected[:5]
    assert len(result.servers_used) == 2, "both server processes must have served requests"
    assert result.statuses["created"] >= 100
    assert result.statuses["released"] >= 50
    refusals = result.statuses["no_capacity"] + result.statuses["quota_exceeded"]
    assert refusals >= 10, f"the pool never ran out, nothing raced: {result.statuses}"
    assert_matches_database(rt, result)


@pytest.mark.race
def test_64_threads_in_one_process_never_over_allocate_on_sqlite(
    sqlite_url: str, runtimes: Callable[[str], Runtime]
) -> None:
    """The claim path itself, raced by threads sharing one runtime (one capacity index)."""
    rt = runtimes(sqlite_url)
    actors = [(authenticate(rt, secret), project) for secret, project in race_world(rt)]
    outcomes: Counter[str] = Counter()
    created: set[str] = set()
    released: set[str] = set()
    lock = threading.Lock()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        actor, project = actors[seed % len(actors)]
        held: list[str] = []
        seen: Counter[str] = Counter()
        mine_created, mine_released = set(), set()
        for _ in range(25):
            if held and rng.random() < 0.45:
                alloc_id = held.pop(rng.randrange(len(held)))
                allocations.release(rt, actor, alloc_id)
                mine_released.add(alloc_id)
                seen["released"] += 1
                continue
            body = AllocationCreate(
                project=project,
                resources=rng.choice(SHAPES),
                count=rng.choice([1, 1, 2, 3]),
                queue=False,
            )
            try:
                made = allocations.allocate(rt, actor, body)
            except GroupcloudError as exc:
                seen[exc.code] += 1
                continue
            held.append(made.id)
            mine_created.add(made.id)
            seen["created"] += 1
        with lock:
            outcomes.update(seen)
            created.update(mine_created)
            released.update(mine_released)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(outcomes) <= {"created", "released", "no_capacity", "quota_exceeded"}, outcomes
    assert outcomes["created"] >= 300
    assert outcomes["no_capacity"] + outcomes["quota_exceeded"] >= 20, outcomes
    result = LoadResult(statuses=outcomes, created=created, released=released)
    assert_matches_database(rt, result)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_of_a_server_mid_load_leaves_the_database_consistent(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    runtimes: Callable[[str], Runtime],
) -> None:
    """Each claim is one transaction: a server killed with SIGKILL while 16 clients load it
    leaves no half-made allocation, and a restarted server carries on from there."""
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt = runtimes(url)
    company_tokens = race_world(rt)
    process, server_url = start_server_process(url, tmp_path / "s", tmp_path / "server.log")
    stop = threading.Event()
    result = LoadResult()
    load = threading.Thread(
        target=lambda: result.merge(
            run_load([server_url], company_tokens, clients=16, operations=10_000, stop=stop)
        )
    )
    load.start()
    try:
        # Kill the server once it is busy: clients see transport errors from then on.
        for _ in range(400):
            if process.poll() is None and _count_allocations(rt) >= 40:
                break
            threading.Event().wait(0.025)
        process.kill()
        process.wait(timeout=30)
    finally:
        stop.set()
        load.join(timeout=120)
    assert process.returncode == -9
    assert result.transport_errors >= 1, "the kill must have interrupted requests in flight"
    assert _count_allocations(rt) >= 40
    assert result.statuses["created"] >= 20
    assert check_consistency(rt).ok

    # A new server on the same database: releasing everything that survived returns the
    # pool to exactly empty (nothing leaked, nothing freed twice), then claims work again.
    process, server_url = start_server_process(url, tmp_path / "s", tmp_path / "server2.log")
    try:
        result.released |= _release_everything(rt, server_url, company_tokens)
        assert check_consistency(rt).ok
        assert _total_used(rt) == 0
        after = run_load([server_url], company_tokens, clients=8, operations=10, seed=11)
    finally:
        stop_processes([process])
    assert not after.unexpected, after.unexpected[:5]
    assert after.statuses["created"] >= 10
    result.merge(after)
    assert_matches_database(rt, result)


def _release_everything(rt: Runtime, url: str, company_tokens: list[tuple[str, str]]) -> set[str]:
    """Release every active allocation through the API; the ids released."""
    token_of = dict(zip(COMPANIES, (secret for secret, _ in company_tokens), strict=True))
    with rt.db.read() as s:
        active = s.execute(
            select(AllocationRow.id, CompanyRow.slug)
            .join(CompanyRow, CompanyRow.id == AllocationRow.company_id)
            .where(AllocationRow.state == "active")
        ).all()
    with httpx.Client(base_url=url, timeout=30) as http:
        for alloc_id, company in active:
            headers = {"Authorization": f"Bearer {token_of[company]}"}
            response = http.post(f"/v1/allocations/{alloc_id}/release", headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["state"] == "released"
    return {alloc_id for alloc_id, _ in active}


def _total_used(rt: Runtime) -> int:
    with rt.db.read() as s:
        inventories = s.scalar(select(func.coalesce(func.sum(InventoryRow.used), 0))) or 0
        quotas_used = s.scalar(select(func.coalesce(func.sum(QuotaRow.used), 0))) or 0
    return int(inventories) + int(quotas_used)


def _count_allocations(rt: Runtime) -> int:
    with rt.db.read() as s:
        return len(s.execute(select(AllocationRow.id)).all())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_migrations_from_several_processes_all_succeed(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every server migrates on start; several starting at once must not trip over each
    other (advisory lock on PostgreSQL, file lock on SQLite)."""
    schema = f"gcm_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL)
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(PG_ADMIN_URL)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    else:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"GROUPCLOUD_DATABASE_URL": url, "GROUPCLOUD_DATA_DIR": str(tmp_path)}
    try:
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "groupcloud", "db", "upgrade"],
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120)[0].decode() for p in runs]
        assert [p.returncode for p in runs] == [0, 0, 0, 0], outputs
        assert all(f"revision {head_revision()}" in out for out in outputs), outputs
    finally:
        if backend == "postgresql":
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

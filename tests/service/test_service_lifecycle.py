"""The services' life cycle on both databases, with the real managed PostgreSQL behind
``postgresql`` instances (the suite's server): provisioning makes a database an app
reaches through its binding, rotation and unbinding work login by login, deletion drops
everything and returns the capacity, a failed provisioning rolls back every part, plan
upgrades are re-admitted against quota, and the worker finishes what a crash left."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from groupcloud.db.models import AllocationRow, ServiceBindingRow
from groupcloud.dbaas.postgres import object_name
from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.service import Operation, ServiceState
from groupcloud.domain.tenancy import Principal, Role
from groupcloud.errors import (
    BackendUnavailable,
    Forbidden,
    NotBindable,
    NotFound,
    QuotaExceeded,
    ServiceBusy,
)
from groupcloud.schemas.catalog import BindingCreate, ServiceCreate, ServiceUpdate
from groupcloud.schemas.compute import HostCreate, InventoryIn
from groupcloud.schemas.tenancy import TokenCreate
from groupcloud.services.catalog import bindings, instances, lifecycle
from groupcloud.services.catalog.backends import secret_box
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import hosts
from groupcloud.services.tenancy import tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.dbaas.test_postgres import scram_matches
from tests.service.helpers import counters, set_quotas, who
from tests.support import (
    DBAAS_ADMIN_URL,
    DBAAS_SETTINGS,
    ManualClock,
    World,
    build_world,
    check_consistency,
    drop_service_databases,
)

pytestmark = pytest.mark.postgres  # the backend is the suite's PostgreSQL server


@pytest.fixture
def srt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on each database whose postgresql services are real databases; the
    world of tests.support plus two hosts with disks, bank with disk quota."""
    runtime = open_runtime(database_url, tmp_path, **DBAAS_SETTINGS)
    runtime.clock = ManualClock()
    _WORLDS[id(runtime)] = build_world(runtime)
    hosts.add_hosts(runtime, SYSTEM, [_disk_host("d1"), _disk_host("d2")])
    set_quotas(runtime, "bank", {"DISK_GB": 1000})
    yield runtime
    drop_service_databases(runtime)
    del _WORLDS[id(runtime)]
    runtime.close()


_WORLDS: dict[int, World] = {}
"""The tokens of each ``srt`` runtime's world."""


def _disk_host(name: str) -> HostCreate:
    return HostCreate(
        name=name,
        inventories={
            "VCPU": InventoryIn(total=32),
            "MEMORY_MB": InventoryIn(total=131072),
            "DISK_GB": InventoryIn(total=500),
        },
    )


def _bank(rt: Runtime) -> Principal:
    return who(rt, _WORLDS[id(rt)].bank_member)


def _pg(plan: str = "small", **params: object) -> ServiceCreate:
    return ServiceCreate(project="web", template="postgresql", plan=plan,
                         parameters={"storage_gb": 20, **params})  # fmt: skip


def _database_exists(name: str) -> bool:
    with psycopg.connect(DBAAS_ADMIN_URL, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def _verifier(role: str) -> str:
    with psycopg.connect(DBAAS_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        found = row.fetchone()
    assert found is not None
    assert isinstance(found[0], str)
    return found[0]


def _live_parts(rt: Runtime, instance_id: str) -> list[tuple[str, int | None]]:
    with rt.db.read() as s:
        return [
            (str(a.service_part), a.service_generation)
            for a in s.scalars(
                select(AllocationRow)
                .where(
                    AllocationRow.service_instance_id == instance_id,
                    AllocationRow.state == AllocationState.ACTIVE.value,
                )
                .order_by(AllocationRow.seq)
            )
        ]


def test_a_managed_postgresql_works_end_to_end(srt: Runtime) -> None:
    bank = _bank(srt)
    before = counters(srt)
    made = instances.create_service(srt, bank, _pg())
    assert made.state == ServiceState.READY
    assert (made.operation, made.backend) == (Operation.PROVISION, "postgresql")
    name = object_name(made.id)
    assert _database_exists(name)
    bound = bindings.bind(srt, bank, made.id, BindingCreate())
    creds = bound.credentials
    assert creds is not None
    assert creds["database"] == name
    # The app connects with the binding's URL, writes and reads a row.
    with psycopg.connect(creds["uri"], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
        conn.execute("INSERT INTO orders VALUES (1, 'card')")
        assert conn.execute("SELECT item FROM orders").fetchall() == [("card",)]
    # Stored sealed: the row holds no password, and opens with the configured key only.
    with srt.db.read() as s:
        row = s.get(ServiceBindingRow, bound.id)
    assert row is not None
    assert row.secret is not None
    assert creds["password"] not in row.secret
    assert json.loads(secret_box(srt).open(row.secret)) == creds
    # Rotation: a new password, the old one stops matching the server's verifier.
    rotated = bindings.rotate(srt, bank, made.id, bound.id).credentials
    assert rotated is not None
    assert rotated["password"] != creds["password"]
    verifier = _verifier(creds["username"])
    assert scram_matches(verifier, rotated["password"])
    assert not scram_matches(verifier, creds["password"])
    assert bindings.get_binding(srt, bank, made.id, bound.id).credentials == rotated
    # A viewer sees the binding, never its credentials; another company not even that.
    lead = who(srt, _WORLDS[id(srt)].bank_admin)
    assert bindings.get_binding(srt, lead, made.id, bound.id).credentials == rotated
    viewer = who(srt, tokens.issue_token(srt, SYSTEM, TokenCreate(
        name="bank-viewer", role=Role.COMPANY_VIEWER, company="bank")).secret)  # fmt: skip
    assert bindings.get_binding(srt, viewer, made.id, bound.id).credentials is None
    with pytest.raises(Forbidden):
        bindings.rotate(srt, viewer, made.id, bound.id)
    assert [b.credentials for b in bindings.list_bindings(srt, bank, made.id)] == [None]
    card = who(srt, _WORLDS[id(srt)].card_member)
    with pytest.raises(NotFound):
        bindings.get_binding(srt, card, made.id, bound.id)
    with pytest.raises(NotFound):
        bindings.bind(srt, card, made.id, BindingCreate())
    assert instances.get_service(srt, bank, made.id).bindings == 1
    # Deletion: the binding's login, the database and every part go; capacity returns.
    gone = instances.delete_service(srt, bank, made.id)
    assert gone.state == ServiceState.GONE
    assert {p.state for p in gone.parts} == {AllocationState.RELEASED}
    assert not _database_exists(name)
    with psycopg.connect(DBAAS_ADMIN_URL) as conn:
        left = conn.execute("SELECT 1 FROM pg_roles WHERE rolname IN (%s, %s)",
                            (name, creds["username"])).fetchall()  # fmt: skip
    assert left == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(rotated["uri"], connect_timeout=5).close()
    after = bindings.get_binding(srt, bank, made.id, bound.id)
    assert (after.state, after.credentials) == ("gone", None)
    assert counters(srt).inventory == before.inventory
    assert counters(srt).quota == before.quota
    assert check_consistency(srt).ok


def test_unbinding_drops_one_login_and_keeps_the_data(srt: Runtime) -> None:
    bank = _bank(srt)
    made = instances.create_service(srt, bank, _pg())
    one = bindings.bind(srt, bank, made.id, BindingCreate()).credentials
    two = bindings.bind(srt, bank, made.id, BindingCreate())
    assert one is not None
    assert two.credentials is not None
    with psycopg.connect(one["uri"]) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert bindings.unbind(srt, bank, made.id, two.id).state == "gone"
    assert bindings.unbind(srt, bank, made.id, two.id).state == "gone"  # idempotent
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(two.credentials["uri"], connect_timeout=5).close()
    with psycopg.connect(one["uri"]) as conn:
        assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
    with pytest.raises(ServiceBusy):
        bindings.rotate(srt, bank, made.id, two.id)
    assert instances.delete_service(srt, bank, made.id).state == ServiceState.GONE


def test_compute_only_services_are_not_bindable(srt: Runtime) -> None:
    bank = _bank(srt)
    redis = instances.create_service(
        srt, bank, ServiceCreate(project="web", template="redis", plan="small")
    )
    with pytest.raises(NotBindable):
        bindings.bind(srt, bank, redis.id, BindingCreate())


def test_without_a_configured_server_nothing_is_claimed(rt: Runtime, tmp_path: Path) -> None:
    world = build_world(rt)
    hosts.add_hosts(rt, SYSTEM, [_disk_host("d1")])
    set_quotas(rt, "bank", {"DISK_GB": 1000})
    before = counters(rt)
    with pytest.raises(BackendUnavailable, match="GROUPCLOUD_DBAAS_POSTGRES_URL"):
        instances.create_service(rt, who(rt, world.bank_member), _pg())
    assert counters(rt) == before


@pytest.mark.parametrize(
    ("admin_url", "timeout_s"),
    [
        # unreachable: retried until the deadline (0 s here), then failed
        ("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2", 0.0),
        # reachable but refused (not a superuser): failed at once
        (DBAAS_ADMIN_URL.replace("//postgres@", "//gc_test_weak@"), 600.0),
    ],
    ids=["unreachable", "refused"],
)
def test_a_failed_provisioning_rolls_back_every_part(
    database_url: str, tmp_path: Path, admin_url: str, timeout_s: float
) -> None:
    with psycopg.connect(DBAAS_ADMIN_URL, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'gc_test_weak'").fetchone():
            conn.execute("CREATE ROLE gc_test_weak LOGIN")
    settings = {**DBAAS_SETTINGS, "dbaas_postgres_url": admin_url}
    rt = open_runtime(database_url, tmp_path, service_timeout_s=timeout_s, **settings)
    try:
        world = build_world(rt)
        hosts.add_hosts(rt, SYSTEM, [_disk_host("d1"), _disk_host("d2")])
        set_quotas(rt, "bank", {"DISK_GB": 1000})
        bank = who(rt, world.bank_member)
        before = counters(rt)
        made = instances.create_service(rt, bank, _pg("medium", replicas=1))
        assert made.state == ServiceState.FAILED
        assert made.failure
        assert "provision" in made.failure
        assert {p.state for p in made.parts} == {AllocationState.RELEASED}
        assert counters(rt).inventory == before.inventory
        assert counters(rt).quota == before.quota
        assert check_consistency(rt).ok
        with pytest.raises(ServiceBusy):
            bindings.bind(rt, bank, made.id, BindingCreate())
        assert instances.delete_service(rt, bank, made.id).state in (
            ServiceState.GONE,
            ServiceState.DEPROVISIONING,  # unreachable: the worker retries the backend
        )
    finally:
        rt.close()


def test_an_unreachable_server_is_retried_then_the_worker_finishes(
    database_url: str, tmp_path: Path
) -> None:
    """Provisioning that could not reach the server stays provisioning (with why) and
    the worker's sweep finishes it once the server is back (the configuration fixed)."""
    broken = {**DBAAS_SETTINGS,
              "dbaas_postgres_url": "postgresql://postgres@127.0.0.1:1/postgres"}  # fmt: skip
    rt = open_runtime(database_url, tmp_path, **broken)
    try:
        world = build_world(rt)
        hosts.add_hosts(rt, SYSTEM, [_disk_host("d1")])
        set_quotas(rt, "bank", {"DISK_GB": 1000})
        made = instances.create_service(rt, who(rt, world.bank_member), _pg())
        assert made.state == ServiceState.PROVISIONING
        assert made.failure
        assert "retrying" in made.failure
    finally:
        rt.close()
    fixed = open_runtime(database_url, tmp_path, service_retry_s=0, **DBAAS_SETTINGS)
    try:
        assert lifecycle.sweep(fixed, fixed.clock()) == 1
        ready = instances.get_service(fixed, SYSTEM, made.id)
        assert ready.state == ServiceState.READY
        assert _database_exists(object_name(made.id))
    finally:
        drop_service_databases(fixed)
        fixed.close()


def test_a_plan_upgrade_is_re_admitted_against_quota(srt: Runtime) -> None:
    bank = _bank(srt)
    made = instances.create_service(srt, bank, _pg())
    assert _live_parts(srt, made.id) == [("primary", 0)]
    bound = bindings.bind(srt, bank, made.id, BindingCreate()).credentials
    assert bound is not None
    up = instances.update_service(srt, bank, made.id, ServiceUpdate(plan="medium",
                                  parameters={"replicas": 1}))  # fmt: skip
    assert (up.state, up.plan, up.generation, up.operation) == (
        ServiceState.READY, "medium", 1, Operation.UPDATE)  # fmt: skip
    assert up.parameters["replicas"] == 1
    assert up.parameters["storage_gb"] == 20
    assert _live_parts(srt, made.id) == [("primary", 1), ("replica", 1)]
    assert [p.generation for p in up.parts] == [1, 1]
    with psycopg.connect(bound["uri"]) as conn:  # the database (and binding) stayed
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # Bank's 32 VCPU: 8 held now; large with 1 replica asks 32 beside them: refused whole.
    with pytest.raises(QuotaExceeded):
        instances.update_service(srt, bank, made.id, ServiceUpdate(plan="large"))
    kept = instances.get_service(srt, bank, made.id)
    assert (kept.state, kept.plan, kept.generation) == (ServiceState.READY, "medium", 1)
    assert _live_parts(srt, made.id) == [("primary", 1), ("replica", 1)]
    assert check_consistency(srt).ok
    same = instances.update_service(srt, bank, made.id, ServiceUpdate())
    assert same.generation == 1  # nothing to change: nothing claimed
    down = instances.update_service(srt, bank, made.id, ServiceUpdate(plan="small"))
    assert _live_parts(srt, made.id) == [("primary", 2)]
    assert down.generation == 2
    assert check_consistency(srt).ok


def test_an_upgrade_left_half_done_is_finished_by_the_worker(srt: Runtime) -> None:
    """The process died after the new parts' transaction: both generations hold
    capacity and the instance is updating; the sweep releases the old ones."""
    bank = _bank(srt)
    made = instances.create_service(
        srt, bank, ServiceCreate(project="web", template="redis", plan="small")
    )
    half = instances.update_service(srt, bank, made.id,
                                    ServiceUpdate(plan="medium"), wait=False)  # fmt: skip
    assert half.state == ServiceState.UPDATING
    assert _live_parts(srt, made.id) == [("primary", 0), ("primary", 1), ("replica", 1)]
    with pytest.raises(ServiceBusy):
        instances.update_service(srt, bank, made.id, ServiceUpdate(plan="small"))
    clock = srt.clock
    assert isinstance(clock, ManualClock)
    assert lifecycle.sweep(srt, clock()) == 0  # not due yet: its process may still run
    assert lifecycle.sweep(srt, clock.advance(srt.settings.service_retry_s)) == 1
    assert instances.get_service(srt, bank, made.id).state == ServiceState.READY
    assert _live_parts(srt, made.id) == [("primary", 1), ("replica", 1)]
    assert check_consistency(srt).ok


def test_a_deletion_left_half_done_is_finished_by_the_worker(srt: Runtime) -> None:
    bank = _bank(srt)
    made = instances.create_service(srt, bank, _pg())
    bindings.bind(srt, bank, made.id, BindingCreate())
    started = instances.delete_service(srt, bank, made.id, wait=False)
    assert started.state == ServiceState.DEPROVISIONING
    with pytest.raises(ServiceBusy):
        bindings.bind(srt, bank, made.id, BindingCreate())
    clock = srt.clock
    assert isinstance(clock, ManualClock)
    assert lifecycle.sweep(srt, clock.advance(srt.settings.service_retry_s)) == 1
    assert instances.get_service(srt, bank, made.id).state == ServiceState.GONE
    assert not _database_exists(object_name(made.id))
    assert _live_parts(srt, made.id) == []
    assert check_consistency(srt).ok

"""Managed PostgreSQL services raced on two server processes against one database: plan
upgrades, bindings and deletions of the same instances at the same moment. Whatever the
interleaving, every instance ends gone with nothing left behind -- no part holding
capacity, no database, no login of the instance or of any binding -- at most one upgrade
applied per instance, and the counters add up."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import select

from groupcloud.db.models import AllocationRow, ServiceBindingRow, ServiceInstanceRow
from groupcloud.dbaas.postgres import object_name
from groupcloud.domain.allocation import AllocationState
from groupcloud.schemas.compute import HostCreate, InventoryIn
from groupcloud.services.catalog import lifecycle
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import hosts
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import set_quotas
from tests.support import (
    DBAAS_ADMIN_URL,
    DBAAS_SETTINGS,
    build_world,
    check_consistency,
    drop_service_databases,
    server_processes,
)

INSTANCES = 6
UPGRADE = {"plan": "medium", "parameters": {"replicas": 1}}
SMALL = {"project": "web", "template": "postgresql", "plan": "small",
         "parameters": {"storage_gb": 10}}  # fmt: skip


def _left_on_the_server(names: list[str]) -> list[str]:
    with psycopg.connect(DBAAS_ADMIN_URL) as conn:
        databases = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
        ).fetchall()
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,)
        ).fetchall()
    return sorted(str(r[0]) for r in databases + roles)


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_upgrades_bindings_and_deletions_race_to_a_clean_end(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt: Runtime = open_runtime(url, tmp_path, service_retry_s=0, **DBAAS_SETTINGS)
    try:
        world = build_world(rt)
        disks = {"VCPU": InventoryIn(total=64), "MEMORY_MB": InventoryIn(total=262144),
                 "DISK_GB": InventoryIn(total=1000)}  # fmt: skip
        hosts.add_hosts(rt, SYSTEM, [HostCreate(name=f"d{i}", inventories=disks)
                                     for i in range(1, 4)])  # fmt: skip
        set_quotas(rt, "bank", {"VCPU": 96, "MEMORY_MB": 393216, "DISK_GB": 1000})
        env = {"GROUPCLOUD_DBAAS_POSTGRES_URL": DBAAS_ADMIN_URL,
               "GROUPCLOUD_SECRET_KEY": str(DBAAS_SETTINGS["secret_key"])}  # fmt: skip
        headers = {"Authorization": f"Bearer {world.bank_member}"}
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        with server_processes(url, tmp_path, 2, env) as urls:
            with httpx.Client(base_url=urls[0], headers=headers, timeout=60) as c:
                made = [c.post("/v1/services", params={"wait": True}, json=SMALL).json()
                        for _ in range(INSTANCES)]  # fmt: skip
            assert {m["state"] for m in made} == {"ready"}, made
            ids = [m["id"] for m in made]
            # Per instance: two upgrades, two bindings and a deletion, all at once.
            work = [(i, kind) for i in ids for kind in ("up", "up", "bind", "bind", "delete")]
            start = threading.Barrier(len(work))

            def client(n: int, instance: str, kind: str) -> None:
                with httpx.Client(base_url=urls[n % 2], headers=headers, timeout=120) as c:
                    start.wait(timeout=60)
                    if kind == "up":
                        got = c.patch(f"/v1/services/{instance}", params={"wait": True},
                                      json=UPGRADE)  # fmt: skip
                    elif kind == "bind":
                        got = c.post(f"/v1/services/{instance}/bindings", json={})
                    else:
                        got = c.delete(f"/v1/services/{instance}", params={"wait": True})
                code = str(got.status_code) if got.status_code < 300 else got.json()["code"]
                with lock:
                    outcomes[f"{kind}:{code}"] += 1

            threads = [threading.Thread(target=client, args=(n, i, k))
                       for n, (i, k) in enumerate(work)]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=180)
            assert not any(t.is_alive() for t in threads)
        # Refusals are only those of a busy or deleted service (or one gone meanwhile).
        allowed = {"up:200", "up:service_busy", "up:not_found", "bind:201", "bind:service_busy",
                   "delete:200"}  # fmt: skip
        assert set(outcomes) <= allowed, outcomes
        assert outcomes["delete:200"] == INSTANCES
        lifecycle.sweep(rt, rt.clock())  # what a crashed request would have left
        with rt.db.read() as s:
            rows = list(s.scalars(select(ServiceInstanceRow)))
            live = list(s.scalars(select(AllocationRow.id).where(
                AllocationRow.state == AllocationState.ACTIVE.value)))  # fmt: skip
            binding_ids = list(s.scalars(select(ServiceBindingRow.id)))
        assert {r.state for r in rows} == {"gone"}, [(r.id, r.state, r.failure) for r in rows]
        assert max(r.generation for r in rows) <= 1  # one upgrade at most per instance
        assert live == []
        names = [object_name(i) for i in ids] + [object_name(b) for b in binding_ids]
        assert _left_on_the_server(names) == []
        consistency = check_consistency(rt)
        assert consistency.ok, consistency
    finally:
        drop_service_databases(rt)
        rt.close()

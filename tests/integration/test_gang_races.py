"""Catalog services raced by many clients on two server processes against one database:
every service that exists has all of its parts, no part exists without its service, and
the counters add up (a gang is one transaction: nothing is ever half claimed)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from groupcloud.db.models import AllocationRow, ServiceInstanceRow
from groupcloud.services.common.runtime import Runtime
from tests.conftest import open_runtime
from tests.service.helpers import set_quotas
from tests.support import build_world, check_consistency, server_processes

CLIENTS = 16
BODY = {"project": "web", "template": "redis", "plan": "medium", "parameters": {"replicas": 1}}


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_gangs_are_claimed_whole_or_not_at_all(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt: Runtime = open_runtime(url, tmp_path)
    try:
        world = build_world(rt, n_hosts=4)  # 4 x 64 GiB: 16 parts of 16 GiB, 8 services
        set_quotas(rt, "bank", {"VCPU": 64, "MEMORY_MB": 262144})
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)
        headers = {"Authorization": f"Bearer {world.bank_member}"}
        with server_processes(url, tmp_path, 2) as urls:

            def client(n: int) -> None:
                with httpx.Client(base_url=urls[n % 2], headers=headers, timeout=60) as c:
                    start.wait(timeout=60)
                    response = c.post("/v1/services", json=BODY)
                code = "created" if response.status_code == 201 else response.json()["code"]
                with lock:
                    outcomes[code] += 1

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not any(t.is_alive() for t in threads)
        assert set(outcomes) <= {"created", "no_capacity", "quota_exceeded"}, outcomes
        # Quota (256 GiB) and hosts (4 x 64 GiB) both take exactly 8 services of 2 x 16 GiB.
        assert outcomes["created"] == 8, outcomes
        with rt.db.read() as s:
            services = int(s.scalar(select(func.count()).select_from(ServiceInstanceRow)) or 0)
            parts = dict(
                s.execute(
                    select(AllocationRow.service_instance_id, func.count()).group_by(
                        AllocationRow.service_instance_id
                    )
                ).all()
            )
        assert services == outcomes["created"]
        assert None not in parts  # no allocation outside a service
        assert len(parts) == services
        assert set(parts.values()) == {2}  # primary + replica, always both
        consistency = check_consistency(rt)
        assert consistency.ok, consistency
    finally:
        rt.close()

"""External placements raced by many clients on two server processes against one
database: the company's own quota is filled exactly, never passed (quota is held from
placement, without hosts), concurrent releases and the provisioner's passes leave every
counter consistent, and when all is released no instance is left at the provider."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from groupcloud.db.models import AllocationRow, QuotaRow
from groupcloud.domain.inventory import ZoneKind
from groupcloud.schemas.providers import ProviderCreate, ProviderKind
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.providers import catalog, provisioner
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.conftest import open_runtime
from tests.support import build_world, check_consistency, server_processes

CLIENTS = 24
PER_UNIT = 2  # VCPU: bank's 32 VCPU of quota take exactly 16 units
QUOTA = 32


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_bursts_fill_the_quota_exactly_and_releases_return_it(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt: Runtime = open_runtime(url, tmp_path)
    try:
        world = build_world(rt, n_hosts=1)
        catalog.create_provider(rt, SYSTEM, ProviderCreate(name="sim", kind=ProviderKind.SIMULATED))
        zones.create_zone(rt, SYSTEM, ZoneCreate(
            name="ext-kr", kind=ZoneKind.EXTERNAL, provider="sim", region="kr-central-1",
            country="KR", certifications=["cloud_security_assessment"], approved=True,
            approved_for_d3=True))  # fmt: skip
        body = {"project": "web", "resources": {"VCPU": PER_UNIT}, "zone_kind": "external"}
        outcomes: Counter[str] = Counter()
        made: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS + 1)
        headers = {"Authorization": f"Bearer {world.bank_member}"}
        stop = threading.Event()

        def provisioning() -> None:  # the leader's passes, while the clients race
            start.wait(timeout=60)
            while not stop.wait(0.05):  # bounded: stops when the clients are done
                provisioner.step(rt)

        with server_processes(url, tmp_path, 2) as urls:

            def client(n: int) -> None:
                with httpx.Client(base_url=urls[n % 2], headers=headers, timeout=60) as c:
                    start.wait(timeout=60)
                    response = c.post("/v1/allocations", json=body)
                    code = "created" if response.status_code == 201 else response.json()["code"]
                    with lock:
                        outcomes[code] += 1
                        if code == "created":
                            made.append(response.json()["id"])

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            threads.append(threading.Thread(target=provisioning))
            for t in threads:
                t.start()
            for t in threads[:-1]:
                t.join(timeout=120)
            fits = QUOTA // PER_UNIT
            assert outcomes == {"created": fits, "quota_exceeded": CLIENTS - fits}, outcomes
            consistency = check_consistency(rt)
            assert consistency.ok, consistency

            def release(ids: list[str], n: int) -> None:
                with httpx.Client(base_url=urls[n % 2], headers=headers, timeout=60) as c:
                    for allocation_id in ids:
                        done = c.post(f"/v1/allocations/{allocation_id}/release")
                        assert done.status_code == 200, done.text

            releasers = [threading.Thread(target=release, args=(made[n::4], n)) for n in range(4)]
            for t in releasers:
                t.start()
            for t in releasers:
                t.join(timeout=120)
        stop.set()
        threads[-1].join(timeout=60)
        for _ in range(3):
            provisioner.step(rt, reconcile=True)
        consistency = check_consistency(rt)
        assert consistency.ok, consistency
        sim = catalog.adapter(rt, "sim", "simulated", {})
        assert provisioner._sync(sim.list_instances("kr-central-1")) == []
        with rt.db.read() as s:
            states = set(s.scalars(select(AllocationRow.state).where(AllocationRow.external)))
            used = s.scalars(select(QuotaRow.used).where(QuotaRow.resource_class == "VCPU"))
            assert states == {"released"}
            assert set(used) == {0}
    finally:
        rt.close()

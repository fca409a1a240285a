"""GPU shares raced by many clients on two server processes against one database: no
device ever holds more than one GPU of shares, each shared device counts once in its
host's GPU inventory, and the pool's exact share capacity is reached, never passed."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from groupcloud.services.common.runtime import Runtime
from tests.conftest import open_runtime
from tests.service.helpers import set_quotas
from tests.support import build_world, check_consistency, server_processes

SHARE = 300  # three units fit on one device (900 of 1000 thousandths)
DEVICES = 4  # h1's GPUs
CAPACITY = DEVICES * (1000 // SHARE)
CLIENTS = 24


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_clients_on_two_processes_fill_the_devices_exactly(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    rt: Runtime = open_runtime(url, tmp_path)
    try:
        world = build_world(rt, n_hosts=1)
        set_quotas(rt, "bank", {"GPU": 64})  # quota never limits: the devices do
        body = {"project": "batch", "resources": {"VCPU": 1}, "gpu_share": SHARE, "queue": False}
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)
        with server_processes(url, tmp_path, 2) as urls:

            def client(n: int) -> None:
                headers = {"Authorization": f"Bearer {world.bank_member}"}
                with httpx.Client(base_url=urls[n % 2], headers=headers, timeout=60) as c:
                    start.wait(timeout=60)
                    response = c.post("/v1/allocations", json=body)
                code = "created" if response.status_code == 201 else response.json()["code"]
                with lock:
                    outcomes[code] += 1

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not any(t.is_alive() for t in threads)
            assert set(outcomes) <= {"created", "no_capacity"}, outcomes
            assert sum(outcomes.values()) == CLIENTS
            assert 0 < outcomes["created"] <= CAPACITY, outcomes
            # What lost a race may fit now: filling up one by one reaches the capacity exactly.
            headers = {"Authorization": f"Bearer {world.bank_member}"}
            with httpx.Client(base_url=urls[0], headers=headers, timeout=60) as c:
                more = 0
                while (response := c.post("/v1/allocations", json=body)).status_code == 201:
                    more += 1
                    assert more <= CAPACITY
                assert response.json()["code"] == "no_capacity"
        assert outcomes["created"] + more == CAPACITY
        consistency = check_consistency(rt)
        assert consistency.ok, consistency
    finally:
        rt.close()

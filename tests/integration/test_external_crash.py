"""kill -9 during provisioning leaks no cloud instance: the AWS adapter against moto's
real server (``ThreadedMotoServer`` on 127.0.0.1, a random port), a worker process killed
the moment the first instance exists at the provider, then the next pass (another
process's, here this one's) adopts what was created and creates the rest, exactly one
instance per unit. Then the allocation is released and nothing is left running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from groupcloud.db.models import ExternalInstanceRow
from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.inventory import ZoneChoice, ZoneKind
from groupcloud.providers.base import TAG_ALLOCATION
from groupcloud.schemas.providers import ProviderCreate, ProviderKind
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.compute import allocations
from groupcloud.services.providers import catalog, provisioner
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.conftest import open_runtime
from tests.service.helpers import ask, who
from tests.support import build_world, check_consistency, free_port

pytestmark = pytest.mark.slow
REGION = "ap-northeast-2"
UNITS = 3


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _running(url: str, allocation_id: str) -> list[str]:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=url)
    found = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_ALLOCATION}", "Values": [allocation_id]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return sorted(i["InstanceId"] for r in found["Reservations"] for i in r["Instances"])


def test_kill_9_during_provisioning_leaks_no_instance(
    sqlite_url: str, tmp_path: Path, moto_url: str
) -> None:
    rt = open_runtime(sqlite_url, tmp_path)
    try:
        world = build_world(rt)
        catalog.create_provider(rt, SYSTEM, ProviderCreate(
            name="aws", kind=ProviderKind.AWS, settings={"endpoint_url": moto_url}))  # fmt: skip
        zones.create_zone(rt, SYSTEM, ZoneCreate(
            name="aws-seoul", kind=ZoneKind.EXTERNAL, provider="aws", region=REGION,
            country="KR", certifications=["cloud_security_assessment"], approved=True,
            approved_for_d3=True))  # fmt: skip
        bank = who(rt, world.bank_member)
        a = allocations.allocate(
            rt,
            bank,
            ask({"VCPU": 2, "MEMORY_MB": 4096}, count=UNITS, zone_kind=ZoneChoice.EXTERNAL),
        )
        assert a.state is AllocationState.PROVISIONING
        env = {**os.environ, "GROUPCLOUD_DATABASE_URL": sqlite_url,
               "GROUPCLOUD_DATA_DIR": str(tmp_path / "worker")}  # fmt: skip
        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "groupcloud", "worker", "--interval", "0.2"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _running(moto_url, a.id):
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker created no instance"
                time.sleep(0.01)
        finally:
            worker.kill()  # kill -9: no cleanup of any kind
            worker.wait(timeout=30)
        assert worker.returncode == -9
        with rt.db.read() as s:
            recorded = s.scalars(
                select(ExternalInstanceRow.instance_id).where(
                    ExternalInstanceRow.allocation_id == a.id
                )
            ).all()
        at_kill = len(_running(moto_url, a.id))
        assert at_kill >= 1
        assert len([r for r in recorded if r]) <= UNITS
        # The next leader's passes: adopt (or find by token) and create the rest.
        for _ in range(3):
            provisioner.step(rt, reconcile=True)
        a = allocations.get_allocation(rt, bank, a.id)
        assert a.state is AllocationState.ACTIVE
        running = _running(moto_url, a.id)
        assert len(running) == UNITS, running  # one per unit: nothing created twice
        assert sorted(u.instance_id or "" for u in a.units) == running
        assert check_consistency(rt).ok
        allocations.release(rt, bank, a.id)
        provisioner.step(rt, reconcile=True)
        assert allocations.get_allocation(rt, bank, a.id).state is AllocationState.RELEASED
        assert _running(moto_url, a.id) == []
    finally:
        rt.close()

"""The Open Service Broker API over real HTTP, on both databases, with the real managed
PostgreSQL behind postgresql instances: the status codes and the asynchronous flow the
specification (v2.14+) asks, driven as a platform drives them; what the broker makes is
groupcloud's own (seen through /v1 under the same ids)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg
import pytest

from groupcloud.dbaas.postgres import object_name
from groupcloud.domain.tenancy import Role
from groupcloud.schemas.compute import HostCreate, InventoryIn
from groupcloud.schemas.tenancy import TokenCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import hosts
from groupcloud.services.tenancy import tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import set_quotas
from tests.support import (
    DBAAS_ADMIN_URL,
    DBAAS_SETTINGS,
    World,
    build_world,
    check_consistency,
    drop_service_databases,
    start_thread_server,
)

pytestmark = pytest.mark.postgres
VERSION = {"X-Broker-API-Version": "2.17"}


class Broker:
    """A platform's view of the broker: basic auth with the token as password. Closed at
    the end of the test that made it."""

    made: ClassVar[list[Broker]] = []

    def __init__(self, url: str, token: str) -> None:
        Broker.made.append(self)
        basic = base64.b64encode(f"platform:{token}".encode()).decode()
        self.http = httpx.Client(
            base_url=url, headers={**VERSION, "Authorization": f"Basic {basic}"}, timeout=30
        )
        self.bearer = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def poll(self, instance_id: str, **params: str) -> httpx.Response:
        """last_operation until it stops saying "in progress" (bounded)."""
        for _ in range(200):
            got = self.http.get(f"/v2/service_instances/{instance_id}/last_operation",
                                params=params)  # fmt: skip
            if got.status_code != 200 or got.json()["state"] != "in progress":
                return got
            time.sleep(0.05)
        raise AssertionError("the operation never finished")


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, World, str]]:
    rt = open_runtime(database_url, tmp_path, **DBAAS_SETTINGS)
    world = build_world(rt)
    disks = {"VCPU": InventoryIn(total=32), "MEMORY_MB": InventoryIn(total=131072),
             "DISK_GB": InventoryIn(total=500)}  # fmt: skip
    hosts.add_hosts(rt, SYSTEM, [HostCreate(name=n, inventories=disks) for n in ("d1", "d2")])
    set_quotas(rt, "bank", {"DISK_GB": 1000})
    try:
        with start_thread_server(rt) as url:
            yield rt, world, url
    finally:
        while Broker.made:
            made = Broker.made.pop()
            made.http.close()
            made.bearer.close()
        drop_service_databases(rt)
        rt.close()


def _ids(catalog: dict[str, Any], service: str, plan: str) -> dict[str, str]:
    offering = next(s for s in catalog["services"] if s["name"] == service)
    chosen = next(p for p in offering["plans"] if p["name"] == plan)
    return {"service_id": offering["id"], "plan_id": chosen["id"]}


def _exists(database: str) -> bool:
    with psycopg.connect(DBAAS_ADMIN_URL) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        return found.fetchone() is not None


def test_the_headers_and_the_catalog(env: tuple[Runtime, World, str]) -> None:
    _, world, url = env
    broker = Broker(url, world.bank_member)
    assert httpx.get(f"{url}/v2/catalog").status_code == 412  # no version header
    old = broker.http.get("/v2/catalog", headers={"X-Broker-API-Version": "2.11"})
    assert old.status_code == 412
    assert "2.13" in old.json()["description"]
    anonymous = httpx.get(f"{url}/v2/catalog", headers=VERSION)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = base64.b64encode(b"platform:gc_nope").decode()
    assert httpx.get(f"{url}/v2/catalog", headers={**VERSION, "Authorization": f"Basic {wrong}"}
                     ).status_code == 401  # fmt: skip
    got = broker.http.get("/v2/catalog")
    assert got.status_code == 200
    services = {s["name"]: s for s in got.json()["services"]}
    assert set(services) >= {"postgresql", "redis", "k8s-namespace", "gpu-notebook"}
    pg = services["postgresql"]
    assert pg["bindable"] is True
    assert pg["plan_updateable"] is True
    assert services["redis"]["bindable"] is False
    plans = {p["name"]: p for p in pg["plans"]}
    assert set(plans) == {"small", "medium", "large"}
    create = plans["small"]["schemas"]["service_instance"]["create"]["parameters"]
    assert create["$schema"].endswith("2020-12/schema")
    assert "storage_gb" in create["properties"]
    # Ids are stable: the same on another call (and on every server).
    assert broker.http.get("/v2/catalog").json() == got.json()
    assert broker.bearer.get("/v2/catalog", headers=VERSION).status_code == 200


def test_the_asynchronous_flow_of_a_managed_postgresql(env: tuple[Runtime, World, str]) -> None:
    rt, world, url = env
    broker = Broker(url, world.bank_member)
    ids = _ids(broker.http.get("/v2/catalog").json(), "postgresql", "small")
    instance, binding = str(uuid.uuid4()), str(uuid.uuid4())
    path = f"/v2/service_instances/{instance}"
    body = {**ids, "organization_guid": "org", "space_guid": "web",
            "context": {"platform": "kubernetes", "namespace": "web"},
            "parameters": {"storage_gb": 20}}  # fmt: skip
    made = broker.http.put(path, params={"accepts_incomplete": "true"}, json=body)
    assert made.status_code == 202, made.text
    assert made.json() == {"operation": "provision"}
    done = broker.poll(instance, operation="provision", **ids)
    assert done.json()["state"] == "succeeded", done.text
    # The same request again: 200; other attributes under the same id: 409.
    assert broker.http.put(path, json=body).status_code == 200
    other = {**body, "parameters": {"storage_gb": 30}}
    assert broker.http.put(path, json=other).status_code == 409
    fetched = broker.http.get(path)
    assert fetched.status_code == 200
    assert fetched.json()["plan_id"] == ids["plan_id"]
    assert fetched.json()["parameters"]["storage_gb"] == 20
    # groupcloud's own API shows the same instance under the platform's id.
    mine = broker.bearer.get(f"/v1/services/{instance}").json()
    assert (mine["company"], mine["project"], mine["state"]) == ("bank", "web", "ready")
    # Bind: credentials that work; the same again 200, the binding fetched.
    bpath = f"{path}/service_bindings/{binding}"
    bound = broker.http.put(bpath, json={**ids, "bind_resource": {"app_guid": "app-1"}})
    assert bound.status_code == 201, bound.text
    creds = bound.json()["credentials"]
    with psycopg.connect(creds["uri"], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('osb')")
        assert conn.execute("SELECT v FROM t").fetchall() == [("osb",)]
    assert broker.http.put(bpath, json=ids).status_code == 200
    assert broker.http.get(bpath).json()["credentials"] == creds
    # Update: a new plan, re-admitted; the old plan's id as the poll's plan_id.
    medium = _ids(broker.http.get("/v2/catalog").json(), "postgresql", "medium")
    changed = broker.http.patch(path, json={**medium, "parameters": {"replicas": 1}})
    assert changed.status_code == 200, changed.text
    assert broker.http.get(path).json()["plan_id"] == medium["plan_id"]
    assert broker.poll(instance, **ids).json()["state"] == "succeeded"
    # Unbind: service_id and plan_id required; 200, then 410.
    assert broker.http.delete(bpath).status_code == 400
    assert broker.http.delete(bpath, params=medium).status_code == 200
    assert broker.http.delete(bpath, params=medium).status_code == 410
    assert broker.http.get(bpath).status_code == 404
    # Deprovision asynchronously: 202, polled until 410 (gone); the database is gone.
    gone = broker.http.delete(path, params={**medium, "accepts_incomplete": "true"})
    assert gone.status_code == 202, gone.text
    assert gone.json() == {"operation": "deprovision"}
    assert broker.poll(instance, operation="deprovision").status_code == 410
    assert not _exists(object_name(instance))
    assert broker.http.delete(path, params=medium).status_code == 410
    assert broker.http.get(path).status_code == 404
    assert check_consistency(rt).ok


def test_synchronous_requests_and_refusals(env: tuple[Runtime, World, str]) -> None:
    rt, world, url = env
    broker = Broker(url, world.bank_member)
    catalog = broker.http.get("/v2/catalog").json()
    redis = _ids(catalog, "redis", "medium")
    instance = str(uuid.uuid4())
    path = f"/v2/service_instances/{instance}"
    body = {**redis, "organization_guid": "o", "space_guid": "web"}
    made = broker.http.put(path, json=body)  # compute only: synchronous
    assert made.status_code == 201, made.text
    assert broker.http.get(path).status_code == 200
    assert broker.bearer.get(f"/v1/services/{instance}").json()["state"] == "ready"
    # Not bindable; other companies do not see it.
    bound = broker.http.put(f"{path}/service_bindings/{uuid.uuid4()}", json=redis)
    assert bound.status_code == 400
    card = Broker(url, world.card_member)
    assert card.http.get(path).status_code == 404
    assert card.http.delete(path, params=redis).status_code == 410
    assert card.http.get(f"{path}/last_operation").status_code == 404
    # Refusals: the specification's bodies, nothing stored.
    before = broker.bearer.get("/v1/services").json()
    cases: list[tuple[dict[str, Any], int]] = [
        ({**body, "service_id": "nope"}, 400),
        ({**body, "plan_id": "nope"}, 400),
        ({**body, "parameters": {"replicas": 99}}, 400),
        ({**body, "space_guid": "no-such-project"}, 400),
        ({k: v for k, v in body.items() if k != "space_guid"}, 400),
    ]
    for wrong, status in cases:
        got = broker.http.put(f"/v2/service_instances/{uuid.uuid4()}", json=wrong)
        assert got.status_code == status, (wrong, got.text)
        assert got.json()["description"]
    # Quota: card has no disk quota, a postgresql asks for disk: 422.
    pg = {**_ids(catalog, "postgresql", "small"), "space_guid": "pay"}
    big = card.http.put(f"/v2/service_instances/{uuid.uuid4()}", json=pg)
    assert big.status_code == 422, big.text
    assert "quota" in big.json()["description"]
    raw = broker.http.put(f"/v2/service_instances/{uuid.uuid4()}", content=b"{not json",
                          headers={"Content-Type": "application/json"})  # fmt: skip
    assert raw.status_code == 400
    assert broker.http.put("/v2/service_instances/bad%20id", json=body).status_code == 400
    assert broker.bearer.get("/v1/services").json() == before
    # A viewer reads the catalog but may not provision.
    secret = tokens.issue_token(rt, SYSTEM, TokenCreate(name="viewer", role=Role.COMPANY_VIEWER,
                                                        company="bank")).secret  # fmt: skip
    viewer = Broker(url, secret)
    assert viewer.http.get("/v2/catalog").status_code == 200
    assert viewer.http.put(f"/v2/service_instances/{uuid.uuid4()}", json=body).status_code == 403
    assert broker.http.delete(path).status_code == 400  # service_id and plan_id required
    assert broker.http.delete(path, params=redis).status_code == 200
    assert broker.http.delete(path, params=redis).status_code == 410
    assert check_consistency(rt).ok

"""GET /v1/usage: capacity, used, free and % used by pool, zone, host and company."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem


def _usage(client: httpx.Client, **params: str) -> dict[tuple[str, str], dict[str, Any]]:
    response = client.get("/v1/usage", params=params)
    assert response.status_code == 200, response.text
    return {(r["name"], r["resource_class"]): r for r in response.json()["items"]}


def _allocate(client: httpx.Client, project: str, **resources: int) -> str:
    made = client.post("/v1/allocations", json={"project": project, "resources": resources})
    assert made.status_code == 201, made.text
    allocation_id: str = made.json()["id"]
    return allocation_id


def test_usage_by_pool_zone_host_and_company_after_claims(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    assert s.admin.post("/v1/zones", json={"name": "edge"}).status_code == 201
    edge_host = {"name": "e1", "zone": "edge", "inventories": {"VCPU": {"total": 8}}}
    assert s.admin.post("/v1/hosts", json=edge_host).status_code == 201
    _allocate(s.bank, "web", VCPU=8, MEMORY_MB=16384)
    _allocate(s.card, "pay", VCPU=4)

    pool = _usage(s.card, by="pool")
    assert pool[("pool", "VCPU")] == {
        "scope": "pool",
        "name": "pool",
        "resource_class": "VCPU",
        "capacity": 72,
        "used": 12,
        "free": 60,
        "used_pct": 16.67,
    }
    assert pool[("pool", "MEMORY_MB")]["used"] == 16384
    assert pool[("pool", "GPU")]["used_pct"] == 0.0

    zones = _usage(s.card, by="zone")
    assert set(zones) == {
        ("edge", "VCPU"),
        ("shared", "GPU"),
        ("shared", "MEMORY_MB"),
        ("shared", "VCPU"),
    }
    assert zones[("edge", "VCPU")]["capacity"] == 8
    assert zones[("shared", "VCPU")]["used"] == 12
    assert set(_usage(s.card, by="zone", zone="edge")) == {("edge", "VCPU")}
    assert set(_usage(s.card, by="pool", resource_class="GPU")) == {("pool", "GPU")}

    hosts = _usage(s.card, by="host")
    assert sum(r["used"] for (_, rc), r in hosts.items() if rc == "VCPU") == 12
    assert hosts[("e1", "VCPU")]["free"] == 8
    assert set(_usage(s.card, by="host", zone="edge", resource_class="VCPU")) == {("e1", "VCPU")}

    everyone = _usage(s.admin, by="company")
    assert everyone[("bank", "VCPU")]["capacity"] == 32  # a company's capacity is its quota
    assert everyone[("bank", "VCPU")]["used"] == 8
    assert everyone[("bank", "VCPU")]["used_pct"] == 25.0
    assert everyone[("card", "VCPU")]["used"] == 4
    assert set(_usage(s.admin, by="company", company="card")) == {
        ("card", "MEMORY_MB"),
        ("card", "VCPU"),
    }
    assert {name for name, _ in _usage(s.card, by="company")} == {"card"}
    assert_problem(
        s.card.get("/v1/usage", params={"by": "company", "company": "bank"}), 404, "not_found"
    )


def test_pool_usage_leaves_out_removed_hosts_and_counts_drained_ones(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    assert s.admin.delete("/v1/hosts/h4").status_code == 200
    assert s.admin.post("/v1/hosts/h3/drain").status_code == 200
    pool = _usage(s.bank, by="pool")
    assert pool[("pool", "VCPU")]["capacity"] == 48
    assert {name for name, _ in _usage(s.bank, by="host")} == {"h1", "h2", "h3"}


def test_usage_returns_to_zero_after_release(sqlite_stack: Stack) -> None:
    allocation_id = _allocate(sqlite_stack.bank, "web", VCPU=3, GPU=2)
    assert _usage(sqlite_stack.bank, by="pool")[("pool", "GPU")]["used"] == 2
    assert sqlite_stack.bank.post(f"/v1/allocations/{allocation_id}/release").status_code == 200
    for row in _usage(sqlite_stack.admin, by="company").values():
        assert (row["used"], row["used_pct"]) == (0, 0.0)
    for row in _usage(sqlite_stack.admin, by="host").values():
        assert row["free"] == row["capacity"]

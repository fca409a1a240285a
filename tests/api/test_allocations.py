"""Allocations over HTTP: create, show, list with filters, release (idempotent)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem, quota_used
from tests.support import check_consistency


def _create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/allocations", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    created: dict[str, Any] = response.json()
    return created


def _listed(client: httpx.Client, **params: str) -> list[str]:
    response = client.get("/v1/allocations", params=params)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


def test_release_twice_answers_200_with_the_same_state_and_frees_once(stack: Stack) -> None:
    made = _create(stack.bank, project="web", resources={"VCPU": 4, "MEMORY_MB": 4096}, count=3)
    assert quota_used(stack.admin, "bank") == {"GPU": 0, "MEMORY_MB": 12288, "VCPU": 12}

    first = stack.bank.post(f"/v1/allocations/{made['id']}/release")
    second = stack.bank.post(f"/v1/allocations/{made['id']}/release")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["state"] == "released"
    assert first.json()["released_by"] == "token:bank-dev@bank"
    assert first.json()["units"] == made["units"]

    assert quota_used(stack.admin, "bank") == {"GPU": 0, "MEMORY_MB": 0, "VCPU": 0}
    hosts = stack.admin.get("/v1/usage", params={"by": "host"}).json()["items"]
    assert all(row["used"] == 0 for row in hosts)
    released = stack.admin.get(
        "/v1/events", params={"subject": f"allocation/{made['id']}", "kind": "allocation."}
    ).json()["items"]
    assert [e["kind"] for e in released] == ["allocation.created", "allocation.released"]
    assert released[1]["data"]["returned"] == {"MEMORY_MB": 12288, "VCPU": 12}
    assert check_consistency(stack.rt).ok


def test_show_returns_what_create_returned(sqlite_stack: Stack) -> None:
    made = _create(
        sqlite_stack.bank,
        project="batch",
        resources={"VCPU": 2, "GPU": 1},
        count=2,
        required_traits=["ssd"],
        strategy="spread",
    )
    assert made["company"] == "bank"
    assert made["project"] == "batch"
    assert made["state"] == "active"
    private = dict.fromkeys(
        ("zone", "instance_type", "instance_id", "instance_state", "price_per_hour")
    )  # the external units' fields, null on hosts
    assert made["units"] == [
        {"unit": 0, "host": "h1", "addresses": [], "gpu_device": None, **private},
        {"unit": 1, "host": "h1", "addresses": [], "gpu_device": None, **private},
    ]
    shown = sqlite_stack.bank.get(f"/v1/allocations/{made['id']}")
    assert shown.status_code == 200
    assert shown.json() == made


def test_anti_affinity_group_puts_units_of_several_allocations_on_distinct_hosts(
    sqlite_stack: Stack,
) -> None:
    first = _create(
        sqlite_stack.bank, project="web", resources={"VCPU": 1}, count=2, anti_affinity_group="db"
    )
    second = _create(
        sqlite_stack.bank, project="web", resources={"VCPU": 1}, count=2, anti_affinity_group="db"
    )
    hosts = [u["host"] for a in (first, second) for u in a["units"]]
    assert sorted(hosts) == ["h1", "h2", "h3", "h4"]
    full = sqlite_stack.bank.post(
        "/v1/allocations",
        json={
            "project": "web",
            "resources": {"VCPU": 1},
            "anti_affinity_group": "db",
            "queue": False,
        },
    )
    assert_problem(full, 409, "no_capacity")
    # The group is per company: card's "db" group is a different one.
    _create(sqlite_stack.card, project="pay", resources={"VCPU": 1}, anti_affinity_group="db")


def test_list_filters_by_company_project_state_and_host(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    web = _create(s.bank, project="web", resources={"VCPU": 2}, required_traits=["ssd"])
    batch = _create(s.bank, project="batch", resources={"VCPU": 16})
    pay = _create(s.card, project="pay", resources={"VCPU": 1})
    assert s.bank.post(f"/v1/allocations/{batch['id']}/release").status_code == 200

    assert _listed(s.admin) == [web["id"], batch["id"], pay["id"]]
    assert _listed(s.admin, company="bank") == [web["id"], batch["id"]]
    assert _listed(s.admin, company="card") == [pay["id"]]
    assert _listed(s.admin, project="batch") == [batch["id"]]
    assert _listed(s.admin, company="bank", project="web") == [web["id"]]
    assert _listed(s.admin, state="active") == [web["id"], pay["id"]]
    assert _listed(s.admin, state="released") == [batch["id"]]
    for host in ("h1", "h2", "h3", "h4"):
        on_host = [a["id"] for a in (web, batch, pay) if a["units"][0]["host"] == host]
        assert _listed(s.admin, host=host) == on_host, host
    assert batch["id"] in _listed(s.admin, host=batch["units"][0]["host"], state="released")
    assert _listed(s.admin, host="nowhere") == []
    # A company token lists its own company's allocations only, whatever it asks.
    assert _listed(s.bank) == [web["id"], batch["id"]]
    assert _listed(s.card) == [pay["id"]]
    assert _listed(s.card, state="active") == [pay["id"]]
    assert_problem(s.card.get("/v1/allocations", params={"company": "bank"}), 404, "not_found")


def test_allocation_list_pages_with_cursor(sqlite_stack: Stack) -> None:
    made = [
        _create(sqlite_stack.bank, project="web", resources={"VCPU": 1})["id"] for _ in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = sqlite_stack.bank.get("/v1/allocations", params=params).json()
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    assert pages == 3


def test_gpu_shares_over_http_claim_devices_and_give_them_back(stack: Stack) -> None:
    notebook = {"project": "batch", "resources": {"VCPU": 1}, "gpu_share": 250}
    made = [_create(stack.bank, **notebook) for _ in range(3)]
    devices = {u["gpu_device"] for a in made for u in a["units"]}
    assert len(devices) == 1  # three quarters packed onto one device
    assert quota_used(stack.admin, "bank")["GPU"] == 3  # each allocation pays a whole GPU
    usage = stack.admin.get("/v1/usage", params={"by": "host"}).json()["items"]
    gpu = [line for line in usage if line["name"] == "h1" and line["resource_class"] == "GPU"]
    assert gpu[0]["used"] == 1
    shown = stack.bank.get(f"/v1/allocations/{made[0]['id']}").json()
    assert shown == made[0]

    for bad, words in (
        ({**notebook, "resources": {"GPU": 1}}, "not both"),
        ({**notebook, "gpu_share": 1000}, "less than or equal"),
        ({**notebook, "gpu_share": "250"}, "valid integer"),
        ({"project": "batch", "resources": {"VCPU": 1}, "gpu_models": ["A100"]}, "needs GPUs"),
    ):
        response = stack.bank.post("/v1/allocations", json=bad)
        assert_problem(response, 422, "validation_error")
        assert words in response.text
    assert quota_used(stack.admin, "bank")["GPU"] == 3  # refusals changed nothing

    for a in made:
        assert stack.bank.post(f"/v1/allocations/{a['id']}/release").status_code == 200
    assert quota_used(stack.admin, "bank")["GPU"] == 0
    assert check_consistency(stack.rt).ok

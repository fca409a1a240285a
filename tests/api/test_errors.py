"""Refusals as RFC 9457 problem documents with stable codes and their extension members.

The refusals decided by the database (quota and capacity counters, unique names, the
conditional updates of hosts and quotas) run on both databases; pure request validation
runs on SQLite only."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem, quota_used
from tests.support import check_consistency


def _allocate(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/allocations", json={"queue": False, **body})


def _fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


# --- validation (SQLite only, one server per module: refusals change nothing) -------------


def test_invalid_allocation_bodies_are_422_listing_the_offending_fields(
    shared_stack: Stack,
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"project": "web", "resources": {"VCPU": 0}}, "resources", "integer >= 1"),
        ({"project": "web", "resources": {"VCPU": True}}, "resources.VCPU", "integer"),
        ({"project": "web", "resources": {"VCPUS": 1}}, "resources", "unknown resource class"),
        ({"project": "web", "resources": {}}, "resources", "at least one"),
        ({"project": "web", "resources": {"VCPU": 1}, "count": 0}, "count", "greater than"),
        ({"project": "web", "resources": {"VCPU": 1}, "colour": "red"}, "colour", "Extra"),
        ({"resources": {"VCPU": 1}}, "project", "required"),
        ({"project": "Web!", "resources": {"VCPU": 1}}, "project", "must start with a letter"),
        ({"project": "web", "resources": {"VCPU": 1}, "strategy": "random"}, "strategy", ""),
    ]
    for body, field, message in cases:
        problem = assert_problem(_allocate(shared_stack.bank, **body), 422, "validation_error")
        assert _fields(problem) == [field], body
        assert problem["errors"][0]["location"] == "body"
        assert message in problem["errors"][0]["message"], body
        assert field in problem["detail"]

    several = _allocate(shared_stack.bank, resources={"VCPU": 1}, count=0, colour="red")
    problem = assert_problem(several, 422, "validation_error")
    assert sorted(_fields(problem)) == ["colour", "count", "project"]  # all, not the first

    not_json = shared_stack.bank.post(
        "/v1/allocations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "JSON" in assert_problem(not_json, 422, "validation_error")["detail"]
    assert quota_used(shared_stack.admin, "bank") == {"GPU": 0, "MEMORY_MB": 0, "VCPU": 0}


def test_invalid_query_and_header_values_are_422_naming_their_location(
    shared_stack: Stack,
) -> None:
    by = assert_problem(
        shared_stack.bank.get("/v1/usage", params={"by": "galaxy"}), 422, "validation_error"
    )
    assert by["errors"][0] == {
        "field": "by",
        "location": "query",
        "message": "Input should be 'pool', 'zone', 'host' or 'company'",
    }
    state = assert_problem(
        shared_stack.bank.get("/v1/allocations", params={"state": "gone"}),
        422,
        "validation_error",
    )
    assert _fields(state) == ["state"]
    key = assert_problem(
        shared_stack.bank.post(
            "/v1/allocations",
            json={"project": "web", "resources": {"VCPU": 1}},
            headers={"Idempotency-Key": "k" * 256},
        ),
        422,
        "validation_error",
    )
    assert key["errors"][0]["field"] == "Idempotency-Key"
    assert key["errors"][0]["location"] == "header"


def test_invalid_host_and_quota_bodies_are_422(shared_stack: Stack) -> None:
    admin = shared_stack.admin
    reserved = assert_problem(
        admin.post(
            "/v1/hosts",
            json={"name": "h9", "inventories": {"VCPU": {"total": 4, "reserved": 5}}},
        ),
        422,
        "validation_error",
    )
    assert _fields(reserved) == ["inventories.VCPU"]
    ratio = assert_problem(
        admin.post(
            "/v1/hosts",
            json={"name": "h9", "inventories": {"VCPU": {"total": 4, "allocation_ratio": 0}}},
        ),
        422,
        "validation_error",
    )
    assert _fields(ratio) == ["inventories.VCPU.allocation_ratio"]
    no_inventory = assert_problem(
        admin.post("/v1/hosts", json={"name": "h9", "inventories": {}}), 422, "validation_error"
    )
    assert _fields(no_inventory) == ["inventories"]
    negative = assert_problem(
        admin.put("/v1/quotas/bank/VCPU", json={"nominal": -1}), 422, "validation_error"
    )
    assert _fields(negative) == ["nominal"]
    unknown_class = assert_problem(
        admin.put("/v1/quotas/bank/CPUS", json={"nominal": 1}), 422, "validation_error"
    )
    assert _fields(unknown_class) == ["resource_class"]
    twice = {"name": "h9", "inventories": {"VCPU": {"total": 1}}}
    batch = assert_problem(
        admin.post("/v1/hosts/batch", json={"hosts": [twice, twice]}), 422, "validation_error"
    )
    assert batch["errors"] == [{"field": "name", "message": "duplicate: h9"}]
    assert admin.get("/v1/hosts/h9").status_code == 404


def test_group_admin_must_name_the_company_of_an_allocation(shared_stack: Stack) -> None:
    response = _allocate(shared_stack.admin, project="web", resources={"VCPU": 1})
    assert _fields(assert_problem(response, 422, "validation_error")) == ["company"]


# --- admission and placement (both databases) -------------------------------------------


def test_quota_exceeded_is_409_saying_which_class_by_how_much(stack: Stack) -> None:
    first = _allocate(stack.bank, project="web", resources={"VCPU": 16}, count=2)
    assert first.status_code == 201, first.text

    refused = _allocate(stack.bank, project="batch", resources={"VCPU": 1, "MEMORY_MB": 1})
    problem = assert_problem(refused, 409, "quota_exceeded")
    assert problem["exceeded"] == [
        {
            "resource_class": "VCPU",
            "kind": "borrowing_limit",
            "requested": 1,
            "own_free": 0,
            "missing": 1,
            "borrowable": 16,
            "limit": 0,
        }
    ]
    assert quota_used(stack.admin, "bank") == {"GPU": 0, "MEMORY_MB": 0, "VCPU": 32}

    # Room comes back with a release: the same request is admitted.
    released = stack.bank.post(f"/v1/allocations/{first.json()['id']}/release")
    assert released.status_code == 200
    again = _allocate(stack.bank, project="batch", resources={"VCPU": 1, "MEMORY_MB": 1})
    assert again.status_code == 201, again.text
    assert check_consistency(stack.rt).ok


def test_request_that_can_never_fit_is_422_never_fits_saying_why(stack: Stack) -> None:
    above = assert_problem(
        _allocate(stack.bank, project="web", resources={"VCPU": 33}), 422, "never_fits"
    )
    assert above["exceeded"] == [
        {
            "resource_class": "VCPU",
            "kind": "never",
            "requested": 33,
            "own_free": 32,
            "missing": 1,
            "borrowable": 0,
            "limit": 32,
        }
    ]
    # A class the company has no quota for has a limit of 0.
    no_quota = assert_problem(
        _allocate(stack.card, project="pay", resources={"GPU": 1}), 422, "never_fits"
    )
    assert no_quota["exceeded"] == [
        {
            "resource_class": "GPU",
            "kind": "never",
            "requested": 1,
            "own_free": 0,
            "missing": 1,
            "borrowable": 0,
            "limit": 0,
        }
    ]
    assert quota_used(stack.admin, "card") == {"MEMORY_MB": 0, "VCPU": 0}
    # No host is big enough, has the trait, or enough distinct hosts exist: the filters say.
    too_big = assert_problem(
        _allocate(stack.bank, project="web", resources={"VCPU": 17}), 422, "never_fits"
    )
    assert too_big["explain"] == {
        "hosts_total": 4,
        "hosts_fitting": 0,
        "units_requested": 1,
        "units_placeable": 0,
        "filters": [
            {"filter": "schedulable", "reason": "host_draining", "hosts_removed": 0},
            {"filter": "resources:VCPU", "reason": "insufficient_vcpu", "hosts_removed": 4},
        ],
    }
    trait = assert_problem(
        _allocate(stack.bank, project="web", resources={"VCPU": 1}, required_traits=["nvme"]),
        422,
        "never_fits",
    )
    assert {"filter": "traits", "reason": "missing_trait", "hosts_removed": 4} in trait["explain"][
        "filters"
    ]
    # Five units on distinct hosts of a four-host pool: waiting will not help.
    spread = assert_problem(
        _allocate(
            stack.bank, project="web", resources={"VCPU": 1}, count=5, anti_affinity_group="ha"
        ),
        422,
        "never_fits",
    )
    assert spread["explain"]["units_requested"] == 5
    assert quota_used(stack.admin, "bank")["VCPU"] == 0


def test_no_capacity_now_is_409_explaining_which_filter_removed_how_many_hosts(
    stack: Stack,
) -> None:
    for name in ("h2", "h3", "h4"):
        assert stack.admin.post(f"/v1/hosts/{name}/drain").json()["state"] == "draining"
    card = _allocate(stack.card, project="pay", resources={"VCPU": 16})
    assert card.status_code == 201, card.text
    assert [u["host"] for u in card.json()["units"]] == ["h1"]

    problem = assert_problem(
        _allocate(stack.bank, project="web", resources={"VCPU": 1}), 409, "no_capacity"
    )
    assert problem["explain"] == {
        "hosts_total": 4,
        "hosts_fitting": 0,
        "units_requested": 1,
        "units_placeable": 0,
        "filters": [
            {"filter": "schedulable", "reason": "host_draining", "hosts_removed": 3},
            {"filter": "resources:VCPU", "reason": "insufficient_vcpu", "hosts_removed": 1},
        ],
    }
    assert "3 removed by schedulable" in problem["detail"]
    assert quota_used(stack.admin, "bank")["VCPU"] == 0

    # Capacity another company releases is reusable at once.
    assert stack.card.post(f"/v1/allocations/{card.json()['id']}/release").status_code == 200
    bank = _allocate(stack.bank, project="web", resources={"VCPU": 16})
    assert bank.status_code == 201, bank.text
    assert [u["host"] for u in bank.json()["units"]] == ["h1"]


# --- names, ids and state conflicts (both databases) ------------------------------------


def test_unknown_ids_and_paths_are_404_problems(stack: Stack) -> None:
    admin = stack.admin
    expected = {
        "/v1/hosts/nope": "host",
        "/v1/allocations/nope": "allocation",
        "/v1/companies/nope": "company",
        "/v1/companies/nope/projects": "company",
    }
    for path, resource in expected.items():
        problem = assert_problem(admin.get(path), 404, "not_found")
        assert problem["resource"] == resource
        assert problem["name"] == "nope"
    for response, resource in [
        (admin.post("/v1/hosts/nope/drain"), "host"),
        (admin.delete("/v1/hosts/nope"), "host"),
        (admin.post("/v1/allocations/nope/release"), "allocation"),
        (admin.put("/v1/quotas/nope/VCPU", json={"nominal": 1}), "company"),
        (admin.delete("/v1/tokens/9999"), "token"),
        (_allocate(stack.bank, project="nope", resources={"VCPU": 1}), "project"),
        (_allocate(stack.bank, project="web", resources={"VCPU": 1}, zone="mars"), "zone"),
        (
            admin.post(
                "/v1/hosts",
                json={"name": "h9", "zone": "mars", "inventories": {"VCPU": {"total": 1}}},
            ),
            "zone",
        ),
    ]:
        assert assert_problem(response, 404, "not_found")["resource"] == resource
    for path in ("/v1/nope", "/nothing/here"):
        problem = assert_problem(admin.get(path), 404, "not_found")
        assert problem["instance"] == path


def test_duplicate_names_are_409_already_exists(stack: Stack) -> None:
    admin = stack.admin
    for response in [
        admin.post("/v1/companies", json={"slug": "bank", "name": "Second Bank"}),
        admin.post("/v1/companies/bank/projects", json={"slug": "web"}),
        admin.post("/v1/zones", json={"name": "shared"}),
        admin.post("/v1/hosts", json={"name": "h1", "inventories": {"VCPU": {"total": 1}}}),
        admin.post(
            "/v1/hosts/batch",
            json={
                "hosts": [
                    {"name": "h8", "inventories": {"VCPU": {"total": 1}}},
                    {"name": "h2", "inventories": {"VCPU": {"total": 1}}},
                ]
            },
        ),
    ]:
        assert_problem(response, 409, "already_exists")
    # All or none: the batch's new host was not added with the duplicate.
    assert_problem(admin.get("/v1/hosts/h8"), 404, "not_found")
    assert admin.get("/v1/companies/bank").json()["name"] == "Bank"
    # The same project slug in another company is not a duplicate.
    other = admin.post("/v1/companies/card/projects", json={"slug": "web"})
    assert other.status_code == 201, other.text


def test_removing_a_host_that_holds_allocations_is_409_and_changes_nothing(
    stack: Stack,
) -> None:
    made = _allocate(stack.bank, project="web", resources={"VCPU": 2}, required_traits=["ssd"])
    assert made.status_code == 201, made.text
    before = stack.admin.get("/v1/hosts/h1").json()

    problem = assert_problem(stack.admin.delete("/v1/hosts/h1"), 409, "host_not_empty")
    assert problem["host"] == "h1"
    assert "1 allocation" in problem["detail"]
    after = stack.admin.get("/v1/hosts/h1").json()
    assert after["inventories"] == before["inventories"]  # unused GPU inventory kept too
    assert after["state"] == "active"

    assert stack.bank.post(f"/v1/allocations/{made.json()['id']}/release").status_code == 200
    removed = stack.admin.delete("/v1/hosts/h1")
    assert removed.status_code == 200, removed.text
    assert removed.json()["state"] == "removed"
    assert_problem(stack.admin.get("/v1/hosts/h1"), 404, "not_found")


def test_quota_or_inventory_below_what_is_in_use_is_409(stack: Stack) -> None:
    made = _allocate(
        stack.bank, project="web", resources={"VCPU": 8, "GPU": 1}, required_traits=["ssd"]
    )
    assert made.status_code == 201, made.text
    quota = assert_problem(
        stack.admin.put("/v1/quotas/bank/VCPU", json={"nominal": 4}), 409, "quota_below_usage"
    )
    assert (quota["used"], quota["requested"]) == (8, 4)
    lowered = stack.admin.put("/v1/quotas/bank/VCPU", json={"nominal": 8})
    assert lowered.status_code == 200
    assert lowered.json()["free"] == 0

    shrink = stack.admin.put(
        "/v1/hosts/h1/inventories",
        json={"inventories": {"VCPU": {"total": 4}, "GPU": {"total": 4}}},
    )
    assert assert_problem(shrink, 409, "inventory_in_use")["resource_class"] == "VCPU"
    drop = stack.admin.put(
        "/v1/hosts/h1/inventories", json={"inventories": {"VCPU": {"total": 16}}}
    )
    assert assert_problem(drop, 409, "inventory_in_use")["resource_class"] == "GPU"
    host = stack.admin.get("/v1/hosts/h1").json()
    assert host["inventories"]["VCPU"]["capacity"] == 16
    assert host["inventories"]["MEMORY_MB"]["capacity"] == 65536
    assert check_consistency(stack.rt).ok

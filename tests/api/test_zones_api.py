"""Zones over HTTP: attributes on create, show, list and PATCH (group admins), their
validation as problem documents, and the placement rules' refusals and explanations."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem

KR_D3 = {
    "name": "ext-kr",
    "kind": "external",
    "country": "KR",
    "internet_separated": True,
    "certifications": ["csap", "cloud_security_assessment"],
    "data_classes": ["D3", "D1", "D2"],
    "approved": True,
    "approved_for_d3": True,
}


def _created(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/zones", json=body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def test_zone_attributes_are_stored_shown_listed_and_changed(sqlite_stack: Stack) -> None:
    admin = sqlite_stack.admin
    made = _created(admin, KR_D3)
    assert made["certifications"] == ["cloud_security_assessment", "csap"]
    assert made["data_classes"] == ["D1", "D2", "D3"]
    assert (made["country"], made["approved_for_d3"]) == ("KR", True)
    assert sqlite_stack.bank.get("/v1/zones/ext-kr").json() == made  # every role reads zones
    listed = {z["name"]: z for z in admin.get("/v1/zones").json()}
    assert listed["ext-kr"] == made
    assert listed["shared"]["country"] is None
    assert listed["shared"]["data_classes"] == ["D1", "D2", "D3"]

    changed = admin.patch("/v1/zones/ext-kr", json={"country": None, "data_classes": ["D1"]})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["country"], changed.json()["data_classes"]) == (None, ["D1"])
    assert changed.json()["approved"] is True  # what the patch left out stays
    events = admin.get("/v1/events", params={"subject": "zone/ext-kr"}).json()["items"]
    assert [e["kind"] for e in events] == ["zone.created", "zone.updated"]
    assert events[1]["data"] == {"country": None, "data_classes": ["D1"]}


def test_invalid_zone_attributes_are_422_problems_naming_the_field(sqlite_stack: Stack) -> None:
    admin = sqlite_stack.admin
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "z", "country": "kr"}, "country"),
        ({"name": "z", "country": "KOR"}, "country"),
        ({"name": "z", "certifications": ["CSAP"]}, "certifications"),
        ({"name": "z", "data_classes": ["D4"]}, "data_classes.0"),
        ({"name": "z", "internet_separated": "yes"}, "internet_separated"),
        ({"name": "z", "approved": True}, "approved"),
        ({"name": "z", "kind": "external", "approved_for_d3": True}, "approved_for_d3"),
    ]
    for body, field in cases:
        problem = assert_problem(admin.post("/v1/zones", json=body), 422, "validation_error")
        assert [e["field"] for e in problem["errors"]] == [field], body
    patched = admin.patch("/v1/zones/shared", json={"approved_for_d3": True})
    assert_problem(patched, 422, "validation_error")
    assert_problem(
        admin.patch("/v1/zones/shared", json={"approved": None}), 422, "validation_error"
    )
    assert_problem(admin.patch("/v1/zones/nowhere", json={"country": "KR"}), 404, "not_found")
    member = sqlite_stack.bank_admin.patch("/v1/zones/shared", json={"country": "KR"})
    assert_problem(member, 403, "forbidden")
    assert admin.get("/v1/zones/shared").json()["country"] is None


def test_a_zone_the_rules_forbid_is_422_zone_forbidden_naming_the_rule(
    sqlite_stack: Stack,
) -> None:
    admin = sqlite_stack.admin
    _created(admin, {"name": "ext-us", "kind": "external", "country": "US", "approved": True})
    body = {"project": "web", "resources": {"VCPU": 1}, "zone": "ext-us", "queue": False}
    problem = assert_problem(
        sqlite_stack.bank.post("/v1/allocations", json=body), 422, "zone_forbidden"
    )
    assert problem["rules"] == ["d3_private_or_assessed_kr_external"]
    assert problem["zone"] == "ext-us"
    assert problem["allowed_zones"] == ["shared"]
    assert "d3_private_or_assessed_kr_external" in problem["detail"]
    internal = {**body, "zone": "shared", "data_class": "D1", "system_type": "internal_business"}
    problem = assert_problem(
        sqlite_stack.bank.post("/v1/allocations", json=internal), 422, "zone_forbidden"
    )
    assert problem["rules"] == ["internal_business_internet_separated"]
    bad = {**body, "data_class": "D9"}
    assert_problem(sqlite_stack.bank.post("/v1/allocations", json=bad), 422, "validation_error")


def test_allocations_carry_their_data_class_and_explain_shows_the_zone_verdicts(
    sqlite_stack: Stack,
) -> None:
    admin = sqlite_stack.admin
    _created(admin, {"name": "ext-us", "kind": "external", "country": "US", "approved": True})
    made = sqlite_stack.bank.post(
        "/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}, "data_class": "D2"}
    )
    assert made.status_code == 201, made.text
    assert (made.json()["data_class"], made.json()["system_type"]) == ("D2", "external_service")
    plain = sqlite_stack.bank.post(
        "/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}}
    ).json()
    assert plain["data_class"] == "D3"  # the safe default
    why = sqlite_stack.bank.get(f"/v1/allocations/{plain['id']}/explain").json()
    verdicts = {z["zone"]: z for z in why["zones"]}
    assert verdicts["ext-us"]["allowed"] is False
    assert verdicts["ext-us"]["removed_by"] == ["d3_private_or_assessed_kr_external"]
    assert verdicts["shared"]["allowed"] is True
    d2 = sqlite_stack.bank.get(f"/v1/allocations/{made.json()['id']}/explain").json()
    assert all(z["allowed"] for z in d2["zones"])


def test_the_openapi_document_describes_the_zone_fields_and_their_bounds(
    shared_stack: Stack,
) -> None:
    spec = shared_stack.anonymous.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    create = schemas["ZoneCreate"]["properties"]
    country = next(s for s in create["country"]["anyOf"] if s.get("type") == "string")
    assert country["pattern"] == "^[A-Z]{2}$"
    assert create["certifications"]["items"]["pattern"] == "^[a-z][a-z0-9_]{0,62}$"
    assert create["certifications"]["maxItems"] == 32
    assert schemas["Sensitivity"]["enum"] == ["D1", "D2", "D3"]
    assert schemas["SystemType"]["enum"] == ["internal_business", "external_service"]
    assert "patch" in spec["paths"]["/v1/zones/{name}"]
    alloc = schemas["AllocationCreate"]["properties"]
    assert {"$ref": "#/components/schemas/Sensitivity"} in alloc["data_class"]["anyOf"]
    project = schemas["ProjectCreate"]["properties"]
    assert project["default_data_class"]["default"] == "D3"
    assert project["default_system_type"]["default"] == "external_service"


def test_projects_carry_the_default_data_class_and_system_type_of_their_allocations(
    sqlite_stack: Stack,
) -> None:
    admin, lead = sqlite_stack.admin, sqlite_stack.bank_admin
    made = lead.post(
        "/v1/companies/bank/projects",
        json={
            "slug": "ledger",
            "default_data_class": "D1",
            "default_system_type": "internal_business",
        },
    )
    assert made.status_code == 201, made.text
    assert (made.json()["default_data_class"], made.json()["default_system_type"]) == (
        "D1",
        "internal_business",
    )
    _created(admin, {"name": "sep", "internet_separated": True})
    added = admin.post(
        "/v1/hosts", json={"name": "s1", "zone": "sep", "inventories": {"VCPU": {"total": 8}}}
    )
    assert added.status_code == 201, added.text
    body = {"project": "ledger", "resources": {"VCPU": 1}}
    alloc = sqlite_stack.bank.post("/v1/allocations", json=body)
    assert alloc.status_code == 201, alloc.text
    assert (alloc.json()["data_class"], alloc.json()["system_type"]) == ("D1", "internal_business")
    problem = assert_problem(
        sqlite_stack.bank.post("/v1/allocations", json={**body, "zone": "shared"}),
        422,
        "zone_forbidden",
    )
    assert problem["rules"] == ["internal_business_internet_separated"]
    changed = lead.patch(
        "/v1/companies/bank/projects/ledger", json={"default_system_type": "external_service"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["default_data_class"] == "D1"  # left out: kept
    shared = sqlite_stack.bank.post("/v1/allocations", json={**body, "zone": "shared"})
    assert shared.status_code == 201, shared.text
    assert shared.json()["system_type"] == "external_service"
    explicit = sqlite_stack.bank.post("/v1/allocations", json={**body, "data_class": "D3"})
    assert explicit.json()["data_class"] == "D3"  # the request's own beats the project's
    empty = lead.patch("/v1/companies/bank/projects/ledger", json={})
    assert_problem(empty, 422, "validation_error")
    bad = lead.patch("/v1/companies/bank/projects/ledger", json={"default_data_class": "D0"})
    assert_problem(bad, 422, "validation_error")

"""Authentication and the wall between companies (invariant 4), over real HTTP on both
databases."""

from __future__ import annotations

import httpx

from tests.api.stack import Stack, assert_problem


def _bank_allocation(stack: Stack) -> str:
    response = stack.bank.post(
        "/v1/allocations", json={"project": "web", "resources": {"VCPU": 2, "MEMORY_MB": 1024}}
    )
    assert response.status_code == 201, response.text
    allocation_id: str = response.json()["id"]
    return allocation_id


def test_missing_unknown_or_non_bearer_token_is_401_with_bearer_challenge(stack: Stack) -> None:
    missing = stack.anonymous.get("/v1/whoami")
    body = assert_problem(missing, 401, "unauthenticated")
    assert "Authorization: Bearer" in body["detail"]

    unknown = stack.client("gc_not-a-real-token").get("/v1/hosts")
    assert (
        "unknown, expired or revoked" in assert_problem(unknown, 401, "unauthenticated")["detail"]
    )

    basic = httpx.get(
        f"{stack.url}/v1/whoami", headers={"Authorization": f"Basic {stack.world.admin}"}
    )
    assert_problem(basic, 401, "unauthenticated")
    for response in (missing, unknown, basic):
        assert response.headers["www-authenticate"] == "Bearer"


def test_whoami_names_each_tokens_role_and_company(shared_stack: Stack) -> None:
    seen = {
        name: client.get("/v1/whoami").json()
        for name, client in {
            "admin": shared_stack.admin,
            "bank_admin": shared_stack.bank_admin,
            "bank": shared_stack.bank,
            "card": shared_stack.card,
        }.items()
    }
    assert seen == {
        "admin": {"name": "ops", "role": "group-admin", "company": None},
        "bank_admin": {"name": "bank-lead", "role": "company-admin", "company": "bank"},
        "bank": {"name": "bank-dev", "role": "member", "company": "bank"},
        "card": {"name": "card-dev", "role": "member", "company": "card"},
    }


def test_member_and_company_admin_cannot_change_the_pool_or_quotas(stack: Stack) -> None:
    response = stack.bank.post(
        "/v1/hosts", json={"name": "rogue", "inventories": {"VCPU": {"total": 8}}}
    )
    assert "group-admin" in assert_problem(response, 403, "forbidden")["detail"]
    assert_problem(stack.bank_admin.post("/v1/hosts/h2/drain"), 403, "forbidden")
    assert_problem(
        stack.bank_admin.put("/v1/quotas/bank/VCPU", json={"nominal": 1000}), 403, "forbidden"
    )
    assert_problem(
        stack.bank_admin.post("/v1/companies", json={"slug": "evil", "name": "Evil"}),
        403,
        "forbidden",
    )
    assert stack.admin.get("/v1/hosts/rogue").status_code == 404
    assert stack.admin.get("/v1/hosts/h2").json()["state"] == "active"
    quotas = stack.admin.get("/v1/quotas", params={"company": "bank"}).json()
    assert {q["resource_class"]: q["nominal"] for q in quotas}["VCPU"] == 32


def test_other_company_cannot_see_or_release_an_allocation_it_is_404_not_403(
    stack: Stack,
) -> None:
    allocation_id = _bank_allocation(stack)
    body = assert_problem(stack.card.get(f"/v1/allocations/{allocation_id}"), 404, "not_found")
    assert body["resource"] == "allocation"
    # Indistinguishable from an id that does not exist at all.
    unknown = assert_problem(
        stack.card.get("/v1/allocations/00000000-0000-0000-0000-000000000000"), 404, "not_found"
    )
    assert unknown["title"] == body["title"]
    assert_problem(stack.card.post(f"/v1/allocations/{allocation_id}/release"), 404, "not_found")

    shown = stack.bank_admin.get(f"/v1/allocations/{allocation_id}").json()
    assert shown["state"] == "active"
    assert shown["released_by"] is None
    assert stack.admin.get(f"/v1/allocations/{allocation_id}").status_code == 200


def test_company_token_reads_pool_summaries_but_no_other_company_objects(stack: Stack) -> None:
    _bank_allocation(stack)
    for path, params in [
        ("/v1/companies/bank", {}),
        ("/v1/companies/bank/projects", {}),
        ("/v1/quotas", {"company": "bank"}),
        ("/v1/usage", {"by": "company", "company": "bank"}),
        ("/v1/allocations", {"company": "bank"}),
        ("/v1/events", {"company": "bank"}),
    ]:
        body = assert_problem(stack.card.get(path, params=params), 404, "not_found")
        assert body["resource"] == "company", path
    listed = stack.card.get("/v1/allocations").json()
    assert listed["items"] == []
    companies = stack.card.get("/v1/companies").json()
    assert [c["slug"] for c in companies["items"]] == ["card"]
    events = stack.card.get("/v1/events").json()["items"]
    assert all(e["company"] == "card" for e in events)

    pool = stack.card.get("/v1/usage", params={"by": "pool"})
    assert pool.status_code == 200
    assert {r["resource_class"]: r["capacity"] for r in pool.json()["items"]} == {
        "GPU": 4,
        "MEMORY_MB": 4 * 65536,
        "VCPU": 64,
    }
    hosts = stack.card.get("/v1/hosts")
    assert [h["name"] for h in hosts.json()["items"]] == ["h1", "h2", "h3", "h4"]


def test_revoked_token_is_refused_at_once(stack: Stack) -> None:
    created = stack.bank_admin.post(
        "/v1/tokens", json={"name": "ci", "role": "member", "company": "bank"}
    )
    assert created.status_code == 201, created.text
    ci = stack.client(created.json()["secret"])
    assert ci.get("/v1/whoami").json()["name"] == "ci"

    revoked = stack.bank_admin.delete(f"/v1/tokens/{created.json()['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    response = ci.get("/v1/whoami")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"

"""API tokens over HTTP: issue (secret shown once), list (never secrets), revoke."""

from __future__ import annotations

import httpx

from tests.api.stack import Stack, assert_problem


def test_issued_secret_is_shown_once_and_never_listed(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    created = s.admin.post(
        "/v1/tokens", json={"name": "robot", "role": "member", "company": "card"}
    )
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["secret"].startswith("gc_")
    assert len(token["secret"]) >= 40
    assert token["prefix"] == token["secret"][:10]
    assert (token["role"], token["company"], token["created_by"]) == (
        "member",
        "card",
        "token:ops",
    )
    assert s.client(token["secret"]).get("/v1/whoami").json()["company"] == "card"

    listing = s.admin.get("/v1/tokens")
    assert token["secret"] not in listing.text
    listed = listing.json()["items"]
    assert [t["name"] for t in listed] == ["ops", "bank-lead", "bank-dev", "card-dev", "robot"]
    assert all("secret" not in t for t in listed)
    card = s.admin.get("/v1/tokens", params={"company": "card"}).json()["items"]
    assert [t["name"] for t in card] == ["card-dev", "robot"]


def test_company_admin_manages_only_its_own_company_tokens(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    own = s.bank_admin.post("/v1/tokens", json={"name": "ci", "role": "member", "company": "bank"})
    assert own.status_code == 201, own.text
    listed = s.bank_admin.get("/v1/tokens").json()["items"]
    assert {t["company"] for t in listed} == {"bank"}
    assert "ci" in {t["name"] for t in listed}

    other = s.bank_admin.post("/v1/tokens", json={"name": "x", "role": "member", "company": "card"})
    assert_problem(other, 404, "not_found")
    group = s.bank_admin.post("/v1/tokens", json={"name": "x", "role": "group-admin"})
    assert_problem(group, 403, "forbidden")
    card_tokens = s.admin.get("/v1/tokens", params={"company": "card"}).json()["items"]
    assert_problem(s.bank_admin.delete(f"/v1/tokens/{card_tokens[0]['id']}"), 404, "not_found")
    assert_problem(s.bank.get("/v1/tokens"), 403, "forbidden")
    assert_problem(s.bank.delete(f"/v1/tokens/{own.json()['id']}"), 403, "forbidden")
    assert s.client(own.json()["secret"]).get("/v1/whoami").status_code == 200


def test_role_and_company_must_agree(sqlite_stack: Stack) -> None:
    for body in (
        {"name": "x", "role": "member"},
        {"name": "x", "role": "group-admin", "company": "bank"},
    ):
        problem = assert_problem(
            sqlite_stack.admin.post("/v1/tokens", json=body), 422, "validation_error"
        )
        assert [e["field"] for e in problem["errors"]] == ["company"]
    unknown_role = sqlite_stack.admin.post("/v1/tokens", json={"name": "x", "role": "root"})
    assert_problem(unknown_role, 422, "validation_error")


def test_revoking_twice_answers_the_same_revoked_token(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    created = s.admin.post("/v1/tokens", json={"name": "temp", "role": "group-admin"}).json()
    first = s.admin.delete(f"/v1/tokens/{created['id']}")
    second = s.admin.delete(f"/v1/tokens/{created['id']}")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["revoked_at"] is not None
    assert_problem(s.client(created["secret"]).get("/v1/hosts"), 401, "unauthenticated")
    listed = {t["name"]: t for t in s.admin.get("/v1/tokens").json()["items"]}
    assert listed["temp"]["revoked_at"] == first.json()["revoked_at"]
    revoked = s.admin.get("/v1/events", params={"kind": "token.revoked"}).json()["items"]
    assert len(revoked) == 1


def test_revoking_a_token_id_beyond_the_id_range_is_422_not_a_server_error(stack: Stack) -> None:
    """No token can have such an id; PostgreSQL overflowed its int4 key (500) from 2**31
    and SQLite from 2**63 because the id reached the query unchecked. The path's bounds
    are in the published document now, so the id is refused before any query."""
    for token_id in (2**31, 10**20):
        response = httpx.delete(
            f"{stack.url}/v1/tokens/{token_id}",
            headers={"Authorization": f"Bearer {stack.world.admin}"},
        )
        problem = assert_problem(response, 422, "validation_error")
        assert [e["field"] for e in problem["errors"]] == ["token_id"]

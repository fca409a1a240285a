"""``Idempotency-Key`` on POST /v1/allocations over real HTTP, on both databases: a retry
returns the first result and claims nothing more."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem, quota_used
from tests.support import check_consistency

BODY: dict[str, Any] = {"project": "web", "resources": {"VCPU": 2, "MEMORY_MB": 2048}, "count": 2}


def _post(client: httpx.Client, key: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/allocations", json=body, headers={"Idempotency-Key": key})


def _ids(client: httpx.Client, **params: str) -> list[str]:
    return [a["id"] for a in client.get("/v1/allocations", params=params).json()["items"]]


def test_same_key_and_body_twice_returns_the_first_allocation_and_claims_once(
    stack: Stack,
) -> None:
    first = _post(stack.bank, "deploy-42", BODY)
    assert first.status_code == 201, first.text
    second = _post(stack.bank, "deploy-42", BODY)
    assert second.status_code == 201, second.text
    assert second.json() == first.json()
    # The same request spelled differently (defaults given, other key order) is the same.
    respelled = {
        "count": 2,
        "resources": {"MEMORY_MB": 2048, "VCPU": 2},
        "strategy": "pack",
        "company": "bank",
        "project": "web",
        "required_traits": [],
    }
    assert _post(stack.bank, "deploy-42", respelled).json()["id"] == first.json()["id"]

    assert _ids(stack.bank) == [first.json()["id"]]
    assert quota_used(stack.admin, "bank") == {"GPU": 0, "MEMORY_MB": 4096, "VCPU": 4}
    pool = stack.admin.get("/v1/usage").json()["items"]
    assert {r["resource_class"]: r["used"] for r in pool} == {
        "GPU": 0,
        "MEMORY_MB": 4096,
        "VCPU": 4,
    }
    created = stack.admin.get("/v1/events", params={"kind": "allocation.created"}).json()
    assert len(created["items"]) == 1
    assert check_consistency(stack.rt).ok

    # Without a key the same body is a new request.
    unkeyed = stack.bank.post("/v1/allocations", json=BODY)
    assert unkeyed.status_code == 201, unkeyed.text
    assert unkeyed.json()["id"] != first.json()["id"]
    assert quota_used(stack.admin, "bank")["VCPU"] == 8


def test_same_key_with_another_body_is_422_idempotency_key_reused(stack: Stack) -> None:
    first = _post(stack.bank, "deploy-43", BODY)
    assert first.status_code == 201, first.text
    other = {**BODY, "count": 3}
    problem = assert_problem(_post(stack.bank, "deploy-43", other), 422, "idempotency_key_reused")
    assert problem["allocation"] == first.json()["id"]
    assert quota_used(stack.admin, "bank")["VCPU"] == 4
    assert _ids(stack.bank) == [first.json()["id"]]


def test_keys_are_per_company_not_per_token(stack: Stack) -> None:
    bank = _post(stack.bank, "nightly", BODY)
    card = _post(stack.card, "nightly", {**BODY, "project": "pay"})
    assert bank.status_code == 201, bank.text
    assert card.status_code == 201, card.text
    assert bank.json()["id"] != card.json()["id"]
    assert (bank.json()["company"], card.json()["company"]) == ("bank", "card")
    assert quota_used(stack.admin, "card")["VCPU"] == 4

    # A group admin retrying the member's request on the company's behalf gets its result.
    admin = _post(stack.admin, "nightly", {**BODY, "company": "bank"})
    assert admin.status_code == 201, admin.text
    assert admin.json()["id"] == bank.json()["id"]
    assert admin.json()["created_by"] == "token:bank-dev@bank"
    assert quota_used(stack.admin, "bank")["VCPU"] == 4


def test_retry_after_release_returns_the_released_allocation_without_claiming(
    stack: Stack,
) -> None:
    first = _post(stack.bank, "once", BODY)
    assert first.status_code == 201, first.text
    assert stack.bank.post(f"/v1/allocations/{first.json()['id']}/release").status_code == 200
    retry = _post(stack.bank, "once", BODY)
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["state"] == "released"
    assert quota_used(stack.admin, "bank")["VCPU"] == 0


def test_concurrent_retries_with_one_key_claim_once(stack: Stack) -> None:
    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.url, timeout=30.0) as client:
            return client.post(
                "/v1/allocations",
                json=BODY,
                headers={
                    "Idempotency-Key": "burst",
                    "Authorization": f"Bearer {stack.world.bank_member}",
                },
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, range(8)))
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert quota_used(stack.admin, "bank")["VCPU"] == 4
    assert len(_ids(stack.bank)) == 1
    assert check_consistency(stack.rt).ok

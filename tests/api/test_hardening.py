"""Bad input never gets a 500, and every error is a problem document on an intact
connection (issue #14: each case here was a reproduced finding)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from groupcloud.services.tenancy import companies
from tests.api.stack import PROBLEM_JSON, Stack, assert_problem


def _connection(stack: Stack) -> http.client.HTTPConnection:
    where = urlsplit(stack.url)
    return http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)


def _send(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@pytest.fixture
def broken_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The company list fails as a bug would (an exception no handler knows)."""

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(companies, "list_companies", boom)


@pytest.mark.usefixtures("broken_listing")
def test_an_unhandled_error_is_a_500_problem_and_the_connection_stays_usable(
    sqlite_stack: Stack,
) -> None:
    conn = _connection(sqlite_stack)
    try:
        status, headers, body = _send(conn, "GET", "/v1/companies", sqlite_stack.world.admin)
        assert status == 500
        assert headers["content-type"] == PROBLEM_JSON
        assert json.loads(body)["code"] == "internal_error"
        assert headers.get("connection") != "close"
        # the same socket answers the next request (it was reset before)
        status, _, body = _send(conn, "GET", "/v1/zones", sqlite_stack.world.admin)
        assert status == 200, body
    finally:
        conn.close()


def test_a_body_over_the_limit_is_413_before_it_is_read(sqlite_stack: Stack) -> None:
    limit = sqlite_stack.rt.settings.max_body_bytes
    huge = (
        b'{"company": "bank", "project": "web", "resources": {"VCPU": 1}, "pad": "'
        + (b"x" * limit)
        + b'"}'
    )
    declared = sqlite_stack.bank.post(
        "/v1/allocations", content=huge, headers={"Content-Type": "application/json"}
    )
    assert_problem(declared, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(huge), 65536):
            yield huge[i : i + 65536]

    streamed = sqlite_stack.bank.post(
        "/v1/allocations", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413, "payload_too_large")
    assert sqlite_stack.bank.get("/v1/allocations").json()["items"] == []


def test_a_body_with_thousands_of_bad_fields_gets_a_short_answer(sqlite_stack: Stack) -> None:
    body = {
        "company": "bank",
        "project": "web",
        "resources": {f"custom-{i}": 1 for i in range(20_000)},
    }
    response = sqlite_stack.bank.post("/v1/allocations", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert len(response.content) < 20_000  # the request was about 500 kB


def test_a_wrong_method_is_405_naming_every_method_of_the_path(sqlite_stack: Stack) -> None:
    response = sqlite_stack.bank.put("/v1/allocations")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


def test_nul_characters_are_refused_in_paths_queries_and_bodies(stack: Stack) -> None:
    in_path = stack.bank.get("/v1/companies/ba%00nk")
    assert_problem(in_path, 422, "validation_error")
    in_query = stack.bank.get("/v1/allocations", params={"project": "w\x00eb"})
    assert_problem(in_query, 422, "validation_error")
    body = {"company": "bank", "project": "web", "resources": {"VCPU": 1}, "zone": "sh\x00ared"}
    in_body = stack.bank.post("/v1/allocations", json=body)
    problem = assert_problem(in_body, 422, "validation_error")
    assert "body.zone" in problem["detail"]
    note = stack.admin.post("/v1/companies", json={"slug": "nul", "name": "N\x00"})
    assert_problem(note, 422, "validation_error")
    assert stack.bank.get("/v1/allocations").json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [  # each was a 500 in the hardening round (issue #14)
        ("get", "/v1/networks/peerings/2147483648"),
        ("post", "/v1/networks/peerings/10000000000000000000/accept"),
        ("patch", "/v1/networks/floating-ips/" + "9" * 30),
        ("get", "/v1/networks/ips/99999999999999999999999999999"),
        ("get", "/v1/networks/peerings/0"),
        ("delete", "/v1/tokens/-1"),
    ],
)
def test_ids_beyond_the_column_are_refused_not_queried(
    stack: Stack, method: str, path: str
) -> None:
    body = {"attach_to": None} if method == "patch" else None
    response = stack.admin.request(method, path, json=body)
    assert_problem(response, 422, "validation_error")


def test_numbers_beyond_the_columns_and_coercions_are_refused(stack: Stack) -> None:
    base = {"company": "bank", "project": "web", "resources": {"VCPU": 1}}
    for extra in (
        {"minimum_runtime_s": 2**31},
        {"lease_s": 10**30},
        {"count": True},
        {"queue": 0},
        {"expires_at": 0},
        {"resources": {"VCPU": 2**63}},
        {"priority": 1.5},
    ):
        response = stack.bank.post("/v1/allocations", json={**base, **extra})
        assert_problem(response, 422, "validation_error")
    quota = stack.admin.put("/v1/networks/quotas/bank/vpcs", json={"limit": False})
    assert_problem(quota, 422, "validation_error")
    weight = stack.admin.post("/v1/companies", json={"slug": "x", "name": "X", "fair_weight": "2"})
    assert_problem(weight, 422, "validation_error")
    assert stack.bank.get("/v1/allocations").json()["items"] == []


def test_an_empty_or_oversized_idempotency_key_is_refused(stack: Stack) -> None:
    body = {"company": "bank", "project": "web", "resources": {"VCPU": 1}}
    for key in ("", "k" * 256):
        response = stack.bank.post("/v1/allocations", json=body, headers={"Idempotency-Key": key})
        assert_problem(response, 422, "validation_error")
    assert stack.bank.get("/v1/allocations").json()["items"] == []


@pytest.mark.parametrize("scale", ["inf", "nan", "1e308", "-1", "0"])
def test_analytics_scales_must_be_finite_and_sane(stack: Stack, scale: str) -> None:
    for path in ("/v1/analytics/scorecard", "/v1/analytics/capacity"):
        response = stack.admin.get(path, params={"month": "2022-10", "scale": scale})
        assert_problem(response, 422, "validation_error")

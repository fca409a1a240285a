"""The published contract: OpenAPI 3.1, docs page, health probes and problem-type pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from groupcloud import __version__
from groupcloud.errors import all_error_types
from tests.api.stack import Stack, assert_problem

METHODS = {"get", "post", "put", "delete", "patch"}


@pytest.fixture(scope="module")
def openapi(shared_stack: Stack) -> dict[str, Any]:
    response = shared_stack.anonymous.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_document_is_openapi_3_1_with_title_and_version(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1.")
    assert openapi["info"]["title"] == "groupcloud"
    assert openapi["info"]["version"] == __version__
    assert "problem+json" in openapi["info"]["description"]


def test_every_v1_operation_has_a_summary_and_a_tag(openapi: dict[str, Any]) -> None:
    operations = [(p, m, o) for p, m, o in _operations(openapi) if p.startswith("/v1/")]
    assert len(operations) >= 25
    for path, method, operation in operations:
        assert operation.get("summary", "").strip(), f"{method.upper()} {path}"
        assert operation.get("tags"), f"{method.upper()} {path}"


def test_every_v1_operation_requires_a_bearer_token(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert any(s == {"type": "http", "scheme": "bearer"} | s for s in schemes.values())
    for path, method, operation in _operations(openapi):
        if path.startswith("/v1/"):
            assert operation.get("security"), f"{method.upper()} {path}"


def test_allocation_create_documents_the_idempotency_key_and_refusals(
    openapi: dict[str, Any],
) -> None:
    create = openapi["paths"]["/v1/allocations"]["post"]
    headers = [p for p in create["parameters"] if p["in"] == "header"]
    assert [h["name"] for h in headers] == ["Idempotency-Key"]
    assert headers[0]["required"] is False
    assert "same key" in headers[0]["description"]
    assert {"201", "409", "422"} <= set(create["responses"])
    assert "quota_exceeded" in create["responses"]["409"]["description"]
    assert "never_fits" in create["responses"]["422"]["description"]
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = openapi["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert {"project", "resources", "count"} <= set(schema["properties"])
    assert schema["properties"]["resources"]["description"]


def test_docs_page_is_html(shared_stack: Stack) -> None:
    response = shared_stack.anonymous.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_health_and_readiness_need_no_token(shared_stack: Stack) -> None:
    health = shared_stack.anonymous.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": __version__}
    ready = shared_stack.anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["schema"]


def test_each_error_code_has_a_problem_type_page(shared_stack: Stack) -> None:
    codes = {cls.code: cls for cls in all_error_types()}
    assert {
        "validation_error",
        "unauthenticated",
        "forbidden",
        "not_found",
        "conflict",
        "already_exists",
        "host_not_empty",
        "inventory_in_use",
        "quota_below_usage",
        "quota_exceeded",
        "no_capacity",
        "never_fits",
        "idempotency_key_reused",
        "internal_error",
    } <= set(codes)
    for code, cls in codes.items():
        page = shared_stack.anonymous.get(f"/problems/{code}")
        assert page.status_code == 200, code
        assert page.headers["content-type"].startswith("text/html")
        assert f"<code>{code}</code>" in page.text
        assert f"HTTP {cls.status}" in page.text
    assert shared_stack.anonymous.get("/problems/no_such_code").status_code == 404


def test_method_not_allowed_is_a_documented_problem_with_an_allow_header(
    shared_stack: Stack,
) -> None:
    """RFC 9110 requires ``Allow`` on a 405, and the problem's ``type`` must lead to a page
    (the handler dropped Starlette's headers; ``method_not_allowed`` had no page)."""
    response = httpx.delete(
        f"{shared_stack.url}/v1/whoami",
        headers={"Authorization": f"Bearer {shared_stack.world.admin}"},
    )
    problem = assert_problem(response, 405, "method_not_allowed")
    assert response.headers.get("allow") == "GET"
    page = shared_stack.anonymous.get(problem["type"])
    assert page.status_code == 200
    assert "<code>method_not_allowed</code>" in page.text

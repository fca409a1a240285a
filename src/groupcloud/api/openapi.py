"""The OpenAPI document says what the server answers, errors included.

FastAPI documents the success of each route and a generic 422. Every error groupcloud
sends is an RFC 9457 ``application/problem+json`` document, so this module completes the
generated document in one place instead of on every route:

* a ``Problem`` schema (the members every problem has, plus ``errors`` for invalid input);
* on every operation, the error statuses it can answer -- 401/403 (token), 404 (an object
  it names, or a company the caller may not see), 422 (validation), 500 -- 409
  (conflicts) on every change, 400 and 413 (too large) when it takes a body, 503 on the
  analytics routes (no analytics secret configured);
* every error response described as ``application/problem+json`` with that schema
  (descriptions a route wrote itself, e.g. "quota_exceeded or no_capacity", are kept).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["PROBLEM_MEDIA_TYPE", "install"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
BROKER_PREFIX = "/v2/"
_METHODS = ("get", "put", "post", "delete", "patch")
_ALWAYS = {
    "401": "unauthenticated: no token, or an unknown, expired or revoked one",
    "403": "forbidden: the token's role may not do this",
    "404": "not_found: the object (or the company it belongs to) does not exist for this caller",
    "422": "validation_error (listing each field), or a refusal the request can never pass",
    "500": "internal_error: the server failed (see its log); nothing was half-changed",
}
_WRITES = {"409": "a conflict with the stored state (the code says which); retrying may succeed"}
_WITH_BODY = {
    "400": "http_400: the body could not be read",
    "413": "payload_too_large: the body is larger than the server accepts",
}
_ANALYTICS = {
    "503": "analytics_secret_missing (no analytics secret configured) or event_stream_unavailable"
}
_UNAUTHENTICATED = ("/healthz", "/readyz", "/openapi.json")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; clients branch on the stable `code`.",
    "required": ["type", "title", "status", "detail", "instance", "code"],
    "properties": {
        "type": {"type": "string", "description": "/problems/<code>: a page describing it."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, in words."},
        "instance": {"type": "string", "description": "The path of the request."},
        "code": {"type": "string", "description": "Stable, machine-readable."},
        "errors": {
            "type": "array",
            "description": "validation_error: one entry per invalid field.",
            "items": {"type": "object", "additionalProperties": True},
        },
    },
    "additionalProperties": True,
}


def install(app: FastAPI) -> None:
    """Replace the app's document builder with one that adds the problems (cached)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            complete(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def complete(spec: dict[str, Any]) -> None:
    """Add the Problem schema and every operation's error responses to ``spec``."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's own 422 body, which groupcloud never sends
    content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in spec.get("paths", {}).items():
        if path.startswith(BROKER_PREFIX):
            continue  # the Open Service Broker API answers in its own error form
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in errors_of(path, method, operation).items():
                given = responses.setdefault(status, {"description": description})
                if given.get("description") == "Validation Error":  # FastAPI's generic one
                    given["description"] = description
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = content


def errors_of(path: str, method: str, operation: dict[str, Any]) -> dict[str, str]:
    """The error statuses an operation can answer, each with what it means."""
    if path in _UNAUTHENTICATED:
        return {"500": _ALWAYS["500"]}
    statuses = dict(_ALWAYS)
    if method != "get":
        statuses |= _WRITES
    if "requestBody" in operation:
        statuses |= _WITH_BODY
    if path.startswith("/v1/analytics/"):
        statuses |= _ANALYTICS
    return statuses

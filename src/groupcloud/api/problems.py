"""RFC 9457 problem details for every error, with the stable ``code`` clients branch on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from groupcloud.errors import GroupcloudError, all_error_types

__all__ = ["install", "problem"]

log = logging.getLogger("groupcloud.api")
MEDIA_TYPE = "application/problem+json"
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthenticated",
    413: "payload_too_large",
}
_METHODS = {"get", "put", "post", "delete", "patch"}
MAX_LISTED_ERRORS = 50
"""Validation errors listed in a problem document; a body with thousands of bad fields
gets the first ones and a count, not an answer larger than the request."""


def problem(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        **extra,
    }
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=sent)


def _allowed(app: FastAPI, request: Request) -> list[str]:
    """The methods of the path the request names (Allow of a 405): of the published paths
    that match, the most specific one (/v1/hosts/batch, not /v1/hosts/{name})."""
    matching = [
        (template.count("{"), item)
        for template, item in app.openapi().get("paths", {}).items()
        if compile_path(template)[0].match(request.url.path)
    ]
    if not matching:
        return []
    fewest = min(params for params, _ in matching)
    return sorted(
        {m.upper() for params, item in matching if params == fewest for m in item if m in _METHODS}
    )


def install(app: FastAPI) -> None:
    """Register the handlers and the ``/problems/{code}`` documentation pages."""

    @app.exception_handler(GroupcloudError)
    async def _known(request: Request, exc: GroupcloudError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.detail)
        return problem(request, exc.status, exc.code, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"][1:] or err["loc"]),
                "location": str(err["loc"][0]) if err["loc"] else "body",
                "message": err["msg"],
            }
            for err in found[:MAX_LISTED_ERRORS]
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        extra: dict[str, Any] = {"errors": errors}
        if len(found) > MAX_LISTED_ERRORS:
            extra["errors_not_listed"] = len(found) - MAX_LISTED_ERRORS
            detail += f"; and {extra['errors_not_listed']} more errors"
        return problem(request, 422, "validation_error", "Invalid input", detail, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only
            headers["Allow"] = ", ".join(_allowed(app, request))
        return problem(
            request, exc.status_code, code, str(exc.detail), str(exc.detail), headers=headers
        )

    @app.get("/problems/{code}", include_in_schema=False, response_class=HTMLResponse)
    def _describe(code: str) -> HTMLResponse:
        known = {cls.code: cls for cls in all_error_types()}
        cls = known.get(code)
        if cls is None:
            return HTMLResponse(f"<h1>Unknown problem type {code}</h1>", status_code=404)
        return HTMLResponse(
            f"<h1>{cls.title}</h1><p><code>{cls.code}</code>, HTTP {cls.status}</p>"
            f"<p>{cls.describe()}</p>"
        )

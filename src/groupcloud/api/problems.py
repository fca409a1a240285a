"""RFC 9457 problem details for every error, with the stable ``code`` clients branch on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from groupcloud.errors import GroupcloudError, all_error_types

__all__ = ["install", "problem"]

log = logging.getLogger("groupcloud.api")
MEDIA_TYPE = "application/problem+json"
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}


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


def install(app: FastAPI) -> None:
    """Register the handlers and the ``/problems/{code}`` documentation pages."""

    @app.exception_handler(GroupcloudError)
    async def _known(request: Request, exc: GroupcloudError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.detail)
        return problem(request, exc.status, exc.code, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"][1:] or err["loc"]),
                "location": str(err["loc"][0]) if err["loc"] else "body",
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(request, 422, "validation_error", "Invalid input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem(
            request, exc.status_code, code, str(exc.detail), str(exc.detail), headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            request, 500, "internal_error", "Internal error", "the server failed; see its log"
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

"""ASGI middleware that keeps every error a problem document on an intact connection.

* ``BodyLimit``: a request body above ``max_bytes`` is refused with a 413 problem before
  the application sees it (by its ``Content-Length``, or as soon as a chunked body passes
  the limit), so a huge body costs neither memory nor the time of validating it.
  (Starlette's own body limit answers 413 in plain text, not as a problem document.)
* ``NoNul``: a NUL character in the path or the query string is refused with a 422
  problem: no column holds one (PostgreSQL errors on it), so it is bad input wherever
  it appears. Bodies are checked by the schemas (``schemas.base.Input``).
* ``Unhandled``: an exception no handler took becomes a 500 problem document *sent by
  this middleware*. Starlette's own last-resort handler answers too, but then re-raises,
  and the server closes the keep-alive connection, so the client's next request on it
  gets a reset. Here the exception is logged and the connection stays usable.

Both are pure ASGI (no ``BaseHTTPMiddleware``), so streaming responses and background
tasks pass through untouched.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "NoNul", "Unhandled", "problem_bytes"]

log = logging.getLogger("groupcloud.api")
MEDIA_TYPE = b"application/problem+json"


def problem_bytes(
    status: int, code: str, title: str, detail: str, path: str, **extra: object
) -> bytes:
    return json.dumps(
        {
            "type": f"/problems/{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
            "code": code,
            **extra,
        }
    ).encode()


async def _send_problem(
    send: Send, scope: Scope, status: int, code: str, title: str, detail: str, **extra: object
) -> None:
    path = str(scope.get("path", ""))
    body = problem_bytes(status, code, title, detail, path, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", MEDIA_TYPE),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        # Read the body here (the routes read it whole anyway), so that a chunked body
        # past the limit is refused before the application sees any of it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        await _send_problem(
            send,
            scope,
            413,
            "payload_too_large",
            "Request body too large",
            f"the request body is larger than {self.max_bytes} bytes; send less per request",
        )


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A ``receive`` that gives ``messages`` first, then what ``then`` gives (a
    disconnect, for a handler that waits for one)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class NoNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = None
            if "\x00" in str(scope.get("path", "")):
                where = "path"
            elif b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
                where = "query"
            if where is not None:
                message = "NUL characters (%00) are not allowed"
                await _send_problem(
                    send,
                    scope,
                    422,
                    "validation_error",
                    "Invalid input",
                    f"{where}: {message}",
                    errors=[{"field": where, "location": where, "message": message}],
                )
                return
        await self.app(scope, receive, send)


class Unhandled:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # half a response is out: only closing the connection is honest
                raise
            await _send_problem(
                send,
                scope,
                500,
                "internal_error",
                "Internal error",
                "the server failed; see its log",
            )

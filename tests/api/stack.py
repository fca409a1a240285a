"""A real server with the small world on it, raw HTTP clients per token, and the checks every
problem document must pass. Shared by the API tests and the CLI tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from groupcloud.config import Settings
from groupcloud.services.common.runtime import Runtime
from tests.support import World, build_world, drop_service_databases, start_thread_server

__all__ = ["PROBLEM_JSON", "Stack", "assert_problem", "open_sqlite_stack", "quota_used"]

PROBLEM_JSON = "application/problem+json"


@dataclass
class Stack:
    """A running server (``url``) on ``rt`` with the world's tokens, and clients that send
    them. Every client made here is closed with the stack."""

    url: str
    rt: Runtime
    world: World
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)
    admin: httpx.Client = field(init=False, repr=False)
    bank_admin: httpx.Client = field(init=False, repr=False)
    bank: httpx.Client = field(init=False, repr=False)
    """The bank member's client."""
    card: httpx.Client = field(init=False, repr=False)
    """The card member's client."""
    anonymous: httpx.Client = field(init=False, repr=False)

    def client(self, token: str | None) -> httpx.Client:
        """A client sending ``Authorization: Bearer <token>`` (none when ``token`` is None)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        made = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)
        self._clients.append(made)
        return made

    def __post_init__(self) -> None:
        self.admin = self.client(self.world.admin)
        self.bank_admin = self.client(self.world.bank_admin)
        self.bank = self.client(self.world.bank_member)
        self.card = self.client(self.world.card_member)
        self.anonymous = self.client(None)

    def close(self) -> None:
        for made in self._clients:
            made.close()


@contextmanager
def serve(rt: Runtime, world: World) -> Iterator[Stack]:
    with start_thread_server(rt) as url:
        stack = Stack(url=url, rt=rt, world=world)
        try:
            yield stack
        finally:
            stack.close()


@contextmanager
def open_sqlite_stack(template: Path, directory: Path, **settings: Any) -> Iterator[Stack]:
    """A server on a fresh copy of the migrated SQLite template, with the world built
    (``settings``: more of them, e.g. ``DBAAS_SETTINGS``; the databases its services made
    are dropped at the end)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, directory / "groupcloud.db")
    url = f"sqlite:///{directory / 'groupcloud.db'}"
    rt = Runtime.open(Settings(data_dir=directory, database_url=url, **settings))
    try:
        world = build_world(rt)
        with serve(rt, world) as stack:
            yield stack
    finally:
        drop_service_databases(rt)
        rt.close()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status and stable code;
    returns its body for checks of the extension members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    return body


def quota_used(client: httpx.Client, company: str) -> dict[str, int]:
    """What the quota counters say ``company`` uses, per resource class."""
    response = client.get("/v1/quotas", params={"company": company})
    assert response.status_code == 200, response.text
    return {q["resource_class"]: q["used"] for q in response.json()}

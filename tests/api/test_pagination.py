"""Cursor pagination over HTTP: every list walks completely, without duplicates or gaps,
and bad cursors or page sizes are validation errors (never server errors)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem

PAGED = [
    "/v1/hosts",
    "/v1/allocations",
    "/v1/events",
    "/v1/tokens",
    "/v1/companies",
    "/v1/companies/bank/projects",
]


def _cursor(raw: str) -> str:
    """A cursor spelled the way the server spells them (what a client could forge)."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _walk(client: httpx.Client, path: str, limit: int, **params: Any) -> tuple[list[Any], int]:
    """Every item of a paged list, and how many pages it took (``limit`` items a page, except
    for usage by host, whose pages hold ``limit`` hosts with a row per resource class)."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        if path != "/v1/usage":
            assert len(page["items"]) <= limit
        else:
            assert len({row["name"] for row in page["items"]}) <= limit
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "the cursor does not advance"


def _add_hosts(client: httpx.Client, names: list[str]) -> None:
    hosts = [{"name": n, "inventories": {"VCPU": {"total": 4}}} for n in names]
    response = client.post("/v1/hosts/batch", json={"hosts": hosts})
    assert response.status_code == 201, response.text


def test_hosts_walk_two_at_a_time_without_duplicates_or_gaps(sqlite_stack: Stack) -> None:
    _add_hosts(sqlite_stack.admin, [f"n{i}" for i in range(1, 8)])  # 11 hosts in all
    items, pages = _walk(sqlite_stack.bank, "/v1/hosts", 2)
    names = [h["name"] for h in items]
    assert names == ["h1", "h2", "h3", "h4"] + [f"n{i}" for i in range(1, 8)]
    assert pages == 6


def test_a_full_last_page_still_ends_the_walk(shared_stack: Stack) -> None:
    page = shared_stack.bank.get("/v1/hosts", params={"limit": 4}).json()
    assert [h["name"] for h in page["items"]] == ["h1", "h2", "h3", "h4"]
    assert page["next_cursor"] is None


def test_hosts_added_or_removed_during_a_walk_neither_repeat_nor_shift_pages(
    sqlite_stack: Stack,
) -> None:
    admin = sqlite_stack.admin
    first = admin.get("/v1/hosts", params={"limit": 2}).json()
    assert [h["name"] for h in first["items"]] == ["h1", "h2"]
    assert admin.delete("/v1/hosts/h1").status_code == 200  # before the cursor
    assert admin.delete("/v1/hosts/h3").status_code == 200  # after it
    _add_hosts(admin, ["late"])
    rest, _ = _walk(admin, "/v1/hosts", 2, cursor=first["next_cursor"])
    assert [h["name"] for h in rest] == ["h4", "late"]


def test_every_paged_list_walks_completely(sqlite_stack: Stack) -> None:
    admin = sqlite_stack.admin
    for i in range(3):
        assert admin.post("/v1/companies/bank/projects", json={"slug": f"p{i}"}).status_code == 201
        made = sqlite_stack.bank.post(
            "/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}}
        )
        assert made.status_code == 201
    for path in PAGED:
        everything = admin.get(path, params={"limit": 500}).json()
        assert everything["next_cursor"] is None
        walked, _ = _walk(admin, path, 2)
        assert walked == everything["items"], path
        assert len(walked) >= 2, path


def test_usage_by_host_pages_and_other_scopes_do_not(sqlite_stack: Stack) -> None:
    rows, pages = _walk(sqlite_stack.bank, "/v1/usage", 1, by="host")
    assert pages == 4
    assert sorted({r["name"] for r in rows}) == ["h1", "h2", "h3", "h4"]
    assert len(rows) == 9  # h1: GPU, MEMORY_MB, VCPU; the others MEMORY_MB, VCPU
    pool = sqlite_stack.bank.get("/v1/usage", params={"by": "pool", "limit": 1}).json()
    assert pool["next_cursor"] is None
    assert len(pool["items"]) == 3


def test_cursor_the_server_did_not_issue_is_422_validation_error(shared_stack: Stack) -> None:
    for cursor in ["!!!", "abc", _cursor("v2:1"), _cursor("v1:one"), _cursor("1")]:
        for path in PAGED:
            response = shared_stack.admin.get(path, params={"cursor": cursor})
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"] == [{"field": "cursor", "message": "invalid cursor"}]


def test_page_size_out_of_range_is_422_validation_error(shared_stack: Stack) -> None:
    for path in [*PAGED, "/v1/usage?by=host"]:
        for limit in ("0", "501", "-1", "ten"):
            response = shared_stack.admin.get(path, params={"limit": limit})
            problem = assert_problem(response, 422, "validation_error")
            assert [e["field"] for e in problem["errors"]] == ["limit"], (path, limit)
        assert shared_stack.admin.get(path, params={"limit": 500}).status_code == 200


def test_cursor_beyond_the_id_range_is_422_not_a_server_error(stack: Stack) -> None:
    """A forged cursor past the integer range of the keys is refused like any cursor the
    server did not issue, the same way on both databases (a bare ``int()`` let it reach
    the database: 500 on PostgreSQL from 2**31, on SQLite from 2**63)."""
    for after in (2**31, 10**20):
        for path in PAGED:
            response = httpx.get(
                f"{stack.url}{path}",
                params={"cursor": _cursor(f"v1:{after}")},
                headers={"Authorization": f"Bearer {stack.world.admin}"},
            )
            problem = assert_problem(response, 422, "validation_error")
            assert problem["errors"] == [{"field": "cursor", "message": "invalid cursor"}]

"""Cursor pagination helpers (groupcloud.services.common.pagination)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.errors import InvalidInput
from groupcloud.services.common.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    page_limit,
    split_page,
)


def raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@settings(max_examples=200, deadline=None)
@given(after=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_cursor_decodes_to_the_key_it_was_made_from(after: int) -> None:
    cursor = encode_cursor(after)
    assert decode_cursor(cursor) == after
    # Opaque and safe in a query string without escaping.
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "é",
        "not-a-cursor",
        raw_cursor("v1:"),
        raw_cursor("v1:abc"),
        raw_cursor("v2:10"),
        raw_cursor("10"),
        raw_cursor("v1:1.5"),
        base64.urlsafe_b64encode(b"\xff\xfe:1").decode(),
    ],
)
def test_an_invalid_cursor_is_a_validation_error_on_the_cursor_field(cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor)
    assert caught.value.code == "validation_error"
    assert caught.value.status == 422
    assert caught.value.extra["errors"] == [{"field": "cursor", "message": "invalid cursor"}]
    assert caught.value.__cause__ is None  # no traceback of the decoding internals


@settings(max_examples=200, deadline=None)
@given(cursor=st.text(max_size=40))
def test_any_string_either_decodes_or_is_refused_as_invalid_input(cursor: str) -> None:
    """Whatever a client sends, the answer is a page or a 422, never a 500."""
    outcome: int | str
    try:
        outcome = decode_cursor(cursor)
    except InvalidInput as exc:
        outcome = exc.code
    assert isinstance(outcome, int) or outcome == "validation_error"


@pytest.mark.parametrize("limit", [1, 2, DEFAULT_LIMIT, MAX_LIMIT])
def test_page_limit_accepts_limits_between_1_and_the_maximum(limit: int) -> None:
    assert page_limit(limit) == limit


def test_page_limit_defaults_when_absent() -> None:
    assert page_limit(None) == DEFAULT_LIMIT == 50


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 10**9])
def test_page_limit_refuses_limits_out_of_bounds(limit: int) -> None:
    with pytest.raises(InvalidInput, match=f"between 1 and {MAX_LIMIT}") as caught:
        page_limit(limit)
    assert caught.value.code == "validation_error"
    assert caught.value.extra["errors"][0]["field"] == "limit"


@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(st.integers(0, 10**6), unique=True, max_size=30).map(sorted),
    size=st.integers(1, 10),
)
def test_walking_pages_visits_every_row_once_in_order(keys: list[int], size: int) -> None:
    """Simulates the services: fetch ``size + 1`` rows after the cursor, split, repeat."""
    seen: list[int] = []
    after: int | None = None
    for _ in range(len(keys) + 2):
        fetched = [k for k in keys if after is None or k > after][: size + 1]
        page, cursor = split_page(fetched, size, key=lambda k: k)
        assert len(page) <= size
        seen.extend(page)
        if cursor is None:
            break
        assert decode_cursor(cursor) == page[-1]
        after = decode_cursor(cursor)
    assert seen == keys


def test_a_full_last_page_has_no_next_cursor() -> None:
    """``LIMIT size + 1`` tells a full last page from one with more rows after it."""
    assert split_page([1, 2, 3], 3, key=lambda k: k) == ([1, 2, 3], None)
    page, cursor = split_page([1, 2, 3, 4], 3, key=lambda k: k)
    assert page == [1, 2, 3]
    assert cursor == encode_cursor(3)

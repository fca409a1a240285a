"""Cursor pagination: opaque cursors over an increasing integer key (keyset, not offset,
so pages stay correct and fast while rows are added)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

from groupcloud.domain.limits import MAX_KEY
from groupcloud.errors import InvalidInput

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_KEY",
    "MAX_LIMIT",
    "cursor_key",
    "decode_cursor",
    "encode_cursor",
    "page_limit",
    "split_page",
]

R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{after}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, after = raw.split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(after)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this server issued; start again without a cursor",
            errors=[{"field": "cursor", "message": "invalid cursor"}],
        ) from None


def cursor_key(cursor: str) -> int:
    """The key a page starts after. A cursor outside the keys' range was never issued, and
    would overflow the query (PostgreSQL from 2**31, SQLite from 2**63): refused as invalid."""
    key = decode_cursor(cursor)
    if not 0 <= key <= MAX_KEY:
        raise InvalidInput(
            "cursor is not one this server issued; start again without a cursor",
            errors=[{"field": "cursor", "message": "invalid cursor"}],
        )
    return key


def page_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}",
            errors=[{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}],
        )
    return limit


def split_page(
    rows: Sequence[R], size: int, key: Callable[[R], int]
) -> tuple[Sequence[R], str | None]:
    """Rows were fetched with ``LIMIT size + 1``: keep ``size``, say where the next page starts."""
    if len(rows) > size:
        return rows[:size], encode_cursor(key(rows[size - 1]))
    return rows, None

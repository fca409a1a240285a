"""Inserting a row whose name must be unique: the one place that turns the database's
refusal into ``already_exists``.

The unique index decides, not a prior SELECT: two concurrent creates of one name both
pass any check made before the insert, and only the index sees the second. The insert
runs in a savepoint, so the refusal leaves the caller's transaction usable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groupcloud.db.models import Base
from groupcloud.errors import AlreadyExists

__all__ = ["add_unique"]


def add_unique(s: Session, row: Base, what: str, **detail: Any) -> None:
    """Insert ``row`` now (flushed, so its id is known); a name it shares with a stored
    row raises ``AlreadyExists("<what> already exists", **detail)``."""
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        raise AlreadyExists(f"{what} already exists", **detail) from None

"""The audit trail's table as statements: the insert every changing transaction runs
(the claim path runs it raw on the driver's cursor) and the values of one event row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert

from groupcloud.db.models import EventRow, table_of

__all__ = ["COLUMNS", "INSERT", "row"]

INSERT = insert(table_of(EventRow)).inline()  # built once, so every cache lookup hits
COLUMNS = ("at", "actor", "company_id", "kind", "subject", "data")


def row(
    actor: str,
    kind: str,
    subject: str,
    company_id: int | None = None,
    data: dict[str, Any] | None = None,
    *,
    at: datetime,
) -> dict[str, Any]:
    """The values of one event row (what ``record`` inserts; the claim path inserts it raw).
    ``at`` is the instant of the change: the same one its transaction stamps its rows with."""
    return {
        "at": at,
        "actor": actor,
        "company_id": company_id,
        "kind": kind,
        "subject": subject,
        "data": data or {},
    }

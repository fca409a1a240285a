"""Audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from groupcloud.schemas.base import (
    Output,
)

__all__ = ["Event"]


class Event(Output):
    id: int
    at: datetime
    actor: str
    company: str | None
    kind: str
    subject: str
    data: dict[str, Any]

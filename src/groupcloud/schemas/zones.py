"""Zones: the placement domains hosts belong to."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from groupcloud.domain.inventory import ZoneKind
from groupcloud.schemas.base import (
    Input,
    Output,
    Slug,
)

__all__ = ["Zone", "ZoneCreate"]


class ZoneCreate(Input):
    name: Slug
    kind: ZoneKind = ZoneKind.SHARED
    owner_company: Slug | None = Field(None, description="Owning company of a local zone.")
    description: str = Field("", max_length=2000)


class Zone(Output):
    name: str
    kind: ZoneKind
    owner_company: str | None
    description: str
    created_at: datetime

"""Providers and offers: the public clouds external zones reach, and what they offer at
which price (docs/providers.md)."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.schemas.base import Input, Output, Slug

__all__ = ["OfferOut", "Offers", "ProviderCreate", "ProviderKind", "ProviderOut", "ProviderUpdate"]


class ProviderKind(enum.StrEnum):
    """The adapter that talks to the provider."""

    SIMULATED = "simulated"
    """Deterministic simulation (no account anywhere), with latency and failure injection."""
    AWS = "aws"
    """Amazon EC2 through boto3; credentials from the server's environment, never stored."""


class ProviderCreate(Input):
    name: Slug = Field(description="The provider's name; the price catalog's provider column.")
    kind: ProviderKind
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Adapter settings (docs/providers.md): simulated: latency_s, "
        "failure_rate, seed, fail_regions, ...; aws: endpoint_url, image_id, ...",
    )
    description: str = Field("", max_length=2000)


class ProviderUpdate(Input):
    """What to change (left out: kept)."""

    settings: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=2000)


class ProviderOut(Output):
    name: str
    kind: ProviderKind
    description: str
    settings: dict[str, Any] | None = Field(
        None, description="Adapter settings (group admins only; null for other roles)."
    )
    zones: list[str] = Field(description="External zones that are regions of this provider.")
    regions: list[str]
    created_at: datetime


class OfferOut(Output):
    zone: str = Field(description="The external zone (a region of the provider).")
    provider: str
    region: str
    instance_type: str
    vcpu: int
    memory_mb: int
    gpu: int
    gpu_model: str | None
    price_per_hour: Decimal = Field(description="KRW per instance-hour.")


class Offers(Output):
    """The cheapest instance types that fit, in the external zones the placement rules
    allow for the data class and system type asked, cheapest first."""

    data_class: Sensitivity
    system_type: SystemType
    offers: list[OfferOut]
    zones: list[dict[str, Any]] = Field(
        description="Every external zone's verdict: allowed, allowed_by, removed_by, "
        "reason, and blocked_until when failover blocks it."
    )

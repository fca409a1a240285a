"""From an operator's provider entry (a kind, a name, settings) to a ``Provider``.

The settings of each kind are a pydantic model that forbids unknown fields, so a typo
(``latency`` for ``latency_s``) or a secret pasted where none belongs (AWS keys: they come
from boto3's credential chain) is refused when the provider is registered, naming the
field, instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from groupcloud.domain.offers import Offer
from groupcloud.errors import InvalidInput
from groupcloud.providers.aws import DEFAULT_IMAGE_ID, AwsProvider
from groupcloud.providers.base import Provider
from groupcloud.providers.simulated import SimulatedProvider

__all__ = ["PROVIDER_KINDS", "AwsSettings", "SimulatedSettings", "build_provider"]

PROVIDER_KINDS = ("simulated", "aws")
"""The kinds ``build_provider`` knows."""


class SimulatedSettings(BaseModel):
    """Settings of a ``simulated`` provider (see ``SimulatedProvider``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_path: Path | None = None
    """The SQLite file of its instances; the services pass
    ``<data_dir>/providers/<name>.sqlite`` when absent (None here: in memory)."""
    latency_s: float = Field(default=0.0, ge=0, le=60)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    lost_response_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    boot_s: float = Field(default=0.0, ge=0, le=3600)
    fail_regions: frozenset[str] = frozenset()
    hang_regions: frozenset[str] = frozenset()
    busy_timeout_s: float = Field(default=5.0, gt=0)


class AwsSettings(BaseModel):
    """Settings of an ``aws`` provider (see ``AwsProvider``); no credentials: boto3's
    standard chain (``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``, a role) provides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = None
    image_id: str = Field(default=DEFAULT_IMAGE_ID, min_length=1)
    image_ids: dict[str, str] = Field(default_factory=dict)
    profile: str | None = None
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)


def _parse(model: type[SimulatedSettings] | type[AwsSettings], kind: str, raw: Any) -> Any:
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "settings", "message": e["msg"]}
            for e in exc.errors()
        ]
        listed = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise InvalidInput(f"invalid {kind} provider settings: {listed}", errors=errors) from None


def build_provider(
    kind: str, name: str, settings: Mapping[str, Any], offers: Sequence[Offer]
) -> Provider:
    """The provider ``kind`` named ``name`` with ``settings``, offering ``offers``.

    Raises ``InvalidInput`` (its ``errors`` name each bad field) for an unknown kind or
    invalid settings."""
    if kind == "simulated":
        sim: SimulatedSettings = _parse(SimulatedSettings, kind, settings)
        return SimulatedProvider(
            name,
            offers,
            state_path=sim.state_path,
            latency_s=sim.latency_s,
            failure_rate=sim.failure_rate,
            lost_response_rate=sim.lost_response_rate,
            seed=sim.seed,
            boot_s=sim.boot_s,
            fail_regions=sim.fail_regions,
            hang_regions=sim.hang_regions,
            busy_timeout_s=sim.busy_timeout_s,
        )
    if kind == "aws":
        aws: AwsSettings = _parse(AwsSettings, kind, settings)
        return AwsProvider(
            name,
            offers,
            endpoint_url=aws.endpoint_url,
            image_id=aws.image_id,
            image_ids=aws.image_ids,
            profile=aws.profile,
            connect_timeout_s=aws.connect_timeout_s,
            read_timeout_s=aws.read_timeout_s,
        )
    message = f"unknown provider kind {kind!r}; known: {', '.join(PROVIDER_KINDS)}"
    raise InvalidInput(message, errors=[{"field": "kind", "message": message}])

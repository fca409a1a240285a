"""build_provider: an operator's entry to a provider, bad fields named."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from groupcloud.errors import InvalidInput
from groupcloud.providers.aws import DEFAULT_IMAGE_ID, AwsProvider
from groupcloud.providers.base import InstanceSpec, Offer
from groupcloud.providers.registry import PROVIDER_KINDS, build_provider
from groupcloud.providers.simulated import SimulatedProvider

OFFERS = [Offer("sim-kr", "kr-1", "s.small", 2, 4096, Decimal("100"))]


def test_a_simulated_provider_gets_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "providers" / "sim-kr.sqlite"
    settings = {"state_path": str(path), "latency_s": 0.01, "fail_regions": ["kr-2"], "seed": 4}
    provider = build_provider("simulated", "sim-kr", settings, OFFERS)
    assert isinstance(provider, SimulatedProvider)
    assert (provider.name, provider.latency_s, provider.fail_regions) == ("sim-kr", 0.01, {"kr-2"})
    asyncio.run(provider.create_instance(InstanceSpec("t", "kr-1", "s.small")))
    assert path.exists()


def test_an_aws_provider_gets_its_settings() -> None:
    provider = build_provider("aws", "aws", {"endpoint_url": "http://127.0.0.1:1"}, OFFERS)
    assert isinstance(provider, AwsProvider)
    assert (provider.endpoint_url, provider.image_id) == ("http://127.0.0.1:1", DEFAULT_IMAGE_ID)


@pytest.mark.parametrize(
    ("kind", "settings", "field"),
    [
        ("simulated", {"latency": 1}, "latency"),
        ("simulated", {"failure_rate": 2}, "failure_rate"),
        ("aws", {"aws_secret_access_key": "s3cr3t"}, "aws_secret_access_key"),
        ("aws", {"read_timeout_s": 0}, "read_timeout_s"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    kind: str, settings: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput, match=field) as caught:
        build_provider(kind, "p", settings, OFFERS)
    assert [e["field"] for e in caught.value.extra["errors"]] == [field]
    assert "s3cr3t" not in str(caught.value)


def test_an_unknown_kind_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="simulated, aws") as caught:
        build_provider("gcp", "p", {}, OFFERS)
    assert caught.value.extra["errors"][0]["field"] == "kind"
    assert PROVIDER_KINDS == ("simulated", "aws")

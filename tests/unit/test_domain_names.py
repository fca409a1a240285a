"""Validation of names users type: company/project/zone slugs, host names and traits.

These strings end up in URLs, tokens, CLI tables and unique indexes, so "looks the same
but is not" (a trailing newline) must be refused, not stored.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.inventory import check_host_name, check_traits
from groupcloud.domain.tenancy import check_slug


@settings(max_examples=100, deadline=None)
@given(slug=st.from_regex(r"[a-z][a-z0-9-]{0,62}", fullmatch=True))
def test_check_slug_accepts_lowercase_names(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "Bank", "1bank", "-bank", "bank_1", "b" * 64, "bank card"])
def test_check_slug_rejects_malformed_names(slug: str) -> None:
    with pytest.raises(ValueError, match="must start with a letter"):
        check_slug(slug)


@pytest.mark.parametrize("host_name", ["h1", "gpu-01.dc1", "A_1", "9" * 253])
def test_check_host_name_accepts_dns_like_names(host_name: str) -> None:
    assert check_host_name(host_name) == host_name


@pytest.mark.parametrize("host_name", ["", "-h1", ".h1", "h 1", "h1/2", "h" * 254])
def test_check_host_name_rejects_malformed_names(host_name: str) -> None:
    with pytest.raises(ValueError, match="host name"):
        check_host_name(host_name)


def test_check_traits_sorts_and_deduplicates_tags_and_labels() -> None:
    assert check_traits(["ssd", "gpu_model=V100M32", "ssd", "az:1"]) == [
        "az:1",
        "gpu_model=V100M32",
        "ssd",
    ]


@pytest.mark.parametrize("trait", ["", "ssd disk", "gpu=", "=x", "a=b=c", "x" * 129])
def test_check_traits_rejects_malformed_traits(trait: str) -> None:
    with pytest.raises(ValueError, match="trait"):
        check_traits([trait])


def test_check_slug_rejects_a_trailing_newline() -> None:
    """``re.match`` with ``$`` also matches just before a final newline."""
    with pytest.raises(ValueError, match="must start with a letter"):
        check_slug("bank\n")


def test_check_host_name_rejects_a_trailing_newline() -> None:
    with pytest.raises(ValueError, match="host name"):
        check_host_name("h1\n")


def test_check_traits_rejects_a_trailing_newline() -> None:
    """Otherwise ``ssd\\n`` is stored as a trait that a request for ``ssd`` never matches."""
    with pytest.raises(ValueError, match="trait"):
        check_traits(["ssd\n"])

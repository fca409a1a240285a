"""Zones, hosts and their states."""

from __future__ import annotations

import enum
import re

__all__ = [
    "GPU_MODEL",
    "HOST_NAME",
    "TRAIT",
    "HostState",
    "ZoneKind",
    "check_gpu_models",
    "check_host_name",
    "check_traits",
]

HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
TRAIT = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}(=[A-Za-z0-9_.:/+-]{1,126})?$")
GPU_MODEL = re.compile(r"^[A-Za-z0-9_.:/+-]{1,126}$")
"""A GPU model name, as hosts carry it in the trait ``gpu_model=NAME``."""


class ZoneKind(enum.StrEnum):
    """Placement domains."""

    SHARED = "shared"
    """The group pool: every company places here within its quota."""
    LOCAL = "local"
    """Owned by one company; others may only borrow what it lends (later issue)."""
    EXTERNAL = "external"
    """A public-cloud region reached through a provider (``zones.provider_id``, ``region``)."""

    @property
    def private(self) -> bool:
        """The group's own data centres (shared and local zones)."""
        return self is not ZoneKind.EXTERNAL


class ZoneChoice(enum.StrEnum):
    """Which kind of zone a request may use (``AllocationCreate.zone_kind``)."""

    SHARED = "shared"
    LOCAL = "local"
    EXTERNAL = "external"
    PRIVATE = "private"
    """Shared or local: the group's own data centres."""

    def admits(self, kind: ZoneKind) -> bool:
        if self is ZoneChoice.PRIVATE:
            return kind.private
        return self.value == kind.value


class HostState(enum.StrEnum):
    """Life cycle of a host."""

    ACTIVE = "active"
    """Takes new placements."""
    DRAINING = "draining"
    """Keeps its allocations but takes no new ones."""
    REMOVED = "removed"
    """Taken out of the pool (only possible when empty); kept for history."""


def check_host_name(name: str) -> str:
    if not HOST_NAME.fullmatch(name):
        raise ValueError(
            f"host name {name!r} must start with a letter or digit and use only letters, "
            "digits, '.', '_' and '-' (at most 253 characters)"
        )
    return name


def check_traits(traits: list[str] | tuple[str, ...]) -> list[str]:
    """Traits are plain tags (``ssd``) or ``key=value`` labels (``gpu_model=V100M32``)."""
    for trait in traits:
        if not TRAIT.fullmatch(trait):
            raise ValueError(
                f"trait {trait!r} must be a tag like 'ssd' or a label like 'gpu_model=V100M32' "
                "(letters, digits and _ . : / -)"
            )
    return sorted(set(traits))


def check_gpu_models(models: list[str]) -> list[str]:
    """GPU model names as hosts name them (``gpu_model=NAME``): ``V100M32``, ``A100-80G``."""
    for model in models:
        if not GPU_MODEL.fullmatch(model):
            raise ValueError(
                f"GPU model {model!r} must be 1 to 126 letters, digits or _ . : / + -, as in "
                "the host trait gpu_model=NAME"
            )
    return sorted(set(models))

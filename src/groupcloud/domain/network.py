"""Vocabulary of networks: data classes of VPCs, purposes of supernets."""

from __future__ import annotations

import enum

__all__ = ["DataClass", "SupernetPurpose"]


class DataClass(enum.StrEnum):
    """How sensitive the data in a VPC is (Korean financial-sector practice separates
    systems by the data they hold); peering policy may keep classes apart."""

    PUBLIC = "public"
    """Data meant for the public (web sites, published rates)."""
    INTERNAL = "internal"
    """Ordinary business data (the default)."""
    CONFIDENTIAL = "confidential"
    """Business secrets, internal finance."""
    RESTRICTED = "restricted"
    """Personal credit and transaction data under the Credit Information Act."""


class SupernetPurpose(enum.StrEnum):
    """What a supernet's addresses are for."""

    PRIVATE = "private"
    """VPCs are carved from it."""
    PUBLIC = "public"
    """Floating (public) addresses are handed out from it directly."""

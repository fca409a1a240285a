"""Vocabulary of networks: data classes of VPCs, purposes of supernets."""

from __future__ import annotations

import enum

__all__ = ["DataClass", "NetQuotaKind", "SegmentKind", "SupernetPurpose"]


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


class NetQuotaKind(enum.StrEnum):
    """What a network quota limits."""

    VPCS = "vpcs"
    """Number of VPCs."""
    FLOATING_IPS = "floating_ips"
    """Floating (public) addresses held."""
    IPV4_ADDRESSES = "ipv4_addresses"
    """IPv4 addresses in the company's VPCs (a /20 counts 4,096)."""


class SegmentKind(enum.StrEnum):
    """Layer-2 segment ids an operator gives a zone."""

    VLAN = "vlan"
    """802.1Q VLAN ids (1-4094), one per subnet."""
    VXLAN = "vxlan"
    """VXLAN network identifiers (1-16,777,215), one per VPC."""

"""The facts that the placement rules for regulated data decide on: a request's data class
and system type, and a zone's location, separation and approvals.

They follow the Korean financial sector's rules for using clouds (the Electronic Financial
Supervisory Regulations and the FSS cloud guideline): data is graded D1 to D3, D3 (personal
credit information, unique identifiers) may only leave the group's own data centres for a
cloud region in Korea that passed the cloud security assessment, and internal business
systems run only where the network is separated from the internet. The rules themselves
are in ``placement.zone_rules``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from groupcloud.domain.inventory import ZoneKind

__all__ = [
    "CERTIFICATION",
    "COUNTRY",
    "DEFAULT_DATA_CLASS",
    "DEFAULT_SYSTEM_TYPE",
    "KNOWN_CERTIFICATIONS",
    "RequestFacts",
    "Sensitivity",
    "SystemType",
    "ZoneFacts",
    "check_certifications",
]

COUNTRY = re.compile(r"^[A-Z]{2}$")
"""ISO 3166-1 alpha-2 country code, upper case (``KR``)."""
CERTIFICATION = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
"""A certification or assessment id: lower-case letters, digits and ``_``."""

KNOWN_CERTIFICATIONS = ("cloud_security_assessment", "csap", "isms", "isms_p")
"""Ids in common use (others are accepted: operators' rules may name their own)."""


class Sensitivity(enum.StrEnum):
    """The data class of a workload, as the financial-sector cloud guideline grades it
    (not the VPC classification of ``domain.network.DataClass``)."""

    D1 = "D1"
    """Non-important information."""
    D2 = "D2"
    """Important information (business secrets, internal finance)."""
    D3 = "D3"
    """Personal credit information and unique identifiers."""


class SystemType(enum.StrEnum):
    """What kind of system a workload belongs to: it decides the network-separation rule."""

    INTERNAL_BUSINESS = "internal_business"
    """Internal business systems: only on internet-separated zones."""
    EXTERNAL_SERVICE = "external_service"
    """Systems that serve customers or partners over networks."""


DEFAULT_DATA_CLASS = Sensitivity.D3
"""An allocation that does not say what data it holds is treated as holding the most
sensitive: a missing label can then never send personal credit data to a cloud region not
cleared for it, and it costs nothing in the group's own (private) zones, which take D3."""
DEFAULT_SYSTEM_TYPE = SystemType.EXTERNAL_SERVICE
"""Whether a system is an internal business system is a fact groupcloud cannot infer; the
stricter default would make every zone not yet marked ``internet_separated`` unusable.
Internal business systems must say so (``system_type=internal_business``)."""


def check_certifications(ids: list[str] | tuple[str, ...]) -> list[str]:
    for cid in ids:
        if not CERTIFICATION.fullmatch(cid):
            raise ValueError(
                f"certification {cid!r} must be a lower-case id such as "
                "'cloud_security_assessment' or 'csap' (letters, digits, '_')"
            )
    return sorted(set(ids))


@dataclass(frozen=True, slots=True)
class ZoneFacts:
    """What the rules know of a zone. ``approved`` and ``approved_for_d3`` are the group's
    approvals of an external zone; a private zone (shared or local) counts as approved."""

    name: str
    kind: ZoneKind
    owner_company: str | None = None
    country: str | None = None
    internet_separated: bool = False
    certifications: frozenset[str] = frozenset()
    data_classes: frozenset[Sensitivity] = frozenset(Sensitivity)
    approved: bool = False
    approved_for_d3: bool = False
    lent_to: frozenset[str] = frozenset()
    """A local zone's owner lends it to these companies: they may place there too."""

    @property
    def private(self) -> bool:
        return self.kind is not ZoneKind.EXTERNAL

    @property
    def is_approved(self) -> bool:
        return self.private or self.approved


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the rules know of a request: its company, data class and system type."""

    company: str
    data_class: Sensitivity = DEFAULT_DATA_CLASS
    system_type: SystemType = DEFAULT_SYSTEM_TYPE

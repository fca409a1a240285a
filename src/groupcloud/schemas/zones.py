"""Zones: the placement domains hosts belong to, with the attributes the placement rules
for regulated data read (docs/zones.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import (
    CERTIFICATION,
    COUNTRY,
    Sensitivity,
    check_certifications,
)
from groupcloud.schemas.base import Flag, Input, Output, Slug

__all__ = ["Certifications", "Country", "DataClasses", "Zone", "ZoneCreate", "ZoneUpdate"]

MAX_CERTIFICATIONS = 32

Country = Annotated[
    str,
    Field(
        pattern=COUNTRY.pattern,
        description="ISO 3166-1 alpha-2 country the zone is located in, upper case (KR).",
    ),
]
Certifications = Annotated[
    list[str],
    Field(max_length=MAX_CERTIFICATIONS),
    AfterValidator(check_certifications),
    WithJsonSchema(
        {
            "type": "array",
            "maxItems": MAX_CERTIFICATIONS,
            "items": {"type": "string", "pattern": CERTIFICATION.pattern},
            "description": "Certifications and assessments the zone passed "
            "(cloud_security_assessment, csap, ...).",
        }
    ),
]


def _unique_classes(values: list[Sensitivity]) -> list[Sensitivity]:
    return sorted(set(values))


DataClasses = Annotated[
    list[Sensitivity],
    Field(max_length=8, description="Data classes (D1, D2, D3) the zone may hold."),
    AfterValidator(_unique_classes),
]

_APPROVED = "External zones only: the group approved the zone for its workloads (D1, D2)."
_APPROVED_D3 = (
    "External zones only: the group approved the zone for D3 data (needs approved, and the "
    "D3 rule also asks for country KR and the cloud_security_assessment certification)."
)
_SEPARATED = "No internet egress: the zone may run internal business systems."
_PROVIDER = "External zones: the provider (GET /v1/providers) whose region this zone is."
_REGION = "External zones: the provider's region (e.g. ap-northeast-2)."
Region = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description=_REGION)]
_LENT = (
    "Local zones: the companies the owner lends the zone to; they may place there too "
    "(their own quota applies). Empty: only the owner."
)


def _unique_slugs(values: list[str]) -> list[str]:
    return sorted(set(values))


LentTo = Annotated[
    list[Slug], Field(max_length=64, description=_LENT), AfterValidator(_unique_slugs)
]


class ZoneCreate(Input):
    name: Slug
    kind: ZoneKind = ZoneKind.SHARED
    owner_company: Slug | None = Field(None, description="Owning company of a local zone.")
    description: str = Field("", max_length=2000)
    country: Country | None = None
    internet_separated: Flag = Field(False, description=_SEPARATED)
    certifications: Certifications = Field(default_factory=list)
    data_classes: DataClasses = Field(default_factory=lambda: list(Sensitivity))
    approved: Flag = Field(False, description=_APPROVED)
    approved_for_d3: Flag = Field(False, description=_APPROVED_D3)
    provider: Slug | None = Field(None, description=_PROVIDER)
    region: Region | None = None
    lent_to: LentTo = Field(default_factory=list)


class ZoneUpdate(Input):
    """The attributes to change (those left out stay; ``country: null`` clears it)."""

    description: str | None = Field(None, max_length=2000)
    country: Country | None = None
    internet_separated: Flag | None = Field(None, description=_SEPARATED)
    certifications: Certifications | None = None
    data_classes: DataClasses | None = None
    approved: Flag | None = Field(None, description=_APPROVED)
    approved_for_d3: Flag | None = Field(None, description=_APPROVED_D3)
    provider: Slug | None = Field(None, description=_PROVIDER + " null: none.")
    region: Region | None = None
    lent_to: LentTo | None = None


class Zone(Output):
    name: str
    kind: ZoneKind
    owner_company: str | None
    description: str
    country: str | None = None
    internet_separated: bool = False
    certifications: list[str] = Field(default_factory=list)
    data_classes: list[Sensitivity] = Field(default_factory=lambda: list(Sensitivity))
    approved: bool = False
    approved_for_d3: bool = False
    provider: str | None = Field(None, description=_PROVIDER)
    region: str | None = Field(None, description=_REGION)
    lent_to: list[str] = Field(default_factory=list, description=_LENT)
    blocked_until: datetime | None = Field(
        None, description="External zones: no new instances before this (failover back-off)."
    )
    created_at: datetime

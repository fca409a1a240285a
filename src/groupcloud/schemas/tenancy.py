"""Companies, projects and API tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from groupcloud.domain.regulation import (
    DEFAULT_DATA_CLASS,
    DEFAULT_SYSTEM_TYPE,
    Sensitivity,
    SystemType,
)
from groupcloud.domain.tenancy import Role
from groupcloud.schemas.base import (
    Input,
    Instant,
    Int,
    Number,
    Output,
    Slug,
)

__all__ = [
    "Company",
    "CompanyCreate",
    "CompanyUpdate",
    "Project",
    "ProjectCreate",
    "ProjectUpdate",
    "Token",
    "TokenCreate",
    "TokenCreated",
    "Whoami",
]


class CompanyCreate(Input):
    slug: Slug = Field(description="Short name used in URLs and tokens, e.g. 'bank'.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    fair_weight: Number = Field(
        1.0,
        gt=0,
        le=1000,
        description="Weight in fair sharing: a company of weight 2 may hold twice the borrowed "
        "share of a company of weight 1 before it yields to it.",
    )


class CompanyUpdate(Input):
    fair_weight: Number = Field(
        gt=0, le=1000, description="Weight in fair sharing of borrowed capacity."
    )


class Company(Output):
    slug: str
    name: str
    fair_weight: float = 1.0
    created_at: datetime


_DATA_CLASS = (
    "Data class (D1, D2, D3) of its allocations that name none; D3 unless set, the safest."
)
_SYSTEM_TYPE = "System type of its allocations that name none."


class ProjectCreate(Input):
    slug: Slug = Field(description="Short name, unique within the company, e.g. 'mobile-app'.")
    name: str = Field("", max_length=200, description="Display name (defaults to the slug).")
    default_priority: Int = Field(
        500, ge=0, le=1000, description="Queue priority of its requests that give none."
    )
    default_data_class: Sensitivity = Field(DEFAULT_DATA_CLASS, description=_DATA_CLASS)
    default_system_type: SystemType = Field(DEFAULT_SYSTEM_TYPE, description=_SYSTEM_TYPE)


class ProjectUpdate(Input):
    """The defaults to change (those left out stay)."""

    default_priority: Int | None = Field(
        None, ge=0, le=1000, description="Queue priority of its requests that give none."
    )
    default_data_class: Sensitivity | None = Field(None, description=_DATA_CLASS)
    default_system_type: SystemType | None = Field(None, description=_SYSTEM_TYPE)

    @model_validator(mode="after")
    def _something(self) -> ProjectUpdate:
        if not any(getattr(self, f) is not None for f in type(self).model_fields):
            raise ValueError("give default_priority, default_data_class or default_system_type")
        return self


class Project(Output):
    company: str
    slug: str
    name: str
    default_priority: int = 500
    default_data_class: Sensitivity = DEFAULT_DATA_CLASS
    default_system_type: SystemType = DEFAULT_SYSTEM_TYPE
    created_at: datetime


class TokenCreate(Input):
    name: str = Field(min_length=1, max_length=200, description="Who or what uses the token.")
    role: Role
    company: Slug | None = Field(
        None, description="Required for the company roles (company-admin, member, company-viewer)."
    )
    expires_at: Instant | None = Field(
        None, description="When the token stops working (in the future); none: until revoked."
    )


class Token(Output):
    id: int
    name: str
    prefix: str = Field(description="First characters of the secret, to recognise it.")
    role: Role
    company: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    expires_at: datetime | None = None


class TokenCreated(Token):
    secret: str = Field(description="The token itself. Shown once; only its hash is stored.")


class Whoami(Output):
    name: str
    role: Role
    company: str | None

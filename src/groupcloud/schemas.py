"""The public data contract: request and response bodies.

Shared by the services (which return these), the API (which renders them and publishes
them in OpenAPI) and the Python client (which parses responses into them), so the three
can never disagree about a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from groupcloud.domain.allocation import AllocationState, Strategy
from groupcloud.domain.inventory import HostState, ZoneKind, check_host_name, check_traits
from groupcloud.domain.resources import check_amounts, check_resource_class
from groupcloud.domain.tenancy import Role, check_slug

__all__ = [
    "Allocation",
    "AllocationCreate",
    "AllocationUnit",
    "Company",
    "CompanyCreate",
    "Event",
    "Host",
    "HostCreate",
    "Inventory",
    "InventoryIn",
    "InventoryUpdate",
    "Page",
    "Project",
    "ProjectCreate",
    "Quota",
    "QuotaSet",
    "Token",
    "TokenCreate",
    "TokenCreated",
    "UsageRow",
    "Whoami",
    "Zone",
    "ZoneCreate",
]

T = TypeVar("T")

Slug = Annotated[str, AfterValidator(check_slug)]
HostName = Annotated[str, AfterValidator(check_host_name)]
Traits = Annotated[list[str], AfterValidator(check_traits)]
ResourceClass = Annotated[str, AfterValidator(check_resource_class)]
Amounts = Annotated[dict[str, StrictInt], AfterValidator(check_amounts)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` as ``cursor`` to get the next page."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Opaque cursor of the next page; null at the end."
    )


# --- tenancy ---------------------------------------------------------------------------


class CompanyCreate(_In):
    slug: Slug = Field(description="Short name used in URLs and tokens, e.g. 'bank'.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")


class Company(_Out):
    slug: str
    name: str
    created_at: datetime


class ProjectCreate(_In):
    slug: Slug = Field(description="Short name, unique within the company, e.g. 'mobile-app'.")
    name: str = Field("", max_length=200, description="Display name (defaults to the slug).")


class Project(_Out):
    company: str
    slug: str
    name: str
    created_at: datetime


class ZoneCreate(_In):
    name: Slug
    kind: ZoneKind = ZoneKind.SHARED
    owner_company: Slug | None = Field(None, description="Owning company of a local zone.")
    description: str = Field("", max_length=2000)


class Zone(_Out):
    name: str
    kind: ZoneKind
    owner_company: str | None
    description: str
    created_at: datetime


# --- hosts and inventories -------------------------------------------------------------


class InventoryIn(_In):
    total: int = Field(ge=0, description="Physical amount, e.g. 64 (VCPU) or 262144 (MEMORY_MB).")
    reserved: int = Field(0, ge=0, description="Kept back for the host itself.")
    allocation_ratio: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="Overcommit factor: capacity = floor((total - reserved) x ratio).",
    )


class Inventory(_Out):
    total: int
    reserved: int
    allocation_ratio: float
    capacity: int = Field(description="floor((total - reserved) x allocation_ratio).")
    used: int
    free: int


class HostCreate(_In):
    name: HostName
    zone: Slug = "shared"
    inventories: dict[ResourceClass, InventoryIn] = Field(
        min_length=1, description="Per resource class: total, reserved, allocation_ratio."
    )
    traits: Traits = Field(
        default_factory=list, description="Tags ('ssd') and labels ('gpu_model=V100M32')."
    )


class InventoryUpdate(_In):
    inventories: dict[ResourceClass, InventoryIn] = Field(
        min_length=1, description="The host's complete inventory; classes left out are removed."
    )


class Host(_Out):
    name: str
    zone: str
    state: HostState
    traits: list[str]
    inventories: dict[str, Inventory]
    created_at: datetime
    updated_at: datetime


# --- quotas ------------------------------------------------------------------------------


class QuotaSet(_In):
    nominal: int = Field(
        ge=0, description="Guaranteed amount of the resource class for the company."
    )


class Quota(_Out):
    company: str
    resource_class: str
    nominal: int
    borrowing_limit: int | None = Field(
        description="How far above nominal the company may borrow (0: none; borrowing comes later)."
    )
    lending_limit: int | None = Field(
        description="How much idle nominal others may borrow (0 = none)."
    )
    used: int
    free: int
    used_pct: float


# --- allocations -------------------------------------------------------------------------


class AllocationCreate(_In):
    company: Slug | None = Field(
        None, description="Owning company; implied by company tokens, required for group-admin."
    )
    project: Slug = Field(description="Project of the company that owns the allocation.")
    resources: Amounts = Field(
        description="Amounts per unit, e.g. {'VCPU': 2, 'MEMORY_MB': 4096, 'DISK_GB': 20}.",
        examples=[{"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}],
    )
    count: int = Field(
        1, ge=1, le=1000, description="Units to place: all of them or none (a gang)."
    )
    zone: Slug | None = Field(None, description="Only place in this zone.")
    required_traits: Traits = Field(
        default_factory=list, description="Every unit's host must carry all of these traits."
    )
    anti_affinity_group: Slug | None = Field(
        None,
        description="Units of allocations of the same company in this group go to different hosts.",
    )
    strategy: Strategy = Field(Strategy.PACK, description="pack (fill hosts) or spread (balance).")


class AllocationUnit(_Out):
    unit: int
    host: str


class Allocation(_Out):
    id: str
    company: str
    project: str
    state: AllocationState
    count: int
    resources: dict[str, int]
    zone: str | None
    required_traits: list[str]
    anti_affinity_group: str | None
    strategy: Strategy
    units: list[AllocationUnit]
    created_at: datetime
    created_by: str
    released_at: datetime | None
    released_by: str | None


# --- usage, events, tokens ---------------------------------------------------------------


class UsageRow(_Out):
    """Capacity and use of one resource class within one scope (pool, zone, host or company).

    For a company, ``capacity`` is its nominal quota."""

    scope: Literal["pool", "zone", "host", "company"]
    name: str
    resource_class: str
    capacity: int
    used: int
    free: int
    used_pct: float


class Event(_Out):
    id: int
    at: datetime
    actor: str
    company: str | None
    kind: str
    subject: str
    data: dict[str, Any]


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=200, description="Who or what uses the token.")
    role: Role
    company: Slug | None = Field(None, description="Required for company-admin and member tokens.")


class Token(_Out):
    id: int
    name: str
    prefix: str = Field(description="First characters of the secret, to recognise it.")
    role: Role
    company: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class TokenCreated(Token):
    secret: str = Field(description="The token itself. Shown once; only its hash is stored.")


class Whoami(_Out):
    name: str
    role: Role
    company: str | None

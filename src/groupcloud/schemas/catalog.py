"""The service catalog: templates of platforms and software provisioned on the group
cloud, their parameters and plans (docs/catalog.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.domain.service import Operation, ServiceState
from groupcloud.schemas.base import Input, Output, Slug

__all__ = [
    "Binding",
    "BindingCreate",
    "PartOut",
    "PlanOut",
    "ResolutionOut",
    "ResolveRequest",
    "ServiceCreate",
    "ServiceInstance",
    "ServicePart",
    "ServiceUpdate",
    "TemplateAdd",
    "TemplateOut",
    "TemplateSummary",
]


class TemplateAdd(Input):
    source: str = Field(
        min_length=1,
        max_length=200_000,
        description="The template as YAML (or JSON): name, version, description, "
        "parameters (a JSON Schema), plans with their parts.",
    )


class PartOut(Output):
    name: str
    resources: dict[str, int | str] = Field(
        description="Per unit; a string names the integer parameter it takes its value from."
    )
    count: int | str
    gpu_share: int = 0
    gpu_models: list[str] = Field(default_factory=list)
    anti_affinity: bool = False


class PlanOut(Output):
    name: str
    description: str
    parts: list[PartOut]


class TemplateSummary(Output):
    name: str
    version: str = Field(description="The newest version.")
    versions: list[str]
    kind: str
    description: str
    plans: list[str]
    shipped: bool = Field(description="Shipped with groupcloud (true) or added by operators.")


class TemplateOut(Output):
    name: str
    version: str
    kind: str
    backend: str | None
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema (draft 2020-12) of parameters.")
    plans: list[PlanOut]
    shipped: bool
    created_at: datetime | None = None
    created_by: str | None = None


class ResolveRequest(Input):
    plan: str = Field(min_length=1, max_length=63)
    parameters: dict[str, Any] = Field(default_factory=dict)
    version: str | None = Field(None, max_length=32, description="Default: the newest.")


class ResolvedPartOut(Output):
    name: str
    resources: dict[str, int]
    count: int
    gpu_share: int
    gpu_models: list[str]
    anti_affinity: bool


class ResolutionOut(Output):
    """What an instance with this plan and these parameters would ask of the pool."""

    template: str
    version: str
    plan: str
    parameters: dict[str, Any] = Field(description="As validated, defaults filled.")
    parts: list[ResolvedPartOut]
    demand: dict[str, int] = Field(description="The gang's total per resource class.")


class ServiceCreate(Input):
    company: Slug | None = Field(
        None, description="Owning company; implied by company tokens, required for group admins."
    )
    project: Slug
    template: Slug
    plan: str = Field(min_length=1, max_length=63)
    parameters: dict[str, Any] = Field(default_factory=dict)
    version: str | None = Field(None, max_length=32, description="Default: the newest.")
    data_class: Sensitivity | None = Field(
        None, description="Of the service's data (default: the project's), as for allocations."
    )
    system_type: SystemType | None = None


class ServiceUpdate(Input):
    plan: str | None = Field(
        None, min_length=1, max_length=63, description="The new plan (default: the current)."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Changed parameters, merged over the current ones."
    )
    data_class: Sensitivity | None = Field(None, description="Of the new parts, as for create.")
    system_type: SystemType | None = None


class ServicePart(Output):
    name: str
    allocation: str
    generation: int = Field(
        description="The plan generation the part belongs to (each upgrade claims the next)."
    )
    state: AllocationState
    count: int
    resources: dict[str, int]
    hosts: list[str]


class ServiceInstance(Output):
    id: str
    company: str
    project: str
    template: str
    version: str
    plan: str
    parameters: dict[str, Any]
    state: ServiceState = Field(
        description="provisioning -> ready -> (updating -> ready) -> deprovisioning -> gone, "
        "or failed (see failure; its parts are released)."
    )
    operation: Operation | None = Field(
        None, description="The operation under way, or the last one done."
    )
    failure: str | None = Field(
        None, description="Why it failed, or why the operation under way is being retried."
    )
    backend: str | None = Field(None, description="The real service behind it (postgresql).")
    generation: int = Field(0, description="How many plan upgrades it went through.")
    bindings: int = Field(0, description="Live bindings (apps holding credentials).")
    parts: list[ServicePart]
    created_at: datetime
    created_by: str
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class BindingCreate(Input):
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Kept with the binding (the backend takes none yet)."
    )


class Binding(Output):
    """An app's access to a service. ``credentials`` are shown to those who may use the
    company's services (``use``), on create, rotate and show; never in lists."""

    id: str
    service: str
    state: str = Field(description="ready, or gone (unbound, or the service was deleted).")
    parameters: dict[str, Any]
    credentials: dict[str, Any] | None = Field(
        None,
        description="uri (postgresql://user:password@host:port/database), host, port, "
        "database, username, password.",
    )
    created_at: datetime
    created_by: str
    rotated_at: datetime | None = None
    deleted_at: datetime | None = None

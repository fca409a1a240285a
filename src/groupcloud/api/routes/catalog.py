"""The service catalog: templates and what their plans ask."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from groupcloud.api.deps import Caller, Rt
from groupcloud.schemas.catalog import (
    ResolutionOut,
    ResolveRequest,
    ServiceCreate,
    ServiceInstance,
    TemplateAdd,
    TemplateOut,
    TemplateSummary,
)
from groupcloud.services.catalog import instances, templates

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/catalog", summary="List the catalog's templates (newest version of each)")
def list_templates(rt: Rt, caller: Caller) -> list[TemplateSummary]:
    return templates.list_templates(rt, caller)


@router.post(
    "/catalog", status_code=status.HTTP_201_CREATED, summary="Add a template (group admins)"
)
def add_template(rt: Rt, caller: Caller, body: TemplateAdd) -> TemplateOut:
    return templates.add_template(rt, caller, body)


@router.get("/catalog/{name}", summary="Show a template: parameters schema and plans")
def get_template(
    rt: Rt,
    caller: Caller,
    name: str,
    version: Annotated[str | None, Query(max_length=32, description="Default: newest")] = None,
) -> TemplateOut:
    return templates.get_template(rt, caller, name, version)


@router.post(
    "/catalog/{name}/resolve",
    summary="Validate parameters and show what a plan would ask (a dry run: holds nothing)",
)
def resolve_template(rt: Rt, caller: Caller, name: str, body: ResolveRequest) -> ResolutionOut:
    return templates.resolve_template(rt, caller, name, body)


@router.delete(
    "/catalog/{name}/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an operator's template version (group admins; shipped ones stay)",
)
def remove_template(rt: Rt, caller: Caller, name: str, version: str) -> Response:
    templates.remove_template(rt, caller, name, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/services",
    status_code=status.HTTP_201_CREATED,
    summary="Create a service from a template's plan: its parts claimed as one gang",
)
def create_service(rt: Rt, caller: Caller, body: ServiceCreate) -> ServiceInstance:
    return instances.create_service(rt, caller, body)


@router.get("/services", summary="List live services (a company token: its own company's)")
def list_services(
    rt: Rt,
    caller: Caller,
    company: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ServiceInstance]:
    return instances.list_services(rt, caller, company=company, limit=limit)


@router.get("/services/{service_id}", summary="Show a service and its parts")
def get_service(rt: Rt, caller: Caller, service_id: str) -> ServiceInstance:
    return instances.get_service(rt, caller, service_id)


@router.delete(
    "/services/{service_id}",
    summary="Delete a service: every part released (idempotent)",
)
def delete_service(rt: Rt, caller: Caller, service_id: str) -> ServiceInstance:
    return instances.delete_service(rt, caller, service_id)

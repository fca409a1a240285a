"""The service catalog: templates and what their plans ask."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status

from groupcloud.api.deps import Caller, Rt
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas.catalog import (
    Binding,
    BindingCreate,
    ResolutionOut,
    ResolveRequest,
    ServiceCreate,
    ServiceInstance,
    ServiceUpdate,
    TemplateAdd,
    TemplateOut,
    TemplateSummary,
)
from groupcloud.services.catalog import bindings, instances, lifecycle, templates
from groupcloud.services.common.runtime import Runtime

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


_WAIT = Query(
    description="Carry the operation through before answering (default: answer at once; "
    "the server finishes it right after, poll the service's state)."
)


@router.post(
    "/services",
    status_code=status.HTTP_201_CREATED,
    summary="Create a service from a template's plan: its parts claimed as one gang",
)
def create_service(
    rt: Rt,
    caller: Caller,
    body: ServiceCreate,
    tasks: BackgroundTasks,
    wait: Annotated[bool, _WAIT] = False,
) -> ServiceInstance:
    made = instances.create_service(rt, caller, body, wait=wait)
    return _finish(rt, caller, made, tasks)


@router.get("/services", summary="List live services (a company token: its own company's)")
def list_services(
    rt: Rt,
    caller: Caller,
    company: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ServiceInstance]:
    return instances.list_services(rt, caller, company=company, limit=limit)


@router.get("/services/{service_id}", summary="Show a service, its state and its parts")
def get_service(rt: Rt, caller: Caller, service_id: str) -> ServiceInstance:
    return instances.get_service(rt, caller, service_id)


@router.patch(
    "/services/{service_id}",
    summary="Change a ready service's plan or parameters: re-admitted against quota",
)
def update_service(
    rt: Rt,
    caller: Caller,
    service_id: str,
    body: ServiceUpdate,
    tasks: BackgroundTasks,
    wait: Annotated[bool, _WAIT] = False,
) -> ServiceInstance:
    return _finish(rt, caller, instances.update_service(rt, caller, service_id, body, wait=wait),
                   tasks)  # fmt: skip


@router.delete(
    "/services/{service_id}",
    summary="Delete a service: bindings, backend and every part removed (idempotent)",
)
def delete_service(
    rt: Rt,
    caller: Caller,
    service_id: str,
    tasks: BackgroundTasks,
    wait: Annotated[bool, _WAIT] = False,
) -> ServiceInstance:
    return _finish(rt, caller, instances.delete_service(rt, caller, service_id, wait=wait), tasks)


def _finish(
    rt: Runtime, caller: Principal, instance: ServiceInstance, tasks: BackgroundTasks
) -> ServiceInstance:
    """An operation left under way is carried on right after the answer (and by the
    worker, should this process stop first)."""
    if instance.state.busy:
        tasks.add_task(lifecycle.advance, rt, instance.id, caller.actor)
    return instance


@router.post(
    "/services/{service_id}/bindings",
    status_code=status.HTTP_201_CREATED,
    summary="Bind an app: new credentials (shown in this answer, sealed at rest)",
)
def create_binding(rt: Rt, caller: Caller, service_id: str, body: BindingCreate) -> Binding:
    return bindings.bind(rt, caller, service_id, body)


@router.get("/services/{service_id}/bindings", summary="List a service's bindings (no secrets)")
def list_bindings(rt: Rt, caller: Caller, service_id: str) -> list[Binding]:
    return bindings.list_bindings(rt, caller, service_id)


@router.get(
    "/services/{service_id}/bindings/{binding_id}",
    summary="Show a binding with its credentials (callers who may use the company's services)",
)
def get_binding(rt: Rt, caller: Caller, service_id: str, binding_id: str) -> Binding:
    return bindings.get_binding(rt, caller, service_id, binding_id)


@router.post(
    "/services/{service_id}/bindings/{binding_id}/rotate",
    summary="Rotate a binding's password (the old one stops working at once)",
)
def rotate_binding(rt: Rt, caller: Caller, service_id: str, binding_id: str) -> Binding:
    return bindings.rotate(rt, caller, service_id, binding_id)


@router.delete(
    "/services/{service_id}/bindings/{binding_id}",
    summary="Unbind: the binding's login is dropped, its sessions end (idempotent)",
)
def delete_binding(rt: Rt, caller: Caller, service_id: str, binding_id: str) -> Binding:
    return bindings.unbind(rt, caller, service_id, binding_id)

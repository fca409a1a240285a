"""Providers (the public clouds external zones reach) and their offers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from groupcloud.api.deps import Caller, Rt
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.schemas.providers import Offers, ProviderCreate, ProviderOut, ProviderUpdate
from groupcloud.services.providers import catalog
from groupcloud.services.providers.offers import MAX_OFFERS, find_offers

router = APIRouter(prefix="/v1")


@router.get("/providers", tags=["providers"], summary="List providers and their zones")
def list_providers(rt: Rt, caller: Caller) -> list[ProviderOut]:
    return catalog.list_providers(rt, caller)


@router.post(
    "/providers",
    tags=["providers"],
    status_code=status.HTTP_201_CREATED,
    summary="Add a provider (group admins)",
)
def create_provider(rt: Rt, caller: Caller, body: ProviderCreate) -> ProviderOut:
    return catalog.create_provider(rt, caller, body)


@router.get("/providers/{name}", tags=["providers"], summary="Show a provider")
def get_provider(rt: Rt, caller: Caller, name: str) -> ProviderOut:
    return catalog.get_provider(rt, caller, name)


@router.patch(
    "/providers/{name}", tags=["providers"], summary="Change a provider's settings (group admins)"
)
def update_provider(rt: Rt, caller: Caller, name: str, body: ProviderUpdate) -> ProviderOut:
    return catalog.update_provider(rt, caller, name, body)


@router.delete(
    "/providers/{name}",
    tags=["providers"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a provider no zone uses (group admins)",
)
def delete_provider(rt: Rt, caller: Caller, name: str) -> Response:
    catalog.delete_provider(rt, caller, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/offers",
    tags=["providers"],
    summary="Cheapest instance types for one unit in the external zones the rules allow",
)
def offers(
    rt: Rt,
    caller: Caller,
    data_class: Annotated[Sensitivity, Query(description="D1, D2 or D3")] = Sensitivity.D3,
    system_type: Annotated[SystemType, Query()] = SystemType.EXTERNAL_SERVICE,
    vcpu: Annotated[int, Query(ge=0, le=100_000)] = 1,
    memory_gb: Annotated[float, Query(ge=0, le=1_000_000, description="GiB per unit")] = 0,
    gpu: Annotated[int, Query(ge=0, le=1_000)] = 0,
    gpu_model: Annotated[str | None, Query(max_length=63)] = None,
    company: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_OFFERS)] = 10,
) -> Offers:
    return find_offers(
        rt,
        caller,
        data_class=data_class,
        system_type=system_type,
        vcpu=vcpu,
        memory_mb=round(memory_gb * 1024),
        gpu=gpu,
        gpu_model=gpu_model,
        company=company,
        limit=limit,
    )

"""Allocations: create (idempotent with Idempotency-Key), list, show, release."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from groupcloud.api.deps import Caller, Cursor, Limit, Rt
from groupcloud.domain.allocation import AllocationState
from groupcloud.schemas import Allocation, AllocationCreate, Page
from groupcloud.services import allocations

router = APIRouter(prefix="/v1", tags=["allocations"])

_REFUSALS = {
    409: {"description": "quota_exceeded or no_capacity: may succeed later"},
    422: {"description": "validation_error, never_fits or idempotency_key_reused"},
}


@router.post(
    "/allocations",
    status_code=status.HTTP_201_CREATED,
    summary="Request capacity: admit against quota, place, claim atomically",
    responses=_REFUSALS,  # type: ignore[arg-type]
)
def create_allocation(
    rt: Rt,
    caller: Caller,
    body: AllocationCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Retry-safe key: the same key with the same body returns the first result.",
        ),
    ] = None,
) -> Allocation:
    return allocations.allocate(rt, caller, body, idempotency_key)


@router.get("/allocations", summary="List allocations")
def list_allocations(
    rt: Rt,
    caller: Caller,
    company: str | None = None,
    project: str | None = None,
    state: AllocationState | None = None,
    host: Annotated[
        str | None, Query(description="Only allocations with a unit on this host")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[Allocation]:
    return allocations.list_allocations(
        rt,
        caller,
        company=company,
        project=project,
        state=state,
        host=host,
        cursor=cursor,
        limit=limit,
    )


@router.get("/allocations/{allocation_id}", summary="Show an allocation")
def get_allocation(rt: Rt, caller: Caller, allocation_id: str) -> Allocation:
    return allocations.get_allocation(rt, caller, allocation_id)


@router.post(
    "/allocations/{allocation_id}/release",
    summary="Release an allocation (idempotent)",
)
def release_allocation(rt: Rt, caller: Caller, allocation_id: str) -> Allocation:
    return allocations.release(rt, caller, allocation_id)

"""Allocations: request (claimed at once or queued), list, show, explain, change, release,
and utilisation reports for idle reclaim."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from groupcloud.api.deps import Caller, Cursor, IdempotencyKey, Limit, Rt
from groupcloud.domain.allocation import AllocationState
from groupcloud.schemas.base import Page
from groupcloud.schemas.compute import (
    Allocation,
    AllocationCreate,
    AllocationUpdate,
    Explanation,
    Utilisation,
    UtilisationReport,
    UtilisationReports,
)
from groupcloud.services.compute import allocations, explain, idle

router = APIRouter(prefix="/v1", tags=["allocations"])

_REFUSALS = {
    202: {"model": Allocation, "description": "Queued (state pending, see pending_reason)"},
    409: {"description": "quota_exceeded or no_capacity (with queue=false): may succeed later"},
    422: {"description": "validation_error, never_fits or idempotency_key_reused"},
}


@router.post(
    "/allocations",
    status_code=status.HTTP_201_CREATED,
    summary="Request capacity: claimed at once (201) or queued (202); never_fits is 422",
    responses=_REFUSALS,  # type: ignore[arg-type]
)
def create_allocation(
    rt: Rt,
    caller: Caller,
    body: AllocationCreate,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Allocation:
    out = allocations.allocate(rt, caller, body, idempotency_key)
    if out.state is AllocationState.PENDING:
        response.status_code = status.HTTP_202_ACCEPTED
    return out


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


@router.patch(
    "/allocations/{allocation_id}",
    summary="Mark keep (never idle-reclaimed) or change the lease (extension subject to quota)",
)
def update_allocation(
    rt: Rt, caller: Caller, allocation_id: str, body: AllocationUpdate
) -> Allocation:
    return allocations.update_allocation(rt, caller, allocation_id, body)


@router.get(
    "/allocations/{allocation_id}/explain",
    summary="Why it is pending, what it borrows, why it was reclaimed -- in plain words",
)
def explain_allocation(rt: Rt, caller: Caller, allocation_id: str) -> Explanation:
    return explain.explain(rt, caller, allocation_id)


@router.post(
    "/allocations/{allocation_id}/utilisation",
    summary="Report an allocation's utilisation (for idle reclaim)",
)
def report_utilisation(
    rt: Rt, caller: Caller, allocation_id: str, body: Utilisation
) -> dict[str, int]:
    report = UtilisationReport(allocation=allocation_id, utilisation=body.utilisation, at=body.at)
    return {"stored": idle.report(rt, caller, [report])}


@router.post("/utilisation", summary="Report the utilisation of many allocations at once")
def report_utilisation_batch(rt: Rt, caller: Caller, body: UtilisationReports) -> dict[str, int]:
    return {"stored": idle.report(rt, caller, body.reports)}

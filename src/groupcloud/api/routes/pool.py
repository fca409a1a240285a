"""Hosts, inventories, quotas, usage and events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from groupcloud.api.deps import Caller, Cursor, Limit, Rt
from groupcloud.domain.inventory import HostState
from groupcloud.domain.limits import MAX_KEY
from groupcloud.domain.resources import RESOURCE_CLASS
from groupcloud.schemas.audit import Event
from groupcloud.schemas.base import Page
from groupcloud.schemas.compute import (
    Host,
    HostBatch,
    HostCreate,
    InventoryUpdate,
    Quota,
    QuotaSet,
    UsageLine,
)
from groupcloud.services.audit import events
from groupcloud.services.compute import hosts, quotas
from groupcloud.services.compute.usage import UsageScope, usage

router = APIRouter(prefix="/v1")


@router.get("/hosts", tags=["hosts"], summary="List hosts")
def list_hosts(
    rt: Rt,
    caller: Caller,
    zone: str | None = None,
    state: HostState | None = None,
    trait: Annotated[str | None, Query(description="Only hosts carrying this trait")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[Host]:
    return hosts.list_hosts(
        rt, caller, zone=zone, state=state, trait=trait, cursor=cursor, limit=limit
    )


@router.post("/hosts", tags=["hosts"], status_code=status.HTTP_201_CREATED, summary="Add a host")
def add_host(rt: Rt, caller: Caller, body: HostCreate) -> Host:
    return hosts.add_hosts(rt, caller, [body])[0]


@router.post(
    "/hosts/batch",
    tags=["hosts"],
    status_code=status.HTTP_201_CREATED,
    summary="Add many hosts at once (all or none)",
)
def add_hosts(rt: Rt, caller: Caller, body: HostBatch) -> list[Host]:
    return hosts.add_hosts(rt, caller, body.hosts)


@router.get("/hosts/{name}", tags=["hosts"], summary="Show a host with its inventories")
def get_host(rt: Rt, caller: Caller, name: str) -> Host:
    return hosts.get_host(rt, caller, name)


@router.put(
    "/hosts/{name}/inventories",
    tags=["hosts"],
    summary="Replace a host's inventories (refused below what is allocated)",
)
def set_inventories(rt: Rt, caller: Caller, name: str, body: InventoryUpdate) -> Host:
    return hosts.set_inventories(rt, caller, name, body.inventories)


@router.post("/hosts/{name}/drain", tags=["hosts"], summary="Stop new placements on a host")
def drain_host(rt: Rt, caller: Caller, name: str) -> Host:
    return hosts.drain_host(rt, caller, name)


@router.post("/hosts/{name}/resume", tags=["hosts"], summary="Take new placements again")
def resume_host(rt: Rt, caller: Caller, name: str) -> Host:
    return hosts.resume_host(rt, caller, name)


@router.delete("/hosts/{name}", tags=["hosts"], summary="Remove an empty host from the pool")
def remove_host(rt: Rt, caller: Caller, name: str) -> Host:
    return hosts.remove_host(rt, caller, name)


@router.get("/quotas", tags=["quotas"], summary="List quotas with current usage")
def list_quotas(rt: Rt, caller: Caller, company: str | None = None) -> list[Quota]:
    return quotas.list_quotas(rt, caller, company)


@router.put(
    "/quotas/{company}/{resource_class}",
    tags=["quotas"],
    summary="Set a company's quota for a resource class",
)
def set_quota(
    rt: Rt,
    caller: Caller,
    company: str,
    resource_class: Annotated[
        str,
        Path(pattern=RESOURCE_CLASS.pattern, description="VCPU, MEMORY_MB, ... or CUSTOM_<NAME>."),
    ],
    body: QuotaSet,
) -> Quota:
    return quotas.set_quota(rt, caller, company, resource_class, body)


@router.get("/usage", tags=["usage"], summary="Capacity, used, free and % used")
def get_usage(
    rt: Rt,
    caller: Caller,
    by: Annotated[UsageScope, Query(description="Group rows by pool, zone, host or company")] = (
        UsageScope.POOL
    ),
    zone: str | None = None,
    company: str | None = None,
    resource_class: str | None = None,
    cursor: Cursor = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=500, description="Page size for by=host, in hosts (default 50)"),
    ] = None,
) -> Page[UsageLine]:
    return usage(
        rt,
        caller,
        by,
        zone=zone,
        company=company,
        resource_class=resource_class,
        cursor=cursor,
        limit=limit,
    )


@router.get("/events", tags=["events"], summary="The audit trail, oldest first")
def list_events(
    rt: Rt,
    caller: Caller,
    company: str | None = None,
    kind: Annotated[
        str | None, Query(description="Kind or kind prefix, e.g. 'allocation.'")
    ] = None,
    subject: Annotated[
        str | None, Query(description="e.g. 'allocation/<id>' or 'host/cpu-001'")
    ] = None,
    after_id: Annotated[
        int | None,
        Query(ge=0, le=MAX_KEY, description="Only events with a greater id (for followers)"),
    ] = None,
    tail: Annotated[
        int | None, Query(ge=1, le=1000, description="Only the newest N matching events")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[Event]:
    return events.list_events(
        rt,
        caller,
        company=company,
        kind=kind,
        subject=subject,
        after_id=after_id,
        tail=tail,
        cursor=cursor,
        limit=limit,
    )

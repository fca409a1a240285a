"""Capacity and use per pool, zone, host and company (and resource class)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Literal, TypeVarTuple

from sqlalchemy import Select, func, literal, select

from groupcloud.db.models import CompanyRow, HostRow, InventoryRow, QuotaRow, ZoneRow
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import percent
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas.base import Page
from groupcloud.schemas.compute import UsageLine
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug

__all__ = ["UsageScope", "usage"]


Scope = Literal["pool", "zone", "host", "company"]
Ts = TypeVarTuple("Ts")


class UsageScope(enum.StrEnum):
    POOL = "pool"
    ZONE = "zone"
    HOST = "host"
    COMPANY = "company"


def usage(
    rt: Runtime,
    actor: Principal,
    by: UsageScope = UsageScope.POOL,
    *,
    zone: str | None = None,
    company: str | None = None,
    resource_class: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[UsageLine]:
    """Rows of (scope, name, resource class) with capacity, used, free and % used.

    Pool, zone and host figures are open to every role (capacity summaries); company
    figures (quota vs use) show only the caller's own company unless it is a group admin.
    Only ``by=host`` pages (there may be thousands of hosts).
    """
    with rt.db.read() as s:
        if by is UsageScope.COMPANY:
            query = (
                select(CompanyRow.slug, QuotaRow.resource_class, QuotaRow.nominal, QuotaRow.used)
                .join(CompanyRow, CompanyRow.id == QuotaRow.company_id)
                .order_by(CompanyRow.slug, QuotaRow.resource_class)
            )
            if company:
                query = query.where(QuotaRow.company_id == company_by_slug(s, actor, company).id)
            elif not actor.sees_all:
                query = query.where(QuotaRow.company_id == actor.company_id)
            if resource_class:
                query = query.where(QuotaRow.resource_class == resource_class)
            return Page(items=_rows("company", s.execute(query).all()))

        if by is UsageScope.HOST:
            size = page_limit(limit)
            hosts = (
                select(HostRow.id)
                .join(ZoneRow, ZoneRow.id == HostRow.zone_id)
                .where(HostRow.state != HostState.REMOVED)
                .order_by(HostRow.id)
                .limit(size + 1)
            )
            if zone:
                hosts = hosts.where(ZoneRow.name == zone)
            if cursor:
                hosts = hosts.where(HostRow.id > cursor_key(cursor))
            ids, next_cursor = split_page(list(s.scalars(hosts)), size, lambda i: i)
            query = (
                select(
                    HostRow.name,
                    InventoryRow.resource_class,
                    InventoryRow.capacity,
                    InventoryRow.used,
                )
                .join(InventoryRow, InventoryRow.host_id == HostRow.id)
                .where(HostRow.id.in_(ids))
                .order_by(HostRow.id, InventoryRow.resource_class)
            )
            if resource_class:
                query = query.where(InventoryRow.resource_class == resource_class)
            return Page(items=_rows("host", s.execute(query).all()), next_cursor=next_cursor)

        name = ZoneRow.name if by is UsageScope.ZONE else literal("pool")
        totals = _live(
            select(
                name,
                InventoryRow.resource_class,
                func.sum(InventoryRow.capacity),
                func.sum(InventoryRow.used),
            ),
            zone,
        )
        if by is UsageScope.ZONE:
            totals = totals.group_by(ZoneRow.name, InventoryRow.resource_class).order_by(
                ZoneRow.name
            )
        else:
            totals = totals.group_by(InventoryRow.resource_class)
        totals = totals.order_by(InventoryRow.resource_class)
        if resource_class:
            totals = totals.where(InventoryRow.resource_class == resource_class)
        return Page(
            items=_rows("zone" if by is UsageScope.ZONE else "pool", s.execute(totals).all())
        )


def _live(query: Select[*Ts], zone: str | None) -> Select[*Ts]:
    """Restrict to inventories of hosts in the pool (not removed), optionally in one zone."""
    query = (
        query.select_from(HostRow)
        .join(InventoryRow, InventoryRow.host_id == HostRow.id)
        .join(ZoneRow, ZoneRow.id == HostRow.zone_id)
        .where(HostRow.state != HostState.REMOVED)
    )
    return query.where(ZoneRow.name == zone) if zone else query


def _rows(scope: Scope, rows: Iterable[tuple[Any, str, Any, Any]]) -> list[UsageLine]:
    out = []
    for name, rc, cap, used in rows:
        capacity, in_use = int(cap or 0), int(used or 0)
        out.append(
            UsageLine(
                scope=scope,
                name=str(name),
                resource_class=rc,
                capacity=capacity,
                used=in_use,
                free=capacity - in_use,
                used_pct=percent(in_use, capacity),
            )
        )
    return out

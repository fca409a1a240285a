"""Capacity and use per pool, zone, host and company (and resource class)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Literal, TypeVarTuple

from sqlalchemy import Select, func, literal, select

from groupcloud.db.models import Company, Host, Inventory, Quota, Zone
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import percent
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas import Page, UsageRow
from groupcloud.services.access import company_by_slug
from groupcloud.services.pagination import cursor_key, page_limit, split_page
from groupcloud.services.runtime import Runtime

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
) -> Page[UsageRow]:
    """Rows of (scope, name, resource class) with capacity, used, free and % used.

    Pool, zone and host figures are open to every role (capacity summaries); company
    figures (quota vs use) show only the caller's own company unless it is a group admin.
    Only ``by=host`` pages (there may be thousands of hosts).
    """
    with rt.db.read() as s:
        if by is UsageScope.COMPANY:
            query = (
                select(Company.slug, Quota.resource_class, Quota.nominal, Quota.used)
                .join(Company, Company.id == Quota.company_id)
                .order_by(Company.slug, Quota.resource_class)
            )
            if company:
                query = query.where(Quota.company_id == company_by_slug(s, actor, company).id)
            elif not actor.is_group_admin:
                query = query.where(Quota.company_id == actor.company_id)
            if resource_class:
                query = query.where(Quota.resource_class == resource_class)
            return Page(items=_rows("company", s.execute(query).all()))

        if by is UsageScope.HOST:
            size = page_limit(limit)
            hosts = (
                select(Host.id)
                .join(Zone, Zone.id == Host.zone_id)
                .where(Host.state != HostState.REMOVED)
                .order_by(Host.id)
                .limit(size + 1)
            )
            if zone:
                hosts = hosts.where(Zone.name == zone)
            if cursor:
                hosts = hosts.where(Host.id > cursor_key(cursor))
            ids, next_cursor = split_page(list(s.scalars(hosts)), size, lambda i: i)
            query = (
                select(Host.name, Inventory.resource_class, Inventory.capacity, Inventory.used)
                .join(Inventory, Inventory.host_id == Host.id)
                .where(Host.id.in_(ids))
                .order_by(Host.id, Inventory.resource_class)
            )
            if resource_class:
                query = query.where(Inventory.resource_class == resource_class)
            return Page(items=_rows("host", s.execute(query).all()), next_cursor=next_cursor)

        name = Zone.name if by is UsageScope.ZONE else literal("pool")
        totals = _live(
            select(
                name,
                Inventory.resource_class,
                func.sum(Inventory.capacity),
                func.sum(Inventory.used),
            ),
            zone,
        )
        if by is UsageScope.ZONE:
            totals = totals.group_by(Zone.name, Inventory.resource_class).order_by(Zone.name)
        else:
            totals = totals.group_by(Inventory.resource_class)
        totals = totals.order_by(Inventory.resource_class)
        if resource_class:
            totals = totals.where(Inventory.resource_class == resource_class)
        return Page(
            items=_rows("zone" if by is UsageScope.ZONE else "pool", s.execute(totals).all())
        )


def _live(query: Select[*Ts], zone: str | None) -> Select[*Ts]:
    """Restrict to inventories of hosts in the pool (not removed), optionally in one zone."""
    query = (
        query.select_from(Host)
        .join(Inventory, Inventory.host_id == Host.id)
        .join(Zone, Zone.id == Host.zone_id)
        .where(Host.state != HostState.REMOVED)
    )
    return query.where(Zone.name == zone) if zone else query


def _rows(scope: Scope, rows: Iterable[tuple[Any, str, Any, Any]]) -> list[UsageRow]:
    out = []
    for name, rc, cap, used in rows:
        capacity, in_use = int(cap or 0), int(used or 0)
        out.append(
            UsageRow(
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

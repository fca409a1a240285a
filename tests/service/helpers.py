"""Small helpers shared by the service-layer tests: who acts, what they ask, what moved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select

from groupcloud.db.models import (
    AffinityMemberRow,
    AllocationItemRow,
    AllocationRow,
    Base,
    CompanyRow,
    EventRow,
    HostRow,
    InventoryRow,
    QuotaRow,
)
from groupcloud.domain.allocation import Strategy
from groupcloud.domain.tenancy import Principal
from groupcloud.schemas.base import Page
from groupcloud.schemas.compute import AllocationCreate, QuotaSet
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import quotas
from groupcloud.services.tenancy import tokens
from groupcloud.services.tenancy.tokens import SYSTEM

T = TypeVar("T")


def who(rt: Runtime, secret: str) -> Principal:
    """The principal of a token secret, as the API would see it."""
    return tokens.authenticate(rt, secret)


def ask(
    resources: dict[str, int],
    *,
    project: str = "web",
    company: str | None = None,
    count: int = 1,
    zone: str | None = None,
    traits: Sequence[str] = (),
    group: str | None = None,
    strategy: Strategy = Strategy.PACK,
    queue: bool = False,
    **extra: Any,
) -> AllocationCreate:
    """An allocation request (company implied by company tokens). ``queue`` is off by
    default here so that a refusal is an exception the test can catch."""
    return AllocationCreate(
        queue=queue,
        **extra,
        company=company,
        project=project,
        resources=resources,
        count=count,
        zone=zone,
        required_traits=list(traits),
        anti_affinity_group=group,
        strategy=strategy,
    )


def set_quotas(rt: Runtime, company: str, amounts: dict[str, int]) -> None:
    for rc, n in amounts.items():
        quotas.set_quota(rt, SYSTEM, company, rc, QuotaSet(nominal=n))


@dataclass(frozen=True)
class Counters:
    """Every usage counter and row count that a claim or release may change."""

    inventory: dict[tuple[str, str], int]  # (host, class) -> used
    quota: dict[tuple[str, str], int]  # (company, class) -> used
    allocations: int
    items: int
    affinity: int
    events: int

    def inventory_delta(self, before: Counters) -> dict[tuple[str, str], int]:
        """Non-zero changes of inventory counters since ``before``."""
        keys = self.inventory.keys() | before.inventory.keys()
        changes = {k: self.inventory.get(k, 0) - before.inventory.get(k, 0) for k in keys}
        return {k: v for k, v in changes.items() if v}

    def quota_delta(self, before: Counters) -> dict[tuple[str, str], int]:
        keys = self.quota.keys() | before.quota.keys()
        changes = {k: self.quota.get(k, 0) - before.quota.get(k, 0) for k in keys}
        return {k: v for k, v in changes.items() if v}


def counters(rt: Runtime) -> Counters:
    """Read every counter straight from the database (not through the services)."""
    with rt.db.read() as s:
        inventory = {
            (h, rc): int(u)
            for h, rc, u in s.execute(
                select(HostRow.name, InventoryRow.resource_class, InventoryRow.used).join(
                    HostRow, HostRow.id == InventoryRow.host_id
                )
            )
        }
        quota = {
            (c, rc): int(u)
            for c, rc, u in s.execute(
                select(CompanyRow.slug, QuotaRow.resource_class, QuotaRow.used).join(
                    CompanyRow, CompanyRow.id == QuotaRow.company_id
                )
            )
        }

        def count(model: type[Base]) -> int:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)

        return Counters(
            inventory=inventory,
            quota=quota,
            allocations=count(AllocationRow),
            items=count(AllocationItemRow),
            affinity=count(AffinityMemberRow),
            events=count(EventRow),
        )


def used_on(rt: Runtime, host: str, rc: str) -> int:
    return counters(rt).inventory[(host, rc)]


def all_pages(fetch: Callable[[str | None], Page[T]]) -> tuple[list[T], int]:
    """Follow ``next_cursor`` to the end; returns the items and how many pages it took."""
    items: list[T] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = fetch(cursor)
        pages += 1
        items.extend(page.items)
        if page.next_cursor is None:
            return items, pages
        assert page.items, "a page with a next_cursor must not be empty"
        cursor = page.next_cursor
        assert pages < 1000, "pagination does not end"

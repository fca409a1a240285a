"""Per-company quotas per resource class."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, null, select
from sqlalchemy.exc import IntegrityError

from groupcloud.db.models import AllocationRow, CompanyRow, QuotaRow
from groupcloud.domain.allocation import gpu_quota
from groupcloud.domain.resources import check_resource_class, percent
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput, QuotaBelowUsage
from groupcloud.quota.cohort import Cohort, QuotaLine
from groupcloud.schemas.compute import Quota, QuotaSet
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require_group_admin

__all__ = ["gpu_share_charges", "list_quotas", "load_cohort", "quota_out", "set_quota"]


def set_quota(
    rt: Runtime, actor: Principal, company: str, resource_class: str, body: QuotaSet
) -> Quota:
    """Create or change a quota. A change that the current use would break is refused (own
    use plus what is lent above the nominal, borrowing above the borrowing limit, lending
    above the lending limit), so the sharing invariants hold at every moment, not only for
    new claims. Limits left out of the body keep their value."""
    require_group_admin(actor, "setting quotas")
    try:
        check_resource_class(resource_class)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), errors=[{"field": "resource_class", "message": str(exc)}]
        ) from None
    given = body.model_fields_set

    def attempt() -> Quota:
        now = rt.clock()
        with rt.db.write() as s:
            owner = company_by_slug(s, actor, company)
            row = s.get(QuotaRow, (owner.id, resource_class), with_for_update=True)
            if row is None:
                row = QuotaRow(
                    company_id=owner.id,
                    resource_class=resource_class,
                    nominal=body.nominal,
                    # null(): a None attribute would get the column's default (0) instead
                    borrowing_limit=null()
                    if body.borrowing_limit is None
                    else body.borrowing_limit,
                    lending_limit=null() if body.lending_limit is None else body.lending_limit,
                    used=0,
                    borrowed=0,
                    lent=0,
                    updated_at=now,
                )
                s.add(row)
            else:
                borrowing = (
                    body.borrowing_limit if "borrowing_limit" in given else row.borrowing_limit
                )
                lending = body.lending_limit if "lending_limit" in given else row.lending_limit
                _check_below_use(company, resource_class, row, body.nominal, borrowing, lending)
                row.nominal = body.nominal
                row.borrowing_limit = borrowing
                row.lending_limit = lending
                row.updated_at = now
            s.flush()
            s.refresh(row)  # read back what the database stored (NULL limits included)
            events.record(
                s,
                actor.actor,
                "quota.set",
                f"quota/{company}/{resource_class}",
                owner.id,
                {
                    "nominal": row.nominal,
                    "borrowing_limit": row.borrowing_limit,
                    "lending_limit": row.lending_limit,
                },
                at=now,
            )
            return quota_out(company, row)

    try:
        out = rt.db.retrying(attempt)
    except IntegrityError:
        # Two first-time sets raced on the insert; the second is now a plain update.
        out = rt.db.retrying(attempt)
    rt.wakeup.set()  # more quota may let queued requests in
    return out


def _check_below_use(
    company: str,
    rc: str,
    row: QuotaRow,
    nominal: int,
    borrowing_limit: int | None,
    lending_limit: int | None,
) -> None:
    line = line_of(row)
    problems: list[str] = []
    if line.committed > nominal:
        problems.append(
            f"{company} uses {line.own_used} {rc} of its own nominal and lends {row.lent}: the "
            f"nominal cannot go below {line.committed}"
        )
    if borrowing_limit is not None and row.borrowed > borrowing_limit:
        problems.append(
            f"{company} borrows {row.borrowed} {rc} now: the borrowing limit cannot go below that"
        )
    if lending_limit is not None and row.lent > lending_limit:
        problems.append(
            f"{company} lends {row.lent} {rc} now: the lending limit cannot go below that"
        )
    if problems:
        raise QuotaBelowUsage(
            "; ".join(problems) + f" (asked nominal {nominal})",
            used=row.used,
            borrowed=row.borrowed,
            lent=row.lent,
            requested=nominal,
        )


def load_cohort(conn: Connection) -> Cohort:
    """Every company's quota lines and fair-share weight: the cohort snapshot that plans
    admissions (a stale one only costs a refused conditional update)."""
    weights = dict(conn.execute(select(CompanyRow.id, CompanyRow.fair_weight)).all())
    return Cohort(((q.company_id, line_of(q)) for q in conn.execute(select(QuotaRow))), weights)


def line_of(q: QuotaRow | Row[Any]) -> QuotaLine:
    """A stored quota row as the quota engine sees it (which says what is free)."""
    return QuotaLine(
        q.resource_class, q.nominal, q.used, q.borrowed, q.lent, q.borrowing_limit, q.lending_limit
    )


def list_quotas(rt: Runtime, actor: Principal, company: str | None = None) -> list[Quota]:
    """Quotas of one company, or of every visible company."""
    query = (
        select(QuotaRow, CompanyRow.slug)
        .join(CompanyRow, CompanyRow.id == QuotaRow.company_id)
        .order_by(CompanyRow.slug, QuotaRow.resource_class)
    )
    with rt.db.read() as s:
        if company:
            query = query.where(QuotaRow.company_id == company_by_slug(s, actor, company).id)
        elif not actor.sees_all:
            query = query.where(QuotaRow.company_id == actor.company_id)
        return [quota_out(slug, q) for q, slug in s.execute(query)]


def quota_out(company: str, q: QuotaRow) -> Quota:
    return Quota(
        company=company,
        resource_class=q.resource_class,
        nominal=q.nominal,
        borrowing_limit=q.borrowing_limit,
        lending_limit=q.lending_limit,
        used=q.used,
        borrowed=q.borrowed,
        lent=q.lent,
        free=line_of(q).own_free,
        used_pct=percent(q.used, q.nominal),
    )


def gpu_share_charges(conn: Connection, where: ColumnElement[bool]) -> list[tuple[str, int, int]]:
    """(allocation id, company id, GPUs of quota) of the GPU-sharing allocations ``where``
    selects: what their shares are charged (``gpu_quota``), which their items, counting
    host amounts, do not show."""
    rows = conn.execute(
        select(
            AllocationRow.id, AllocationRow.company_id, AllocationRow.count, AllocationRow.gpu_share
        ).where(where, AllocationRow.gpu_share > 0)
    )
    return [(a, company, gpu_quota(count, share)) for a, company, count, share in rows]

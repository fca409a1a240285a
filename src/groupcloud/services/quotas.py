"""Per-company quotas per resource class."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from groupcloud.db.models import Company, Quota, utcnow
from groupcloud.domain.resources import check_resource_class, percent
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput, QuotaBelowUsage
from groupcloud.schemas import Quota as QuotaOut
from groupcloud.schemas import QuotaSet
from groupcloud.services import events
from groupcloud.services.access import company_by_slug, require_group_admin
from groupcloud.services.runtime import Runtime

__all__ = ["list_quotas", "quota_out", "set_quota"]


def set_quota(
    rt: Runtime, actor: Principal, company: str, resource_class: str, body: QuotaSet
) -> QuotaOut:
    """Create or change a quota. Lowering it below current usage is refused, so the
    invariant usage <= quota holds at every moment, not only for new claims."""
    require_group_admin(actor, "setting quotas")
    try:
        check_resource_class(resource_class)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), errors=[{"field": "resource_class", "message": str(exc)}]
        ) from None

    def attempt() -> QuotaOut:
        with rt.db.write() as s:
            owner = company_by_slug(s, actor, company)
            changed = s.execute(
                update(Quota)
                .where(
                    Quota.company_id == owner.id,
                    Quota.resource_class == resource_class,
                    Quota.used <= body.nominal,
                )
                .values(nominal=body.nominal, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount == 0:  # type: ignore[attr-defined]
                existing = s.get(Quota, (owner.id, resource_class))
                if existing is not None:
                    raise QuotaBelowUsage(
                        f"{company} already uses {existing.used} {resource_class}; the quota "
                        f"cannot go below that (asked {body.nominal})",
                        used=existing.used,
                        requested=body.nominal,
                    )
                s.add(
                    Quota(company_id=owner.id, resource_class=resource_class, nominal=body.nominal)
                )
            events.record(
                s,
                actor.actor,
                "quota.set",
                f"quota/{company}/{resource_class}",
                owner.id,
                {"nominal": body.nominal},
            )
            s.flush()
            row = s.get(Quota, (owner.id, resource_class), populate_existing=True)
            assert row is not None
            return quota_out(company, row)

    try:
        return attempt()
    except IntegrityError:
        # Two first-time sets raced on the insert; the second is now a plain update.
        return attempt()


def list_quotas(rt: Runtime, actor: Principal, company: str | None = None) -> list[QuotaOut]:
    """Quotas of one company, or of every visible company."""
    query = (
        select(Quota, Company.slug)
        .join(Company, Company.id == Quota.company_id)
        .order_by(Company.slug, Quota.resource_class)
    )
    with rt.db.read() as s:
        if company:
            query = query.where(Quota.company_id == company_by_slug(s, actor, company).id)
        elif not actor.is_group_admin:
            query = query.where(Quota.company_id == actor.company_id)
        return [quota_out(slug, q) for q, slug in s.execute(query)]


def quota_out(company: str, q: Quota) -> QuotaOut:
    return QuotaOut(
        company=company,
        resource_class=q.resource_class,
        nominal=q.nominal,
        borrowing_limit=q.borrowing_limit,
        lending_limit=q.lending_limit,
        used=q.used,
        free=max(q.nominal - q.used, 0),
        used_pct=percent(q.used, q.nominal),
    )

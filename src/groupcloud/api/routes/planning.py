"""Capacity plans from app activity, and the digital KPI scorecard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from groupcloud.api.deps import Caller, Rt, Scale, month_of, month_query
from groupcloud.schemas.planning import CapacityPlan, Scorecard
from groupcloud.services.analytics import capacity, kpis

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


@router.get("/capacity", summary="Compute per company for the next months, from the MAU forecast")
def capacity_plan(
    rt: Rt,
    caller: Caller,
    month: Annotated[str, month_query("Last month of MAU history (Asia/Seoul), YYYY-MM.")],
    pool_hosts: Annotated[
        int | None,
        Query(
            ge=0,
            le=10**9,
            description="Hosts in the pool now (default: the shared zones' active hosts).",
        ),
    ] = None,
    scale: Scale = 1.0,
) -> CapacityPlan:
    """Forecasts each app's MAU (log-linear fit of the exact MAU), turns it into load by
    Seoul hour with the server's capacity model (GROUPCLOUD_ANALYTICS_CAPACITY_MODEL or the
    built-in one), and sizes each company alone and the shared pool: recommended nominal
    quotas, hosts to add, and the hosts sharing saves. A company token reads its own
    company's apps and sizing and the pool's totals; group tokens read every company's."""
    return capacity.plan_for(rt, caller, month_of(month), pool_hosts=pool_hosts, scale=scale)


@router.get("/scorecard", summary="Digital KPIs per company against their targets")
def scorecard(
    rt: Rt,
    caller: Caller,
    month: Annotated[str, month_query("Asia/Seoul month, YYYY-MM.")],
    scale: Scale = 1.0,
) -> Scorecard:
    """Each company's KPIs from the server's definitions (GROUPCLOUD_ANALYTICS_KPIS or the
    built-in ones): value, the month before, target, status (on_track, at_risk, off_track,
    no_data) and trend. Cost avoided by sharing is an estimate until metering exists.
    A company token reads its own company's KPIs; group tokens read every company's."""
    return kpis.scorecard_for(rt, caller, month_of(month), scale=scale)

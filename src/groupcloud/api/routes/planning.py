"""Capacity plans from app activity, and the digital KPI scorecard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from groupcloud.analytics.months import Month
from groupcloud.api.deps import Caller, Rt, Scale
from groupcloud.errors import InvalidInput
from groupcloud.schemas.planning import CapacityPlan, Scorecard
from groupcloud.services.analytics import capacity, kpis

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), errors=[{"field": "month", "message": str(exc)}]) from None


@router.get("/capacity", summary="Compute per company for the next months, from the MAU forecast")
def capacity_plan(
    rt: Rt,
    caller: Caller,
    month: Annotated[str, Query(description="Last month of MAU history (Asia/Seoul), YYYY-MM.")],
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
    quotas, hosts to add, and the hosts sharing saves."""
    return capacity.capacity_plan(
        rt.settings, _month(month), pool_hosts=pool_hosts, scale=scale, db=rt.db
    )


@router.get("/scorecard", summary="Digital KPIs per company against their targets")
def scorecard(
    rt: Rt,
    caller: Caller,
    month: Annotated[str, Query(description="Asia/Seoul month, YYYY-MM.", examples=["2022-10"])],
    scale: Scale = 1.0,
) -> Scorecard:
    """Each company's KPIs from the server's definitions (GROUPCLOUD_ANALYTICS_KPIS or the
    built-in ones): value, the month before, target, status (on_track, at_risk, off_track,
    no_data) and trend. Cost avoided by sharing is an estimate until metering exists."""
    return kpis.scorecard(rt.settings, _month(month), scale=scale)

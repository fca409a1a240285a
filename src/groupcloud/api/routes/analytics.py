"""App activity analytics: loading events, exact MAU and overlap per Asia/Seoul month."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from groupcloud.analytics.events import app_list
from groupcloud.api.deps import Caller, Rt, month_of, month_query
from groupcloud.schemas.analytics import (
    EventBatch,
    ForecastReport,
    IngestSummary,
    MauReport,
    OverlapReport,
    RollingReport,
    SketchEstimate,
    TrendReport,
)
from groupcloud.services.analytics import activity, trends

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

MonthQuery = Annotated[str, month_query("Asia/Seoul calendar month, YYYY-MM.")]
KQuery = Annotated[
    int | None,
    Query(
        ge=1, le=10**9, description="Suppress counts of 1..k-1 persons (default: the server's k)."
    ),
]


@router.post("/events", summary="Load a batch of activity events")
def ingest_events(rt: Rt, caller: Caller, body: EventBatch) -> IngestSummary:
    """Each event is checked on its own: bad ones are listed by position and the good ones
    load. An event_id loaded before (by any batch or file) is counted as a duplicate and not
    stored again, so a retried batch is harmless. Person ids are replaced by keyed hashes
    before anything is stored. Needs a group-admin token."""
    return activity.load_events(rt, caller, body.events)


@router.get("/mau", summary="Exact MAU of a month, per app and integrated")
def mau(
    rt: Rt,
    caller: Caller,
    month: MonthQuery,
    k: KQuery = None,
    target: Annotated[
        int | None, Query(ge=1, le=10**12, description="Integrated MAU target.")
    ] = None,
    approx: Annotated[
        bool,
        Query(description="Estimate from the stored Theta sketches, with bounds (exact: false)."),
    ] = False,
) -> MauReport:
    """Distinct persons per app and across all apps (each person once), with the month
    before, average DAU, stickiness and progress to the target. Exact, or with
    ``approx=true`` estimated from Theta sketches with 2-standard-deviation bounds."""
    return activity.mau_report(rt.settings, month_of(month), k=k, target=target, approx=approx)


@router.get("/sketch", summary="Approximate distinct persons of any span and set of apps")
def sketch(
    rt: Rt,
    caller: Caller,
    first: Annotated[date, Query(description="First Seoul day, YYYY-MM-DD.")],
    last: Annotated[date, Query(description="Last Seoul day (inclusive), YYYY-MM-DD.")],
    apps: Annotated[
        str | None, Query(description="Comma-separated apps (default: all registered).")
    ] = None,
    k: KQuery = None,
) -> SketchEstimate:
    """Persons active on any of the days in any of the apps, each once: the union of the
    stored Theta sketches (month sketches for whole months), with bounds at 2 standard
    deviations."""
    chosen = app_list(apps)
    return activity.sketch_estimate(rt.settings, first, last, apps=chosen, k=k)


@router.get("/overlap", summary="Overlap between apps in a month")
def overlap(rt: Rt, caller: Caller, month: MonthQuery, k: KQuery = None) -> OverlapReport:
    """Persons in both apps of each pair, and persons per exact combination of apps."""
    return activity.overlap_report(rt.settings, month_of(month), k=k)


@router.get("/trend", summary="Monthly trend: MAU, WAU, new, retained, resurrected, churned")
def trend(
    rt: Rt,
    caller: Caller,
    first: Annotated[str, month_query("First Seoul month, YYYY-MM.")],
    last: Annotated[str, month_query("Last Seoul month (inclusive), YYYY-MM.")],
    k: KQuery = None,
) -> TrendReport:
    """Exact, month by month, integrated and per app, with MoM and YoY growth."""
    return trends.trend_report(rt.settings, month_of(first), month_of(last), k=k)


@router.get("/rolling", summary="Rolling 30-day MAU, day by day")
def rolling(
    rt: Rt,
    caller: Caller,
    first: Annotated[date, Query(description="First Seoul day, YYYY-MM-DD.")],
    last: Annotated[date, Query(description="Last Seoul day (inclusive), YYYY-MM-DD.")],
    apps: Annotated[
        str | None, Query(description="Comma-separated apps (default: all, integrated).")
    ] = None,
    k: KQuery = None,
) -> RollingReport:
    """Distinct persons active in the 30 Seoul days ending on each day (exact)."""
    chosen = app_list(apps)
    return trends.rolling_report(rt.settings, first, last, apps=chosen, k=k)


@router.get("/forecast", summary="The month the integrated MAU reaches the target")
def forecast_target(
    rt: Rt,
    caller: Caller,
    first: Annotated[
        str | None, month_query("First month fitted (default: 12 months back).")
    ] = None,
    last: Annotated[
        str | None, month_query("Last month fitted (default: the last stored).")
    ] = None,
    model: Annotated[
        Literal["linear", "loglinear"],
        Query(description="linear: mau = a + b*t; loglinear: ln mau = a + b*t."),
    ] = "linear",
    target: Annotated[
        int | None, Query(ge=1, le=10**12, description="Integrated MAU target.")
    ] = None,
) -> ForecastReport:
    """A least-squares trend of the exact integrated MAU, the fit (slope, r2) and the
    first month whose fitted value reaches the target."""
    return trends.forecast_report(
        rt.settings,
        first=None if first is None else month_of(first),
        last=None if last is None else month_of(last),
        model=model,
        target=target,
    )

"""Request and response documents of the analytics API (and the CLI's --json output)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from groupcloud.schemas.base import Input

__all__ = [
    "BadRowOut",
    "Combination",
    "DayCount",
    "EventBatch",
    "ForecastReport",
    "IngestSummary",
    "MauReport",
    "MonthCount",
    "OverlapReport",
    "RollingReport",
    "SegmentMetrics",
    "SketchEstimate",
    "TrendMonth",
    "TrendReport",
]

MAX_BATCH = 10_000


class EventBatch(Input):
    """Activity events to load. Each is checked on its own: bad ones are reported by
    position (``line``, 1-based) and the good ones still load."""

    events: list[dict[str, Any]] = Field(
        max_length=MAX_BATCH,
        description="Objects with event_id, app, person_id, occurred_at (ISO 8601 with a UTC "
        f"offset) and kind; at most {MAX_BATCH} per request.",
        examples=[
            [
                {
                    "event_id": "e-1",
                    "app": "won_banking",
                    "person_id": "P0001",
                    "occurred_at": "2026-02-01T09:30:00+09:00",
                    "kind": "login",
                }
            ]
        ],
    )


class BadRowOut(BaseModel):
    line: int = Field(description="1-based line (CSV, NDJSON), row (Parquet) or batch position.")
    field: str = Field(description="The column at fault, or 'line' for the record as a whole.")
    reason: str


class IngestSummary(BaseModel):
    """What one source (a file or an API batch) did to the event store."""

    source: str | None = Field(default=None, description="The file, when ingesting files.")
    received: int = Field(description="Rows read.")
    loaded: int = Field(description="Events stored (their event_id was new).")
    duplicates: int = Field(description="Good rows whose event_id was loaded before.")
    bad: int = Field(description="Rows refused; the first ones are listed in bad_rows.")
    bad_rows: list[BadRowOut] = Field(default_factory=list)
    new_apps: list[str] = Field(description="App ids registered by this source.")


class SegmentMetrics(BaseModel):
    """Exact metrics of one app, or of all apps (``app`` null: integrated), in the month.
    Counts of 1..k-1 persons are null (suppressed), and so is what is computed from them."""

    app: str | None
    mau: int | None
    previous_mau: int | None = Field(description="MAU of the month before.")
    mom_growth: float | None = Field(description="mau / previous_mau - 1.")
    average_dau: float | None = Field(description="Mean distinct persons per Seoul day.")
    stickiness: float | None = Field(description="average_dau / mau.")
    suppressed: bool
    mau_lower: int | None = Field(
        default=None, description="Approximate reports: lower bound of mau (2 std devs)."
    )
    mau_upper: int | None = Field(
        default=None, description="Approximate reports: upper bound of mau (2 std devs)."
    )


class MauReport(BaseModel):
    """Monthly active users of one Asia/Seoul calendar month: each person once per app, and
    once across all apps (integrated)."""

    month: str
    exact: bool = Field(
        description="True: counted exactly from every stored event. False: estimated from "
        "the stored Theta sketches (see error_bound and each segment's mau_lower/mau_upper)."
    )
    error_bound: str | None = Field(
        default=None, description="How the bounds of an approximate report are meant."
    )
    integrated_mau: int | None
    apps: dict[str, int | None] = Field(description="MAU per registered app.")
    k: int = Field(description="Counts of fewer persons than this are suppressed (null).")
    target: int
    progress: float | None = Field(description="integrated_mau / target.")
    segments: list[SegmentMetrics] = Field(description="Integrated first, then each app.")


class Combination(BaseModel):
    apps: list[str] = Field(description="Exactly these apps (and no other) in the month.")
    persons: int | None


class OverlapReport(BaseModel):
    """Persons active in both apps of each pair (diagonal: the app's MAU), and the persons
    of every exact app combination, in one Asia/Seoul month."""

    month: str
    k: int
    apps: list[str]
    matrix: dict[str, dict[str, int | None]]
    combinations: list[Combination] = Field(description="Largest first.")


class SketchEstimate(BaseModel):
    """Distinct persons of a span of Seoul days in a set of apps, from the union of stored
    Theta sketches (whole months from month sketches, the rest from day sketches)."""

    first_day: str
    last_day: str
    apps: list[str] = Field(description="The apps whose persons are counted (each once).")
    estimate: int | None = Field(description="Null when below k (suppressed).")
    lower: int | None = Field(description="Lower bound, std_devs standard deviations.")
    upper: int | None = Field(description="Upper bound, std_devs standard deviations.")
    std_devs: int = Field(description="2: about 95.4% confidence.")
    exact: bool = Field(description="The sketches held every hash: the figure is exact.")
    sketches: int = Field(description="Stored sketches the union read.")
    k: int


class TrendMonth(BaseModel):
    """One segment (``app`` null: integrated) in one month. Counts of 1..k-1 persons are
    null, and so is what is computed from them."""

    month: str
    app: str | None
    mau: int | None
    wau: float | None = Field(
        description="Average over the ISO weeks (Monday-Sunday, Seoul) whose Thursday is in "
        "the month of the distinct persons active in the week."
    )
    new: int | None = Field(description="First active (in this segment) ever this month.")
    retained: int | None = Field(description="Active this month and the month before.")
    resurrected: int | None = Field(
        description="Active this month, not the month before, but in some earlier month."
    )
    churned: int | None = Field(description="Active the month before, not this month.")
    mom_growth: float | None = Field(description="mau / mau of the month before - 1.")
    yoy_growth: float | None = Field(description="mau / mau of the month a year before - 1.")


class TrendReport(BaseModel):
    """Exact monthly activity per segment over a span of Asia/Seoul months. "Ever" means
    in any stored month up to then."""

    first: str
    last: str
    k: int
    rows: list[TrendMonth] = Field(description="Month by month; integrated first, then apps.")


class DayCount(BaseModel):
    day: str
    persons: int | None


class RollingReport(BaseModel):
    """Distinct persons active in the 30 Seoul days ending on each day (exact)."""

    first_day: str
    last_day: str
    apps: list[str] | None = Field(description="Null: all apps (integrated).")
    window_days: int
    k: int
    days: list[DayCount]


class MonthCount(BaseModel):
    month: str
    mau: int


class ForecastReport(BaseModel):
    """The month the integrated MAU reaches the target, by a least-squares trend over the
    months used (see docs/analytics.md, forecast)."""

    model: str = Field(description="linear: mau = a + b*t; loglinear: ln mau = a + b*t.")
    target: int
    months_used: list[MonthCount] = Field(description="Exact integrated MAU fitted.")
    intercept: float
    slope: float = Field(description="Persons a month (linear) or log growth a month.")
    monthly_growth: float | None = Field(description="loglinear: e^slope - 1.")
    r2: float | None = Field(description="Variance explained; null with two months.")
    reached: bool = Field(description="The last month used is already at the target.")
    forecast_month: str | None = Field(
        description="First month whose fitted MAU reaches the target; null: not within "
        "20 years on this trend (or already reached)."
    )
    projection: list[MonthCount] = Field(description="Fitted MAU up to the forecast month.")

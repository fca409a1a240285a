"""Request and response documents of the analytics API (and the CLI's --json output)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BadRowOut",
    "Combination",
    "EventBatch",
    "IngestSummary",
    "MauReport",
    "OverlapReport",
    "SegmentMetrics",
    "SketchEstimate",
]

MAX_BATCH = 10_000


class EventBatch(BaseModel):
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

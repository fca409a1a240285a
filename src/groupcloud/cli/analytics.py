"""``groupcloud mau``: app activity analytics on the data directory itself (no server):
ingest event files, exact MAU and overlap reports, synthetic events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from groupcloud.analytics import forecast
from groupcloud.analytics.events import app_list
from groupcloud.analytics.months import Month
from groupcloud.cli.output import EXIT_API, JsonFlag, console, errors, fail
from groupcloud.config import Settings
from groupcloud.errors import GroupcloudError
from groupcloud.schemas.analytics import IngestSummary, MauReport, OverlapReport
from groupcloud.services.analytics import activity, trends

__all__ = ["mau_app"]

mau_app = typer.Typer(
    help="Monthly active users of the group's apps (works on GROUPCLOUD_DATA_DIR directly, "
    "no server needed). Months are Asia/Seoul calendar months."
)
SHOWN_BAD = 20


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _months(text: str) -> list[Month]:
    first, _, last = text.partition("..")
    span = _month(first).until(_month(last or first))
    if not span:
        raise typer.BadParameter(f"{text!r}: the last month is before the first")
    return span


MonthOption = Annotated[
    Month, typer.Option("--month", parser=_month, metavar="YYYY-MM", help="Seoul month.")
]
KOption = Annotated[
    int | None,
    typer.Option("--k", min=1, help="Suppress counts of 1..k-1 persons (GROUPCLOUD_ANALYTICS_K)."),
]


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal ends the command with ``error: code: detail`` and exit code 1."""
    try:
        yield
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None


def _summary_line(s: IngestSummary) -> str:
    apps = f"; new apps: {', '.join(s.new_apps)}" if s.new_apps else ""
    return (
        f"{s.source}: {s.received} rows, {s.loaded} loaded, {s.duplicates} duplicates, "
        f"{s.bad} bad{apps}"
    )


@mau_app.command("ingest")
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help="CSV, NDJSON or Parquet files (CSV/NDJSON may be .gz).")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Load activity events (event_id, app, person_id, occurred_at, kind). Bad rows are
    listed with their line and skipped; an event_id loaded before is never loaded again.
    Needs GROUPCLOUD_ANALYTICS_SECRET."""
    started = time.perf_counter()
    with _refusals():
        summaries = activity.ingest_files(Settings(), files)
    elapsed = time.perf_counter() - started
    for s in summaries:
        for bad in s.bad_rows[:SHOWN_BAD]:
            errors.print(f"{s.source}:{bad.line}: {bad.field}: {bad.reason}", highlight=False)
        if s.bad > SHOWN_BAD:
            errors.print(f"{s.source}: ... and {s.bad - SHOWN_BAD} more bad rows", highlight=False)
    total = {
        key: sum(getattr(s, key) for s in summaries)
        for key in ("received", "loaded", "duplicates", "bad")
    }
    new_apps = [app for s in summaries for app in s.new_apps]
    if as_json:
        files_out = [s.model_dump(mode="json") for s in summaries]
        print(json.dumps({"files": files_out, **total, "new_apps": new_apps, "seconds": elapsed}))
        return
    for s in summaries:
        console.print(_summary_line(s), highlight=False)
    if len(summaries) > 1:
        console.print(
            f"total: {total['received']} rows, {total['loaded']} loaded, "
            f"{total['duplicates']} duplicates, {total['bad']} bad",
            highlight=False,
        )
    console.print(
        f"in {elapsed:.1f} s ({total['received'] / max(elapsed, 1e-9):,.0f} rows/s)",
        highlight=False,
    )


def _count(value: int | None) -> str:
    return "suppressed" if value is None else f"{value:,}"


def _ratio(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f}%" if percent else f"{value:.3f}"


def _bounds(lower: int | None, upper: int | None) -> str:
    return "-" if lower is None or upper is None else f"{lower:,}..{upper:,}"


def _render_report(report: MauReport) -> None:
    how = "exact" if report.exact else "approximate"
    table = Table(title=f"MAU {report.month} (Asia/Seoul, {how}, k={report.k})")
    columns = ["APP", "MAU", "PREV MONTH", "MOM", "AVG DAU", "DAU/MAU"]
    if not report.exact:
        columns.insert(2, "MAU BOUNDS")
    for column in columns:
        table.add_column(column, justify="left" if column == "APP" else "right")
    for s in report.segments:
        cells = [
            s.app or "[bold]integrated[/]",
            _count(s.mau),
            _count(s.previous_mau),
            _ratio(s.mom_growth),
            "-" if s.average_dau is None else f"{s.average_dau:,.1f}",
            _ratio(s.stickiness, percent=False),
        ]
        if not report.exact:
            cells.insert(2, _bounds(s.mau_lower, s.mau_upper))
        table.add_row(*cells)
    console.print(table)
    if report.error_bound:
        console.print(f"approximate: {report.error_bound}", highlight=False)
    reached = "-" if report.progress is None else f"{report.progress * 100:.2f}%"
    console.print(
        f"integrated MAU {_count(report.integrated_mau)} of target {report.target:,}: {reached}",
        highlight=False,
    )


@mau_app.command("report")
def report(
    month: MonthOption,
    k: KOption = None,
    target: Annotated[
        int | None,
        typer.Option(min=1, help="Integrated MAU target (GROUPCLOUD_ANALYTICS_TARGET_MAU)."),
    ] = None,
    approx: Annotated[
        bool,
        typer.Option(
            "--approx", help="From the stored Theta sketches, with bounds (no event scan)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """MAU of a month per app and integrated (each person once across all apps), with
    growth on the month before, average DAU, stickiness and progress to the target. Exact
    by default; --approx: estimates from the Theta sketches with 2-standard-deviation
    bounds."""
    with _refusals():
        made = activity.mau_report(Settings(), month, k=k, target=target, approx=approx)
    if as_json:
        print(made.model_dump_json())
    else:
        _render_report(made)


def _render_overlap(made: OverlapReport) -> None:
    table = Table(title=f"persons in both apps, {made.month} (k={made.k})")
    table.add_column("APP")
    for app in made.apps:
        table.add_column(app, justify="right")
    for app in made.apps:
        table.add_row(app, *(_count(made.matrix[app][b]) for b in made.apps))
    console.print(table)
    combos = Table(title="persons per exact app combination")
    combos.add_column("APPS")
    combos.add_column("PERSONS", justify="right")
    for combo in made.combinations:
        combos.add_row(" + ".join(combo.apps), _count(combo.persons))
    console.print(combos)


@mau_app.command("overlap")
def overlap(month: MonthOption, k: KOption = None, as_json: JsonFlag = False) -> None:
    """Overlap between apps in a month: persons in each pair, and in each exact combination."""
    with _refusals():
        made = activity.overlap_report(Settings(), month, k=k)
    if as_json:
        print(made.model_dump_json())
    else:
        _render_overlap(made)


def _day_span(text: str) -> tuple[date, date]:
    """``YYYY-MM[-DD][..YYYY-MM[-DD]]``: a month stands for all its days."""
    first, _, last = text.partition("..")

    def edge(part: str, end: bool) -> date:
        if len(part) == 7:
            month = _month(part)
            return month.last_day() if end else month.first_day
        try:
            return date.fromisoformat(part)
        except ValueError:
            raise typer.BadParameter(f"{part!r}: write YYYY-MM or YYYY-MM-DD") from None

    start, stop = edge(first, False), edge(last or first, True)
    if stop < start:
        raise typer.BadParameter(f"{text!r}: the span ends before it starts")
    return start, stop


@mau_app.command("sketch")
def sketch(
    span: Annotated[
        str,
        typer.Option(
            "--span",
            metavar="YYYY-MM[-DD][..YYYY-MM[-DD]]",
            help="Seoul days to cover (a month means all its days), e.g. 2022-01..2022-12.",
        ),
    ],
    apps: Annotated[
        str | None, typer.Option(help="Comma-separated apps (default: all registered).")
    ] = None,
    k: KOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Approximate distinct persons of any span of days in any set of apps (each person
    once), from the union of the stored Theta sketches, with 2-standard-deviation bounds."""
    first, last = _day_span(span)
    chosen = app_list(apps)
    started = time.perf_counter()
    with _refusals():
        made = activity.sketch_estimate(Settings(), first, last, apps=chosen, k=k)
    elapsed = time.perf_counter() - started
    if as_json:
        print(made.model_dump_json())
        return
    console.print(
        f"{made.first_day}..{made.last_day} {' + '.join(made.apps)}: "
        f"{_count(made.estimate)} persons ({'exact' if made.exact else 'estimate'}; "
        f"{_bounds(made.lower, made.upper)} at {made.std_devs} std devs) "
        f"from {made.sketches} sketches in {elapsed * 1000:.1f} ms",
        highlight=False,
    )


@mau_app.command("trend")
def trend(
    months: Annotated[
        str, typer.Option(metavar="YYYY-MM[..YYYY-MM]", help="Seoul months to show.")
    ],
    k: KOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Month by month, integrated and per app: MAU, average WAU (ISO weeks), new,
    retained, resurrected and churned persons, MoM and YoY growth (exact)."""
    span = _months(months)
    with _refusals():
        made = trends.trend_report(Settings(), span[0], span[-1], k=k)
    if as_json:
        print(made.model_dump_json())
        return
    table = Table(title=f"MAU trend {made.first}..{made.last} (Asia/Seoul, exact, k={made.k})")
    for column in ("MONTH", "APP", "MAU", "AVG WAU", "NEW", "RETAINED", "RESURRECTED",
                   "CHURNED", "MOM", "YOY"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("MONTH", "APP") else "right")
    for row in made.rows:
        table.add_row(
            row.month,
            row.app or "[bold]integrated[/]",
            _count(row.mau),
            "suppressed" if row.wau is None else f"{row.wau:,.1f}",
            _count(row.new),
            _count(row.retained),
            _count(row.resurrected),
            _count(row.churned),
            _ratio(row.mom_growth),
            _ratio(row.yoy_growth),
        )
    console.print(table)


@mau_app.command("rolling")
def rolling(
    span: Annotated[
        str,
        typer.Option("--span", metavar="YYYY-MM[-DD][..YYYY-MM[-DD]]", help="Seoul days to show."),
    ],
    apps: Annotated[
        str | None, typer.Option(help="Comma-separated apps (default: all, integrated).")
    ] = None,
    k: KOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Rolling 30-day MAU: distinct persons active in the 30 Seoul days ending on each day
    (exact)."""
    first, last = _day_span(span)
    chosen = app_list(apps)
    with _refusals():
        made = trends.rolling_report(Settings(), first, last, apps=chosen, k=k)
    if as_json:
        print(made.model_dump_json())
        return
    table = Table(title=f"persons in the {made.window_days} days ending on each day (k={made.k})")
    table.add_column("DAY")
    table.add_column("PERSONS", justify="right")
    for entry in made.days:
        table.add_row(entry.day, _count(entry.persons))
    console.print(table)


@mau_app.command("forecast")
def forecast_command(
    months: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM..YYYY-MM", help="Months to fit (default: the last 12 stored)."
        ),
    ] = None,
    model: Annotated[
        str, typer.Option(help="linear (persons a month) or loglinear (growth rate).")
    ] = "linear",
    target: Annotated[
        int | None,
        typer.Option(min=1, help="Integrated MAU target (GROUPCLOUD_ANALYTICS_TARGET_MAU)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The month the integrated MAU reaches the target on a least-squares trend of the
    exact integrated MAU (the fit and its r2 are shown)."""
    if model not in forecast.MODELS:
        raise typer.BadParameter(f"--model must be one of {', '.join(forecast.MODELS)}")
    span = _months(months) if months else None
    with _refusals():
        made = trends.forecast_report(
            Settings(),
            first=span[0] if span else None,
            last=span[-1] if span else None,
            model=model,
            target=target,
        )
    if as_json:
        print(made.model_dump_json())
        return
    table = Table(title=f"integrated MAU and the {made.model} trend (target {made.target:,})")
    table.add_column("MONTH")
    table.add_column("MAU", justify="right")
    table.add_column("", justify="left")
    for entry in made.months_used:
        table.add_row(entry.month, f"{entry.mau:,}", "observed")
    for entry in made.projection:
        table.add_row(entry.month, f"{entry.mau:,}", "trend")
    console.print(table)
    unit = "persons a month" if made.model == "linear" else "log growth a month"
    growth_note = (
        f" ({made.monthly_growth * 100:+.2f}% a month)" if made.monthly_growth is not None else ""
    )
    r2 = "-" if made.r2 is None else f"{made.r2:.3f}"
    console.print(
        f"fit over {len(made.months_used)} months: slope {made.slope:,.4g} {unit}{growth_note},"
        f" r2 {r2}",
        highlight=False,
    )
    if made.reached:
        console.print("the target is already reached", highlight=False)
    elif made.forecast_month:
        console.print(f"target reached in {made.forecast_month} on this trend", highlight=False)
    else:
        console.print("the target is not reached within 20 years on this trend", highlight=False)


@mau_app.command("generate")
def generate(
    out: Annotated[
        Path,
        typer.Option(help="File to write: .parquet, or .csv or .ndjson (optionally .gz)."),
    ],
    persons: Annotated[int, typer.Option(min=1, help="Persons in the population.")] = 10_000,
    months: Annotated[
        str,
        typer.Option(metavar="YYYY-MM[..YYYY-MM]", help="Seoul months to cover."),
    ] = "2021-12..2022-10",
    seed: Annotated[int, typer.Option(help="Same seed, same events (and event ids).")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write seeded synthetic events calibrated to the banking app's public MAU (5.64M at
    the end of 2021, 7.19M in October 2022, with --persons 10000000); the assumptions are in
    docs/analytics.md. Streams: any size needs little memory."""
    span = _months(months)
    if out.exists() and not force:
        raise fail(f"{out} exists; pass --force to overwrite it", 2)
    started = time.perf_counter()
    with _refusals():
        written = activity.write_synthetic(out, persons, span, seed)
    elapsed = time.perf_counter() - started
    console.print(
        f"wrote {written:,} events ({persons:,} persons, {span[0]}..{span[-1]}, seed {seed}) "
        f"to {out} in {elapsed:.1f} s",
        highlight=False,
    )

"""``groupcloud kpi``: the digital KPI scorecard per company and the import of survey
scores, on the data directory (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from groupcloud.analytics.months import Month
from groupcloud.cli.output import EXIT_API, JsonFlag, console, errors, fail
from groupcloud.config import Settings
from groupcloud.errors import GroupcloudError
from groupcloud.schemas.planning import KpiLine, Scorecard
from groupcloud.services.analytics import kpis

__all__ = ["kpi_app"]

kpi_app = typer.Typer(
    help="Digital KPIs per company (MAU, retention, cost per MAU, cost avoided by sharing, "
    "survey scores) against their targets. Works on GROUPCLOUD_DATA_DIR, no server needed."
)
EXIT_BAD_ROWS = 1
STYLE = {"on_track": "green", "at_risk": "yellow", "off_track": "red", "no_data": "dim"}
ARROW = {"improving": "▲", "worsening": "▼", "flat": "=", "unknown": "-"}


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _figure(value: float | None, row: KpiLine) -> str:
    if value is None:
        return "-"
    if row.unit == "ratio":
        return f"{value * 100:.1f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _render(card: Scorecard) -> None:
    table = Table(title=f"digital KPI scorecard {card.month}")
    for column in ("COMPANY", "KPI", "VALUE", "TARGET", "STATUS", "TREND", "PREV MONTH", "UNIT"):
        table.add_column(
            column, justify="right" if column in ("VALUE", "TARGET", "PREV MONTH") else "left"
        )
    for row in card.rows:
        better = "≥" if row.direction == "higher" else "≤"
        table.add_row(
            row.company,
            row.kpi + (" (estimate)" if row.estimate else ""),
            _figure(row.value, row),
            f"{better} {_figure(row.target, row)}",
            f"[{STYLE[row.status]}]{row.status.replace('_', ' ')}[/]",
            f"{ARROW[row.trend]} {row.trend}",
            _figure(row.previous, row),
            row.unit,
        )
    console.print(table)
    console.print(
        f"status: on track meets the target; at risk within {card.at_risk_band:.0%} of it; "
        f"off track beyond. definitions: {card.definitions}",
        highlight=False,
    )


@kpi_app.command("scorecard")
def scorecard(
    month: Annotated[
        Month, typer.Option(parser=_month, metavar="YYYY-MM", help="Asia/Seoul month.")
    ],
    definitions: Annotated[
        Path | None,
        typer.Option(
            help="KPI definitions, YAML or JSON (default: GROUPCLOUD_ANALYTICS_KPIS, else "
            "built in; see examples/kpis.yaml)."
        ),
    ] = None,
    scale: Annotated[
        float, typer.Option(min=0, help="Multiply MAU counts (a sampled store).")
    ] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Every KPI of every company for the month: value, target, status (on track / at risk
    / off track) and trend on the month before."""
    try:
        card = kpis.scorecard(Settings(), month, definitions=definitions, scale=scale)
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    if as_json:
        print(card.model_dump_json())
    else:
        _render(card)


@kpi_app.command("import-survey")
def import_survey(
    file: Annotated[Path, typer.Argument(help="CSV with the header company,kpi,month,value.")],
    as_json: JsonFlag = False,
) -> None:
    """Import survey scores (e.g. NPS, CSAT) for survey KPIs; a score imported again for
    the same company, KPI and month replaces the old one. Bad rows are listed with their
    line and skipped; the exit code is 1 if there were any."""
    try:
        done = kpis.import_survey(Settings(), file)
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    for bad in done.bad_rows:
        errors.print(f"{file}:{bad['line']}: {bad['field']}: {bad['reason']}", highlight=False)
    if as_json:
        print(json.dumps(done.model_dump(mode="json")))
    else:
        console.print(
            f"{file}: {done.received} rows, {done.imported} imported, {done.bad} bad",
            highlight=False,
        )
    if done.bad:
        raise typer.Exit(EXIT_BAD_ROWS)

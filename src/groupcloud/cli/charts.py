"""``groupcloud mau chart``: PNG charts of MAU against the target and of app overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from groupcloud.analytics.months import Month
from groupcloud.cli.output import EXIT_API, console, fail
from groupcloud.config import Settings
from groupcloud.errors import GroupcloudError

__all__ = ["chart_app", "register"]

chart_app = typer.Typer(help="PNG charts of the MAU reports (no server needed).")


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


Out = Annotated[Path, typer.Option("--out", help="PNG file to write (replaced if it exists).")]
K = Annotated[
    int | None,
    typer.Option("--k", min=1, help="Suppress counts of 1..k-1 persons (GROUPCLOUD_ANALYTICS_K)."),
]


@chart_app.command("trend")
def trend(
    first: Annotated[
        Month, typer.Option("--from", parser=_month, metavar="YYYY-MM", help="First month.")
    ],
    last: Annotated[
        Month, typer.Option("--to", parser=_month, metavar="YYYY-MM", help="Last month.")
    ],
    out: Out,
    k: K = None,
    target: Annotated[
        int | None,
        typer.Option(min=1, help="Target line (default: GROUPCLOUD_ANALYTICS_TARGET_MAU)."),
    ] = None,
) -> None:
    """Integrated MAU (bold) and each app's MAU by month, with the target as a dashed line;
    suppressed months are gaps."""
    from groupcloud.services.analytics.charts import trend_chart  # matplotlib only when charting

    try:
        size = trend_chart(Settings(), first, last, out, k=k, target=target)
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    console.print(f"wrote {out} ({size:,} bytes, {first}..{last})", highlight=False)


@chart_app.command("overlap")
def overlap(
    month: Annotated[
        Month, typer.Option("--month", parser=_month, metavar="YYYY-MM", help="Seoul month.")
    ],
    out: Out,
    k: K = None,
) -> None:
    """Heatmap of persons in both apps of each pair (diagonal: each app's MAU); cells below
    k are hatched and labelled suppressed."""
    from groupcloud.services.analytics.charts import overlap_chart

    try:
        size = overlap_chart(Settings(), month, out, k=k)
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    console.print(f"wrote {out} ({size:,} bytes, {month})", highlight=False)


def register(mau_app: typer.Typer) -> None:
    """Add ``chart trend`` and ``chart overlap`` to ``groupcloud mau``."""
    mau_app.add_typer(chart_app, name="chart")

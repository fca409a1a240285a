"""PNG charts from the MAU and overlap reports, written to a file."""

from __future__ import annotations

import os
from pathlib import Path

from groupcloud.analytics.charts import overlap_png, trend_png
from groupcloud.analytics.months import Month
from groupcloud.config import Settings
from groupcloud.errors import InvalidInput
from groupcloud.services.analytics.activity import mau_report, overlap_report

__all__ = ["MAX_TREND_MONTHS", "overlap_chart", "trend_chart"]

MAX_TREND_MONTHS = 120


def _write(out: Path, png: bytes) -> int:
    """Write whole or not at all (a reader never sees half a PNG)."""
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_bytes(png)
    os.replace(temporary, out)
    return len(png)


def trend_chart(
    settings: Settings,
    first: Month,
    last: Month,
    out: Path,
    *,
    k: int | None = None,
    target: int | None = None,
) -> int:
    """Integrated and per-app MAU of ``first``..``last`` against the target; bytes written."""
    months = first.until(last)
    if not months or len(months) > MAX_TREND_MONTHS:
        raise InvalidInput(
            f"the months must run forward from {first}, at most {MAX_TREND_MONTHS} of them",
            errors=[{"field": "to", "message": "before --from, or too far after it"}],
        )
    reports = [mau_report(settings, m, k=k, target=target) for m in months]
    apps = sorted({a for r in reports for a in r.apps})
    series = {a: [r.apps.get(a) for r in reports] for a in apps}
    png = trend_png(
        [str(m) for m in months], [r.integrated_mau for r in reports], series, reports[0].target
    )
    return _write(out, png)


def overlap_chart(settings: Settings, month: Month, out: Path, *, k: int | None = None) -> int:
    """The month's app-overlap heatmap (suppressed cells marked); bytes written."""
    made = overlap_report(settings, month, k=k)
    return _write(out, overlap_png(made.month, made.apps, made.matrix))

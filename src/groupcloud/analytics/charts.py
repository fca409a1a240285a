"""PNG charts of the MAU reports: integrated and per-app MAU against the target line, and
the app-overlap heatmap with suppressed cells shown as such.

Rendered with matplotlib's Agg canvas on a ``Figure`` of its own (no pyplot state, no
display needed, safe in a server thread); the functions return the PNG bytes and the
services write them."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["PNG_MAGIC", "overlap_png", "trend_png"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DPI = 110


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def trend_png(
    months: Sequence[str],
    integrated: Sequence[int | None],
    apps: Mapping[str, Sequence[int | None]],
    target: int,
) -> bytes:
    """Lines of integrated MAU (bold) and each app's MAU by month, and the target as a
    dashed line; a suppressed or missing month is a gap in its line, not a zero."""
    figure = Figure(figsize=(9, 5))
    ax = figure.add_subplot()
    x = list(range(len(months)))

    def series(values: Sequence[int | None]) -> list[float]:
        return [float("nan") if v is None else float(v) for v in values]

    ax.plot(x, series(integrated), marker="o", linewidth=2.5, color="black", label="integrated")
    for app, values in sorted(apps.items()):
        ax.plot(x, series(values), marker=".", linewidth=1.2, label=app)
    ax.axhline(target, linestyle="--", color="tab:red", label=f"target {target:,}")
    tilted = len(months) > 6
    ax.set_xticks(x, list(months), rotation=45 if tilted else 0, ha="right" if tilted else "center")
    last = next((v for v in reversed(integrated) if v is not None), None)
    if last is not None and target > 0:
        ax.annotate(
            f"{last:,} = {last / target:.1%} of target",
            xy=(x[len(integrated) - 1 - list(reversed(integrated)).index(last)], last),
            xytext=(-10, 10),
            textcoords="offset points",
            ha="right",
            fontsize="small",
        )
    ax.set_ylabel("monthly active users (each person once)")
    ax.set_title(f"MAU {months[0]}..{months[-1]} (Asia/Seoul months) vs target")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _png(figure)


def overlap_png(
    month: str, apps: Sequence[str], matrix: Mapping[str, Mapping[str, int | None]]
) -> bytes:
    """Persons in both apps of each pair (the diagonal is each app's MAU) as a heatmap;
    a cell below k is hatched grey and labelled ``suppressed``, never coloured."""
    size = max(len(apps), 1)
    figure = Figure(figsize=(2 + 1.3 * size, 1.5 + 1.1 * size))
    ax = figure.add_subplot()
    shown = [v for a in apps for b in apps if (v := matrix[a][b]) is not None]
    norm = Normalize(vmin=0, vmax=max(shown, default=1) or 1)
    grid = [
        [float("nan") if matrix[a][b] is None else float(matrix[a][b] or 0) for b in apps]
        for a in apps
    ]
    image = ax.imshow(grid, cmap="Blues", norm=norm)
    for i, a in enumerate(apps):
        for j, b in enumerate(apps):
            value = matrix[a][b]
            if value is None:
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        facecolor="lightgrey",
                        hatch="//",
                        edgecolor="grey",
                    )
                )
                ax.text(j, i, "suppressed", ha="center", va="center", fontsize=8, color="dimgrey")
            else:
                dark = norm(value) > 0.6
                ax.text(
                    j,
                    i,
                    f"{value:,}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(len(apps)), list(apps), rotation=30, ha="right")
    ax.set_yticks(range(len(apps)), list(apps))
    ax.set_title(f"persons in both apps, {month}")
    figure.colorbar(image, ax=ax, label="persons")
    figure.tight_layout()
    return _png(figure)

"""Scorers: rank the hosts that fit, 0 (worst) to 100 (best)."""

from __future__ import annotations

from groupcloud.domain.allocation import Strategy
from groupcloud.placement.index import CapacityIndex, Floats, Rows

__all__ = ["score", "utilisation_after"]


def utilisation_after(
    index: CapacityIndex, cols: list[int], need: list[int], rows: Rows | None = None
) -> Floats:
    """Mean share of capacity in use after adding one unit, over the requested classes, for
    every host or for ``rows`` (hosts lacking a class have an inverse of 0; the resource
    filters remove them before scores matter)."""

    def column(values: Floats, col: int) -> Floats:
        picked: Floats = values[col] if rows is None else values[col][rows]
        return picked

    total = column(index.share, cols[0]) + column(index.inverse, cols[0]) * need[0]
    for col, amount in zip(cols[1:], need[1:], strict=True):
        total += column(index.share, col)
        total += column(index.inverse, col) * amount
    total *= 1.0 / len(cols)
    return total


def score(
    strategy: Strategy,
    index: CapacityIndex,
    cols: list[int],
    need: list[int],
    rows: Rows | None = None,
) -> Floats:
    """Pack prefers hosts that end up fullest; spread prefers the emptiest."""
    utilisation = utilisation_after(index, cols, need, rows)
    if strategy is Strategy.PACK:
        utilisation *= 100.0
        return utilisation
    return 100.0 - 100.0 * utilisation

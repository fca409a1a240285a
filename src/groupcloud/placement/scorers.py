"""Scorers: rank the hosts that fit, 0 (worst) to 100 (best)."""

from __future__ import annotations

import numpy as np

from groupcloud.domain.allocation import Strategy
from groupcloud.placement.index import CapacityIndex, Floats, Rows

__all__ = ["SCARCE_CLASSES", "keeps_scarce_free", "score", "utilisation_after"]

SCARCE_CLASSES = ("GPU",)
"""Classes worth keeping for the requests that need them: a host carrying them is used
by other requests only when no other host fits (as Nova's PCI weigher does)."""


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


def keeps_scarce_free(
    index: CapacityIndex, requested: list[str], rows: Rows | None = None
) -> Floats:
    """100 for hosts without any scarce class the request does not ask for, else 0.

    CPU-only work on a GPU host uses up the CPU and memory that the host's GPUs need to be
    usable at all, so GPU hosts are the last choice for such work.
    """
    size = len(index) if rows is None else len(rows)
    keeps = np.full(size, 100.0)
    for rc in SCARCE_CLASSES:
        col = index.rc_col.get(rc)
        if rc in requested or col is None:
            continue
        capacity = index.capacity[col] if rows is None else index.capacity[col][rows]
        keeps[capacity > 0] = 0.0
    return keeps

"""When the integrated MAU reaches the target: a least-squares trend over recent months.

Two models, both fitted by ordinary least squares on the month index ``t`` (0 = the first
month used):

- ``linear``: ``mau(t) = a + b·t`` (a constant number of new persons a month);
- ``loglinear``: ``ln mau(t) = a + b·t`` (a constant growth rate, ``e^b - 1`` a month).

The forecast is the first month after the last observed one whose fitted value reaches
the target; none when the trend does not grow (``b <= 0``) or needs more than
``HORIZON`` months. ``r2`` is the share of the variance of the fitted quantity (MAU, or its
logarithm) that the trend explains: a low value says the straight line is a poor summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from groupcloud.analytics.months import Month

__all__ = ["HORIZON", "MODELS", "Fit", "Model", "fit", "least_squares", "reach"]

Model = Literal["linear", "loglinear"]
MODELS: tuple[Model, ...] = ("linear", "loglinear")
HORIZON = 240
"""Months ahead searched for the target (20 years)."""


@dataclass(frozen=True, slots=True)
class Fit:
    model: Model
    intercept: float
    slope: float
    """Persons a month (linear) or log growth a month (loglinear)."""
    r2: float | None
    """None with fewer than three months (a line through two points explains nothing)."""
    first: Month
    months: int

    def value(self, month: Month) -> float:
        t = (month.year - self.first.year) * 12 + month.month - self.first.month
        line = self.intercept + self.slope * t
        return math.exp(line) if self.model == "loglinear" else line

    @property
    def monthly_growth(self) -> float | None:
        """Compound growth a month of the loglinear model."""
        return math.expm1(self.slope) if self.model == "loglinear" else None


def fit(series: list[tuple[Month, int]], model: Model = "linear") -> Fit:
    """Least-squares trend of consecutive months' MAU (at least two, all positive for
    ``loglinear``); ValueError says what is missing."""
    if len(series) < 2:
        raise ValueError("a trend needs at least two months of integrated MAU")
    first = series[0][0]
    ts = [float((m.year - first.year) * 12 + m.month - first.month) for m, _ in series]
    if model == "loglinear":
        if any(v <= 0 for _, v in series):
            raise ValueError("the loglinear model needs MAU above zero in every month")
        ys = [math.log(v) for _, v in series]
    else:
        ys = [float(v) for _, v in series]
    n = len(ts)
    intercept, slope = least_squares(ts, ys)
    mean_y = sum(ys) / n
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * t) ** 2 for t, y in zip(ts, ys, strict=True))
    r2 = None if n < 3 else (1.0 - residual / total if total > 0 else 1.0)
    return Fit(model, intercept, slope, r2, first, n)


def least_squares(ts: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Intercept and slope of the ordinary least-squares line through (t, y), at least two
    distinct t: the one fit behind the target forecast and the capacity plan's forecast."""
    n = len(ts)
    mean_t, mean_y = sum(ts) / n, sum(ys) / n
    sxx = sum((t - mean_t) ** 2 for t in ts)
    slope = sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True)) / sxx
    return mean_y - slope * mean_t, slope


def reach(trend: Fit, last: Month, target: int) -> Month | None:
    """The first month after ``last`` whose fitted MAU is at least ``target``."""
    if trend.slope <= 0:
        return None
    for ahead in range(1, HORIZON + 1):
        month = last.plus(ahead)
        if trend.value(month) >= target:
            return month
    return None

"""A synthetic week (or month) of a financial group's demand, seeded.

Each company sends requests in a few streams (``STREAMS``); a stream's arrivals are a
Poisson process whose rate follows the local clock (the scenario's start carries the
offset, e.g. +09:00 for Seoul): ``peak_per_h x shape(local time)``, drawn by thinning.
The shapes are the group's well-known rhythms:

* bank ``oltp``: business hours on weekdays (bells at 10:30 and 14:30 over a floor of
  0.1), a third of that at weekends;
* bank ``batch``: a light nightly batch (01:00-05:00) on weekdays, and the month-end
  batch, heavy, from 18:00 to 06:00 the night after each of the last two business days
  of the month;
* card ``oltp``: an evening peak (bell at 20:30) every day, and weekend afternoons;
* capital and savings ``oltp``: a small floor plus bursts (``BURSTS`` a week at seeded
  random times, 1-3 h, six times the floor's rate);
* ``gpu`` (bank, card, capital): analytics and model training at night (22:00-06:00).

Sizes are drawn from each stream's list, durations log-uniformly from its range, both
rounded to whole minutes (several events then fall on one instant, as in real logs).
Every stream has its own random generator, seeded from the seed, the company and the
stream, so adding a company or a stream leaves the others' requests unchanged.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from groupcloud.simulator.demand import Request

__all__ = ["BURSTS", "COMPANIES", "STREAMS", "Stream", "generate", "month_end_nights"]

GIB = 1024
Shape = Callable[[datetime], float]
"""Rate multiplier (0-1) at a local time."""

BURSTS = 4
"""Bursts per week of capital and savings."""


@dataclass(frozen=True, slots=True)
class Stream:
    company: str
    kind: str
    priority: int
    peak_per_h: float
    """Arrivals per hour where the shape is 1."""
    sizes: tuple[dict[str, int], ...]
    hours: tuple[float, float]
    """Duration range (log-uniform)."""
    patience_h: float | None
    shape: str
    """Name of the shape in ``_SHAPES`` (``bursty`` draws its bursts from the seed)."""


def _vm(vcpu: int, gib_per_vcpu: int = 4) -> dict[str, int]:
    return {"VCPU": vcpu, "MEMORY_MB": vcpu * gib_per_vcpu * GIB}


def _gpu(gpus: int) -> dict[str, int]:
    return {"GPU": gpus, "VCPU": 8 * gpus, "MEMORY_MB": 64 * GIB * gpus}


_OLTP = (_vm(4), _vm(8), _vm(8), _vm(16))
_SMALL = (_vm(2), _vm(4), _vm(4), _vm(8))
_BATCH = (_vm(16, 8), _vm(32, 8))
_TRAIN = (_gpu(1), _gpu(2), _gpu(4), _gpu(8))

STREAMS: tuple[Stream, ...] = (
    Stream("bank", "oltp", 600, 4.0, _OLTP, (1.0, 4.0), 4.0, "business_hours"),
    Stream("bank", "batch", 400, 3.0, _BATCH, (2.0, 6.0), 8.0, "bank_batch"),
    Stream("bank", "gpu", 200, 0.8, _TRAIN, (2.0, 6.0), 10.0, "night"),
    Stream("card", "oltp", 600, 4.0, _OLTP, (1.0, 3.0), 4.0, "evening_weekend"),
    Stream("card", "gpu", 200, 0.6, _TRAIN, (2.0, 6.0), 10.0, "night"),
    Stream("capital", "oltp", 500, 0.8, _SMALL, (0.5, 3.0), 4.0, "bursty"),
    Stream("capital", "gpu", 200, 0.3, _TRAIN[:3], (1.0, 4.0), 10.0, "night"),
    Stream("savings", "oltp", 500, 0.8, _SMALL, (0.5, 3.0), 4.0, "bursty"),
)
COMPANIES = tuple(dict.fromkeys(s.company for s in STREAMS))


def _bell(hour: float, centre: float, width: float) -> float:
    d = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-((d / width) ** 2))


def _hour(t: datetime) -> float:
    return t.hour + t.minute / 60


def business_hours(t: datetime) -> float:
    h = _hour(t)
    day = 0.1 + 0.9 * max(_bell(h, 10.5, 2.0), _bell(h, 14.5, 2.0))
    return day if t.weekday() < 5 else day / 3


def evening_weekend(t: datetime) -> float:
    h = _hour(t)
    evening = 0.1 + 0.9 * _bell(h, 20.5, 2.0)
    if t.weekday() >= 5:
        return max(evening, 0.8 * _bell(h, 14.0, 3.0))
    return 0.7 * evening


def night(t: datetime) -> float:
    h = _hour(t)
    return 1.0 if h >= 22 or h < 6 else 0.02


def last_business_days(year: int, month: int, n: int = 2) -> list[date]:
    """The last ``n`` weekdays of a month (holidays aside)."""
    day = date(year, month, calendar.monthrange(year, month)[1])
    out: list[date] = []
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day -= timedelta(days=1)
    return sorted(out)


def month_end_nights(t: datetime) -> bool:
    """Whether ``t`` (local) falls in a month-end batch window: 18:00 on one of the last
    two business days of its month until 06:00 the next morning."""
    for evening in (t.date(), t.date() - timedelta(days=1)):
        if evening in last_business_days(evening.year, evening.month):
            start = datetime.combine(evening, datetime.min.time(), t.tzinfo) + timedelta(hours=18)
            if start <= t < start + timedelta(hours=12):
                return True
    return False


def bank_batch(t: datetime) -> float:
    if month_end_nights(t):
        return 1.0
    h = _hour(t)
    return 0.1 if t.weekday() < 5 and 1 <= h < 5 else 0.0


_SHAPES: dict[str, Shape] = {
    "business_hours": business_hours,
    "evening_weekend": evening_weekend,
    "night": night,
    "bank_batch": bank_batch,
}


def _bursty(rng: random.Random, start: datetime, days: float) -> Shape:
    bursts = [
        (start + timedelta(hours=rng.uniform(0, 24 * days)), timedelta(hours=rng.uniform(1, 3)))
        for _ in range(max(1, round(BURSTS * days / 7)))
    ]
    return lambda t: 1.0 if any(b <= t < b + length for b, length in bursts) else 1 / 6


def generate(
    start: datetime,
    days: float,
    seed: int,
    *,
    companies: Sequence[str] = COMPANIES,
    scale: float = 1.0,
    patience_h: float | None = None,
) -> list[Request]:
    """The requests of ``companies`` arriving in ``days`` from ``start`` (local time,
    offset-aware), in arrival order; ``scale`` multiplies every rate and ``patience_h``
    (if given) replaces the streams' patience."""
    if start.tzinfo is None:
        raise ValueError("start needs a UTC offset (the local time of the group)")
    horizon_h = days * 24
    out: list[Request] = []
    for stream in STREAMS:
        if stream.company not in companies:
            continue
        rng = random.Random(f"{seed}/{stream.company}/{stream.kind}")
        shape = _bursty(rng, start, days) if stream.shape == "bursty" else _SHAPES[stream.shape]
        rate = stream.peak_per_h * scale
        patience = stream.patience_h if patience_h is None else patience_h
        t_h = 0.0
        while rate > 0:
            t_h += rng.expovariate(rate)
            if t_h >= horizon_h:
                break
            if rng.random() >= shape(start + timedelta(hours=t_h)):
                continue  # thinned: the rate is lower at this hour
            low, high = stream.hours
            hours = math.exp(rng.uniform(math.log(low), math.log(high)))
            out.append(
                Request(
                    arrival_s=60.0 * math.floor(t_h * 60),
                    duration_s=60.0 * max(1, round(hours * 60)),
                    company=stream.company,
                    priority=stream.priority,
                    resources=dict(rng.choice(stream.sizes)),
                    patience_s=None if patience is None else patience * 3600,
                    kind=stream.kind,
                )
            )
    out.sort(key=lambda r: (r.arrival_s, r.company, r.kind))
    return out

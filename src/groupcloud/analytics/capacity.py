"""Capacity planning from app activity: MAU forecast → requests/s by Seoul hour → compute
per company → recommended nominal quotas, hosts to add, and what the shared pool saves.

The model (operator-editable, ``examples/capacity-model.yaml``; defaults in
``DEFAULT_MODEL``), per app:

- ``requests_per_user_day``: requests per *monthly* active user per day, so the day's
  requests are ``MAU * requests_per_user_day`` and their mean rate that over 86,400 s.
- ``peak_hour_factor``: the busiest hour's requests/s ÷ the day's mean.
- ``hourly_profile``: 24 relative weights (Seoul hours 0-23); only the shape counts: hour
  ``h`` runs at ``mean * peak_hour_factor * profile[h] / max(profile)``. Apps (and so
  companies) peak at different hours, which is what a shared pool saves on.
- ``resources``: VCPU and MEMORY_MB needed per ``per_rps`` requests/s (linear).

Sizing: a company sized alone needs its own busiest hour of the horizon plus ``headroom``;
the pool needs the busiest hour of the *sum*. Hosts = the most any resource class needs,
``ceil(amount / host capacity)``. Since the peak of a sum is at most the sum of the peaks
(and a ceiling of a sum at most the sum of the ceilings), sharing never needs more hosts.

MAU forecast: least-squares fit of ``ln(MAU)`` on the month index over the history
months that have a shown (not suppressed, non-zero) MAU, extrapolated; one point gives a
flat forecast, none gives zero. It is deliberately simple: one function
(``forecast_log_linear``) on the least-squares line of ``mau forecast``'s loglinear model.

Pure: no I/O. ``services/analytics/capacity.py`` reads MAU from the store and model files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from groupcloud.analytics.forecast import least_squares

__all__ = [
    "DEFAULT_MODEL",
    "HOURS",
    "RESOURCES",
    "AppLoad",
    "CapacityModel",
    "CompanyPlan",
    "HostShape",
    "Plan",
    "forecast_log_linear",
    "hosts_for",
    "hourly_demand",
    "parse_model",
    "plan",
]

HOURS = 24
RESOURCES = ("VCPU", "MEMORY_MB")
SECONDS_PER_DAY = 86_400


def _profile(*peaks: tuple[int, float]) -> list[float]:
    """A day with a low night base and the given (hour, weight) peaks."""
    day = [0.15] * 6 + [0.4] * 18
    for hour, weight in peaks:
        day[hour] = max(day[hour], weight)
    return day


DEFAULT_MODEL: dict[str, Any] = {
    "headroom": 0.3,
    "history_months": 6,
    "horizon_months": 12,
    "host": {"VCPU": 64, "MEMORY_MB": 262_144},
    "pool_hosts": 0,
    "apps": {
        "won_banking": {
            "company": "bank",
            "requests_per_user_day": 40,
            "peak_hour_factor": 2.4,
            "hourly_profile": _profile((8, 0.7), (9, 1.0), (10, 0.9), (12, 0.8), (18, 0.6)),
            "resources": {"per_rps": 100, "VCPU": 8, "MEMORY_MB": 16_384},
        },
        "won_card": {
            "company": "card",
            "requests_per_user_day": 25,
            "peak_hour_factor": 2.2,
            "hourly_profile": _profile((12, 1.0), (13, 0.8), (19, 0.8), (20, 0.9), (21, 0.7)),
            "resources": {"per_rps": 100, "VCPU": 6, "MEMORY_MB": 12_288},
        },
        "won_car": {
            "company": "capital",
            "requests_per_user_day": 6,
            "peak_hour_factor": 2.0,
            "hourly_profile": _profile((20, 0.8), (21, 1.0), (22, 0.8)),
            "resources": {"per_rps": 100, "VCPU": 4, "MEMORY_MB": 8_192},
        },
        "won_savings": {
            "company": "savings",
            "requests_per_user_day": 10,
            "peak_hour_factor": 2.0,
            "hourly_profile": _profile((9, 0.8), (14, 1.0), (15, 0.8)),
            "resources": {"per_rps": 100, "VCPU": 4, "MEMORY_MB": 8_192},
        },
    },
}
"""The shipped model (``examples/capacity-model.yaml`` holds the same): banking peaks in
the morning, card at lunch and in the evening, auto-finance late evening, the savings
bank in the afternoon. The figures are assumptions to replace with measured ones."""


@dataclass(frozen=True, slots=True)
class AppLoad:
    """How one app's active users turn into load on its company's share of the pool."""

    app: str
    company: str
    requests_per_user_day: float
    peak_hour_factor: float
    hourly_profile: tuple[float, ...]
    per_rps: float
    need: tuple[float, ...]
    """Resources (in ``RESOURCES`` order) per ``per_rps`` requests/s."""


@dataclass(frozen=True, slots=True)
class HostShape:
    capacity: tuple[int, ...]
    """Usable amount of each resource class (``RESOURCES`` order) on one host."""


@dataclass(frozen=True, slots=True)
class CapacityModel:
    apps: dict[str, AppLoad]
    headroom: float
    history_months: int
    horizon_months: int
    host: HostShape
    pool_hosts: int

    @property
    def companies(self) -> list[str]:
        return sorted({a.company for a in self.apps.values()})


def _number(
    data: Mapping[str, Any], key: str, where: str, problems: list[dict[str, str]], *,
    minimum: float = 0.0, strict: bool = False, integer: bool = False,
) -> float:  # fmt: skip
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append({"field": f"{where}{key}", "message": "must be a number"})
        return 0.0
    if (value <= minimum) if strict else (value < minimum):
        word = "greater than" if strict else "at least"
        problems.append({"field": f"{where}{key}", "message": f"must be {word} {minimum:g}"})
    if integer and int(value) != value:
        problems.append({"field": f"{where}{key}", "message": "must be a whole number"})
    return float(value)


def parse_model(data: object) -> CapacityModel | list[dict[str, str]]:
    """The model from a parsed YAML/JSON document (missing top-level keys take the
    defaults), or the list of ``{field, message}`` problems that stop it."""
    problems: list[dict[str, str]] = []
    if not isinstance(data, Mapping):
        return [{"field": "(document)", "message": "must be a mapping"}]
    merged = {**DEFAULT_MODEL, **data}
    headroom = _number(merged, "headroom", "", problems)
    history = _number(merged, "history_months", "", problems, minimum=1, integer=True)
    horizon = _number(merged, "horizon_months", "", problems, minimum=1, integer=True)
    pool_hosts = _number(merged, "pool_hosts", "", problems, integer=True)
    host = merged["host"]
    capacity: list[int] = []
    if not isinstance(host, Mapping):
        problems.append({"field": "host", "message": "must be a mapping of VCPU and MEMORY_MB"})
    else:
        capacity = [
            int(_number(host, rc, "host.", problems, strict=True, integer=True)) for rc in RESOURCES
        ]
    apps: dict[str, AppLoad] = {}
    given = merged["apps"]
    if not isinstance(given, Mapping) or not given:
        problems.append({"field": "apps", "message": "must map at least one app id to its load"})
        given = {}
    for app, spec in given.items():
        where = f"apps.{app}."
        if not isinstance(spec, Mapping):
            problems.append({"field": where[:-1], "message": "must be a mapping"})
            continue
        company = spec.get("company")
        if not isinstance(company, str) or not company:
            problems.append({"field": f"{where}company", "message": "must name the company"})
            company = ""
        per_user = _number(spec, "requests_per_user_day", where, problems)
        factor = _number(spec, "peak_hour_factor", where, problems, minimum=1)
        profile = spec.get("hourly_profile", [1.0] * HOURS)
        if (
            not isinstance(profile, list)
            or len(profile) != HOURS
            or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in profile)
            or min(profile) < 0
            or max(profile) <= 0
        ):
            problems.append(
                {
                    "field": f"{where}hourly_profile",
                    "message": "must be 24 weights >= 0 (Seoul hours 0-23), not all 0",
                }
            )
            profile = [1.0] * HOURS
        resources = spec.get("resources")
        if not isinstance(resources, Mapping):
            problems.append({"field": f"{where}resources", "message": "must be a mapping"})
            resources = {}
        per_rps = _number(resources, "per_rps", f"{where}resources.", problems, strict=True)
        need = tuple(_number(resources, rc, f"{where}resources.", problems) for rc in RESOURCES)
        apps[str(app)] = AppLoad(
            str(app), company, per_user, factor, tuple(float(w) for w in profile), per_rps, need
        )
    if problems:
        return problems
    return CapacityModel(
        apps=apps,
        headroom=headroom,
        history_months=int(history),
        horizon_months=int(horizon),
        host=HostShape(tuple(capacity)),
        pool_hosts=int(pool_hosts),
    )


def forecast_log_linear(history: Sequence[float | None], horizon: int) -> list[float]:
    """MAU for the ``horizon`` months after the last of ``history`` (oldest first; None or
    0 for a month without a shown MAU): a least-squares line through ln(MAU)."""
    shown = [(t, float(v)) for t, v in enumerate(history) if v is not None and v > 0]
    last = len(history) - 1
    if not shown:
        return [0.0] * horizon
    if len(shown) == 1:
        return [shown[0][1]] * horizon
    intercept, slope = least_squares([float(t) for t, _ in shown], [math.log(v) for _, v in shown])
    return [math.exp(intercept + slope * (last + step)) for step in range(1, horizon + 1)]


def hourly_demand(load: AppLoad, mau: float) -> list[tuple[float, ...]]:
    """Resources the app needs in each Seoul hour of a day with ``mau`` monthly users."""
    mean_rps = mau * load.requests_per_user_day / SECONDS_PER_DAY
    top = max(load.hourly_profile)
    out = []
    for weight in load.hourly_profile:
        rps = mean_rps * load.peak_hour_factor * weight / top
        out.append(tuple(rps / load.per_rps * need for need in load.need))
    return out


def hosts_for(amounts: Sequence[float], host: HostShape) -> int:
    """Hosts of the given shape that hold ``amounts`` (the scarcest class decides)."""
    return max(
        (math.ceil(a / c - 1e-9) for a, c in zip(amounts, host.capacity, strict=True)),
        default=0,
    )


@dataclass(frozen=True, slots=True)
class CompanyPlan:
    company: str
    apps: list[str]
    hourly: list[list[tuple[float, ...]]]
    """Per forecast month, per Seoul hour: resources needed (RESOURCES order)."""
    peaks: list[tuple[float, ...]]
    """Per forecast month: the busiest hour's resources (each class's own maximum)."""
    nominal: tuple[int, ...]
    """Recommended nominal quota: the horizon's peak plus headroom, rounded up."""
    hosts_alone: int
    """Hosts the company would need sizing for its own peak alone."""


@dataclass(frozen=True, slots=True)
class Plan:
    companies: list[CompanyPlan]
    pool_hourly: list[list[tuple[float, ...]]]
    pool_peaks: list[tuple[float, ...]]
    pool_needed: tuple[int, ...]
    """The pool's busiest hour of the horizon plus headroom, rounded up."""
    peak_month: int
    """Index of the forecast month with the pool's busiest hour."""
    peak_hour: int
    hosts_shared: int
    hosts_separate: int
    hosts_to_add: int

    @property
    def hosts_saved(self) -> int:
        return self.hosts_separate - self.hosts_shared

    @property
    def saved_share(self) -> float:
        return self.hosts_saved / self.hosts_separate if self.hosts_separate else 0.0


def _add(a: Sequence[float], b: Sequence[float]) -> tuple[float, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _peak(hours: Sequence[Sequence[float]]) -> tuple[float, ...]:
    return tuple(max(h[i] for h in hours) for i in range(len(RESOURCES)))


def _with_headroom(amounts: Sequence[float], headroom: float) -> tuple[int, ...]:
    return tuple(math.ceil(a * (1 + headroom) - 1e-9) for a in amounts)


def plan(model: CapacityModel, forecasts: Mapping[str, Sequence[float]]) -> Plan:
    """Size every company and the shared pool for ``forecasts`` (MAU per app, one value
    per forecast month; an app of the model without one counts as 0)."""
    months = model.horizon_months
    zero = (0.0,) * len(RESOURCES)
    companies = []
    pool_hourly = [[zero] * HOURS for _ in range(months)]
    for company in model.companies:
        loads = [a for a in model.apps.values() if a.company == company]
        hourly = [[zero] * HOURS for _ in range(months)]
        for load in loads:
            mau = list(forecasts.get(load.app, ()))[:months]
            mau += [0.0] * (months - len(mau))
            for m, users in enumerate(mau):
                for h, need in enumerate(hourly_demand(load, users)):
                    hourly[m][h] = _add(hourly[m][h], need)
        for m in range(months):
            for h in range(HOURS):
                pool_hourly[m][h] = _add(pool_hourly[m][h], hourly[m][h])
        peaks = [_peak(day) for day in hourly]
        nominal = _with_headroom(_peak(peaks), model.headroom)
        companies.append(
            CompanyPlan(
                company=company,
                apps=sorted(a.app for a in loads),
                hourly=hourly,
                peaks=peaks,
                nominal=nominal,
                hosts_alone=hosts_for(nominal, model.host),
            )
        )
    pool_peaks = [_peak(day) for day in pool_hourly]
    needed = _with_headroom(_peak(pool_peaks), model.headroom)
    busiest = max(
        ((m, h) for m in range(months) for h in range(HOURS)),
        key=lambda mh: (pool_hourly[mh[0]][mh[1]][0], -mh[0], -mh[1]),
    )
    shared = hosts_for(needed, model.host)
    return Plan(
        companies=companies,
        pool_hourly=pool_hourly,
        pool_peaks=pool_peaks,
        pool_needed=needed,
        peak_month=busiest[0],
        peak_hour=busiest[1],
        hosts_shared=shared,
        hosts_separate=sum(c.hosts_alone for c in companies),
        hosts_to_add=max(0, shared - model.pool_hosts),
    )

"""The digital KPI scorecard: KPI definitions per company, and how a value is judged
against its target (status) and against the month before (trend).

Kinds of KPI (``kind``):

- ``mau``: distinct persons active in the company's apps in the month (the ``group``
  company with all apps: the integrated MAU).
- ``retention``: persons active in the month *and* the month before, over the month
  before's MAU (0-1).
- ``cost_per_mau``: the company's cloud cost of the month (``costs`` input, until metering
  exists) over its MAU.
- ``cost_avoided``: hosts the shared pool saves this month against every company sizing
  for its own peak (the capacity model on the month's MAU) times ``host_monthly_cost``,
  shared out by each company's hosts alone; always marked as an **estimate**.
- ``survey``: a score imported from CSV (``groupcloud kpi import-survey``) under the KPI's
  name.

Status (``band`` = ``at_risk_band``, default 0.1): when higher is better, on track at or
above the target, at risk down to ``target x (1 - band)``, off track below; when lower is
better, on track at or below the target, at risk up to ``target x (1 + band)``, off track
above; ``no_data`` when the value is unknown (no data, or suppressed below k).
Trend: the change on the month before; ``flat`` within ``FLAT`` (0.5 %) of the previous
value, else ``improving`` or ``worsening`` by the direction; ``unknown`` without both.

Pure: the services read the store, the survey scores and the files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_KPIS",
    "FLAT",
    "KINDS",
    "CompanyKpis",
    "KpiDef",
    "KpiDefinitions",
    "Status",
    "Trend",
    "parse_definitions",
    "status",
    "trend",
]

Direction = Literal["higher", "lower"]
Status = Literal["on_track", "at_risk", "off_track", "no_data"]
Trend = Literal["improving", "worsening", "flat", "unknown"]
KINDS = ("mau", "retention", "cost_per_mau", "cost_avoided", "survey")
FLAT = 0.005
"""A change within this share of the previous value is flat."""
DEFAULT_DIRECTION: dict[str, Direction] = {
    "mau": "higher",
    "retention": "higher",
    "cost_per_mau": "lower",
    "cost_avoided": "higher",
    "survey": "higher",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

DEFAULT_KPIS: dict[str, Any] = {
    "at_risk_band": 0.1,
    "currency": "KRW",
    "host_monthly_cost": 3_000_000,
    "costs": {
        "bank": {"default": 900_000_000},
        "card": {"default": 520_000_000},
        "capital": {"default": 110_000_000},
        "savings": {"default": 130_000_000},
    },
    "companies": {
        "group": {
            "apps": ["won_banking", "won_card", "won_car", "won_savings"],
            "kpis": [
                {"name": "integrated_mau", "kind": "mau", "target": 15_000_000},
                {"name": "retention", "kind": "retention", "target": 0.85},
                {"name": "cost_avoided", "kind": "cost_avoided", "target": 30_000_000},
            ],
        },
        "bank": {
            "apps": ["won_banking"],
            "kpis": [
                {"name": "mau", "kind": "mau", "target": 8_000_000},
                {"name": "retention", "kind": "retention", "target": 0.88},
                {"name": "cost_per_mau", "kind": "cost_per_mau", "target": 120},
                {"name": "nps", "kind": "survey", "target": 40, "unit": "NPS"},
            ],
        },
        "card": {
            "apps": ["won_card"],
            "kpis": [
                {"name": "mau", "kind": "mau", "target": 4_500_000},
                {"name": "retention", "kind": "retention", "target": 0.8},
                {"name": "cost_per_mau", "kind": "cost_per_mau", "target": 120},
                {"name": "csat", "kind": "survey", "target": 4.2, "unit": "1-5"},
            ],
        },
        "capital": {
            "apps": ["won_car"],
            "kpis": [
                {"name": "mau", "kind": "mau", "target": 500_000},
                {"name": "cost_per_mau", "kind": "cost_per_mau", "target": 250},
            ],
        },
        "savings": {
            "apps": ["won_savings"],
            "kpis": [
                {"name": "mau", "kind": "mau", "target": 800_000},
                {"name": "cost_per_mau", "kind": "cost_per_mau", "target": 180},
            ],
        },
    },
}
"""The shipped definitions (``examples/kpis.yaml`` holds the same). Targets and costs are
placeholders for the group's own figures."""


@dataclass(frozen=True, slots=True)
class KpiDef:
    company: str
    name: str
    kind: str
    target: float
    direction: Direction
    unit: str


@dataclass(frozen=True, slots=True)
class CompanyKpis:
    company: str
    apps: tuple[str, ...]
    kpis: tuple[KpiDef, ...]


@dataclass(frozen=True, slots=True)
class KpiDefinitions:
    companies: tuple[CompanyKpis, ...]
    at_risk_band: float = 0.1
    currency: str = "KRW"
    host_monthly_cost: float = 0.0
    costs: dict[str, dict[str, float]] = field(default_factory=dict)
    """company → {"default" or "YYYY-MM": cloud cost of a month}."""

    def cost(self, company: str, month: str) -> float | None:
        """The company's cloud cost of the month: the month's own figure, else its default."""
        given = self.costs.get(company, {})
        return given.get(month, given.get("default"))


def _unit(kind: str, currency: str, given: object) -> str:
    if isinstance(given, str) and given:
        return given
    return {
        "mau": "persons",
        "retention": "ratio",
        "cost_per_mau": f"{currency}/MAU",
        "cost_avoided": currency,
    }.get(kind, "score")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


Problems = list[dict[str, str]]


def parse_definitions(data: object) -> KpiDefinitions | Problems:
    """The definitions of a parsed YAML/JSON document, or its ``{field, message}`` problems
    (all of them, not only the first)."""
    if not isinstance(data, Mapping):
        return [{"field": "(document)", "message": "must be a mapping"}]
    problems: Problems = []
    band = _number(data.get("at_risk_band", 0.1))
    if band is None or not 0 <= band < 1:
        problems.append({"field": "at_risk_band", "message": "must be a number in [0, 1)"})
    currency = data.get("currency", "KRW")
    if not isinstance(currency, str) or not currency:
        problems.append({"field": "currency", "message": "must be a currency name"})
        currency = "KRW"
    host_cost = _number(data.get("host_monthly_cost", 0))
    if host_cost is None or host_cost < 0:
        problems.append({"field": "host_monthly_cost", "message": "must be a number >= 0"})
    costs = _costs(data.get("costs", {}), problems)
    given = data.get("companies")
    if not isinstance(given, Mapping) or not given:
        problems.append({"field": "companies", "message": "must map at least one company"})
        given = {}
    companies = [
        parsed
        for company, spec in given.items()
        if (parsed := _company(str(company), spec, currency, problems)) is not None
    ]
    if problems:
        return problems
    return KpiDefinitions(
        companies=tuple(companies),
        at_risk_band=band or 0.0,
        currency=currency,
        host_monthly_cost=host_cost or 0.0,
        costs=costs,
    )


def _costs(given: object, problems: Problems) -> dict[str, dict[str, float]]:
    """Monthly costs per company and month (``default`` for months not named)."""
    if not isinstance(given, Mapping):
        problems.append({"field": "costs", "message": "must map companies to monthly costs"})
        return {}
    costs: dict[str, dict[str, float]] = {}
    for company, by_month in given.items():
        if not isinstance(by_month, Mapping):
            problems.append({"field": f"costs.{company}", "message": "must be a mapping"})
            continue
        costs[str(company)] = {}
        for month, amount in by_month.items():
            value = _number(amount)
            if value is None or value < 0:
                where = f"costs.{company}.{month}"
                problems.append({"field": where, "message": "must be a number >= 0"})
            else:
                costs[str(company)][str(month)] = value
    return costs


def _company(company: str, spec: object, currency: str, problems: Problems) -> CompanyKpis | None:
    where = f"companies.{company}"
    if not _NAME.match(company) or not isinstance(spec, Mapping):
        problems.append({"field": where, "message": "must be a company name and a mapping"})
        return None
    apps = spec.get("apps", [])
    if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
        problems.append({"field": f"{where}.apps", "message": "must be a list of app ids"})
        apps = []
    given = spec.get("kpis")
    if not isinstance(given, list):
        given = []
    kpis = [
        parsed
        for i, kpi in enumerate(given)
        if (parsed := _kpi(company, f"{where}.kpis[{i}]", kpi, currency, problems)) is not None
    ]
    return CompanyKpis(company, tuple(apps), tuple(kpis))


def _kpi(company: str, at: str, kpi: object, currency: str, problems: Problems) -> KpiDef | None:
    if not isinstance(kpi, Mapping):
        problems.append({"field": at, "message": "must be a mapping"})
        return None
    name, kind = kpi.get("name"), kpi.get("kind")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append({"field": f"{at}.name", "message": "must be a lower-case name"})
    if kind not in KINDS:
        problems.append({"field": f"{at}.kind", "message": f"must be one of {KINDS}"})
        return None
    target = _number(kpi.get("target"))
    if target is None:
        problems.append({"field": f"{at}.target", "message": "must be a number"})
    direction = kpi.get("direction", DEFAULT_DIRECTION[str(kind)])
    if direction not in ("higher", "lower"):
        problems.append({"field": f"{at}.direction", "message": "must be higher or lower"})
        direction = "higher"
    return KpiDef(
        company=company,
        name=str(name),
        kind=str(kind),
        target=target or 0.0,
        direction=direction,
        unit=_unit(str(kind), currency, kpi.get("unit")),
    )


def status(value: float | None, target: float, direction: Direction, band: float) -> Status:
    """Where the value stands against the target (see the module docstring)."""
    if value is None:
        return "no_data"
    if direction == "higher":
        if value >= target:
            return "on_track"
        return "at_risk" if value >= target * (1 - band) else "off_track"
    if value <= target:
        return "on_track"
    return "at_risk" if value <= target * (1 + band) else "off_track"


def trend(value: float | None, previous: float | None, direction: Direction) -> Trend:
    """Which way the value moved since the month before, judged by the direction."""
    if value is None or previous is None:
        return "unknown"
    change = value - previous
    if abs(change) <= FLAT * abs(previous):
        return "flat"
    better = change > 0 if direction == "higher" else change < 0
    return "improving" if better else "worsening"

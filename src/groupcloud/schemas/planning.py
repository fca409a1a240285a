"""Documents of capacity planning and the KPI scorecard (API responses and ``--json``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "AppForecast",
    "CapacityPlan",
    "CompanyCapacity",
    "KpiLine",
    "MonthAmounts",
    "MonthValue",
    "PoolCapacity",
    "Scorecard",
    "Sharing",
    "SurveyImport",
]


class MonthValue(BaseModel):
    month: str
    value: float | None = Field(description="None: not known (suppressed or no data).")


class AppForecast(BaseModel):
    app: str
    company: str
    history: list[MonthValue] = Field(description="Exact MAU of the history months (times scale).")
    forecast: list[MonthValue] = Field(description="Forecast MAU of the next months.")
    monthly_growth: float | None = Field(description="Fitted growth per month (0.01 = 1%).")


class MonthAmounts(BaseModel):
    month: str
    peak: dict[str, float] = Field(description="The busiest hour's need per resource class.")


class CompanyCapacity(BaseModel):
    company: str
    apps: list[str]
    months: list[MonthAmounts]
    nominal: dict[str, int] = Field(
        description="Recommended nominal quota: the horizon's busiest hour plus headroom."
    )
    hosts_alone: int = Field(description="Hosts this company would need on its own.")


class PoolCapacity(BaseModel):
    months: list[MonthAmounts]
    needed: dict[str, int] = Field(description="Busiest hour of the summed demand + headroom.")
    peak_month: str
    peak_hour: int = Field(description="Asia/Seoul hour (0-23) of the busiest hour.")
    hosts_needed: int
    pool_hosts: int = Field(description="Hosts in the pool now.")
    pool_hosts_from: Literal["given", "control-plane database", "model"] = Field(
        description="Where pool_hosts came from: the request (--pool-hosts), the active "
        "hosts of the shared zones in the control-plane database, or the model file."
    )
    hosts_to_add: int


class Sharing(BaseModel):
    """What one shared pool saves against every company sizing for its own peak."""

    hosts_separate: int
    hosts_shared: int
    hosts_saved: int
    saved_percent: float
    vcpu_sum_of_peaks: float = Field(description="Σ of the companies' own busiest hours.")
    vcpu_peak_of_sum: float = Field(description="The busiest hour of their sum.")


class CapacityPlan(BaseModel):
    """Compute per company for the next months from the MAU forecast, the nominal quotas to
    give them, the hosts to add, and what sharing one pool saves."""

    base_month: str = Field(description="Last month of MAU history; the forecast starts after.")
    months: list[str]
    model: str = Field(description="The model file used, or 'built-in'.")
    forecast_method: str
    scale: float = Field(description="Factor applied to every stored MAU (1: as stored).")
    headroom: float
    host: dict[str, int] = Field(description="Capacity of one host per resource class.")
    apps: list[AppForecast]
    unmodelled_apps: list[str] = Field(description="Apps with events but not in the model.")
    companies: list[CompanyCapacity]
    pool: PoolCapacity
    sharing: Sharing


class KpiLine(BaseModel):
    company: str
    kpi: str
    kind: str
    unit: str
    value: float | None
    previous: float | None = Field(description="The month before.")
    target: float
    direction: Literal["higher", "lower"] = Field(description="Which way is better.")
    status: Literal["on_track", "at_risk", "off_track", "no_data"]
    trend: Literal["improving", "worsening", "flat", "unknown"]
    change: float | None = Field(description="value - previous.")
    estimate: bool = Field(description="True: derived from assumptions, not measured.")
    note: str | None = None


class Scorecard(BaseModel):
    """Digital KPIs per company for a month, against their targets."""

    month: str
    definitions: str = Field(description="The KPI file used, or 'built-in'.")
    at_risk_band: float = Field(
        description="Within this share of the target on the wrong side: at risk; beyond: off track."
    )
    rows: list[KpiLine]


class SurveyImport(BaseModel):
    source: str
    received: int
    imported: int
    bad: int
    bad_rows: list[dict[str, str | int]] = Field(default_factory=list)

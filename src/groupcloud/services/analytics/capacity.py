"""Capacity plans from the event store's MAU: reads the model file and the exact MAU of
the history months (``mau_report``), runs the pure engine (``analytics/capacity.py``) and
renders the plan, and a simulator scenario of its peak day (``groupcloud sim run``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from groupcloud.analytics.capacity import (
    DEFAULT_MODEL,
    RESOURCES,
    CapacityModel,
    HostShape,
    Plan,
    forecast_log_linear,
    parse_model,
    plan,
)
from groupcloud.analytics.months import Month
from groupcloud.config import Settings
from groupcloud.db.engine import Database
from groupcloud.db.models import HostRow, ZoneRow
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput
from groupcloud.schemas.planning import (
    AppForecast,
    CapacityPlan,
    CompanyCapacity,
    MonthAmounts,
    MonthValue,
    PoolCapacity,
    Sharing,
)
from groupcloud.services.analytics.activity import mau_report
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import shown_companies
from groupcloud.simulator.demand import Request, hourly_requests
from groupcloud.simulator.scenario import Scenario

__all__ = [
    "FORECAST_METHOD",
    "capacity_plan",
    "load_document",
    "load_model",
    "plan_for",
    "scenario",
    "shared_pool_hosts",
    "stored_pool_hosts",
]

FORECAST_METHOD = (
    "least-squares fit of ln(MAU) on the month over the history months with a shown MAU "
    "(one month: flat; none: 0)"
)
UNITS_PER_HOST = 4
"""A simulated request of a capacity scenario is a quarter of a host (each class)."""


def load_document(path: Path) -> object:
    """A YAML or JSON file (JSON is YAML), parsed; unreadable or malformed is invalid input."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror or exc}",
            errors=[{"field": "file", "message": str(exc.strerror or exc)}],
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{path} is not valid YAML or JSON: {exc}",
            errors=[{"field": "file", "message": "not valid YAML or JSON"}],
        ) from None


def load_model(path: Path | None) -> CapacityModel:
    """The model of the file, or the built-in one; every problem is listed by field."""
    made = parse_model(DEFAULT_MODEL if path is None else load_document(path))
    if isinstance(made, list):
        fields = ", ".join(f"{p['field']}: {p['message']}" for p in made[:5])
        raise InvalidInput(f"capacity model {path}: {fields}", errors=made)
    return made


def shared_pool_hosts(db: Database) -> int:
    """Active hosts in the group's shared zones: the pool the plan adds hosts to."""
    with db.read() as session:
        counted = session.scalar(
            select(func.count())
            .select_from(HostRow)
            .join(ZoneRow, ZoneRow.id == HostRow.zone_id)
            .where(ZoneRow.kind == "shared", HostRow.state == "active")
        )
    return int(counted or 0)


def stored_pool_hosts(settings: Settings) -> int | None:
    """The shared pool's hosts from the control-plane database of ``settings``, or None
    when there is none to read (no database URL and no embedded SQLite file, or a
    database that cannot be read): planning works on the event store alone."""
    if settings.database_url is None and not (settings.data_dir / "groupcloud.db").exists():
        return None
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        return shared_pool_hosts(db)
    except SQLAlchemyError:
        return None
    finally:
        db.dispose()


def _amounts(values: tuple[float, ...], digits: int = 2) -> dict[str, float]:
    return {rc: round(v, digits) for rc, v in zip(RESOURCES, values, strict=True)}


def _build(
    settings: Settings,
    base: Month,
    model_path: Path | None,
    pool_hosts: int | None,
    host: dict[str, int] | None,
    scale: float = 1.0,
    db: Database | None = None,
) -> tuple[CapacityPlan, Plan, CapacityModel]:
    path = model_path if model_path is not None else settings.analytics_capacity_model
    model = load_model(path)
    pool_source = "model"
    if pool_hosts is not None:
        model, pool_source = replace(model, pool_hosts=pool_hosts), "given"
    elif (stored := shared_pool_hosts(db) if db else stored_pool_hosts(settings)) is not None:
        model, pool_source = replace(model, pool_hosts=stored), "control-plane database"
    if host:
        capacity = dict(zip(RESOURCES, model.host.capacity, strict=True)) | host
        model = replace(model, host=HostShape(tuple(capacity[rc] for rc in RESOURCES)))
    history_months = base.plus(1 - model.history_months).until(base)
    horizon = base.next().until(base.plus(model.horizon_months))
    reports = [mau_report(settings, m) for m in history_months]
    forecasts: dict[str, list[float]] = {}
    apps = []
    for app, load in sorted(model.apps.items()):
        history = [None if v is None else v * scale for v in (r.apps.get(app) for r in reports)]
        ahead = forecast_log_linear([v or None for v in history], len(horizon))
        forecasts[app] = ahead
        known = [v for v in history if v]
        growth = None
        if len(known) >= 2 and ahead[0] > 0 and len(ahead) >= 2:
            growth = ahead[1] / ahead[0] - 1
        apps.append(
            AppForecast(
                app=app,
                company=load.company,
                history=[
                    MonthValue(month=str(m), value=v)
                    for m, v in zip(history_months, history, strict=True)
                ],
                forecast=[
                    MonthValue(month=str(m), value=round(v, 1))
                    for m, v in zip(horizon, ahead, strict=True)
                ],
                monthly_growth=growth,
            )
        )
    seen = {app for r in reports for app, mau in r.apps.items() if mau}
    made = plan(model, forecasts)
    months = [str(m) for m in horizon]
    sum_of_peaks = sum(max(p[0] for p in c.peaks) for c in made.companies)
    peak_of_sum = max(p[0] for p in made.pool_peaks)
    document = CapacityPlan(
        base_month=str(base),
        months=months,
        model=str(path) if path is not None else "built-in",
        forecast_method=FORECAST_METHOD,
        scale=scale,
        headroom=model.headroom,
        host=dict(zip(RESOURCES, model.host.capacity, strict=True)),
        apps=apps,
        unmodelled_apps=sorted(seen - set(model.apps)),
        companies=[
            CompanyCapacity(
                company=c.company,
                apps=c.apps,
                months=[
                    MonthAmounts(month=m, peak=_amounts(p))
                    for m, p in zip(months, c.peaks, strict=True)
                ],
                nominal=dict(zip(RESOURCES, c.nominal, strict=True)),
                hosts_alone=c.hosts_alone,
            )
            for c in made.companies
        ],
        pool=PoolCapacity(
            months=[
                MonthAmounts(month=m, peak=_amounts(p))
                for m, p in zip(months, made.pool_peaks, strict=True)
            ],
            needed=dict(zip(RESOURCES, made.pool_needed, strict=True)),
            peak_month=months[made.peak_month],
            peak_hour=made.peak_hour,
            hosts_needed=made.hosts_shared,
            pool_hosts=model.pool_hosts,
            pool_hosts_from=pool_source,
            hosts_to_add=made.hosts_to_add,
        ),
        sharing=Sharing(
            hosts_separate=made.hosts_separate,
            hosts_shared=made.hosts_shared,
            hosts_saved=made.hosts_saved,
            saved_percent=round(made.saved_share * 100, 2),
            vcpu_sum_of_peaks=round(sum_of_peaks, 2),
            vcpu_peak_of_sum=round(peak_of_sum, 2),
        ),
    )
    return document, made, model


def capacity_plan(
    settings: Settings,
    base: Month,
    *,
    model_path: Path | None = None,
    pool_hosts: int | None = None,
    host: dict[str, int] | None = None,
    scale: float = 1.0,
    db: Database | None = None,
) -> CapacityPlan:
    """The plan for the months after ``base`` (model: the file given, else
    ``GROUPCLOUD_ANALYTICS_CAPACITY_MODEL``, else built in). ``scale`` multiplies every
    MAU, for a store that holds a sample (e.g. 1,000 for a 1-in-1,000 sample). Without
    ``pool_hosts`` the shared zones' active hosts are counted in ``db`` (else in the
    database of ``settings``, if there is one), else the model's figure applies."""
    return _build(settings, base, model_path, pool_hosts, host, scale, db)[0]


def plan_for(
    rt: Runtime,
    actor: Principal,
    base: Month,
    *,
    pool_hosts: int | None = None,
    scale: float = 1.0,
) -> CapacityPlan:
    """The plan as ``actor`` may read it: all of it for the group roles; for a company
    role its own company's apps and sizing, and the pool's totals (the pool is the group's:
    every role reads its capacity)."""
    made = capacity_plan(rt.settings, base, pool_hosts=pool_hosts, scale=scale, db=rt.db)
    shown = shown_companies(actor)
    if shown is None:
        return made
    return made.model_copy(
        update={
            "apps": [a for a in made.apps if a.company in shown],
            "companies": [c for c in made.companies if c.company in shown],
        }
    )


def scenario(
    settings: Settings,
    base: Month,
    *,
    trace: str,
    model_path: Path | None = None,
    pool_hosts: int | None = None,
    host: dict[str, int] | None = None,
    scale: float = 1.0,
) -> tuple[CapacityPlan, dict[str, Any], list[Request]]:
    """The plan, and a ``groupcloud sim run`` scenario of its busiest forecast month's peak
    day with the trace it replays (``trace``: the file name the scenario refers to,
    relative to the scenario's folder). Why a day of one-hour requests: the plan knows
    amounts per Seoul hour, and the simulator then answers what the plan estimates with
    arithmetic (hosts alone against hosts shared) by running the real engine on them."""
    document, made, model = _build(settings, base, model_path, pool_hosts, host, scale)
    month = document.months[made.peak_month]
    shape = dict(zip(RESOURCES, model.host.capacity, strict=True))
    unit = {rc: max(1, amount // UNITS_PER_HOST) for rc, amount in shape.items()}
    hourly = {
        c.company: [dict(zip(RESOURCES, hour, strict=True)) for hour in c.hourly[made.peak_month]]
        for c in made.companies
    }
    document_out: dict[str, Any] = {
        "name": f"capacity-{month}",
        "seed": 0,
        "start": f"{month}-01T00:00:00+09:00",
        "days": 1,
        "hosts": [{"name": "cpu", "resources": shape}],
        "workload": {"trace": trace},
        "target": {"p95_wait_min": 30, "admitted_share": 1.0},
    }
    Scenario.model_validate(document_out)  # what is written must load
    return document, document_out, hourly_requests(hourly, unit)

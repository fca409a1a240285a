"""The KPI scorecard over the event store: company MAU and retention (one DuckDB query),
costs from the definitions, the sharing saving from the capacity model, and survey
scores imported from CSV into ``<data_dir>/analytics/surveys.json``."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from groupcloud.activitystore.store import EventStore
from groupcloud.analytics.capacity import plan as capacity_plan
from groupcloud.analytics.kpis import (
    DEFAULT_KPIS,
    KpiDef,
    KpiDefinitions,
    parse_definitions,
    status,
    trend,
)
from groupcloud.analytics.metrics import suppress
from groupcloud.analytics.months import Month
from groupcloud.config import Settings
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput
from groupcloud.schemas.planning import KpiLine, Scorecard, SurveyImport
from groupcloud.services.analytics.activity import MAX_LISTED_BAD, mau_report
from groupcloud.services.analytics.capacity import load_document, load_model
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import shown_companies

__all__ = [
    "SURVEY_COLUMNS",
    "Activity",
    "company_activity",
    "import_survey",
    "load_definitions",
    "scorecard",
    "scorecard_for",
]

SURVEY_COLUMNS = ("company", "kpi", "month", "value")
GROUP_LINE = "group"
"""The KPI line of the group as a whole (every role reads it)."""


def load_definitions(path: Path | None) -> KpiDefinitions:
    made = parse_definitions(DEFAULT_KPIS if path is None else load_document(path))
    if isinstance(made, list):
        fields = ", ".join(f"{p['field']}: {p['message']}" for p in made[:5])
        raise InvalidInput(f"KPI definitions {path}: {fields}", errors=made)
    return made


@dataclass(frozen=True, slots=True)
class Activity:
    """Exact counts of a company's apps in a month (before k-suppression)."""

    mau: int
    previous_mau: int
    retained: int
    """Persons active in the month and in the month before."""


def company_activity(settings: Settings, month: Month, apps: Sequence[str]) -> Activity:
    """MAU, the month before's MAU and the persons retained, across ``apps`` (each person
    once). One small query of its own, so that a shared retention metric can replace it."""
    store = EventStore.under(settings.data_dir)
    now = [str(p) for p in store.month_files(month)]
    before = [str(p) for p in store.month_files(month.previous())]
    if not apps or not (now or before):
        return Activity(0, 0, 0)

    def persons(files: list[str], name: str) -> str:
        if not files:  # read_parquet refuses an empty list
            return "SELECT NULL::BLOB AS person_key WHERE false"
        return (
            f"SELECT DISTINCT person_key FROM read_parquet($files_{name}, "
            "hive_partitioning = false) WHERE list_contains($apps, app)"
        )

    query = (
        f"WITH now AS ({persons(now, 'now')}), before AS ({persons(before, 'before')}) "
        "SELECT (SELECT count(*) FROM now), (SELECT count(*) FROM before), "
        "(SELECT count(*) FROM now JOIN before USING (person_key))"
    )
    params: dict[str, object] = {"apps": list(apps)}
    if now:
        params["files_now"] = now
    if before:
        params["files_before"] = before
    with duckdb.connect() as con:
        row = con.execute(query, params).fetchone()
    assert row is not None
    return Activity(int(row[0]), int(row[1]), int(row[2]))


def _surveys_path(settings: Settings) -> Path:
    return EventStore.under(settings.data_dir).root / "surveys.json"


def _surveys(settings: Settings) -> dict[tuple[str, str, str], float]:
    try:
        rows = json.loads(_surveys_path(settings).read_text())
    except FileNotFoundError:
        return {}
    return {(r["company"], r["kpi"], r["month"]): float(r["value"]) for r in rows}


def import_survey(settings: Settings, path: Path) -> SurveyImport:
    """Load ``company,kpi,month,value`` rows; a row for a (company, kpi, month) imported
    before replaces it. Bad rows are listed by line (the header is line 1) and skipped."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror or exc}",
            errors=[{"field": "file", "message": str(exc.strerror or exc)}],
        ) from None
    scores = _surveys(settings)
    received = imported = 0
    bad: list[dict[str, str | int]] = []
    bad_count = 0
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in SURVEY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(
                f"{path}: the header must name {', '.join(SURVEY_COLUMNS)} "
                f"(missing: {', '.join(missing)})",
                errors=[{"field": c, "message": "missing column"} for c in missing],
            )
        for row in reader:
            received += 1
            line = reader.line_num
            try:
                company, kpi, month, value = _check_survey(row)
            except _BadRow as exc:
                bad_count += 1
                if len(bad) < MAX_LISTED_BAD:
                    bad.append({"line": line, "field": exc.field, "reason": exc.reason})
                continue
            scores[company, kpi, month] = value
            imported += 1
    target = _surveys_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(
        json.dumps(
            [
                {"company": c, "kpi": k, "month": m, "value": v}
                for (c, k, m), v in sorted(scores.items())
            ],
            indent=1,
        )
    )
    os.replace(temporary, target)
    return SurveyImport(
        source=str(path), received=received, imported=imported, bad=bad_count, bad_rows=bad
    )


class _BadRow(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _check_survey(row: dict[str, str | None]) -> tuple[str, str, str, float]:
    """The row's (company, kpi, month, value); raises _BadRow naming the field."""
    company = (row.get("company") or "").strip()
    if not company:
        raise _BadRow("company", "missing")
    kpi = (row.get("kpi") or "").strip()
    if not kpi:
        raise _BadRow("kpi", "missing")
    try:
        month = str(Month.parse((row.get("month") or "").strip()))
    except ValueError:
        raise _BadRow("month", "must be YYYY-MM") from None
    try:
        value = float((row.get("value") or "").strip())
    except ValueError:
        raise _BadRow("value", "not a number") from None
    if not math.isfinite(value):
        raise _BadRow("value", "not a finite number")
    return (company, kpi, month, value)


def _saved_hosts(settings: Settings, month: Month, scale: float) -> dict[str, float]:
    """Hosts sharing saves in the month, shared out by each company's hosts alone (the
    capacity model on the month's own MAU), and the total under ``group``."""
    model = load_model(settings.analytics_capacity_model)
    report = mau_report(settings, month)
    forecasts = {app: [(report.apps.get(app) or 0) * scale] for app in model.apps}
    made = capacity_plan(replace(model, horizon_months=1), forecasts)
    out: dict[str, float] = {GROUP_LINE: float(made.hosts_saved)}
    for company in made.companies:
        share = company.hosts_alone / made.hosts_separate if made.hosts_separate else 0.0
        out[company.company] = made.hosts_saved * share
    return out


def scorecard(
    settings: Settings,
    month: Month,
    *,
    definitions: Path | None = None,
    scale: float = 1.0,
) -> Scorecard:
    """Every KPI of every company for the month: value, the month before, status, trend.
    ``scale`` multiplies MAU counts (a sampled store) in MAU, cost per MAU and cost avoided."""
    path = definitions if definitions is not None else settings.analytics_kpis
    defs = load_definitions(path)
    k = settings.analytics_k
    surveys = _surveys(settings)
    months = (month, month.previous())
    saved: dict[Month, dict[str, float]] = {}
    rows: list[KpiLine] = []
    for company in defs.companies:
        activity = {m: company_activity(settings, m, company.apps) for m in months}
        for kpi in company.kpis:
            values = []
            for m in months:
                if kpi.kind == "cost_avoided" and m not in saved:
                    saved[m] = _saved_hosts(settings, m, scale)
                values.append(
                    _value(kpi, defs, activity[m], m, k, scale, surveys, saved.get(m, {}))
                )
            value, previous = values
            rows.append(
                KpiLine(
                    company=company.company,
                    kpi=kpi.name,
                    kind=kpi.kind,
                    unit=kpi.unit,
                    value=value,
                    previous=previous,
                    target=kpi.target,
                    direction=kpi.direction,
                    status=status(value, kpi.target, kpi.direction, defs.at_risk_band),
                    trend=trend(value, previous, kpi.direction),
                    change=None if value is None or previous is None else value - previous,
                    estimate=kpi.kind == "cost_avoided",
                    note="estimate until metering exists: hosts saved x host_monthly_cost"
                    if kpi.kind == "cost_avoided"
                    else None,
                )
            )
    return Scorecard(
        month=str(month),
        definitions=str(path) if path is not None else "built-in",
        at_risk_band=defs.at_risk_band,
        rows=rows,
    )


def scorecard_for(rt: Runtime, actor: Principal, month: Month, *, scale: float = 1.0) -> Scorecard:
    """The scorecard as ``actor`` may read it: every company's KPIs for the group roles,
    its own company's and the group's own line (``group``: integrated MAU against the
    target, cost avoided) for a company role. A company's KPIs hold its costs and targets,
    which are its own business."""
    card = scorecard(rt.settings, month, scale=scale)
    shown = shown_companies(actor)
    if shown is None:
        return card
    rows = [r for r in card.rows if r.company in shown or r.company == GROUP_LINE]
    return card.model_copy(update={"rows": rows})


def _value(
    kpi: KpiDef,
    defs: KpiDefinitions,
    activity: Activity,
    month: Month,
    k: int,
    scale: float,
    surveys: dict[tuple[str, str, str], float],
    saved: dict[str, float],
) -> float | None:
    """One KPI's value in one month (None: unknown or suppressed)."""
    mau = suppress(activity.mau, k)
    if kpi.kind == "mau":
        return None if mau is None else mau * scale
    if kpi.kind == "retention":
        retained, base = suppress(activity.retained, k), suppress(activity.previous_mau, k)
        if retained is None or not base:
            return None
        return retained / base
    if kpi.kind == "cost_per_mau":
        cost = defs.cost(kpi.company, str(month))
        if cost is None or not mau:
            return None
        return cost / (mau * scale)
    if kpi.kind == "cost_avoided":
        hosts = saved.get(kpi.company)
        return None if hosts is None else hosts * defs.host_monthly_cost
    return surveys.get((kpi.company, kpi.name, str(month)))

"""``groupcloud mau capacity`` (also ``groupcloud plan capacity``): compute per company for
the next 12 months from the MAU forecast, nominal quotas, hosts to add and what the shared
pool saves. Works on the data directory, no server needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from groupcloud.analytics.months import Month
from groupcloud.cli.output import EXIT_API, JsonFlag, console, fail
from groupcloud.config import Settings
from groupcloud.errors import GroupcloudError
from groupcloud.schemas.planning import CapacityPlan
from groupcloud.services.analytics import capacity as service
from groupcloud.simulator.demand import write_requests

__all__ = ["plan_app", "register"]

SCENARIO_NOTE = (
    "the busiest forecast month's peak day of `groupcloud mau capacity`, as one-hour "
    "requests of a quarter host (docs/capacity.md)"
)

plan_app = typer.Typer(help="Capacity planning from app activity (no server needed).")


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _render(made: CapacityPlan) -> None:
    scaled = "" if made.scale == 1 else f", stored MAU x {made.scale:g}"
    apps = Table(
        title=f"MAU forecast after {made.base_month}{scaled}", caption=made.forecast_method
    )
    for column in ("APP", "COMPANY", f"MAU {made.base_month}", "GROWTH/MONTH", made.months[-1]):
        apps.add_column(column, justify="left" if column in ("APP", "COMPANY") else "right")
    for a in made.apps:
        last = a.history[-1].value
        growth = "-" if a.monthly_growth is None else f"{a.monthly_growth * 100:+.2f}%"
        apps.add_row(
            a.app,
            a.company,
            "-" if last is None else f"{last:,.0f}",
            growth,
            f"{a.forecast[-1].value or 0:,.0f}",
        )
    console.print(apps)
    companies = Table(title=f"compute per company, {made.months[0]}..{made.months[-1]}")
    for column in ("COMPANY", "PEAK VCPU", "PEAK MEMORY_MB", "NOMINAL VCPU", "NOMINAL MEMORY_MB",
                   "HOSTS ALONE"):  # fmt: skip
        companies.add_column(column, justify="left" if column == "COMPANY" else "right")
    for c in made.companies:
        companies.add_row(
            c.company,
            f"{max(m.peak['VCPU'] for m in c.months):,.1f}",
            f"{max(m.peak['MEMORY_MB'] for m in c.months):,.0f}",
            f"{c.nominal['VCPU']:,}",
            f"{c.nominal['MEMORY_MB']:,}",
            str(c.hosts_alone),
        )
    pool = made.pool
    companies.add_row(
        "[bold]shared pool[/]",
        f"{made.sharing.vcpu_peak_of_sum:,.1f}",
        f"{max(m.peak['MEMORY_MB'] for m in pool.months):,.0f}",
        f"{pool.needed['VCPU']:,}",
        f"{pool.needed['MEMORY_MB']:,}",
        str(pool.hosts_needed),
    )
    console.print(companies)
    s = made.sharing
    console.print(
        f"pool peak {pool.peak_month} at {pool.peak_hour:02d}:00 Seoul; hosts of "
        f"{made.host['VCPU']} VCPU / {made.host['MEMORY_MB']:,} MB: need {pool.hosts_needed}, "
        f"have {pool.pool_hosts} ({pool.pool_hosts_from}), add {pool.hosts_to_add}",
        highlight=False,
    )
    console.print(
        f"sharing saves {s.hosts_saved} of {s.hosts_separate} hosts ({s.saved_percent:.1f}%): "
        f"sum of company peaks {s.vcpu_sum_of_peaks:,.1f} VCPU, peak of the sum "
        f"{s.vcpu_peak_of_sum:,.1f} VCPU (headroom {made.headroom:.0%} on both)",
        highlight=False,
    )
    if made.unmodelled_apps:
        console.print(f"not in the model: {', '.join(made.unmodelled_apps)}", highlight=False)


def capacity(
    month: Annotated[
        Month,
        typer.Option(parser=_month, metavar="YYYY-MM", help="Last month of MAU history."),
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            help="Capacity model, YAML or JSON (default: "
            "GROUPCLOUD_ANALYTICS_CAPACITY_MODEL, else built in; see "
            "examples/capacity-model.yaml)."
        ),
    ] = None,
    pool_hosts: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Hosts in the pool now (default: the active hosts of the shared zones in the "
            "control-plane database, if there is one, else the model's pool_hosts).",
        ),
    ] = None,
    host_vcpu: Annotated[
        int | None, typer.Option(min=1, help="VCPU of one host (default: the model's).")
    ] = None,
    host_memory_mb: Annotated[
        int | None, typer.Option(min=1, help="MEMORY_MB of one host (default: the model's).")
    ] = None,
    scale: Annotated[
        float,
        typer.Option(
            min=0,
            help="Multiply every stored MAU, e.g. 3333.33 when the store "
            "holds 3,000 of 10M persons (a sample or synthetic data).",
        ),
    ] = 1.0,
    scenario_out: Annotated[
        Path | None,
        typer.Option(
            help="Also write a `groupcloud sim run` scenario of the busiest forecast month's "
            "peak day (YAML) and its trace beside it (<name>.requests.csv)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Forecast each app's MAU 12 months ahead (log-linear fit of the exact MAU), turn it
    into load by Seoul hour (requests per user, peak-hour factor, hourly profile, resources
    per request/s), and size every company alone and the shared pool: nominal quotas, hosts
    to add, and hosts saved by sharing."""
    host = {"VCPU": host_vcpu, "MEMORY_MB": host_memory_mb}
    given = {rc: v for rc, v in host.items() if v is not None}
    try:
        if scenario_out is None:
            made = service.capacity_plan(
                Settings(), month, model_path=model, pool_hosts=pool_hosts, host=given, scale=scale
            )
        else:
            trace = scenario_out.with_name(scenario_out.stem + ".requests.csv")
            made, document, requests = service.scenario(
                Settings(),
                month,
                trace=trace.name,
                model_path=model,
                pool_hosts=pool_hosts,
                host=given,
                scale=scale,
            )
            write_requests(trace, requests)
            text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
            scenario_out.write_text(f"# {SCENARIO_NOTE}\n{text}", encoding="utf-8")
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    if as_json:
        print(made.model_dump_json())
        return
    _render(made)
    if scenario_out is not None:
        console.print(
            f"wrote {scenario_out} and {len(requests):,} requests to {trace}; "
            f"try: groupcloud sim run {scenario_out} --report OUTDIR",
            highlight=False,
        )


plan_app.command("capacity")(capacity)


def register(mau_app: typer.Typer) -> None:
    """Add ``capacity`` to ``groupcloud mau`` (the same command as ``plan capacity``)."""
    mau_app.command("capacity")(capacity)

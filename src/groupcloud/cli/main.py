"""The ``groupcloud`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from groupcloud import __version__
from groupcloud.cli import (
    allocs,
    analytics,
    capacity,
    catalog,
    charts,
    kpi,
    local,
    networks,
    pool,
    providers,
    sim,
    stream,
    tenancy,
)
from groupcloud.cli.context import Target
from groupcloud.cli.output import console
from groupcloud.config import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="groupcloud",
    help="The control plane of the group common cloud.\n\n"
    "Local commands (serve, db, seed, admin, mau, plan, kpi) work on the database of "
    "GROUPCLOUD_DATA_DIR or GROUPCLOUD_DATABASE_URL; sim needs neither database nor server. "
    "The other commands call the API at GROUPCLOUD_URL with GROUPCLOUD_TOKEN. Exit codes: "
    "0 ok, 1 refused by the API, 2 bad usage, 3 API unreachable or no token.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"groupcloud {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="API address (default: GROUPCLOUD_URL or http://127.0.0.1:8080)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token (default: GROUPCLOUD_TOKEN).", show_default=False)
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    settings = Settings()
    ctx.obj = Target(url=url or settings.url, token=token or settings.token)


local.register(app)
app.add_typer(pool.host_app, name="host")
app.add_typer(pool.quota_app, name="quota")
app.command("usage")(pool.usage)
app.add_typer(allocs.alloc_app, name="alloc")
app.add_typer(networks.net_app, name="net")
app.add_typer(tenancy.company_app, name="company")
app.add_typer(tenancy.project_app, name="project")
app.add_typer(tenancy.zone_app, name="zone")
app.add_typer(providers.provider_app, name="provider")
app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(catalog.svc_app, name="svc")
app.command("offers")(providers.offers)
app.add_typer(tenancy.token_app, name="token")
app.add_typer(sim.sim_app, name="sim")
app.command("events")(tenancy.events)
app.command("whoami")(tenancy.whoami)
stream.register(analytics.mau_app)
capacity.register(analytics.mau_app)
charts.register(analytics.mau_app)
app.add_typer(capacity.plan_app, name="plan")
app.add_typer(kpi.kpi_app, name="kpi")
app.add_typer(analytics.mau_app, name="mau")


def main() -> None:
    """Entry point of the ``groupcloud`` command."""
    app()

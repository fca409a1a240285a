"""Commands that work on the database directly: serve, db, seed, admin."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from groupcloud import __version__
from groupcloud.api.app import create_app
from groupcloud.cli.output import EXIT_API, console, fail
from groupcloud.config import Settings
from groupcloud.db.migrate import current_revision, head_revision, upgrade
from groupcloud.domain.tenancy import Role
from groupcloud.errors import GroupcloudError
from groupcloud.schemas import TokenCreate
from groupcloud.services import seed, tokens
from groupcloud.services.runtime import Runtime
from groupcloud.services.tokens import SYSTEM

__all__ = ["admin_app", "db_app", "register", "seed_app"]

db_app = typer.Typer(help="Database schema (works on the database directly, no server needed).")
seed_app = typer.Typer(help="Fill the database with example data.")
admin_app = typer.Typer(help="Local administration (works on the database directly).")


def _runtime() -> Runtime:
    return Runtime.open(Settings())


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(db_app, name="db")
    app.add_typer(seed_app, name="seed")
    app.add_typer(admin_app, name="admin")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the API (migrating the database first)."""
    rt = _runtime()
    try:
        if migrate:
            upgrade(rt.db)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        console.print(
            f"groupcloud {__version__} API on [bold]{url}[/]  (docs {url}/docs, "
            f"database {rt.db.url.render_as_string(hide_password=True)})",
            highlight=False,
        )
        uvicorn.run(create_app(rt, background=True), host=host, port=port, log_level=log_level)
    finally:
        rt.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (safe to run concurrently)."""
    rt = _runtime()
    try:
        revision = upgrade(rt.db)
        console.print(
            f"database {rt.db.url.render_as_string(hide_password=True)} at revision {revision}",
            highlight=False,
        )
    finally:
        rt.close()


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the newest one this version knows."""
    rt = _runtime()
    try:
        current, head = current_revision(rt.db), head_revision()
        state = "up to date" if current == head else "needs 'groupcloud db upgrade'"
        console.print(f"current {current or 'none'}, newest {head}: {state}", highlight=False)
    finally:
        rt.close()


@seed_app.command("demo")
def seed_demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when the database already has a group.")
    ] = False,
) -> None:
    """Create a demo group: 4 companies, 40 hosts (8 with GPUs), quotas and a few allocations.

    Prints a group-admin token once.
    """
    rt = _runtime()
    try:
        upgrade(rt.db)
        try:
            result = seed.seed_demo(rt, if_empty=True)
        except GroupcloudError as exc:
            raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
        if not result.created:
            message = "the database already holds a group; not seeding it again."
            if not if_empty:
                raise fail(message + " Use a new GROUPCLOUD_DATA_DIR for a fresh demo.", EXIT_API)
            console.print(
                message + " The admin token was printed when it was created; make a new one "
                "with: groupcloud admin issue-token",
                highlight=False,
            )
            return
        summary = ", ".join(f"{k} {v}" for k, v in result.summary.items())
        console.print(f"seeded the demo group: {summary}", highlight=False)
        console.print("group-admin token (shown once; keep it):", style="bold")
        console.print(f"  export GROUPCLOUD_TOKEN={result.admin_token}", highlight=False)
    finally:
        rt.close()


@admin_app.command("issue-token")
def issue_token(
    name: Annotated[str, typer.Option(help="Who or what will use the token.")] = "admin",
    role: Annotated[Role, typer.Option(help="Role of the token.")] = Role.GROUP_ADMIN,
    company: Annotated[str | None, typer.Option(help="Company of a company role.")] = None,
) -> None:
    """Issue an API token directly in the database (e.g. when the printed one is lost)."""
    rt = _runtime()
    try:
        created = tokens.issue_token(rt, SYSTEM, TokenCreate(name=name, role=role, company=company))
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    finally:
        rt.close()
    console.print(f"token {created.id} ({created.role.value}) for {created.name}:", highlight=False)
    console.print(f"  export GROUPCLOUD_TOKEN={created.secret}", highlight=False)

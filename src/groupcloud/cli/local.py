"""Commands that work on the database directly: serve, db, seed, admin."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Annotated

import typer
import uvicorn

from groupcloud import __version__
from groupcloud.api.app import create_app
from groupcloud.cli.output import EXIT_API, console, fail, stamp
from groupcloud.config import Settings
from groupcloud.domain.clock import utcnow
from groupcloud.domain.tenancy import Role
from groupcloud.errors import GroupcloudError
from groupcloud.schemas.tenancy import TokenCreate
from groupcloud.services.catalog.backends import new_secret_key
from groupcloud.services.common import database
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.worker import Round, Worker, run_round_as_leader
from groupcloud.services.demo import seed
from groupcloud.services.tenancy import tokens
from groupcloud.services.tenancy.tokens import SYSTEM

__all__ = ["admin_app", "db_app", "register", "seed_app"]

db_app = typer.Typer(help="Database schema (works on the database directly, no server needed).")
seed_app = typer.Typer(help="Fill the database with example data.")
admin_app = typer.Typer(help="Local administration (works on the database directly).")


@contextmanager
def _runtime() -> Iterator[Runtime]:
    """The runtime of a local command: the configured database, closed afterwards. API
    refusals raised by the services end the command with one line and exit code 1."""
    rt = Runtime.open(Settings())
    try:
        yield rt
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    finally:
        rt.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command("secret-key")(secret_key)
    app.add_typer(db_app, name="db")
    app.add_typer(seed_app, name="seed")
    app.add_typer(admin_app, name="admin")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first.")] = True,
    worker: Annotated[
        bool,
        typer.Option(
            help="Also run a worker (scheduler, reclaims, leases, idle reclaim) in "
            "this process; only one worker of all processes acts at a time."
        ),
    ] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the API (migrating the database first), with a worker unless --no-worker."""
    with _runtime() as rt:
        if migrate:
            database.migrate(rt)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        console.print(
            f"groupcloud {__version__} API on [bold]{url}[/]  (docs {url}/docs, "
            f"database {_where(rt)})",
            highlight=False,
        )
        uvicorn.run(
            create_app(rt, background=True, worker=worker),
            host=host,
            port=port,
            log_level=log_level,
        )


def secret_key() -> None:
    """Print a new random key for GROUPCLOUD_SECRET_KEY (it seals the catalog bindings'
    credentials at rest; keep it outside the database, e.g. in the process environment)."""
    typer.echo(new_secret_key())


def worker(
    once: Annotated[
        bool, typer.Option(help="Run one round (if this process gets leadership) and exit.")
    ] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between rounds (GROUPCLOUD_WORKER_INTERVAL_S).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Print leadership changes only.")] = False,
) -> None:
    """Run the worker: admit queued requests (fair share, borrowing), reclaim borrowed
    capacity with notice, expire leases and reclaim idle allocations.

    Start as many as you like for availability: one holds leadership (a PostgreSQL
    advisory lock, or a file lock next to the SQLite database) and the others take over
    within an interval when it dies. Stops on Ctrl-C or SIGTERM."""
    with _runtime() as rt:
        database.migrate(rt)
        if once:
            done = run_round_as_leader(rt)
            if done is None:
                console.print("another worker holds leadership; nothing done", highlight=False)
                return
            _print_round(done, always=True)
            return
        runner = Worker(
            rt,
            interval_s=interval,
            on_round=None if quiet else _print_round,
            on_leadership=lambda held: console.print(
                f"{stamp(utcnow())} worker {os.getpid()} "
                + ("took leadership" if held else "lost leadership"),
                highlight=False,
            ),
        )
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        console.print(
            f"groupcloud worker {os.getpid()} on {_where(rt)}: waiting for leadership",
            highlight=False,
        )
        with suppress(KeyboardInterrupt):
            runner.run()


def _print_round(done: Round, always: bool = False) -> None:
    if not (done.busy or always):
        return
    console.print(
        f"{stamp(utcnow())} admitted {done.admitted} (borrowing {done.borrowed}), "
        f"reclaim notices {done.reclaims_started}, reclaimed {done.reclaimed}, "
        f"expired {done.expired}, lease warnings {done.lease_warnings}, idle flagged "
        f"{done.idle_flagged}, idle released {done.idle_released}; pending {done.pending}",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (safe to run concurrently)."""
    with _runtime() as rt:
        revision = database.migrate(rt)
        console.print(f"database {_where(rt)} at revision {revision}", highlight=False)


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the newest one this version knows."""
    with _runtime() as rt:
        current, head = database.schema_revisions(rt)
    state = "up to date" if current == head else "needs 'groupcloud db upgrade'"
    console.print(f"current {current or 'none'}, newest {head}: {state}", highlight=False)


@seed_app.command("demo")
def seed_demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when the database already has a group.")
    ] = False,
) -> None:
    """Create a demo group: 4 companies, 40 hosts (8 with GPUs), quotas and a few allocations.

    Prints a group-admin token once.
    """
    with _runtime() as rt:
        database.migrate(rt)
        result = seed.seed_demo(rt, if_empty=True)
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


@admin_app.command("issue-token")
def issue_token(
    name: Annotated[str, typer.Option(help="Who or what will use the token.")] = "admin",
    role: Annotated[Role, typer.Option(help="Role of the token.")] = Role.GROUP_ADMIN,
    company: Annotated[str | None, typer.Option(help="Company of a company role.")] = None,
) -> None:
    """Issue an API token directly in the database (e.g. when the printed one is lost)."""
    with _runtime() as rt:
        created = tokens.issue_token(rt, SYSTEM, TokenCreate(name=name, role=role, company=company))
    console.print(f"token {created.id} ({created.role.value}) for {created.name}:", highlight=False)
    console.print(f"  export GROUPCLOUD_TOKEN={created.secret}", highlight=False)


def _where(rt: Runtime) -> str:
    return rt.db.url.render_as_string(hide_password=True)

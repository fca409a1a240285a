"""Shared fixtures: real databases (SQLite and PostgreSQL), runtimes and real HTTP servers.

PostgreSQL runs in every ``make test``: each test session works in a schema of its own on
the server at GROUPCLOUD_TEST_PG (default: the local server, database ``test``), dropped
at the end. If the server is down, the tests error out; they are never skipped.
"""

from __future__ import annotations

import os

# Tables of the CLI are as wide as the terminal says; pytest-xdist's workers are told 80
# columns, which would fold IDs in the tables the CLI tests read. Before any Console exists:
os.environ.pop("COLUMNS", None)

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from groupcloud.config import Settings
from groupcloud.db.engine import Database
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import Base
from groupcloud.services.common.runtime import Runtime
from tests.support import PG_ADMIN_URL, World, build_world, start_thread_server

DATABASES = ["sqlite", "postgresql"]

# Hypothesis's per-example deadline is a timed assertion: on a loaded 2-core machine it
# fails tests whose results are right. Speed is measured by the benchmarks, not here.
settings.register_profile("groupcloud", deadline=None)
settings.load_profile("groupcloud")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL schema for this test session."""
    schema = f"gct_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # fail loudly: PostgreSQL tests are part of every run
        raise RuntimeError(
            f"PostgreSQL is needed by the test suite and is not reachable at {PG_ADMIN_URL} "
            "(start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)"
        ) from exc
    url = make_url(PG_ADMIN_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    db = Database(rendered)
    upgrade(db)
    db.dispose()
    yield rendered
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "groupcloud.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO pool_state (id, generation) VALUES (1, 0)"))
    engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: a new SQLite file, or the session's PostgreSQL schema
    emptied. Tests using it run once per database."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        url: str = request.getfixturevalue("pg_url")
        _reset_postgres(url)
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    shutil.copy(template, tmp_path / "groupcloud.db")
    return f"sqlite:///{tmp_path / 'groupcloud.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated SQLite database only."""
    shutil.copy(sqlite_template, tmp_path / "groupcloud.db")
    return f"sqlite:///{tmp_path / 'groupcloud.db'}"


@pytest.fixture
def postgres_url(pg_url: str) -> str:
    """The session's PostgreSQL schema, emptied."""
    _reset_postgres(pg_url)
    return pg_url


def open_runtime(url: str, tmp_path: Path, **settings: object) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp_path, database_url=url, **settings))  # type: ignore[arg-type]


@pytest.fixture
def rt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on each database in turn."""
    runtime = open_runtime(database_url, tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def world(rt: Runtime) -> World:
    """A small group on ``rt``: see tests.support.build_world."""
    return build_world(rt)


@pytest.fixture
def server(rt: Runtime, world: World) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 serving ``rt``; yields its base URL."""
    with start_thread_server(rt) as url:
        yield url

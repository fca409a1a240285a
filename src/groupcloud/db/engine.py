"""Engines and transactions for the embedded SQLite database and for PostgreSQL.

SQLite: WAL (readers never block the writer), ``synchronous=NORMAL`` (a commit survives a
killed process; only an OS crash can lose the last commits), a busy timeout, foreign keys,
and ``BEGIN IMMEDIATE`` for writers so that two writers queue for the lock instead of
failing half-way. PostgreSQL: psycopg 3 with a connection pool; writers rely on
conditional updates under READ COMMITTED, which re-evaluate their WHERE clause on the
latest row version after waiting for a concurrent writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select

from groupcloud.db.prepared import Cursor, Prepared, transaction

__all__ = ["Database", "is_transient"]

T = TypeVar("T")
_WRITER = "groupcloud_writer"
_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
SQLITE_PAGE_SIZE = 1024
SQLITE_AUTOCHECKPOINT_PAGES = 32_768
SQLITE_CACHE_KIB = 65_536


def is_transient(exc: BaseException) -> bool:
    """Errors that say "try the whole transaction again", not "your request is wrong"."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(orig)


class Database:
    """One engine per process; ``write()`` and ``read()`` open one transaction each."""

    def __init__(self, url: str | URL, *, pool_size: int = 10, busy_timeout_ms: int = 30_000):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False}
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size * 4
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine, busy_timeout_ms)
        self._writer = self.engine.execution_options(**{_WRITER: True})
        # Readers see one snapshot for the whole transaction (SQLite's read transactions
        # already do; PostgreSQL's default READ COMMITTED would not).
        self._reader = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        self._prepared: dict[tuple[UpdateBase | Select[Any], tuple[str, ...] | None], Prepared] = {}

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction; commits on success, rolls back on any exception."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def fast_write(self) -> Iterator[Cursor]:
        """A write transaction on the raw driver connection, for ``Prepared`` statements."""
        raw = self.engine.raw_connection()
        try:
            with transaction(
                raw,
                begin="BEGIN IMMEDIATE" if self.is_sqlite else None,
                dbapi_error=self.engine.dialect.loaded_dbapi.Error,
            ) as cursor:
                yield cursor
        finally:
            raw.close()

    def prepare(
        self, statement: UpdateBase | Select[Any], columns: Sequence[str] | None = None
    ) -> Prepared:
        """``statement`` compiled for this database, once per process."""
        key = (statement, tuple(columns) if columns is not None else None)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(statement, self.engine.dialect, columns)
        return prepared

    @contextmanager
    def read_conn(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write_conn(self) -> Iterator[Connection]:
        """``write()`` without the ORM session, for the hot use cases that run Core
        statements only (a release): the same transaction, less to set up."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """``read()`` without the ORM session: the same consistent snapshot."""
        with self._reader.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (a consistent snapshot; never takes the write lock)."""
        with Session(self._reader, expire_on_commit=False) as session, session.begin():
            yield session

    def retrying(self, fn: Callable[[], T], attempts: int = 8) -> T:
        """Run ``fn`` (which opens its own transaction) again after a transient failure."""
        for attempt in range(attempts):
            try:
                return fn()
            except DBAPIError as exc:
                if not is_transient(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.002 * (2**attempt))
        raise AssertionError("unreachable")

    def start_checkpointer(self, interval_s: float = 0.5) -> Checkpointer | None:
        """Start background WAL checkpoints (SQLite only; None on other databases)."""
        if not self.is_sqlite:
            return None
        checkpointer = Checkpointer(self.engine, interval_s)
        checkpointer.start()
        return checkpointer

    def dispose(self) -> None:
        self.engine.dispose()


class Checkpointer(threading.Thread):
    """Copies committed WAL frames into the SQLite database every ``interval_s`` seconds.

    A PASSIVE checkpoint never waits for readers or writers, and SQLite releases the GIL
    while it works, so claims keep committing meanwhile. Without it, the commit that
    crosses the auto-checkpoint threshold pays for the copy and the fsync: a latency spike
    every few hundred claims.
    """

    def __init__(self, engine: Engine, interval_s: float) -> None:
        super().__init__(name="groupcloud-checkpointer", daemon=True)
        self._engine = engine
        self._interval_s = interval_s
        self._stopped = threading.Event()

    def run(self) -> None:
        raw = self._engine.raw_connection()
        try:
            while not self._stopped.wait(self._interval_s):
                cursor = raw.cursor()
                try:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    cursor.close()
        finally:
            raw.close()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=10)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Small pages: a claim touches a dozen b-tree pages and every touched page is
        # written (and checksummed) whole into the WAL at commit, so 1 KiB pages make
        # commits about twice as fast as the 4 KiB default. Only effective on a new file.
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A page cache of 64 MiB per connection (the default is 2,000 pages, 2 MiB with our
        # page size): with indexes larger than the cache, claims miss pages and their
        # latency tail grows with the database (p99 of address claims at 100,000 rows:
        # 4.5 ms with the default, 0.8 ms with this).
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints (copying the WAL into the database, with an fsync) are done by
        # ``Checkpointer`` off the request path; this bound only stops the WAL growing
        # without limit in processes that run none (CLI commands, tests).
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writer = conn.get_execution_options().get(_WRITER, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

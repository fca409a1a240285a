"""Leadership: only one worker process acts at a time.

PostgreSQL: a session-level advisory lock held on a dedicated connection; it is released
by the server as soon as that connection dies (a killed leader loses it at once, a hung
one when TCP gives up). SQLite: an exclusive ``flock`` on a file next to the database,
released by the kernel when the process dies.

Leadership is an optimisation, not the safety net: every action a worker takes is a
conditional state change (``WHERE state = 'pending'`` ...), so two workers acting at
once for a moment (a leader that lost its connection but has not noticed yet) can only
waste work, never break an invariant.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from groupcloud.db.engine import Database

__all__ = ["Leadership"]


class Leadership:
    def __init__(self, db: Database, name: str = "groupcloud-worker") -> None:
        self._db = db
        self.name = name
        # Advisory lock keys are bigint; a stable hash of the name keeps them apart.
        self._key = zlib.crc32(name.encode())
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Take leadership if nobody holds it; True if this process holds it now."""
        if self.held:
            return self.check()
        if self._db.is_sqlite:
            return self._try_file()
        conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            # One leader per deployment: deployments in other schemas of the same
            # database (tests, staging) must not share the lock.
            schema = conn.scalar(text("SELECT current_schema()"))
            name = self.name if schema in (None, "public") else f"{self.name}:{schema}"
            self._key = zlib.crc32(name.encode())
            got = conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
        except DBAPIError:
            conn.close()
            return False
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def check(self) -> bool:
        """Whether leadership is still held (the lock's connection is alive)."""
        if self._file is not None:
            return True
        if self._conn is None:
            return False
        try:
            held = self._conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :k AND pid = pg_backend_pid() AND granted"
                ),
                {"k": self._key & 0xFFFFFFFF},
            )
        except DBAPIError:
            held = 0
        if not held:
            self._drop_conn()
        return bool(held)

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._drop_conn()

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except DBAPIError:
                pass

    def _try_file(self) -> bool:
        database = self._db.url.database or ""
        path = Path(f"{database}.{self.name}.lock") if database and database != ":memory:" else None
        if path is None:
            return True  # a private in-memory database has only this process
        handle = open(path, "ab")  # noqa: SIM115 - held open as long as leadership lasts
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

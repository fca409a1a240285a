"""Statements compiled once by SQLAlchemy and executed straight on the DBAPI cursor.

The claim path runs five statements per request. SQLAlchemy's Connection.execute spends
more time per statement (execution context, result set-up, events) than SQLite spends
executing it, so on that path only, groupcloud keeps SQLAlchemy for what it is best at
-- building the SQL for the dialect (Core constructs, bind casts, paramstyle) and the
type conversions of each parameter (JSON, UTC timestamps) -- and hands the result to the
driver itself. Driver errors are re-raised as SQLAlchemy's exception classes, so callers
handle ``IntegrityError`` and transient failures the same way on both paths.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select

__all__ = ["Cursor", "Prepared", "on_connection", "prepared"]

Params = Mapping[str, Any]


class Prepared:
    """One DML statement (or a SELECT), compiled for one dialect, with the bind processors
    of its types.

    ``columns`` names the columns an INSERT sets (all others are left to the database).
    Statements whose columns rely on Python-side defaults are refused: those defaults are
    evaluated by SQLAlchemy's execution context, which this path does not use.
    """

    def __init__(
        self,
        statement: UpdateBase | Select[Any],
        dialect: Dialect,
        columns: Sequence[str] | None = None,
    ) -> None:
        compiled = statement.compile(
            dialect=dialect, column_keys=list(columns) if columns is not None else None
        )
        assert isinstance(compiled, SQLCompiler)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(f"give every column a value, defaults are not evaluated: {statement}")
        self.sql: str = compiled.string
        self._positional = bool(compiled.positional)
        names = (
            list(compiled.positiontup or [])
            if self._positional
            else list(dict.fromkeys(compiled.bind_names.values()))
        )
        # Per placeholder, in order: the caller's key (or a value fixed in the statement)
        # and the bind processor of its type, precomputed so that convert() is a getter
        # plus processors only where a type has one (JSON, timestamps).
        self._names = names
        keys: list[str] = []
        self._fixed: list[tuple[int, Any]] = []
        self._processors: list[tuple[int, Callable[[Any], Any]]] = []
        for position, name in enumerate(names):
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"expanding IN parameters are not supported here: {name}")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                if processor is not None:
                    self._processors.append((len(keys), processor))
                keys.append(bind.key)
            else:
                self._fixed.append((position, processor(bind.value) if processor else bind.value))
        self._get = itemgetter(*keys) if keys else (lambda params: ())
        self._single = len(keys) == 1

    def convert(self, params: Params) -> Sequence[Any] | dict[str, Any]:
        """The caller's named parameters in the driver's paramstyle, types converted."""
        got = self._get(params)
        values = [got] if self._single else list(got)
        for i, processor in self._processors:
            values[i] = processor(values[i])
        for position, value in self._fixed:
            values.insert(position, value)
        if self._positional:
            return tuple(values)
        return dict(zip(self._names, values, strict=True))


class Cursor:
    """A DBAPI cursor inside one transaction, running ``Prepared`` statements."""

    def __init__(self, cursor: Any, dbapi_error: type[Exception]) -> None:
        self._cursor = cursor
        self._dbapi_error = dbapi_error

    def run(self, prepared: Prepared, params: Params | Sequence[Params]) -> int:
        """Execute once (a mapping) or for each mapping of a sequence; the total row count."""
        try:
            if isinstance(params, Mapping):
                self._cursor.execute(prepared.sql, prepared.convert(params))
            else:
                self._cursor.executemany(prepared.sql, [prepared.convert(p) for p in params])
        except self._dbapi_error as exc:
            raise DBAPIError.instance(prepared.sql, params, exc, self._dbapi_error) from exc
        return int(self._cursor.rowcount)

    def rows(self, prepared: Prepared, params: Params) -> list[tuple[Any, ...]]:
        """Execute once and fetch what it returns (a SELECT, or DML with RETURNING); the
        values come back as the driver gives them (use it for numbers and strings)."""
        try:
            self._cursor.execute(prepared.sql, prepared.convert(params))
            return [tuple(r) for r in self._cursor.fetchall()]
        except self._dbapi_error as exc:
            raise DBAPIError.instance(prepared.sql, params, exc, self._dbapi_error) from exc


@contextmanager
def transaction(raw: Any, *, begin: str | None, dbapi_error: type[Exception]) -> Iterator[Cursor]:
    """Run a transaction on a raw pooled connection: commit on success, roll back on error.

    ``begin`` is the statement that opens it (``BEGIN IMMEDIATE`` for SQLite, whose driver
    we run in autocommit mode) or None where the driver opens transactions implicitly.
    """
    cursor = raw.cursor()
    try:
        if begin:
            cursor.execute(begin)
        yield Cursor(cursor, dbapi_error)
    except BaseException:
        if begin:
            cursor.execute("ROLLBACK")
        else:
            raw.rollback()
        raise
    else:
        try:
            if begin:
                cursor.execute("COMMIT")
            else:
                raw.commit()
        except dbapi_error as exc:
            raise DBAPIError.instance("COMMIT", None, exc, dbapi_error) from exc
    finally:
        cursor.close()


_BY_DIALECT: weakref.WeakKeyDictionary[Dialect, dict[Any, Prepared]] = weakref.WeakKeyDictionary()


def prepared(
    statement: UpdateBase | Select[Any], dialect: Dialect, columns: Sequence[str] | None = None
) -> Prepared:
    """``statement`` compiled for ``dialect``, once per engine (for code that is handed a
    connection, not the ``Database``: ``Database.prepare`` is the same, cached on it)."""
    cache = _BY_DIALECT.setdefault(dialect, {})
    key = (statement, tuple(columns) if columns is not None else None)
    found = cache.get(key)
    if found is None:
        found = cache[key] = Prepared(statement, dialect, columns)
    return found


@contextmanager
def on_connection(conn: Connection) -> Iterator[Cursor]:
    """A ``Cursor`` inside the transaction that ``conn`` has open (its own driver
    connection): for the hot statements of a use case that also runs SQLAlchemy ones in
    the same transaction."""
    raw = conn.connection.cursor()
    try:
        yield Cursor(raw, conn.dialect.loaded_dbapi.Error)
    finally:
        raw.close()

"""Statements compiled once and run on the DBAPI cursor (groupcloud.db.prepared).

The claim path bypasses SQLAlchemy's execution context, so these tests pin down what the
context would otherwise have done: placeholders in the dialect's style and order, literal
values kept, JSON and timestamps converted, Python-side defaults refused; and, on a real
(in-memory) SQLite database, row counts that the claim path reads as "taken" or "stale".
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import (
    Column,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from groupcloud.db import audit
from groupcloud.db.models import (
    Base,
    CompanyRow,
    EventRow,
    HostRow,
    InventoryRow,
    ZoneRow,
    table_of,
)
from groupcloud.db.prepared import Prepared, transaction

INV = table_of(InventoryRow)
HOSTS = table_of(HostRow)

# The shape of the claim path's conditional update: the host id appears twice (in the
# WHERE and in the EXISTS) and the state is a literal fixed in the statement.
TAKE = (
    update(INV)
    .where(
        INV.c.host_id == bindparam("b_host"),
        INV.c.resource_class == bindparam("b_rc"),
        INV.c.used + bindparam("b_amount") <= INV.c.capacity,
        exists().where(HOSTS.c.id == bindparam("b_host"), HOSTS.c.state == "active"),
    )
    .values(used=INV.c.used + bindparam("b_amount"))
)
GIVE = (
    update(INV)
    .where(INV.c.host_id == bindparam("b_host"), INV.c.resource_class == bindparam("b_rc"))
    .values(used=INV.c.used - bindparam("b_amount"))
)
COMPANY_COLUMNS = ("slug", "name", "created_at")
INSERT_COMPANY = insert(table_of(CompanyRow)).inline()

SQLITE = sqlite.dialect()
PSYCOPG = psycopg.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy


def pyformat_names(sql: str) -> list[str]:
    return re.findall(r"%\((\w+)\)s", sql)


# --- compiling and converting ---------------------------------------------------------------


def test_sqlite_gets_qmark_sql_and_a_tuple_in_placeholder_order() -> None:
    prepared = Prepared(TAKE, SQLITE)
    assert "?" in prepared.sql
    assert "%(" not in prepared.sql
    params = prepared.convert({"b_host": 3, "b_rc": "VCPU", "b_amount": 2})
    # SET used + amount, WHERE host, rc, used + amount, EXISTS(host, 'active')
    assert params == (2, 3, "VCPU", 2, 3, "active")
    assert prepared.sql.count("?") == len(params)


def test_psycopg_gets_pyformat_sql_and_a_dict_with_every_placeholder() -> None:
    prepared = Prepared(TAKE, PSYCOPG)
    params = prepared.convert({"b_host": 3, "b_rc": "VCPU", "b_amount": 2})
    assert isinstance(params, dict)
    assert set(pyformat_names(prepared.sql)) == set(params)
    assert {k: params[k] for k in ("b_host", "b_rc", "b_amount")} == {
        "b_host": 3,
        "b_rc": "VCPU",
        "b_amount": 2,
    }
    literal = [k for k in params if k not in {"b_host", "b_rc", "b_amount"}]
    assert [params[k] for k in literal] == ["active"]
    assert pyformat_names(prepared.sql).count("b_host") == 2  # one key, used twice


@pytest.mark.parametrize("dialect", [SQLITE, PSYCOPG], ids=["sqlite", "psycopg"])
def test_convert_ignores_extra_keys_and_refuses_missing_ones(dialect: Dialect) -> None:
    prepared = Prepared(GIVE, dialect)
    base = {"b_host": 1, "b_rc": "GPU", "b_amount": 1}
    assert prepared.convert({**base, "unused": 9}) == prepared.convert(base)
    with pytest.raises(KeyError, match="b_amount"):
        prepared.convert({"b_host": 1, "b_rc": "GPU"})


def test_insert_values_follow_the_compiled_column_order_not_the_order_given() -> None:
    """``columns`` only says which columns are set; values are matched to placeholders
    by name, so callers cannot misalign them."""
    prepared = Prepared(INSERT_COMPANY, SQLITE, ("name", "slug", "created_at"))
    assert prepared.sql == "INSERT INTO companies (slug, name, created_at) VALUES (?, ?, ?)"
    at = datetime(2024, 5, 1, tzinfo=UTC)
    assert prepared.convert({"name": "Bank", "slug": "bank", "created_at": at}) == (
        "bank",
        "Bank",
        "2024-05-01 00:00:00.000000",
    )


def test_json_and_timestamps_are_converted_for_sqlite() -> None:
    prepared = Prepared(audit.INSERT, SQLITE, audit.COLUMNS)
    at = datetime(2024, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=9)))
    row = audit.row("ops", "allocation.created", "allocation/x", 1, {"a": [1, 2]}, at=at)
    assert prepared.convert(row) == (
        "2024-01-02 03:00:00.000000",  # stored in UTC
        "ops",
        1,
        "allocation.created",
        "allocation/x",
        '{"a": [1, 2]}',
    )


def test_json_and_timestamps_are_converted_for_psycopg() -> None:
    prepared = Prepared(audit.INSERT, PSYCOPG, audit.COLUMNS)
    assert "%(data)s::JSONB" in prepared.sql
    at = datetime(2024, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=9)))
    params = prepared.convert({**audit.row("ops", "k", "s", None, {"gpu": 1}, at=at), "kind": "k"})
    assert isinstance(params, dict)
    assert params["at"] == at
    assert params["at"].utcoffset() == timedelta(0)  # converted to UTC, same instant
    assert isinstance(params["data"], Jsonb)
    assert params["data"].obj == {"gpu": 1}
    assert params["company_id"] is None


@pytest.mark.parametrize("dialect", [SQLITE, PSYCOPG], ids=["sqlite", "psycopg"])
def test_naive_timestamps_are_refused_on_the_fast_path_too(dialect: Dialect) -> None:
    prepared = Prepared(audit.INSERT, dialect, audit.COLUMNS)
    with pytest.raises(ValueError, match="naive datetime"):
        prepared.convert(audit.row("ops", "k", "s", at=datetime(2024, 1, 1)))


INSERT_ZONE = insert(table_of(ZoneRow))


@pytest.mark.parametrize("dialect", [SQLITE, PSYCOPG], ids=["sqlite", "psycopg"])
@pytest.mark.parametrize("statement", [INSERT_ZONE, INSERT_ZONE.inline()])
def test_an_insert_relying_on_a_python_default_is_refused(dialect: Dialect, statement: Any) -> None:
    """A zone's ``description`` defaults to "" in Python; nothing would apply it here."""
    with pytest.raises(ValueError, match="defaults are not evaluated"):
        Prepared(statement, dialect, ("name", "kind", "created_at"))
    columns = ("name", "kind", "description", "created_at")
    assert "description" in Prepared(statement, dialect, columns).sql


@pytest.mark.parametrize("dialect", [SQLITE, PSYCOPG], ids=["sqlite", "psycopg"])
def test_an_expanding_in_parameter_is_refused(dialect: Dialect) -> None:
    """``IN :ids`` is rendered per call by SQLAlchemy; a statement compiled once cannot."""
    inventories = table_of(InventoryRow)
    statement = (
        update(inventories)
        .where(inventories.c.host_id.in_(bindparam("b_ids", expanding=True)))
        .values(used=0)
    )
    with pytest.raises(ValueError, match="expanding IN"):
        Prepared(statement, dialect)


@pytest.mark.parametrize("dialect", [SQLITE, PSYCOPG], ids=["sqlite", "psycopg"])
def test_an_update_relying_on_a_python_onupdate_is_refused(dialect: Dialect) -> None:
    table = Table(
        "t",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("n", Integer),
        Column("touched", Integer, onupdate=lambda: 1),
    )
    with pytest.raises(ValueError, match="defaults are not evaluated"):
        Prepared(update(table).values(n=bindparam("b_n")), dialect)
    prepared = Prepared(update(table).values(n=bindparam("b_n"), touched=bindparam("b_t")), dialect)
    assert prepared.convert({"b_n": 1, "b_t": 2}) in ((1, 2), {"b_n": 1, "b_t": 2})


def test_an_inline_insert_for_psycopg_returns_no_rows() -> None:
    """``executemany`` of the claim path's inserts must not ask for generated keys."""
    prepared = Prepared(INSERT_COMPANY, PSYCOPG, COMPANY_COLUMNS)
    assert "RETURNING" not in prepared.sql


# --- running on SQLite ----------------------------------------------------------------------


@pytest.fixture
def engine() -> Iterator[Engine]:
    """An in-memory database with the tables, one zone, an active and a draining host."""
    eng = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(eng)
    now = datetime.now(UTC)
    with eng.begin() as conn:
        conn.execute(
            insert(table_of(ZoneRow)),
            {"id": 1, "name": "shared", "kind": "shared", "created_at": now},
        )
        for host_id, state in ((1, "active"), (2, "active"), (3, "draining")):
            conn.execute(
                insert(HOSTS),
                {"id": host_id, "name": f"h{host_id}", "zone_id": 1, "state": state,
                 "traits": [], "created_at": now, "updated_at": now},
            )  # fmt: skip
            conn.execute(
                insert(INV),
                {"host_id": host_id, "resource_class": "VCPU", "total": 8, "reserved": 0,
                 "allocation_ratio": 1.0, "capacity": 8, "used": 0},
            )  # fmt: skip
    yield eng
    eng.dispose()


def used(eng: Engine) -> dict[int, int]:
    with eng.connect() as conn:
        return {int(h): int(u) for h, u in conn.execute(select(INV.c.host_id, INV.c.used))}


def test_the_conditional_update_takes_capacity_only_while_it_fits(engine: Engine) -> None:
    take = Prepared(TAKE, engine.dialect)
    raw = engine.raw_connection()
    try:
        with transaction(raw, begin=None, dbapi_error=sqlite3.Error) as cur:
            assert cur.run(take, {"b_host": 1, "b_rc": "VCPU", "b_amount": 6}) == 1
            assert cur.run(take, {"b_host": 1, "b_rc": "VCPU", "b_amount": 3}) == 0  # 9 > 8
            assert cur.run(take, {"b_host": 1, "b_rc": "VCPU", "b_amount": 2}) == 1  # 8 <= 8
            assert cur.run(take, {"b_host": 3, "b_rc": "VCPU", "b_amount": 1}) == 0  # draining
            assert cur.run(take, {"b_host": 1, "b_rc": "GPU", "b_amount": 1}) == 0  # no such row
    finally:
        raw.close()
    assert used(engine) == {1: 8, 2: 0, 3: 0}


def test_executemany_returns_the_total_row_count(engine: Engine) -> None:
    """The claim path compares this count with the number of deltas to detect stale hosts."""
    take, give = Prepared(TAKE, engine.dialect), Prepared(GIVE, engine.dialect)
    raw = engine.raw_connection()
    try:
        with transaction(raw, begin=None, dbapi_error=sqlite3.Error) as cur:
            rows = [{"b_host": h, "b_rc": "VCPU", "b_amount": 5} for h in (1, 2)]
            assert cur.run(take, rows) == 2
            assert cur.run(take, rows) == 0
            assert cur.run(give, rows) == 2
    finally:
        raw.close()
    assert used(engine) == {1: 0, 2: 0, 3: 0}


def test_an_exception_rolls_the_whole_transaction_back(engine: Engine) -> None:
    take = Prepared(TAKE, engine.dialect)
    raw = engine.raw_connection()

    def claim_then_fail() -> None:
        with transaction(raw, begin=None, dbapi_error=sqlite3.Error) as cur:
            assert cur.run(take, {"b_host": 1, "b_rc": "VCPU", "b_amount": 4}) == 1
            raise RuntimeError("stale host: retry")

    try:
        with pytest.raises(RuntimeError, match="stale"):
            claim_then_fail()
    finally:
        raw.close()
    assert used(engine) == {1: 0, 2: 0, 3: 0}


def test_driver_errors_become_sqlalchemy_errors_and_roll_back(engine: Engine) -> None:
    """Callers catch ``sqlalchemy.exc.IntegrityError`` on both paths (e.g. a duplicate
    idempotency key); the CHECK constraint refuses an over-allocation even without the
    condition in the statement."""
    insert_company = Prepared(INSERT_COMPANY, engine.dialect, COMPANY_COLUMNS)
    unconditional = Prepared(GIVE, engine.dialect)  # used - amount: a negative amount adds
    now = datetime.now(UTC)
    raw = engine.raw_connection()

    def run(prepared: Prepared, *rows: dict[str, Any]) -> None:
        with transaction(raw, begin=None, dbapi_error=sqlite3.Error) as cur:
            for row in rows:
                cur.run(prepared, row)

    try:
        run(insert_company, {"slug": "bank", "name": "Bank", "created_at": now})
        with pytest.raises(IntegrityError) as duplicate:
            run(
                insert_company,
                {"slug": "card", "name": "Card", "created_at": now},
                {"slug": "bank", "name": "Bank 2", "created_at": now},
            )
        assert isinstance(duplicate.value.orig, sqlite3.IntegrityError)
        with pytest.raises(IntegrityError, match="used_within_capacity"):
            run(unconditional, {"b_host": 1, "b_rc": "VCPU", "b_amount": -9})
    finally:
        raw.close()
    with engine.connect() as conn:
        assert conn.scalars(select(CompanyRow.slug)).all() == ["bank"]  # "card" rolled back
    assert used(engine) == {1: 0, 2: 0, 3: 0}


def test_explicit_begin_and_commit_on_an_autocommit_connection() -> None:
    """The embedded database runs pysqlite in autocommit mode and opens ``BEGIN IMMEDIATE``
    itself; the transaction helper then commits and rolls back with SQL statements."""
    eng = create_engine("sqlite://", poolclass=StaticPool, connect_args={"isolation_level": None})
    Base.metadata.create_all(eng)
    insert_company = Prepared(INSERT_COMPANY, eng.dialect, COMPANY_COLUMNS)
    now = datetime.now(UTC)
    raw = eng.raw_connection()

    def insert(slug: str, fail: bool) -> None:
        with transaction(raw, begin="BEGIN IMMEDIATE", dbapi_error=sqlite3.Error) as cur:
            cur.run(insert_company, {"slug": slug, "name": slug.title(), "created_at": now})
            if fail:
                raise RuntimeError("boom")

    try:
        insert("bank", fail=False)
        with pytest.raises(RuntimeError, match="boom"):
            insert("card", fail=True)
        assert not raw.driver_connection.in_transaction  # type: ignore[union-attr]
    finally:
        raw.close()
    with eng.connect() as conn:
        assert conn.scalars(select(CompanyRow.slug)).all() == ["bank"]
    eng.dispose()


def test_an_event_written_raw_reads_back_through_the_orm_types(engine: Engine) -> None:
    at = datetime(2024, 3, 1, 18, 30, tzinfo=timezone(timedelta(hours=9)))
    prepared = Prepared(audit.INSERT, engine.dialect, audit.COLUMNS)
    raw = engine.raw_connection()
    try:
        with transaction(raw, begin=None, dbapi_error=sqlite3.Error) as cur:
            row = audit.row("ops", "k", "s", None, {"ids": [1, 2], "x": "é"}, at=at)
            assert cur.run(prepared, row) == 1
    finally:
        raw.close()
    with engine.connect() as conn:
        stored_at, data = conn.execute(select(EventRow.at, EventRow.data)).one()
    assert data == {"ids": [1, 2], "x": "é"}
    assert stored_at == at
    assert stored_at.tzinfo == UTC

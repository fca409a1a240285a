"""PostgresService against the machine's real PostgreSQL server.

The server trusts every TCP connection from 127.0.0.1 (pg_hba ``trust``), so a login with a
wrong password would succeed here and cannot prove anything about passwords. The tests
therefore prove the password the other way round: the SCRAM-SHA-256 verifier the server
stored for the role (``pg_authid.rolpassword``) is recomputed from the password in the
credentials (RFC 5802/7677: PBKDF2 -> ClientKey -> StoredKey, ServerKey), so the server
would accept exactly that password under ``scram-sha-256`` auth, and a rotation must make
the old password stop matching. Privileges are enforced under trust as well, so isolation
(``CONNECT``) and what exists after a deprovision are checked by real connections.

If the server is down these tests fail (never skip): PostgreSQL is part of every run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from groupcloud.dbaas import Credentials, DbaasError, DbaasNotFound, PostgresService
from groupcloud.dbaas.postgres import object_name
from tests.support import PG_ADMIN_URL

pytestmark = pytest.mark.postgres

ADMIN_URL = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://", 1)
"""The suite's server as a plain libpq URL; its role (``postgres``) is a superuser, which
the adapter needs (CREATE DATABASE ... OWNER another role, DROP OWNED, reading
pg_authid)."""


@pytest.fixture(scope="module")
def service() -> PostgresService:
    svc = PostgresService(ADMIN_URL)
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.OperationalError as exc:  # fail loudly: never skip
        raise RuntimeError(
            f"PostgreSQL is needed by tests/dbaas and is not reachable at {ADMIN_URL} "
            "(start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)"
        ) from exc
    assert row == (True,), "tests/dbaas need a superuser admin role"
    return svc


@pytest.fixture
def new_id(service: PostgresService) -> Iterator[Callable[[], str]]:
    """A factory of instance ids unique to this run; every instance made is dropped after."""
    made: list[str] = []

    def make() -> str:
        made.append(f"inst-{uuid.uuid4()}")
        return made[-1]

    yield make
    for instance_id in made:
        service.deprovision(instance_id)
        assert not _catalog(object_name(instance_id))["role"]


def _admin(sql_text: str | sql.Composed, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        cur = conn.execute(sql_text, params or None)
        return cur.fetchall() if cur.description else []


def _catalog(name: str) -> dict[str, object]:
    """What the server knows about the role and database ``name``."""
    role = _admin(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
        " rolbypassrls, rolpassword FROM pg_authid WHERE rolname = %s",
        name,
    )
    db = _admin(
        "SELECT pg_get_userbyid(datdba), has_database_privilege('public', datname, 'CONNECT'),"
        " has_database_privilege('public', datname, 'TEMPORARY')"
        " FROM pg_database WHERE datname = %s",
        name,
    )
    return {"role": role[0] if role else None, "db": db[0] if db else None}


def _verifier(name: str) -> str:
    value = _catalog(name)["role"]
    assert isinstance(value, tuple)
    assert isinstance(value[-1], str)
    return value[-1]


def scram_matches(verifier: str, password: str) -> bool:
    """Whether ``verifier`` (``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey``) is the one of
    ``password``: what a server with scram-sha-256 auth checks at login. (The adapter's
    passwords are ASCII, for which SASLprep is the identity.)"""
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    params, keys = rest.split("$")
    iterations, salt = params.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return hmac.compare_digest(
        hashlib.sha256(client_key).digest(), stored_key
    ) and hmac.compare_digest(hmac.digest(salted, b"Server Key", "sha256"), server_key)


def _use(creds: Credentials, value: str) -> list[tuple[object, ...]]:
    """Log in with the credentials' URL, write ``value`` and read back all rows."""
    with psycopg.connect(creds.url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            creds.username,
            creds.database,
        )
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text NOT NULL)")
        conn.execute("INSERT INTO notes VALUES (%s)", (value,))
        return conn.execute("SELECT body FROM notes ORDER BY body").fetchall()


def test_provision_makes_a_private_database_the_role_can_use(
    service: PostgresService, new_id: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    instance = new_id()
    assert not service.exists(instance)
    with caplog.at_level(logging.DEBUG):
        creds = service.provision(instance)
    assert creds.password not in caplog.text
    name = object_name(instance)
    assert (creds.database, creds.username, creds.host, creds.port) == (
        name,
        name,
        "127.0.0.1",
        5432,
    )
    assert len(creds.password) >= 40
    assert service.exists(instance)
    cat = _catalog(name)
    # LOGIN, and none of the attributes that would let a tenant out of its database
    assert cat["role"] is not None
    assert cat["role"][:6] == (True, False, False, False, False, False)  # type: ignore[index]
    assert cat["db"] == (name, False, False)  # owned by the role; PUBLIC may not connect
    assert scram_matches(_verifier(name), creds.password)
    assert not scram_matches(_verifier(name), creds.password + "x")
    assert _use(creds, "hello") == [("hello",)]


def test_rotate_replaces_the_password(service: PostgresService, new_id: Callable[[], str]) -> None:
    instance = new_id()
    first = service.provision(instance)
    _use(first, "before")
    before = _verifier(first.username)
    second = service.rotate(instance)
    after = _verifier(second.username)
    assert (second.database, second.username) == (first.database, first.username)
    assert second.password != first.password
    assert after != before
    assert scram_matches(after, second.password)
    assert not scram_matches(after, first.password)  # the old password stops working
    assert _use(second, "after") == [("after",), ("before",)]  # same database, data kept


def test_provision_again_rotates_and_keeps_the_data(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    """The chosen idempotency: provisioning an existing instance does not fail, it returns
    new credentials of the same role and database (and the old password stops working)."""
    instance = new_id()
    first = service.provision(instance)
    _use(first, "kept")
    again = service.provision(instance)
    assert (again.database, again.username) == (first.database, first.username)
    assert again.password != first.password
    assert scram_matches(_verifier(again.username), again.password)
    assert not scram_matches(_verifier(again.username), first.password)
    assert _use(again, "more") == [("kept",), ("more",)]


def test_provision_completes_a_half_made_instance(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    """A provision that crashed after CREATE ROLE: the next one makes the database."""
    instance = new_id()
    name = object_name(instance)
    _admin(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    assert not service.exists(instance)
    creds = service.provision(instance)
    assert service.exists(instance)
    assert _catalog(name)["db"] == (name, False, False)
    assert _use(creds, "ok") == [("ok",)]


def test_concurrent_provisions_of_one_instance_all_succeed(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    """Without the per-instance lock the catalog answers racing CREATE ROLE/DATABASE with
    unique violations and "tuple concurrently updated"; with it they run one after the other:
    every call succeeds and the last password set is the one that works."""
    instance = new_id()
    results: list[Credentials] = []
    errors: list[BaseException] = []

    def provision() -> None:
        try:
            results.append(service.provision(instance))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=provision) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({c.password for c in results}) == 3
    stored = _verifier(object_name(instance))
    assert [scram_matches(stored, c.password) for c in results].count(True) == 1
    assert service.exists(instance)


def test_one_instance_cannot_open_another_instances_database(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    a, b = service.provision(new_id()), service.provision(new_id())
    intruder = Credentials(a.host, a.port, b.database, a.username, a.password)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(intruder.url, connect_timeout=5).close()
    assert _use(b, "b's") == [("b's",)]  # and its owner still can


def test_deprovision_drops_everything_and_is_idempotent(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    instance = new_id()
    creds = service.provision(instance)
    _use(creds, "doomed")
    session = psycopg.connect(creds.url, autocommit=True)  # an open session does not block it
    try:
        service.deprovision(instance)
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")  # it was ended
    finally:
        session.close()
    assert _catalog(creds.username) == {"role": None, "db": None}
    assert not _admin("SELECT 1 FROM pg_roles WHERE rolname = %s", creds.username)
    assert not _admin("SELECT 1 FROM pg_database WHERE datname = %s", creds.database)
    assert not service.exists(instance)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(creds.url, connect_timeout=5).close()
    service.deprovision(instance)  # gone already: fine
    service.deprovision(new_id())  # never made: fine


def test_rotating_an_unknown_instance_is_not_found(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    with pytest.raises(DbaasNotFound) as info:
        service.rotate(new_id())
    assert not info.value.retryable


def test_an_unreachable_server_is_a_retryable_error() -> None:
    service = PostgresService("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=2)
    for call in (service.provision, service.rotate, service.deprovision, service.exists):
        with pytest.raises(DbaasError, match="server unavailable") as info:
            call(f"inst-{uuid.uuid4()}")
        assert info.value.retryable


def test_a_refused_statement_is_not_retryable(new_id: Callable[[], str]) -> None:
    """An admin role without CREATEROLE: the server refuses, retrying cannot help."""
    weak = f"gct_weak_{uuid.uuid4().hex[:12]}"
    try:
        _admin(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(weak)))
        url = urlsplit(ADMIN_URL)._replace(netloc=f"{weak}@127.0.0.1:5432").geturl()
        with pytest.raises(DbaasError, match="refused") as info:
            PostgresService(url).provision(new_id())
        assert not info.value.retryable
        assert info.value.sqlstate == "42501"  # insufficient_privilege
    finally:
        _admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(weak)))


@pytest.mark.parametrize(
    "bad",
    ["", "x'; DROP ROLE postgres; --", 'a"b', "-leading", "x" * 129, "new\nline", "é"],
)
def test_an_invalid_instance_id_is_refused_before_any_connection(bad: str) -> None:
    service = PostgresService("postgresql://postgres@127.0.0.1:1/test")  # unreachable
    for call in (service.provision, service.rotate, service.deprovision, service.exists):
        with pytest.raises(DbaasError, match="invalid instance id") as info:
            call(bad)
        assert not info.value.retryable


def test_names_are_fixed_in_shape_and_distinct() -> None:
    ids = [str(uuid.UUID(int=i)) for i in range(1000)] + ["a", "A", "a.b:c_d-e"]
    names = {object_name(i) for i in ids}
    assert len(names) == len(ids)
    assert all(n.startswith("gc_") and len(n) == 19 and n[3:].isalnum() for n in names)
    assert object_name("a") == object_name("a")


def test_credentials_mask_the_password_and_quote_the_url() -> None:
    creds = Credentials("db.example", 6543, "gc_db", "gc_user", "p@ss:w/rd%?#x")
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}"):
        assert "p@ss" not in text
        assert "***" in text
    params = conninfo_to_dict(creds.url)
    assert params == {
        "host": "db.example",
        "port": "6543",
        "dbname": "gc_db",
        "user": "gc_user",
        "password": "p@ss:w/rd%?#x",
    }
    with pytest.raises(AttributeError):
        creds.password = "other"  # type: ignore[misc]


def test_the_public_host_and_port_override_the_admin_urls() -> None:
    service = PostgresService(ADMIN_URL, public_host="pg.group.internal", public_port=6432)
    assert (service.host, service.port) == ("pg.group.internal", 6432)
    assert "postgres@" not in repr(service)
    default = PostgresService("postgresql://postgres:s3cret@10.0.0.7:5433/test")
    assert (default.host, default.port) == ("10.0.0.7", 5433)
    assert "s3cret" not in repr(default)


def _as_app(creds: Credentials, value: str) -> list[tuple[object, ...]]:
    """An app's session through a binding: it logs in as the binding's role and acts as
    the instance's (``SET role``); writes ``value``, reads back all rows."""
    with psycopg.connect(creds.url, connect_timeout=5) as conn:
        row = conn.execute("SELECT session_user, current_user, current_database()").fetchone()
        assert row == (creds.username, creds.database, creds.database)
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text NOT NULL)")
        conn.execute("INSERT INTO notes VALUES (%s)", (value,))
        return conn.execute("SELECT body FROM notes ORDER BY body").fetchall()


def test_bindings_have_their_own_logins_and_share_the_instances_data(
    service: PostgresService, new_id: Callable[[], str]
) -> None:
    instance, one, two = new_id(), f"bind-{uuid.uuid4()}", f"bind-{uuid.uuid4()}"
    service.provision(instance)
    first, second = service.bind(instance, one), service.bind(instance, two)
    assert first.database == second.database == object_name(instance)
    assert first.username == object_name(one) != second.username
    assert scram_matches(_verifier(first.username), first.password)
    assert _as_app(first, "a") == [("a",)]
    assert _as_app(second, "b") == [("a",), ("b",)]  # the table is the instance's
    rotated = service.rotate_binding(instance, one)
    assert not scram_matches(_verifier(first.username), first.password)
    assert scram_matches(_verifier(first.username), rotated.password)
    assert scram_matches(_verifier(second.username), second.password)  # untouched
    # An object made after RESET ROLE is the binding's own: unbinding hands it over.
    with psycopg.connect(rotated.url, autocommit=True) as conn:
        conn.execute("RESET ROLE")
        conn.execute("CREATE TABLE mine (n int)")
        conn.execute("INSERT INTO mine VALUES (7)")
    service.unbind(instance, one)
    service.unbind(instance, one)  # idempotent
    assert _catalog(first.username)["role"] is None
    with psycopg.connect(second.url) as conn:
        assert conn.execute("SELECT n FROM mine").fetchall() == [(7,)]  # data kept
    # Deprovisioning drops the bindings left behind with the instance.
    service.deprovision(instance)
    assert _catalog(second.username)["role"] is None
    assert _catalog(object_name(instance)) == {"role": None, "db": None}
    with pytest.raises(DbaasNotFound):
        service.bind(instance, one)

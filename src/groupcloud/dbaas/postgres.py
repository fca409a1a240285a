"""Managed PostgreSQL: one database and one login role per service instance, on a server the
operator runs, reached with an admin URL.

Why each choice:

* **Names come from a hash of the instance id** (``gc_`` + 16 hex digits of its SHA-256), not
  from the id itself: whatever the id looks like, the identifier is short, lower-case, fixed
  in shape and cannot quote its way out of a statement. Identifiers and literals still go
  through ``psycopg.sql`` (``Identifier``/``Literal``), never through string formatting.
* **Passwords never travel or rest in clear on the server**: they are drawn with ``secrets``
  and turned into a SCRAM-SHA-256 verifier by libpq on this side
  (``PQencryptPasswordConn``), so the statement the server sees (and may log with
  ``log_statement``) holds only the verifier. This module never logs or prints a password,
  and ``Credentials`` masks it in its ``repr``.
* **Isolation**: ``CONNECT`` and ``TEMPORARY`` on the database are revoked from ``PUBLIC``
  and granted to the instance's role only, and the role is created ``NOSUPERUSER
  NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS``, so one tenant's role cannot open
  another tenant's database. (It can still open databases whose ``CONNECT`` the operator
  leaves granted to ``PUBLIC``, such as ``postgres``: revoke it there.)
* **Idempotent, converging operations**, because the service that calls them retries after
  crashes and timeouts: ``provision`` of an instance that exists (wholly or half-made)
  completes it and *rotates* its password, returning the new credentials (the old password
  stops working); ``deprovision`` of one that is gone is a no-op. Operations on one
  instance hold a session advisory lock keyed by its name, so concurrent calls (from any
  process) run one after the other instead of racing in the catalog.

The admin role must be a superuser (the tests use ``postgres``): creating a database owned
by another role, ending other roles' sessions and ``DROP OWNED`` need it, or a combination
of ``CREATEROLE``, ``CREATEDB``, membership in each created role and ``pg_signal_backend``.

Errors are ``DbaasError`` with ``retryable``: true when the server could not be reached or
the statement hit a transient state (connection lost, shutdown, lock or serialization
conflicts, ``database is being accessed by other users``), false when it refused the
statement (no privilege, invalid name) and retrying the same call cannot help.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["Credentials", "DbaasError", "DbaasNotFound", "PostgresService", "object_name"]

_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""What an instance id may look like: the ids the control plane makes (UUIDs, prefixed
ids). Anything else is refused before any name is derived or any connection opened."""

_NAME = re.compile(r"gc_[0-9a-f]{16}")
"""The only shape a derived role or database name can have (checked again before use)."""

_LOCK_TIMEOUT = sql.Literal("30s")
"""How long an operation waits for another one on the same instance to finish."""

_PASSWORD_BYTES = 32
"""256 bits of randomness per password (43 url-safe characters)."""


class DbaasError(Exception):
    """A managed-database operation failed. ``retryable``: the same call may succeed later
    (server unreachable, connection lost, a transient conflict); otherwise it never will
    (the server refused the statement, the instance id is invalid). The message never holds
    a password."""

    def __init__(self, message: str, retryable: bool, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.sqlstate = sqlstate


class DbaasNotFound(DbaasError):
    """The instance has no role (or no database) on the server: it was never provisioned or
    was deprovisioned. Not retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a tenant gets to reach its database. ``password`` is the only copy the control
    plane ever sees: store it sealed (``SecretBox``), hand it to the tenant, never log it;
    ``repr`` (and so ``str``, tracebacks with locals, debug logs) shows it masked."""

    host: str
    port: int
    database: str
    username: str
    password: str

    @property
    def url(self) -> str:
        """``postgresql://user:password@host:port/database``, every part percent-quoted so
        that any character in a password or a socket path survives the round trip."""
        host = f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        return (
            f"postgresql://{quote(self.username, safe='')}:{quote(self.password, safe='')}"
            f"@{host}:{self.port}/{quote(self.database, safe='')}"
        )

    def __repr__(self) -> str:
        return (
            f"Credentials(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"username={self.username!r}, password='***')"
        )

    __str__ = __repr__


def object_name(instance_id: str) -> str:
    """The role and database name of ``instance_id``: ``gc_`` + 16 hex digits of its SHA-256
    (the same for both; roles and databases live in separate namespaces). Deterministic, so
    every call and every process finds the same objects without storing the name."""
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise DbaasError(
            "invalid instance id: 1-128 characters of letters, digits and _.:- "
            "starting with a letter or digit",
            retryable=False,
        )
    name = "gc_" + hashlib.sha256(instance_id.encode("utf-8")).hexdigest()[:16]
    assert _NAME.fullmatch(name)  # the shape the statements below rely on
    return name


def _as_dbaas_error(exc: psycopg.Error, action: str) -> DbaasError:
    """``exc`` as a ``DbaasError``: OperationalError covers the server being unreachable and
    the SQLSTATE classes that may pass (08 connection, 40 rollback, 53 resources, 55 object
    in use / lock, 57 shutdown, 58 system); every other error is a refusal."""
    retryable = isinstance(exc, psycopg.OperationalError)
    diag = getattr(exc, "diag", None)
    detail = (diag.message_primary if diag is not None else None) or str(exc).strip()
    kind = "server unavailable" if retryable else "refused"
    return DbaasError(f"{action}: {kind}: {detail}", retryable, sqlstate=exc.sqlstate)


class PostgresService:
    """Provisions databases on the PostgreSQL server of ``admin_url`` (a libpq URL or
    conninfo of a superuser). ``public_host``/``public_port`` are what tenants are told to
    reach, when that differs from how the control plane reaches the server (a load
    balancer, a DNS name); by default the admin URL's host and port."""

    def __init__(
        self,
        admin_url: str,
        *,
        public_host: str | None = None,
        public_port: int | None = None,
        connect_timeout_s: int = 5,
    ) -> None:
        try:
            params = conninfo_to_dict(admin_url)
        except psycopg.ProgrammingError:
            # not chained: the parser's message could quote the URL and its password
            raise DbaasError("invalid admin URL", retryable=False) from None
        host = str(params.get("host") or "localhost").split(",")[0]
        port = int(str(params.get("port") or 5432).split(",")[0])
        self._admin_url = admin_url
        self._connect_timeout_s = connect_timeout_s
        self.host = public_host or host
        self.port = public_port or port

    def __repr__(self) -> str:
        return f"PostgresService(host={self.host!r}, port={self.port})"  # not the admin URL

    @contextmanager
    def _admin(
        self, action: str, lock: str | None = None, *, database: str | None = None
    ) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """An autocommit connection as the admin (CREATE/DROP DATABASE refuse to run in a
        transaction), with every driver error turned into a ``DbaasError``.

        ``lock``: the instance's name, held as a session advisory lock for the whole
        operation. The catalog does not serialise concurrent DDL on one name (two CREATE
        ROLE race to a unique violation, two GRANT to "tuple concurrently updated"), so
        operations on one instance, from any process, run one after the other; waiting
        longer than ``_LOCK_TIMEOUT`` is a retryable error. ``database``: connect to that
        database instead of the admin URL's (REASSIGN OWNED works per database)."""
        url = (
            self._admin_url if database is None else make_conninfo(self._admin_url, dbname=database)
        )
        try:
            with psycopg.connect(
                url, autocommit=True, connect_timeout=self._connect_timeout_s
            ) as conn:
                if lock is not None:
                    conn.execute(sql.SQL("SET lock_timeout = {}").format(_LOCK_TIMEOUT))
                    key = int.from_bytes(bytes.fromhex(lock[3:]), "big", signed=True)
                    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                yield conn  # the lock ends with the session
        except psycopg.Error as exc:
            raise _as_dbaas_error(exc, action) from None  # the cause could quote a verifier

    def _credentials(self, name: str, password: str) -> Credentials:
        return Credentials(self.host, self.port, name, name, password)

    # -- the operations --------------------------------------------------------------

    def provision(self, instance_id: str) -> Credentials:
        """Create the instance's role (LOGIN, new random password) and its database owned by
        it, reachable by that role only; return the credentials.

        Idempotent: for an instance that exists, even half-made by an earlier call that
        crashed, it makes what is missing and rotates the password (the previous one stops
        working), so a retry after a lost answer still yields working credentials."""
        name = object_name(instance_id)
        with self._admin("provision", lock=name) as conn:
            password = self._set_role(conn, name, create=True)
            self._ensure_database(conn, name, instance_id)
        return self._credentials(name, password)

    def rotate(self, instance_id: str) -> Credentials:
        """A new password for the instance's role; the old one no longer logs in (sessions
        already open stay open until they end). ``DbaasNotFound`` if there is no such
        instance."""
        name = object_name(instance_id)
        with self._admin("rotate", lock=name) as conn:
            if not self._database_exists(conn, name):
                raise DbaasNotFound(f"rotate: no database for instance {instance_id!r}")
            password = self._set_role(conn, name, create=False)
        return self._credentials(name, password)

    def deprovision(self, instance_id: str) -> None:
        """Drop the instance's database and role, ending their sessions first. Idempotent:
        an instance that is gone (or half-gone) is fine.

        The role loses LOGIN before the sessions are ended, so none can start in between;
        ``DROP DATABASE ... WITH (FORCE)`` ends any that still raced in."""
        name = object_name(instance_id)
        role = sql.Identifier(name)
        with self._admin("deprovision", lock=name) as conn:
            for member in self._members(conn, name):  # bindings left behind
                self._drop_login_role(conn, member, name)
            has_role = self._role_exists(conn, name)
            if has_role:
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE (datname = %s OR usename = %s) AND pid <> pg_backend_pid()",
                (name, name),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(role))
            if has_role:
                # Privileges the role holds on shared objects (and anything it made in the
                # admin's database) would block DROP ROLE.
                conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))

    # -- bindings: one login role per app, acting as the instance's role ------------

    def bind(self, instance_id: str, binding_id: str) -> Credentials:
        """A login role of its own for one app (binding), a member of the instance's role
        whose sessions act as that role (``SET role``), so everything an app creates is
        owned by the instance and stays when the binding goes; unbinding or rotating one
        app never touches another's login. Idempotent like ``provision`` (a repeated call
        rotates the binding's password). ``DbaasNotFound`` if the instance is not
        provisioned."""
        owner, name = object_name(instance_id), object_name(binding_id)
        with self._admin("bind", lock=owner) as conn:
            if not (self._role_exists(conn, owner) and self._database_exists(conn, owner)):
                raise DbaasNotFound(f"bind: instance {instance_id!r} is not provisioned")
            password = self._set_role(conn, name, create=True)
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), ident))
            conn.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(ident, sql.Literal(owner)))
        return Credentials(self.host, self.port, owner, name, password)

    def rotate_binding(self, instance_id: str, binding_id: str) -> Credentials:
        """A new password for the binding's role (the old one stops logging in);
        ``DbaasNotFound`` if the binding's role does not exist."""
        owner, name = object_name(instance_id), object_name(binding_id)
        with self._admin("rotate", lock=owner) as conn:
            password = self._set_role(conn, name, create=False)
        return Credentials(self.host, self.port, owner, name, password)

    def unbind(self, instance_id: str, binding_id: str) -> None:
        """Drop the binding's role, its sessions ended first; what it owns in the
        instance's database (objects made after ``RESET ROLE``) passes to the instance's
        role, so no data goes with it. Idempotent."""
        owner, name = object_name(instance_id), object_name(binding_id)
        with self._admin("unbind", lock=owner) as conn:
            self._drop_login_role(conn, name, owner)

    def _drop_login_role(
        self, conn: psycopg.Connection[tuple[object, ...]], name: str, owner: str
    ) -> None:
        if not self._role_exists(conn, name):
            return
        role = sql.Identifier(name)
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usename = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        if self._database_exists(conn, owner):
            with self._admin("unbind", database=owner) as inside:
                inside.execute(
                    sql.SQL("REASSIGN OWNED BY {} TO {}").format(role, sql.Identifier(owner))
                )
                inside.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))

    @staticmethod
    def _members(conn: psycopg.Connection[tuple[object, ...]], owner: str) -> list[str]:
        """The binding roles of an instance: members of its role with a derived name."""
        rows = conn.execute(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member"
            " JOIN pg_roles g ON g.oid = a.roleid WHERE g.rolname = %s",
            (owner,),
        ).fetchall()
        return sorted(str(r[0]) for r in rows if _NAME.fullmatch(str(r[0])))

    def exists(self, instance_id: str) -> bool:
        """Whether the instance is fully provisioned: its role and its database both exist
        (a half-made one is not; ``provision`` completes it, ``deprovision`` removes it)."""
        name = object_name(instance_id)
        with self._admin("exists") as conn:
            return self._role_exists(conn, name) and self._database_exists(conn, name)

    # -- steps -----------------------------------------------------------------------

    @staticmethod
    def _role_exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        return row is not None

    @staticmethod
    def _database_exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    @staticmethod
    def _set_role(conn: psycopg.Connection[tuple[object, ...]], name: str, *, create: bool) -> str:
        """Give role ``name`` a new password (creating the role if ``create`` and it does not
        exist); return the password. Only its SCRAM verifier is sent to the server."""
        password = secrets.token_urlsafe(_PASSWORD_BYTES)
        verifier = conn.pgconn.encrypt_password(
            password.encode("utf-8"), name.encode("utf-8"), b"scram-sha-256"
        ).decode("ascii")
        role, secret = sql.Identifier(name), sql.Literal(verifier)
        if create and not PostgresService._role_exists(conn, name):
            try:
                conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                        " NOREPLICATION NOBYPASSRLS INHERIT PASSWORD {}"
                    ).format(role, secret)
                )
                return password
            except psycopg.errors.DuplicateObject:
                pass  # a concurrent provision made it: set the password below
        elif not create and not PostgresService._role_exists(conn, name):
            raise DbaasNotFound("rotate: the instance's role does not exist")
        conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(role, secret))
        return password

    @staticmethod
    def _ensure_database(
        conn: psycopg.Connection[tuple[object, ...]], name: str, instance_id: str
    ) -> None:
        """The database ``name`` exists, is owned by role ``name`` and only that role (and
        superusers) may connect to it."""
        ident = sql.Identifier(name)
        if not PostgresService._database_exists(conn, name):
            with suppress(psycopg.errors.DuplicateDatabase):  # a concurrent provision made it
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, ident))
        # Re-asserted every time: converges a database left half-made or changed by hand.
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, ident))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(ident, ident))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                ident, sql.Literal(f"groupcloud dbaas instance {instance_id}")
            )
        )

"""A provider that simulates a public cloud: for tests, demos and the failover drills.

It behaves like a cloud where it matters to groupcloud's correctness and nowhere else:
creation is idempotent on the client token (a UNIQUE constraint, so two processes racing
on one token get one instance), instances outlive the process that created them (a small
SQLite file shared by the API server, the workers, the CLI and a test that kill -9's a
worker), and it can be slow, flaky, down or hung on purpose. Everything random is drawn
from a seeded ``random.Random`` and instance ids are derived from the token, so a run
repeats exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from groupcloud.domain.offers import Offer
from groupcloud.providers.base import (
    TAG_MANAGED,
    Instance,
    InstanceSpec,
    InstanceState,
    ProviderError,
)

__all__ = ["SimulatedProvider", "instance_id_for"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    client_token TEXT NOT NULL,
    region TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at REAL NOT NULL,
    gone INTEGER NOT NULL DEFAULT 0,
    UNIQUE (provider, client_token)
)
"""


def instance_id_for(provider: str, client_token: str) -> str:
    """The id the simulated ``provider`` gives the instance of ``client_token``.

    Derived from the token (not drawn, not counted) so that two processes racing on one
    token compute the same id and a replayed run repeats its ids exactly."""
    digest = hashlib.sha256(f"{provider}\0{client_token}".encode()).hexdigest()
    return f"sim-{digest[:17]}"


@dataclass(frozen=True, slots=True)
class _Row:
    """One instance as stored (``gone``: deleted or vanished; kept so its token stays used)."""

    id: str
    client_token: str
    region: str
    instance_type: str
    tags: Mapping[str, str]
    created_at: float
    gone: bool = False


class _MemoryStore:
    """Instances in a dict: one process only (unit tests), no file."""

    def __init__(self) -> None:
        self._by_token: dict[str, _Row] = {}
        self._lock = threading.Lock()

    def insert_or_get(self, row: _Row) -> _Row:
        with self._lock:
            return self._by_token.setdefault(row.client_token, row)

    def get(self, instance_id: str) -> _Row | None:
        with self._lock:
            return next((r for r in self._by_token.values() if r.id == instance_id), None)

    def mark_gone(self, instance_id: str) -> None:
        with self._lock:
            for token, r in self._by_token.items():
                if r.id == instance_id:
                    self._by_token[token] = replace(r, gone=True)

    def live(self, region: str) -> list[_Row]:
        with self._lock:
            rows = self._by_token.values()
            return sorted((r for r in rows if r.region == region and not r.gone), key=_key)


class _SqliteStore:
    """Instances in a SQLite file shared by every process that opens it.

    A connection per operation: nothing is held between calls, so a process killed at any
    point leaves the file consistent (WAL) and the others wait on its lock at most
    ``busy_timeout_s``."""

    def __init__(self, path: Path, provider: str, busy_timeout_s: float) -> None:
        self._path = path
        self._provider = provider
        self._timeout = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            yield conn
        finally:
            conn.close()

    def _rows(self, cursor: Iterable[tuple[object, ...]]) -> list[_Row]:
        return [
            _Row(
                id=str(i),
                client_token=str(token),
                region=str(region),
                instance_type=str(itype),
                tags=json.loads(str(tags)),
                created_at=float(str(created)),
                gone=bool(gone),
            )
            for i, token, region, itype, tags, created, gone in cursor
        ]

    _COLUMNS = "id, client_token, region, instance_type, tags, created_at, gone"

    def insert_or_get(self, row: _Row) -> _Row:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO instances (id, provider, client_token, region, instance_type,"
                " tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, client_token) DO NOTHING",
                (
                    row.id,
                    self._provider,
                    row.client_token,
                    row.region,
                    row.instance_type,
                    json.dumps(dict(row.tags), sort_keys=True),
                    row.created_at,
                ),
            )
            cursor = conn.execute(
                f"SELECT {self._COLUMNS} FROM instances WHERE provider = ? AND client_token = ?",
                (self._provider, row.client_token),
            )
            return self._rows(cursor)[0]

    def get(self, instance_id: str) -> _Row | None:
        with self._connect() as conn:
            cursor = conn.execute(
                f"SELECT {self._COLUMNS} FROM instances WHERE provider = ? AND id = ?",
                (self._provider, instance_id),
            )
            rows = self._rows(cursor)
        return rows[0] if rows else None

    def mark_gone(self, instance_id: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE instances SET gone = 1 WHERE provider = ? AND id = ?",
                (self._provider, instance_id),
            )

    def live(self, region: str) -> list[_Row]:
        with self._connect() as conn:
            cursor = conn.execute(
                f"SELECT {self._COLUMNS} FROM instances"
                " WHERE provider = ? AND region = ? AND gone = 0 ORDER BY created_at, id",
                (self._provider, region),
            )
            return self._rows(cursor)


def _key(row: _Row) -> tuple[float, str]:
    return (row.created_at, row.id)


class SimulatedProvider:
    """A simulated cloud offering ``offers``; see the module docstring for why.

    ``state_path``: the SQLite file instances live in (None: a dict in this process).
    ``latency_s``: every call waits this long first. ``failure_rate``: the share of calls
    that fail retryably before doing anything; ``lost_response_rate``: the share of
    creations that succeed but whose answer is lost (a retryable error after the commit:
    what makes the client token necessary). ``fail_regions`` / ``hang_regions``: regions
    whose every call fails retryably / never returns, for failover tests (mutable sets: a
    test changes them while it runs). ``boot_s``: an instance is PENDING that long after
    its creation, RUNNING afterwards."""

    def __init__(
        self,
        name: str,
        offers: Sequence[Offer],
        *,
        state_path: Path | None = None,
        latency_s: float = 0.0,
        failure_rate: float = 0.0,
        lost_response_rate: float = 0.0,
        seed: int = 0,
        boot_s: float = 0.0,
        fail_regions: Iterable[str] = (),
        hang_regions: Iterable[str] = (),
        busy_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.offers = tuple(offers)
        self.latency_s = latency_s
        self.failure_rate = failure_rate
        self.lost_response_rate = lost_response_rate
        self.boot_s = boot_s
        self.fail_regions: set[str] = set(fail_regions)
        self.hang_regions: set[str] = set(hang_regions)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._clock = clock
        self._store: _MemoryStore | _SqliteStore = (
            _MemoryStore() if state_path is None else _SqliteStore(state_path, name, busy_timeout_s)
        )

    # -- the protocol ----------------------------------------------------------------

    async def create_instance(self, spec: InstanceSpec) -> Instance:
        """The instance of ``spec.client_token``, created at the first call.

        An unknown instance type, a token reused for another region or type, or a token
        whose instance is gone fail non-retryably: retrying cannot change the answer."""
        await self._weather(spec.region)
        if not any(
            o.region == spec.region and o.instance_type == spec.instance_type
            for o in self._offers(spec.region)
        ):
            raise ProviderError(
                f"{self.name}: no instance type {spec.instance_type!r} in {spec.region!r}",
                retryable=False,
                code="invalid_instance_type",
            )
        wanted = _Row(
            id=instance_id_for(self.name, spec.client_token),
            client_token=spec.client_token,
            region=spec.region,
            instance_type=spec.instance_type,
            tags={**spec.tags, TAG_MANAGED: "true"},
            created_at=self._clock(),
        )
        row = await asyncio.to_thread(self._store.insert_or_get, wanted)
        if (row.region, row.instance_type) != (spec.region, spec.instance_type):
            raise ProviderError(
                f"{self.name}: client token {spec.client_token!r} was used for "
                f"{row.instance_type} in {row.region}",
                retryable=False,
                code="idempotent_parameter_mismatch",
            )
        if row.gone:
            raise ProviderError(
                f"{self.name}: the instance of client token {spec.client_token!r} is gone;"
                " a new instance needs a new token",
                retryable=False,
                code="client_token_used",
            )
        if self.lost_response_rate > 0 and self._draw() < self.lost_response_rate:
            raise ProviderError(f"{self.name}: response lost (simulated)", code="response_lost")
        return self._instance(row)

    async def delete_instance(self, region: str, instance_id: str) -> None:
        """Delete the instance; an unknown or gone id is fine (deletion is idempotent)."""
        await self._weather(region)
        await asyncio.to_thread(self._store.mark_gone, instance_id)

    async def describe(self, region: str, instance_id: str) -> Instance | None:
        """The live instance, or None (unknown, deleted, vanished, or in another region)."""
        await self._weather(region)
        row = await asyncio.to_thread(self._store.get, instance_id)
        if row is None or row.gone or row.region != region:
            return None
        return self._instance(row)

    async def list_instances(self, region: str) -> list[Instance]:
        """Every live instance in ``region`` (all carry ``TAG_MANAGED``), oldest first."""
        await self._weather(region)
        rows = await asyncio.to_thread(self._store.live, region)
        return [self._instance(r) for r in rows]

    async def list_offers(self, region: str) -> list[Offer]:
        """The offers given at construction for this provider and region."""
        await self._weather(region)
        return self._offers(region)

    # -- test controls ---------------------------------------------------------------

    def vanish(self, instance_id: str) -> None:
        """Make the instance disappear behind groupcloud's back (as an operator deleting it
        in the cloud's console would): what the reconciler must notice. Synchronous, and
        no weather: a test's hand, not a call to the cloud."""
        self._store.mark_gone(instance_id)

    # -- internals -------------------------------------------------------------------

    def _offers(self, region: str) -> list[Offer]:
        return [o for o in self.offers if o.provider == self.name and o.region == region]

    def _draw(self) -> float:
        with self._rng_lock:  # calls may come from several threads' event loops
            return self._rng.random()

    async def _weather(self, region: str) -> None:
        """What the simulated network and cloud do to a call before it is served."""
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if region in self.hang_regions:
            await asyncio.Event().wait()  # never set: only a timeout ends the call
        if region in self.fail_regions:
            raise ProviderError(f"{self.name}: region {region} is down (simulated)")
        if self.failure_rate > 0 and self._draw() < self.failure_rate:
            raise ProviderError(f"{self.name}: transient failure (simulated)")

    def _instance(self, row: _Row) -> Instance:
        booted = self._clock() - row.created_at >= self.boot_s
        return Instance(
            id=row.id,
            region=row.region,
            instance_type=row.instance_type,
            state=InstanceState.RUNNING if booted else InstanceState.PENDING,
            client_token=row.client_token,
            tags=dict(row.tags),
        )

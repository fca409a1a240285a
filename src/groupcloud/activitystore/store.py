"""The analytics event store under ``<data_dir>/analytics``: Parquet files partitioned by
Seoul month, plus a small DuckDB database that makes ingestion exactly-once.

Layout::

    analytics/
      store.duckdb                 de-dup index (every loaded event_id), app registry,
                                   key fingerprint, committed batches
      apps.json                    the app registry for readers (rewritten after each batch)
      events/month=YYYY-MM/part-<batch>-<n>.parquet
      sketches/month=YYYY-MM/app=<app>/day-YYYY-MM-DD.<id>.theta, month.<id>.theta
                                   Theta sketches of the persons of an app on a Seoul day and
                                   in a month: one per batch that touched it until compacted
      staging/<batch>/...          files of a batch until its commit; moved into place
      ingest.lock                  one writer at a time (flock)

Why not the SQL database: 100M+ event ids and rows are analytics volume, not control-plane
state; next to the files they describe, the index commits in the same DuckDB transaction
that records the batch, and the whole store can be copied, backed up or deleted as one
directory. Readers need no lock: a Parquet file appears in ``events/`` only by a rename,
after its batch committed, so a query sees whole batches.

A crash between the commit and the rename leaves ``staging/<batch>``: the next writer
finishes the move if the batch committed, and deletes it otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from groupcloud.activitystore.id_filter import IdFilter
from groupcloud.analytics import sketches
from groupcloud.analytics.columns import CHECKED
from groupcloud.analytics.events import SEEDED_APPS, Event
from groupcloud.analytics.keys import KeyMaker, key_fingerprint
from groupcloud.analytics.months import Month
from groupcloud.errors import AnalyticsKeyMismatch

__all__ = ["COMPACT_EVERY", "FILTER_FROM", "BatchResult", "EventStore", "Writer", "connect"]


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection without the progress bar it otherwise draws on the terminal
    for long queries: the CLI's output (and its last-line JSON) must stay clean."""
    con = duckdb.connect(database)
    con.execute("SET enable_progress_bar = false")
    return con


FILTER_FROM = 20_000
"""Batches of at least this many rows are screened by the in-memory id hashes (reading
them costs one scan of the index, worth it only for bulk loads)."""
COMPACT_EVERY = 20
"""Batches between two compactions of the sketch fragments (and at the writer's end):
bounds the files a query reads while a long load runs."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    app VARCHAR PRIMARY KEY, description VARCHAR, seeded BOOLEAN NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS seen (event_id VARCHAR NOT NULL, month VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id VARCHAR PRIMARY KEY, events BIGINT NOT NULL, committed_at TIMESTAMPTZ NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class BatchResult:
    loaded: int
    """Events written (new event ids)."""
    duplicates: int
    """Checked events whose event_id was loaded before (or earlier in the batch)."""
    new_apps: list[str]


@dataclass(frozen=True, slots=True)
class EventStore:
    """Paths of one store; opening a writer or reading files goes through here."""

    root: Path

    @classmethod
    def under(cls, data_dir: Path) -> EventStore:
        return cls(data_dir / "analytics")

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    def month_files(self, month: Month) -> list[Path]:
        """The month's committed Parquet files (none before anything was loaded)."""
        return sorted((self.events_dir / f"month={month}").glob("*.parquet"))

    def months(self) -> list[Month]:
        """Months that have committed events, in order."""
        found = [
            Month.parse(p.name.removeprefix("month=")) for p in self.events_dir.glob("month=*")
        ]
        return sorted(m for m in found if self.month_files(m))

    @property
    def sketches_dir(self) -> Path:
        return self.root / "sketches"

    def sketch_files(self, month: Month, app: str, day: date | None = None) -> list[Path]:
        """The stored sketches of an app in a month (``day`` None) or on one day of it:
        one compacted file, plus one fragment per batch since the last compaction."""
        folder = self.sketches_dir / f"month={month}" / f"app={app}"
        name = "month" if day is None else f"day-{day.isoformat()}"
        return sorted(folder.glob(f"{name}.*.theta"))

    def apps(self) -> dict[str, str | None]:
        """Registered apps and their descriptions: the seeded family until a writer ran."""
        try:
            registry: dict[str, str | None] = json.loads((self.root / "apps.json").read_text())
        except FileNotFoundError:
            return dict(SEEDED_APPS)
        return registry

    @contextmanager
    def writer(self, secret: bytes) -> Iterator[Writer]:
        """The single writer: waits for the lock, repairs an interrupted batch, refuses a
        secret other than the one the store was started with."""
        for part in (self.events_dir, self.root / "staging"):
            part.mkdir(parents=True, exist_ok=True)
        with open(self.root / "ingest.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            con = connect(str(self.root / "store.duckdb"))
            try:
                made = Writer(self, con)
                made.prepare(key_fingerprint(secret))
                yield made
                made.compact()
            finally:
                con.close()
                fcntl.flock(lock, fcntl.LOCK_UN)


def _months_of(days: pa.ChunkedArray) -> pa.Array:
    """``YYYY-MM`` of each day, formatted once per distinct day (Arrow's strftime is slow)."""
    encoded = pc.dictionary_encode(days.combine_chunks())
    names = pa.array([f"{d.year:04d}-{d.month:02d}" for d in encoded.dictionary.to_pylist()])
    return names.take(encoded.indices)


def _literal(path: Path) -> str:
    """A path as an SQL string literal (COPY takes no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


class Writer:
    """Writes batches of checked events; only made by ``EventStore.writer``."""

    def __init__(self, store: EventStore, con: duckdb.DuckDBPyConnection) -> None:
        self.store = store
        self.con = con
        self._touched: set[Path] = set()
        self._fragments = 0
        self._ids: IdFilter | None = None

    def prepare(self, fingerprint: str) -> None:
        con = self.con
        # rows of a batch have no order to keep: lets DuckDB insert and copy in parallel
        con.execute("SET preserve_insertion_order = false")
        con.execute(_SCHEMA)
        found = con.execute("SELECT value FROM meta WHERE name = 'key_fingerprint'").fetchone()
        if found is None:
            con.execute("INSERT INTO meta VALUES ('key_fingerprint', ?)", [fingerprint])
        elif found[0] != fingerprint:
            raise AnalyticsKeyMismatch(
                "GROUPCLOUD_ANALYTICS_SECRET is not the secret this event store was built with "
                f"(its fingerprint is {found[0]}, the configured one is {fingerprint}); mixing "
                "them would count every person twice. See docs/analytics.md, key rotation.",
                store_fingerprint=found[0],
                configured_fingerprint=fingerprint,
            )
        now = datetime.now(UTC)
        for app, description in SEEDED_APPS.items():
            con.execute(
                "INSERT INTO apps VALUES (?, ?, true, ?) ON CONFLICT DO NOTHING",
                [app, description, now],
            )
        self._recover()
        self._publish_apps()

    def _recover(self) -> None:
        committed = {row[0] for row in self.con.execute("SELECT batch_id FROM batches").fetchall()}
        for staged in sorted((self.store.root / "staging").iterdir()):
            if staged.name in committed:
                self._move(staged)
            else:
                shutil.rmtree(staged)

    def _move(self, staged: Path) -> None:
        for part in sorted(staged.glob("month=*/*.parquet")):
            target = self.store.events_dir / part.parent.name
            target.mkdir(exist_ok=True)
            os.replace(part, target / part.name)
        for part in sorted(staged.glob("sketches/month=*/app=*/*.theta")):
            target = self.store.sketches_dir / part.parent.parent.name / part.parent.name
            target.mkdir(parents=True, exist_ok=True)
            os.replace(part, target / part.name)
            self._touched.add(target)
        shutil.rmtree(staged)

    def _stage_sketches(self, staged: Path, batch_id: str) -> None:
        """Theta sketches of the batch's new events per app and Seoul day, and per app and
        month (the union of its days), written beside its Parquet files."""
        fresh = self.con.execute("SELECT app, day, person_key FROM fresh").to_arrow_table()
        months: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        for (app, day), values in sketches.grouped_values(fresh):
            blob = sketches.sketch_of(values)
            month = f"{day.year:04d}-{day.month:02d}"
            folder = staged / "sketches" / f"month={month}" / f"app={app}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"day-{day.isoformat()}.{batch_id}.theta").write_bytes(blob)
            months[(month, app)].append(blob)
        for (month, app), blobs in months.items():
            merged, _ = sketches.union(blobs)
            folder = staged / "sketches" / f"month={month}" / f"app={app}"
            (folder / f"month.{batch_id}.theta").write_bytes(bytes(merged.serialize()))

    def compact(self) -> None:
        """Merge the sketch fragments of every app, day and month this writer touched into
        one file each. A reader between the rename and the deletes sees a fragment twice,
        which a Theta union ignores; a crash leaves fragments, which are merged next time."""
        for folder in sorted(self._touched):
            names: dict[str, list[Path]] = defaultdict(list)
            for part in folder.glob("*.theta"):
                names[part.name.split(".")[0]].append(part)
            for name, parts in names.items():
                if len(parts) < 2:
                    continue
                merged, _ = sketches.union(p.read_bytes() for p in parts)
                made = folder / f"{name}.c{uuid.uuid4().hex}.theta"
                temporary = made.with_suffix(".tmp")
                temporary.write_bytes(bytes(merged.serialize()))
                os.replace(temporary, made)
                for part in parts:
                    part.unlink()
        self._touched.clear()
        self._fragments = 0

    def _publish_apps(self) -> None:
        rows = self.con.execute("SELECT app, description FROM apps ORDER BY app").fetchall()
        temporary = self.store.root / "apps.json.tmp"
        temporary.write_text(json.dumps(dict(rows), indent=1))
        os.replace(temporary, self.store.root / "apps.json")

    def write(self, events: Sequence[Event], secret: bytes) -> BatchResult:
        """Load the events whose ids are new, in one transaction; the first of several
        events with one id wins."""
        table = pa.Table.from_pydict(
            {
                "pos": range(len(events)),
                "event_id": [e.event_id for e in events],
                "app": [e.app for e in events],
                "person_id": [e.person_id for e in events],
                "occurred_at": [e.occurred_at for e in events],
                "day": [e.day for e in events],
                "kind": [e.kind for e in events],
            },
            schema=CHECKED,
        )
        return self.write_checked(table, KeyMaker(secret))

    def _hashes(self, table: str) -> np.ndarray:
        found = self.con.execute(f"SELECT hash(event_id) AS h FROM {table}").to_arrow_table()
        return np.asarray(found["h"].to_numpy(), dtype=np.uint64)

    def _screen(self, rows: int) -> tuple[np.ndarray | None, bool, bool]:
        """The batch's id hashes (large batches), whether it may repeat an id, and whether
        it may hold an id stored before. Small batches (API calls) go the exact way."""
        if rows < FILTER_FROM:
            (repeats,) = self.con.execute(
                "SELECT count(*) - count(DISTINCT event_id) FROM incoming"
            ).fetchone() or (0,)
            return None, bool(repeats), True
        if self._ids is None:
            self._ids = IdFilter(self._hashes("seen"))
        hashes = np.sort(self._hashes("incoming"))
        repeats = bool(np.any(hashes[1:] == hashes[:-1]))
        return hashes, repeats, self._ids.may_contain(hashes)

    def write_checked(self, checked: pa.Table, keys: KeyMaker) -> BatchResult:
        """Load checked rows (``columns.CHECKED``) whose ids are new, in one transaction;
        of several rows with one id the one with the smallest ``pos`` wins. Person ids are
        replaced by their keys here, before anything is written."""
        if checked.num_rows == 0:
            return BatchResult(0, 0, [])
        table = checked.drop_columns(["person_id"]).add_column(
            3, "person_key", keys.keys(checked["person_id"])
        )
        table = table.append_column("month", _months_of(table["day"]))
        batch_id = uuid.uuid4().hex
        staged = self.store.root / "staging" / batch_id
        con = self.con
        con.register("incoming", table)
        kind = "TABLE"
        try:
            con.execute("BEGIN")
            hashes, repeats, maybe_seen = self._screen(table.num_rows)
            # the window that keeps the first of repeated ids costs more than the rest of
            # the statement, and the anti-join grows with the store: each runs only when
            # the batch may repeat an id, or may hold one stored before
            first = (
                " QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY pos) = 1"
                if repeats
                else ""
            )
            new = (
                " WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.event_id = i.event_id)"
                if maybe_seen
                else ""
            )
            # a batch of new ids only is read where it is (a view of the Arrow table)
            kind = "TABLE" if new or first else "VIEW"  # a view: nothing copied
            con.execute(
                f"CREATE OR REPLACE TEMP {kind} fresh AS "
                "SELECT * EXCLUDE (pos) FROM incoming i" + new + first
            )
            (loaded,) = con.execute("SELECT count(*) FROM fresh").fetchone() or (0,)
            new_apps = [
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT app FROM fresh WHERE app NOT IN (SELECT app FROM apps) "
                    "ORDER BY app"
                ).fetchall()
            ]
            if loaded:
                con.execute("INSERT INTO seen SELECT event_id, month FROM fresh")
                now = datetime.now(UTC)
                for app in new_apps:
                    con.execute("INSERT INTO apps VALUES (?, NULL, false, ?)", [app, now])
                con.execute(
                    f"COPY fresh TO {_literal(staged)} "
                    "(FORMAT PARQUET, PARTITION_BY (month), COMPRESSION ZSTD, "
                    f"FILENAME_PATTERN 'part-{batch_id}-{{i}}')"
                )
                self._stage_sketches(staged, batch_id)
                con.execute("INSERT INTO batches VALUES (?, ?, ?)", [batch_id, loaded, now])
            con.execute("COMMIT")
            if self._ids is not None and loaded:
                if hashes is not None and not maybe_seen and not repeats:
                    self._ids.add(hashes, ordered=True)  # all new: the batch's own hashes
                else:
                    self._ids.add(self._hashes("fresh"))
        except BaseException:
            con.execute("ROLLBACK")
            shutil.rmtree(staged, ignore_errors=True)
            raise
        finally:
            con.execute(f"DROP {kind} IF EXISTS fresh")
            con.unregister("incoming")
        if loaded:
            self._move(staged)
            self._fragments += 1
            if self._fragments >= COMPACT_EVERY:
                self.compact()
        if new_apps:
            self._publish_apps()
        return BatchResult(int(loaded), checked.num_rows - int(loaded), new_apps)

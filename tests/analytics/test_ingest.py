"""Ingestion into the event store: bad rows with line numbers, exactly-once loading across
files and runs, person keys instead of person ids, the secret's checks, crash repair."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from groupcloud.activitystore.store import FILTER_FROM, EventStore
from groupcloud.analytics.months import Month
from groupcloud.errors import AnalyticsKeyMismatch, AnalyticsSecretMissing, InvalidInput
from groupcloud.services.analytics.activity import (
    ingest_batch,
    ingest_files,
    mau_report,
    sketch_estimate,
)
from tests.analytics.helpers import HEADER, settings_for, write_csv, write_ndjson

ROWS = [
    ("e1", "won_banking", "CI-0000001", "2026-01-31T16:30:00Z", "login"),
    ("e2", "won_card", "CI-0000001", "2026-02-03T10:00:00+09:00", "pay"),
    ("e3", "won_banking", "CI-0000002", "2026-01-31T14:30:00Z", "login"),
    ("e4", "won_newapp", "CI-0000003", "2026-02-01T00:00:00", "login"),  # no offset
    ("e1", "won_banking", "CI-0000001", "2026-01-31T16:30:00Z", "login"),  # again
    ("e5", "won_newapp", "CI-0000003", "2026-02-01T00:00:00+09:00", "login"),
]


def test_bad_rows_are_reported_by_line_and_the_good_ones_load(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    (summary,) = ingest_files(settings, [write_csv(tmp_path / "a.csv", ROWS)])
    assert (summary.received, summary.loaded, summary.duplicates, summary.bad) == (6, 4, 1, 1)
    assert [(b.line, b.field) for b in summary.bad_rows] == [(5, "occurred_at")]
    assert summary.new_apps == ["won_newapp"]
    assert EventStore.under(settings.data_dir).apps()["won_newapp"] is None


def test_ndjson_and_csv_lines_count_from_the_files_first_line(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", ROWS[:2])
    with path.open("a") as handle:
        handle.write("\n{not json\n[1, 2]\n")
    quoted = tmp_path / "q.csv"
    quoted.write_text(
        ",".join(HEADER) + '\ne7,won_card,"CI\nsplit",2026-02-03T10:00:00+09:00,pay\n'
        "e8,won_card,CI-9,2026-02-30T10:00:00+09:00,pay\n"
    )
    ndjson, csv_file = ingest_files(settings_for(tmp_path / "data"), [path, quoted])
    assert [(b.line, b.field, b.reason) for b in ndjson.bad_rows] == [
        (4, "line", "not valid JSON"),
        (5, "line", "not a JSON object"),
    ]
    assert ndjson.loaded == 2
    assert [(b.line, b.field) for b in csv_file.bad_rows] == [(4, "occurred_at")]
    assert csv_file.loaded == 1


def test_parquet_files_load_with_row_numbers(tmp_path: Path) -> None:
    table = pa.table({name: [row[i] for row in ROWS] for i, name in enumerate(HEADER)})
    pq.write_table(table, tmp_path / "a.parquet")  # type: ignore[no-untyped-call]
    (summary,) = ingest_files(settings_for(tmp_path / "data"), [tmp_path / "a.parquet"])
    assert (summary.loaded, summary.duplicates, summary.bad) == (4, 1, 1)
    assert summary.bad_rows[0].line == 4


def test_nothing_is_loaded_twice_across_runs_files_and_batches(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", analytics_batch_rows=2)
    first = write_csv(tmp_path / "a.csv", ROWS)
    overlapping = write_csv(
        tmp_path / "b.csv",
        [*ROWS[1:3], ("e9", "won_car", "CI-0000004", "2026-02-10T12:00:00+09:00", "login")],
    )
    once = [s.loaded for s in ingest_files(settings, [first, overlapping])]
    again = ingest_files(settings, [first, overlapping])
    api = ingest_batch(settings, [dict(zip(HEADER, ROWS[0], strict=True))])
    assert once == [4, 1]
    assert [s.loaded for s in again] == [0, 0]
    assert [s.duplicates for s in again] == [5, 3]
    assert (api.loaded, api.duplicates) == (0, 1)
    store = EventStore.under(settings.data_dir)
    files = [str(p) for m in (Month(2026, 1), Month(2026, 2)) for p in store.month_files(m)]
    stored = duckdb.sql(f"SELECT event_id FROM read_parquet({files!r})").fetchall()
    assert sorted(e for (e,) in stored) == ["e1", "e2", "e3", "e5", "e9"]


def test_the_person_id_is_stored_nowhere(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    ingest_files(settings, [write_csv(tmp_path / "a.csv", ROWS)])
    ingest_batch(settings, [dict(zip(HEADER, ROWS[1], strict=True))])
    stored = [p for p in settings.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in stored)
    for path in stored:
        assert b"CI-000000" not in path.read_bytes(), path
    columns = duckdb.sql(
        f"SELECT * FROM read_parquet('{settings.data_dir}/analytics/events/*/*.parquet')"
    ).columns
    assert "person_id" not in columns
    keys = duckdb.sql(
        "SELECT DISTINCT person_key FROM "
        f"read_parquet('{settings.data_dir}/analytics/events/*/*.parquet')"
    ).fetchall()
    assert sorted(len(key) for (key,) in keys) == [32, 32, 32]


def test_ingesting_needs_a_long_enough_secret(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ROWS)
    unset = settings_for(tmp_path / "data").model_copy(update={"analytics_secret": None})
    with pytest.raises(AnalyticsSecretMissing, match="GROUPCLOUD_ANALYTICS_SECRET"):
        ingest_files(unset, [path])
    with pytest.raises(AnalyticsSecretMissing, match="shorter than 32"):
        ingest_files(settings_for(tmp_path / "data", analytics_secret="short"), [path])
    assert not (tmp_path / "data").exists()


def test_another_secret_is_refused_instead_of_counting_everyone_twice(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ROWS)
    ingest_files(settings_for(tmp_path / "data"), [path])
    other = settings_for(tmp_path / "data", analytics_secret="another-secret-" + "x" * 32)
    with pytest.raises(AnalyticsKeyMismatch) as refused:
        ingest_files(other, [path])
    assert refused.value.extra["store_fingerprint"] != refused.value.extra["configured_fingerprint"]


def test_a_file_without_the_columns_or_format_is_refused_whole(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    (tmp_path / "x.csv").write_text("event_id,app\ne1,won_card\n")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(InvalidInput, match="no column person_id, occurred_at, kind"):
        ingest_files(settings, [tmp_path / "x.csv"])
    with pytest.raises(InvalidInput, match="cannot tell the format"):
        ingest_files(settings, [tmp_path / "x.txt"])
    with pytest.raises(InvalidInput, match="no such file"):
        ingest_files(settings, [tmp_path / "missing.ndjson"])


def test_an_interrupted_batch_is_finished_or_dropped_by_the_next_writer(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    ingest_files(settings, [write_csv(tmp_path / "a.csv", ROWS[:1])])
    store = EventStore.under(settings.data_dir)
    (moved,) = store.month_files(Month(2026, 2))
    # as if the process died after its commit, before the rename...
    committed = store.root / "staging" / moved.name.split("-")[1] / "month=2026-02"
    committed.mkdir(parents=True)
    moved.rename(committed / moved.name)
    # ...and another one before its commit
    orphan = store.root / "staging" / "f" / "month=2026-02"
    orphan.mkdir(parents=True)
    (orphan / "part-f-0.parquet").write_bytes(b"half")
    assert store.month_files(Month(2026, 2)) == []
    ingest_batch(settings, [])
    assert store.month_files(Month(2026, 2)) == [moved]
    assert list((store.root / "staging").iterdir()) == []
    assert mau_report(settings, Month(2026, 2), k=1).integrated_mau == 1


def test_bulk_batches_skip_no_stored_id_and_load_none_twice(tmp_path: Path) -> None:
    """Batches of FILTER_FROM rows or more are screened by in-memory id hashes: a retried
    file, a file overlapping an earlier one, and ids repeated inside one batch are still
    each loaded once."""
    rows = FILTER_FROM + 500

    def parquet(name: str, ids: range, repeat: int = 0) -> Path:
        names = [f"id-{i}" for i in ids] + [f"id-{ids[0]}"] * repeat
        table = pa.table(
            {
                "event_id": names,
                "app": ["won_card"] * len(names),
                "person_id": [f"P{i % 900}" for i in range(len(names))],
                "occurred_at": ["2026-02-03T10:00:00+09:00"] * len(names),
                "kind": ["login"] * len(names),
            }
        )
        pq.write_table(table, tmp_path / name)  # type: ignore[no-untyped-call]
        return tmp_path / name

    settings = settings_for(tmp_path / "data")
    first = parquet("a.parquet", range(rows), repeat=3)
    overlapping = parquet("b.parquet", range(rows // 2, rows // 2 + rows))
    once = ingest_files(settings, [first, first, overlapping])
    assert [(s.loaded, s.duplicates) for s in once] == [
        (rows, 3),
        (0, rows + 3),
        (rows // 2, rows - rows // 2),
    ]
    again = ingest_files(settings, [overlapping])
    assert (again[0].loaded, again[0].duplicates) == (0, rows)
    # a batch of new ids only is copied straight from its Arrow table
    new = ingest_files(settings, [parquet("c.parquet", range(5 * rows, 6 * rows))])
    assert (new[0].loaded, new[0].duplicates) == (rows, 0)
    assert sketch_estimate(settings, date(2026, 2, 3), date(2026, 2, 3), k=1).estimate == 900
    assert mau_report(settings, Month(2026, 2)).integrated_mau == 900

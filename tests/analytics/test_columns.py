"""The bulk checks agree with the row-by-row ``check`` on every row: same verdict, field,
reason and values; and the bulk readers give the same lines as the row readers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.activitystore.files import chunks_of_rows, read_chunks, read_events
from groupcloud.analytics.columns import check_columns
from groupcloud.analytics.events import BadRow, Event, check
from groupcloud.analytics.keys import KeyMaker, person_key
from tests.analytics.helpers import HEADER

text = st.one_of(
    st.sampled_from(["e1", " e2 ", "", "  ", "won_card", "Won", "x" * 130, "login", "a:b"]),
    st.text(max_size=6),
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
)
instant = st.one_of(
    st.sampled_from(
        [
            "2026-01-31T16:30:00Z",
            "2026-02-03T10:00:00+09:00",
            "2026-02-03 10:00:00.25-05:00",
            "2026-02-03T10:00:00+0900",  # valid for Python, not the bulk form
            "2026-02-30T10:00:00+09:00",
            "2026-02-01T00:00:00",
            "1987-07-01T12:00:00+09:00",  # Seoul kept daylight saving then
            "2026-02-01T23:59:60Z",
            "yesterday",
        ]
    ),
    st.datetimes(
        min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.none(),
    st.integers(0, 3),
)
row = st.fixed_dictionaries(
    {"event_id": text, "app": text, "person_id": text, "occurred_at": instant, "kind": text}
)


def _verdicts(rows: list[dict[str, object]]) -> dict[int, object]:
    (chunk,) = chunks_of_rows(list(enumerate(rows, start=1)), len(rows))
    checked = check_columns(chunk.table)
    got: dict[int, object] = {b.line: (b.field, b.reason) for b in checked.bad}
    for good in checked.good.to_pylist():
        got[good["pos"]] = (
            good["event_id"],
            good["app"],
            good["person_id"],
            good["occurred_at"],
            good["day"],
            good["kind"],
        )
    return got


def _expected(rows: list[dict[str, object]]) -> dict[int, object]:
    want: dict[int, object] = {}
    for line, values in enumerate(rows, start=1):
        verdict = check(values, line)
        if isinstance(verdict, BadRow):
            want[line] = (verdict.field, verdict.reason)
        else:
            assert isinstance(verdict, Event)
            want[line] = (
                verdict.event_id,
                verdict.app,
                verdict.person_id,
                verdict.occurred_at.astimezone(UTC),
                verdict.day,
                verdict.kind,
            )
    return want


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=30))
def test_bulk_checks_give_the_verdicts_of_the_row_checks(rows: list[dict[str, object]]) -> None:
    assert _verdicts(rows) == _expected(rows)


def test_a_typical_chunk_is_accepted_whole_with_seoul_days() -> None:
    at = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
    rows: list[dict[str, object]] = [
        {
            "event_id": f"e{i}",
            "app": "won_card",
            "person_id": f"P{i % 7}",
            "occurred_at": (at + timedelta(minutes=i)).astimezone(timezone(timedelta(hours=9))),
            "kind": "login",
        }
        for i in range(120)
    ]
    assert _verdicts(rows) == _expected(rows)
    days = {v[4] for v in _verdicts(rows).values() if isinstance(v, tuple) and len(v) == 6}
    assert {d.isoformat() for d in days} == {"2026-02-01"}


def test_column_keys_are_the_row_keys() -> None:
    secret = b"k" * 40
    names = pa.chunked_array([["P1", "P2", "P1"], ["P3", "P1"]])
    assert KeyMaker(secret).keys(names).to_pylist() == [
        person_key(secret, n) for n in ["P1", "P2", "P1", "P3", "P1"]
    ]
    long_secret = b"s" * 100  # longer than a SHA-256 block: hashed first, as HMAC does
    assert KeyMaker(long_secret).key("P1") == person_key(long_secret, "P1")


def _lines(chunks_path: Path) -> list[int]:
    return [
        line for chunk in read_chunks(chunks_path, 2) for line in chunk.table["line"].to_pylist()
    ]


def test_csv_lines_match_the_row_reader_with_quoted_newlines_and_blank_lines(
    tmp_path: Path,
) -> None:
    regular = tmp_path / "a.csv"
    regular.write_text(
        ",".join(HEADER) + '\ne1,won_card,"P\nsplit",2026-02-01T10:00:00Z,login\n'
        "e2,won_card,P2,2026-02-01T10:00:00Z,login\ne3,won_card,P3,t,login\n"
    )
    irregular = tmp_path / "b.csv"
    irregular.write_text(
        ",".join(HEADER) + "\ne1,won_card,P1,2026-02-01T10:00:00Z,login\n"
        "e2,won_card,P2,2026-02-01T10:00:00Z,login\n\n"
        "e3,won_card,P3,2026-02-01T10:00:00Z,login,extra\ne4,won_card\n"
        "e5,won_card,P5,2026-02-01T10:00:00Z,login\n"
    )
    for path in (regular, irregular):
        by_row = [line for line, _ in read_events(path)]
        bulk = [b.line for chunk in read_chunks(path, 2) for b in chunk.bad] + _lines(path)
        assert sorted(bulk) == by_row


def test_parquet_ids_and_timestamps_are_read_like_the_row_reader(tmp_path: Path) -> None:
    table = pa.table(
        {
            "event_id": pa.array([1, 2, 3], pa.int64()),
            "app": ["won_card"] * 3,
            "person_id": ["P1", "P2", "P3"],
            "occurred_at": pa.array(
                [datetime(2026, 1, 31, 15, 30), datetime(2026, 2, 1), None],
                pa.timestamp("ms", tz="UTC"),
            ),
            "kind": ["login"] * 3,
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")  # type: ignore[no-untyped-call]
    (chunk,) = read_chunks(tmp_path / "a.parquet", 10)
    checked = check_columns(chunk.table)
    assert [(b.line, b.field) for b in checked.bad] == [(3, "occurred_at")]
    assert sorted(checked.good["event_id"].to_pylist()) == ["1", "2"]
    assert [str(d) for d in checked.good["day"].to_pylist()] == ["2026-02-01", "2026-02-01"]


def test_one_impossible_date_sends_only_its_slice_through_the_row_checks() -> None:
    rows: list[dict[str, object]] = [
        {"event_id": f"e{i}", "app": "won_card", "person_id": f"P{i}",
         "occurred_at": "2026-02-03T10:00:00+09:00", "kind": "login"}
        for i in range(10_000)
    ]  # fmt: skip
    rows[9_000]["occurred_at"] = "2026-02-30T10:00:00+09:00"
    (chunk,) = chunks_of_rows(list(enumerate(rows, start=1)), len(rows))
    checked = check_columns(chunk.table)
    assert [(b.line, b.field) for b in checked.bad] == [(9_001, "occurred_at")]
    assert checked.good.num_rows == 9_999

"""Pure analytics engines: row checks, Seoul months, person keys, metric arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupcloud.analytics.events import BadRow, Event, check
from groupcloud.analytics.keys import key_fingerprint, person_key
from groupcloud.analytics.metrics import growth, overlap_matrix, suppress
from groupcloud.analytics.months import Month, seoul_day

ROW = {
    "event_id": "e1",
    "app": "won_card",
    "person_id": "P1",
    "occurred_at": "2026-01-31T16:30:00Z",
    "kind": "login",
}


def test_an_event_just_after_seoul_midnight_belongs_to_the_next_month() -> None:
    event = check(ROW, 2)
    assert isinstance(event, Event)
    assert event.occurred_at.astimezone(UTC).month == 1
    assert event.day == date(2026, 2, 1)
    assert Month.of(event.day) == Month(2026, 2)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"occurred_at": "2026-02-01T09:30:00"}, "occurred_at", "has no UTC offset"),
        ({"occurred_at": "yesterday"}, "occurred_at", "not an ISO 8601 date-time"),
        ({"event_id": " "}, "event_id", "missing"),
        ({"app": "Won Card"}, "app", "must be lower-case"),
        ({"person_id": None}, "person_id", "missing"),
        ({"kind": ""}, "kind", "missing"),
    ],
)
def test_a_bad_row_names_its_line_and_field(
    change: dict[str, object], field: str, reason: str
) -> None:
    bad = check({**ROW, **change}, 7)
    assert isinstance(bad, BadRow)
    assert (bad.line, bad.field) == (7, field)
    assert bad.reason.startswith(reason)


def test_a_bad_person_id_is_never_echoed() -> None:
    bad = check({**ROW, "person_id": "X" * 300}, 3)
    assert isinstance(bad, BadRow)
    assert "X" not in str(bad)


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)))
def test_the_seoul_day_is_the_utc_instant_plus_nine_hours(naive: datetime) -> None:
    instant = naive.replace(tzinfo=UTC)
    assert seoul_day(instant) == (naive + timedelta(hours=9)).date()
    assert seoul_day(instant.astimezone(timezone(timedelta(hours=-5)))) == seoul_day(instant)


@given(st.integers(1, 9998), st.integers(1, 12), st.integers(-400, 400))
def test_month_arithmetic_round_trips(year: int, month: int, shift: int) -> None:
    start = Month(year, month)
    assert Month.parse(str(start)) == start
    assert start.next().previous() == start
    assert start.plus(shift).plus(-shift) == start
    assert start.days == (start.next().first_day - start.first_day).days
    assert len(start.until(start.plus(abs(shift)))) == abs(shift) + 1


@pytest.mark.parametrize("text", ["2026-13", "2026-2", "26-02", "2026-00", ""])
def test_a_month_must_be_yyyy_mm(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        Month.parse(text)


def test_person_keys_depend_on_the_secret_and_fingerprints_tell_secrets_apart() -> None:
    one, two = b"a" * 32, b"b" * 32
    assert person_key(one, "P1") == person_key(one, "P1")
    assert person_key(one, "P1") != person_key(two, "P1")
    assert len(person_key(one, "P1")) == 32
    assert key_fingerprint(one) != key_fingerprint(two)
    assert len(key_fingerprint(one)) == 16


@given(st.integers(0, 10**9), st.integers(1, 100))
def test_suppression_hides_exactly_the_small_nonzero_segments(count: int, k: int) -> None:
    shown = suppress(count, k)
    assert (shown is None) == (0 < count < k)
    assert shown in (None, count)


@given(st.integers(0, 10**9), st.integers(1, 10**9))
def test_growth_applied_to_the_previous_month_gives_the_current_one(
    current: int, previous: int
) -> None:
    rate = growth(current, previous)
    assert rate is not None
    assert previous * (1 + rate) == pytest.approx(current)
    assert growth(current, 0) is None
    assert growth(None, previous) is None


APPS = ["a", "b", "c", "d"]


@given(st.dictionaries(st.integers(0, 200), st.sets(st.sampled_from(APPS), min_size=1)))
def test_the_overlap_matrix_matches_counting_persons_pair_by_pair(
    persons: dict[int, set[str]],
) -> None:
    combos: dict[tuple[str, ...], int] = {}
    for used in persons.values():
        key = tuple(sorted(used))
        combos[key] = combos.get(key, 0) + 1
    matrix = overlap_matrix(combos)
    for a, b in [*combinations(sorted(matrix), 2), *((x, x) for x in matrix)]:
        both = sum(1 for used in persons.values() if {a, b} <= used)
        assert matrix[a][b] == matrix[b][a] == both

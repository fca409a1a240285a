"""The DuckDB accrual (groupcloud.metering.bulk) states what the pure path states."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.analytics.months import Month
from groupcloud.metering import bulk
from groupcloud.metering import statements as pure
from groupcloud.metering.rates import MissingRate, Rate, RateCard
from groupcloud.metering.usage import AllocationEvent, EventKind, corrections, derive
from tests.unit.metering.scenarios import EPOCH, card_strategy, event, facts, histories, utc

HORIZON = utc(2026, 5, 1)
SHARE = Decimal("0.65")


def sample() -> list[AllocationEvent]:
    return [
        event(1, utc(2026, 1, 31, 12), EventKind.CLAIMED, {"VCPU": 8, "GPU": 1}, of=facts()),
        event(2, utc(2026, 1, 31, 13), EventKind.BORROW_STARTED, {"VCPU": 6}, lender="card"),
        event(3, utc(2026, 2, 3), EventKind.CLAIMED, {"VCPU": 3}, allocation="x",
              of=facts("card", "burst", "external", "aws")),
        event(4, utc(2026, 2, 9), EventKind.RELEASED),
        event(5, utc(2026, 2, 9, 5), EventKind.RELEASED, allocation="x"),
    ]  # fmt: skip


CARD = RateCard(
    [
        Rate("shared", None, "VCPU", EPOCH, Decimal("41.5")),
        Rate("shared", None, "VCPU", utc(2026, 2, 5, 3), Decimal("44")),
        Rate("shared", None, "GPU", EPOCH, Decimal("2100")),
        Rate("external", "aws", "VCPU", EPOCH, Decimal("85.5"), Decimal("12")),
    ]
)


@settings(max_examples=60)
@given(histories(allocations=6), card_strategy(), st.integers(0, 100))
def test_bulk_states_what_the_pure_path_states(
    events: list[AllocationEvent], card: RateCard, percent: int
) -> None:
    records = derive(events, until=HORIZON)
    share = Decimal(percent).scaleb(-2)
    assert bulk.statements(bulk.table_of(records), card, lender_share=share) == pure.statements(
        records, card, lender_share=share
    )


@given(histories(), histories())
def test_bulk_nets_reversals_as_the_pure_path_does(
    first: list[AllocationEvent], second: list[AllocationEvent]
) -> None:
    issued = derive(first, until=HORIZON)
    rows = [*issued, *corrections(issued, derive(second, until=HORIZON))]
    assert bulk.statements(bulk.table_of(rows), CARD_ALL, lender_share=SHARE) == (
        pure.statements(rows, CARD_ALL, lender_share=SHARE)
    )


CARD_ALL = RateCard(
    Rate(kind, provider, rc, EPOCH, Decimal("7.25"))
    for kind, provider in (("shared", None), ("local", None), ("external", "aws"))
    for rc in ("VCPU", "GPU")
)


def test_a_parquet_file_and_numpy_columns_of_epoch_seconds_are_read_alike(tmp_path: Path) -> None:
    records = derive(sample())
    table = bulk.table_of(records)
    expected = pure.statements(records, CARD, lender_share=SHARE)
    assert len(expected) == 4  # bank and card, January and February
    path = tmp_path / "usage.parquet"
    pq.write_table(table, path)  # type: ignore[no-untyped-call]
    assert bulk.statements(path, CARD, lender_share=SHARE) == expected
    assert bulk.statements(str(path), CARD, lender_share=SHARE) == expected
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in bulk.COLUMNS}
    columns["start"] = np.array([int(r.start.timestamp()) for r in records], dtype=np.int64)
    columns["end"] = np.array([int(r.end.timestamp()) for r in records], dtype=np.int64)
    columns["provider"] = pa.array([r.provider for r in records], pa.string())
    columns["lender"] = pa.array([r.lender for r in records], pa.string())
    assert bulk.statements(columns, CARD, lender_share=SHARE) == expected


def test_only_the_months_asked_for_are_stated() -> None:
    table = bulk.table_of(derive(sample()))
    feb = [Month(2026, 2)]
    found = bulk.statements(table, CARD, lender_share=SHARE, months=feb)
    assert found == pure.statements(derive(sample()), CARD, lender_share=SHARE, months=feb)
    assert {str(s.month) for s in found} == {"2026-02"}
    assert bulk.statements(table, CARD, lender_share=SHARE, months=[Month(2027, 1)]) == []


def test_no_usage_states_nothing() -> None:
    assert bulk.statements(bulk.table_of([]), CARD, lender_share=SHARE) == []


def test_usage_without_a_rate_is_an_error_as_in_the_pure_path() -> None:
    records = derive(sample())
    no_gpu = RateCard(r for r in CARD.rates if r.resource_class != "GPU")
    with pytest.raises(MissingRate, match="no rate for GPU in shared at 2026-01-31T12:00:00"):
        bulk.statements(bulk.table_of(records), no_gpu, lender_share=SHARE)
    with pytest.raises(MissingRate, match="GPU"):
        pure.statements(records, no_gpu, lender_share=SHARE)
    late = RateCard(
        Rate(r.zone_kind, r.provider, r.resource_class, pure.month_start(Month(2026, 2)), r.price)
        for r in CARD.rates
        if r.effective_from == EPOCH
    )
    with pytest.raises(MissingRate, match="2026-01-31T12:00:00"):
        bulk.statements(bulk.table_of(records), late, lender_share=SHARE)
    # the months that are priced can still be stated
    feb_only = bulk.statements(bulk.table_of(records), late, lender_share=SHARE,
                               months=[Month(2026, 2)])  # fmt: skip
    assert feb_only == pure.statements(records, late, lender_share=SHARE, months=[Month(2026, 2)])


def test_columns_missing_are_named() -> None:
    with pytest.raises(ValueError, match="usage columns missing: amount, end"):
        bulk.statements(
            {n: [] for n in bulk.COLUMNS if n not in ("amount", "end")}, CARD, lender_share=SHARE
        )


def test_a_line_whose_unit_seconds_net_to_zero_across_rates_still_bills_the_difference() -> None:
    # an hour at 41.5 reversed and an hour at 44 issued instead: 0 unit-seconds, 2.5 KRW
    (hour,) = derive(
        [
            event(1, utc(2026, 2, 1), EventKind.CLAIMED, {"VCPU": 1}, of=facts()),
            event(2, utc(2026, 2, 1, 1), EventKind.RELEASED),
        ]
    )
    later = replace(hour, start=utc(2026, 2, 6), end=utc(2026, 2, 6, 1))
    rows = [replace(hour, amount=-1), later]
    (feb,) = pure.statements(rows, CARD, lender_share=SHARE)
    (line,) = feb.lines
    assert (line.unit_seconds, line.amount) == (0, Decimal(3))  # 2.5 rounds half up
    assert bulk.statements(bulk.table_of(rows), CARD, lender_share=SHARE) == [feb]

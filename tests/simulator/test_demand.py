"""Trace files: CSV and NDJSON read back what was written; bad lines are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupcloud.simulator.demand import (
    Request,
    TraceFileError,
    hourly_requests,
    read_requests,
    write_requests,
)

TRACE = [
    Request(arrival_s=0, duration_s=60, company="bank", resources={"VCPU": 2, "MEMORY_MB": 8}),
    Request(
        arrival_s=30, duration_s=600, company="card", priority=200, count=2,
        resources={"GPU": 1, "VCPU": 8}, patience_s=120, kind="gpu",
    ),
]  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".ndjson"])
def test_a_written_trace_reads_back_the_same(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"trace{suffix}"
    assert write_requests(path, reversed(TRACE)) == 2
    assert read_requests(path) == TRACE  # in arrival order


def test_bad_lines_are_named_with_their_line_and_field(tmp_path: Path) -> None:
    ndjson = tmp_path / "t.ndjson"
    line = '{"arrival_s": %d, "duration_s": 1, "company": "a", "resources": {"VCPU": 1}}\n'
    ndjson.write_text(line % 0 + line % -5, encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"t.ndjson:2: arrival_s: "):
        read_requests(ndjson)
    ndjson.write_text("[1]\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match="not a JSON object"):
        read_requests(ndjson)
    csv = tmp_path / "t.csv"
    csv.write_text("arrival_s,duration_s,company,VCPU\n0,60,bank,two\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"t.csv:2: "):
        read_requests(csv)
    with pytest.raises(TraceFileError, match=r"missing\.csv"):
        read_requests(tmp_path / "missing.csv")


UNIT = {"VCPU": 16, "MEMORY_MB": 65536}
amounts = st.fixed_dictionaries(
    {"VCPU": st.floats(0, 500, allow_nan=False), "MEMORY_MB": st.floats(0, 2e6, allow_nan=False)}
)


@given(st.dictionaries(st.sampled_from(["bank", "card"]), st.lists(amounts, max_size=24)))
def test_hourly_requests_cover_each_hour_with_the_fewest_units(
    hourly: dict[str, list[dict[str, float]]],
) -> None:
    requests = hourly_requests(hourly, UNIT)
    assert [r.arrival_s for r in requests] == sorted(r.arrival_s for r in requests)
    for company, hours in hourly.items():
        for h, need in enumerate(hours):
            mine = [r for r in requests if r.company == company and r.arrival_s == h * 3600]
            assert all(r.duration_s == 3600 and r.resources == UNIT for r in mine)
            for rc, per in UNIT.items():  # enough of every class ...
                assert len(mine) * per >= need[rc] * (1 - 1e-9) - per * 1e-9
            if mine:  # ... and one unit fewer would not be
                assert any((len(mine) - 1) * per < need[rc] for rc, per in UNIT.items())
    assert len(requests) == sum(len([r for r in requests if r.company == c]) for c in hourly)

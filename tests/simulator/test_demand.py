"""Trace files: CSV and NDJSON read back what was written; bad lines are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from groupcloud.simulator.demand import Request, TraceFileError, read_requests, write_requests

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

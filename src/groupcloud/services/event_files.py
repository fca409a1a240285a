"""Reading activity events from files: CSV (with a header), NDJSON and Parquet, optionally
gzip-compressed (``.csv.gz``, ``.ndjson.gz``).

Each reader yields ``(line, row)``: the 1-based line where the record starts (CSV, NDJSON;
the header is line 1 of a CSV) or the 1-based row (Parquet), so a bad row can be found in
the file. Rows are streamed; a file is never held in memory whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from groupcloud.analytics.events import COLUMNS, BadRow
from groupcloud.errors import InvalidInput

__all__ = ["FORMATS", "Row", "file_format", "read_events", "write_events"]

Row = tuple[int, Mapping[str, object] | BadRow]
FORMATS = ("csv", "ndjson", "parquet")
_SUFFIXES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet"}


def file_format(path: Path) -> str:
    """csv, ndjson or parquet, from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None or (found == "parquet" and path.suffix.lower() == ".gz"):
        raise InvalidInput(
            f"{path}: cannot tell the format from the name; use .csv, .ndjson (or .jsonl) "
            "or .parquet (CSV and NDJSON may end in .gz)"
        )
    return found


def _text(path: Path) -> io.TextIOWrapper:
    raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _missing(path: Path, present: object) -> None:
    names = set(present) if isinstance(present, list | tuple | set) else set()
    lacking = [c for c in COLUMNS if c not in names]
    if lacking:
        raise InvalidInput(
            f"{path}: no column {', '.join(lacking)} (needs {', '.join(COLUMNS)})",
            missing=lacking,
        )


def _csv(path: Path) -> Iterator[Row]:
    with _text(path) as handle:
        reader = csv.DictReader(handle)
        _missing(path, list(reader.fieldnames or []))
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                yield start, BadRow(start, "line", "more fields than the header has")
            else:
                yield start, row
            start = reader.line_num + 1


def _ndjson(path: Path) -> Iterator[Row]:
    with _text(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                yield line, BadRow(line, "line", "not valid JSON")
                continue
            if isinstance(row, dict):
                yield line, row
            else:
                yield line, BadRow(line, "line", "not a JSON object")


def _parquet(path: Path) -> Iterator[Row]:
    source = pq.ParquetFile(path)  # type: ignore[no-untyped-call]
    _missing(path, list(source.schema_arrow.names))
    line = 0
    batches = source.iter_batches(batch_size=65_536, columns=list(COLUMNS))  # type: ignore[no-untyped-call]
    for batch in batches:
        for row in batch.to_pylist():
            line += 1
            yield line, row


def read_events(path: Path) -> Iterator[Row]:
    """The rows of one file, in order. A file that cannot be read at all (missing, no such
    columns, unknown format) raises InvalidInput before any row is yielded."""
    kind = file_format(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    reader = {"csv": _csv, "ndjson": _ndjson, "parquet": _parquet}[kind]
    try:
        yield from reader(path)
    except (UnicodeDecodeError, csv.Error, OSError, pa.ArrowException) as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc}") from None


def write_events(path: Path, rows: Iterable[Mapping[str, str]]) -> int:
    """Stream rows of the five columns into a CSV or NDJSON file (``.gz``: compressed);
    returns how many were written."""
    kind = file_format(path)
    if kind == "parquet":
        raise InvalidInput(f"{path}: generated events are written as .csv or .ndjson (.gz)")
    raw = gzip.open(path, "wb") if path.suffix.lower() == ".gz" else open(path, "wb")  # noqa: SIM115
    written = 0
    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        if kind == "csv":
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([row[c] for c in COLUMNS])
                written += 1
        else:
            for row in rows:
                handle.write(json.dumps(row, separators=(",", ":")) + "\n")
                written += 1
    return written

"""Reading activity events from files: CSV (with a header), NDJSON and Parquet, optionally
gzip-compressed (``.csv.gz``, ``.ndjson.gz``).

Each reader yields ``(line, row)``: the 1-based line where the record starts (CSV, NDJSON;
the header is line 1 of a CSV) or the 1-based row (Parquet), so a bad row can be found in
the file. Rows are streamed; a file is never held in memory whole.

``read_chunks`` is the bulk form the ingestion uses: Arrow tables of ``line`` and the five
columns, checked column-wise by ``analytics.columns``. CSV is parsed by Arrow's reader
while the file is regular (the line of a record is the header's line plus the lines of the
records before it); at the first record Arrow cannot place (a wrong number of fields, a
blank line) the rest of the file, from the start of that chunk, goes through the
row-by-row reader, whose line numbers are exact. Parquet is read batch by batch. NDJSON
lines are parsed one by one (``json.loads``) and checked in bulk.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from groupcloud.analytics.events import COLUMNS, BadRow
from groupcloud.errors import InvalidInput

__all__ = [
    "FORMATS",
    "Chunk",
    "Row",
    "chunks_of_rows",
    "file_format",
    "read_chunks",
    "read_events",
    "write_events",
    "write_tables",
]

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


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows of a source in bulk: ``table`` has ``line`` and the five columns; ``bad`` are
    records the reader could not even split into columns (not JSON, too many fields)."""

    table: pa.Table
    bad: list[BadRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows) + len(self.bad)


_STRINGS = pa.schema([("line", pa.int64()), *((c, pa.string()) for c in COLUMNS)])


def _plain(value: object) -> str | None:
    """A value as ``events.check`` reads it: strings as they are, integers as text,
    anything else absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _instant_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()  # keeps its offset, or its lack of one
    return None if value is None else "\x00"  # present but not a date-time


def chunks_of_rows(rows: Iterable[Row], size: int) -> Iterator[Chunk]:
    """Row mappings (an API batch, the row-by-row readers) gathered into chunks."""
    iterator = iter(rows)
    while True:
        part = list(itertools.islice(iterator, size))
        if not part:
            return
        bad = [row for _, row in part if isinstance(row, BadRow)]
        good = [(line, row) for line, row in part if not isinstance(row, BadRow)]
        columns: dict[str, list[object]] = {"line": [line for line, _ in good]}
        for name in COLUMNS:
            read = _instant_text if name == "occurred_at" else _plain
            columns[name] = [read(row.get(name)) for _, row in good]
        yield Chunk(pa.Table.from_pydict(columns, schema=_STRINGS), bad)


def _header(path: Path) -> list[str]:
    with _text(path) as handle:
        return next(csv.reader(handle), [])


def _csv_chunks(path: Path, size: int) -> Iterator[Chunk]:
    names = _header(path)
    _missing(path, names)
    irregular: list[int] = []

    def skip(row: object) -> str:
        irregular.append(1)
        return "skip"

    reader = pv.open_csv(
        str(path),
        read_options=pv.ReadOptions(block_size=1 << 24),
        parse_options=pv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=skip
        ),
        convert_options=pv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
        ),
    )
    next_line, done = 2, 0
    for batch in reader:
        blank = np.ones(batch.num_rows, dtype=bool)
        for column in batch.columns:
            blank &= pc.utf8_length(column).to_numpy(zero_copy_only=False) == 0
        if irregular or blank.any():  # a blank line, which the row reader skips
            break
        spans = np.ones(batch.num_rows, dtype=np.int64)
        for column in batch.columns:
            spans += pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
        starts = next_line + np.concatenate(([0], np.cumsum(spans)[:-1]))
        next_line += int(spans.sum())
        done += batch.num_rows
        table = pa.Table.from_arrays(
            [pa.array(starts, pa.int64()), *(batch.column(c) for c in COLUMNS)],
            names=["line", *COLUMNS],
        )
        for start in range(0, table.num_rows, size):
            yield Chunk(table.slice(start, size))
    else:
        return
    # from the chunk Arrow could not place, record by record
    yield from chunks_of_rows(itertools.islice(_csv(path), done, None), size)


def _parquet_chunks(path: Path, size: int) -> Iterator[Chunk]:
    source = pq.ParquetFile(path)  # type: ignore[no-untyped-call]
    _missing(path, list(source.schema_arrow.names))
    line = 1
    batches = source.iter_batches(batch_size=size, columns=list(COLUMNS))  # type: ignore[no-untyped-call]
    for batch in batches:
        lines = pa.array(np.arange(line, line + batch.num_rows, dtype=np.int64))
        line += batch.num_rows
        yield Chunk(
            pa.Table.from_arrays(
                [lines, *(batch.column(c) for c in COLUMNS)], names=["line", *COLUMNS]
            )
        )


def read_chunks(path: Path, size: int) -> Iterator[Chunk]:
    """The rows of one file in chunks of at most ``size``, in order. A file that cannot be
    read at all raises InvalidInput, like ``read_events``."""
    kind = file_format(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        if kind == "csv":
            yield from _csv_chunks(path, size)
        elif kind == "parquet":
            yield from _parquet_chunks(path, size)
        else:
            yield from chunks_of_rows(_ndjson(path), size)
    except (UnicodeDecodeError, csv.Error, OSError, pa.ArrowException) as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc}") from None


def write_tables(path: Path, tables: Iterable[pa.Table]) -> int:
    """Stream tables of the five columns into a Parquet, CSV or NDJSON file (CSV and
    NDJSON may be ``.gz``); returns how many rows were written. Parquet and CSV are
    written by Arrow in bulk; NDJSON line by line."""
    kind = file_format(path)
    written = 0
    if kind == "ndjson":
        return write_events(path, (row for table in tables for row in table.to_pylist()))
    if kind == "parquet":
        parquet: pq.ParquetWriter | None = None
        try:
            for table in tables:
                if parquet is None:
                    parquet = pq.ParquetWriter(path, table.schema, compression="zstd")  # type: ignore[no-untyped-call]
                parquet.write_table(table)  # type: ignore[no-untyped-call]
                written += table.num_rows
        finally:
            if parquet is not None:
                parquet.close()  # type: ignore[no-untyped-call]
        return written
    compressed = path.suffix.lower() == ".gz"
    with pa.OSFile(str(path), "wb") as raw:
        sink = pa.CompressedOutputStream(raw, "gzip") if compressed else raw
        csv_writer: pv.CSVWriter | None = None
        try:
            for table in tables:
                if csv_writer is None:
                    csv_writer = pv.CSVWriter(sink, table.schema)
                csv_writer.write_table(table)
                written += table.num_rows
        finally:
            if csv_writer is not None:
                csv_writer.close()
            if compressed:
                sink.close()
    return written

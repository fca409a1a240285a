"""Mergeable approximate distinct counts: Apache DataSketches Theta sketches of person keys.

Why Theta: a sketch of one app on one Seoul day is small (at most ``2**LG_K`` hashes) and
sketches *union* without loss beyond their own error, so the distinct persons of any span
of days and any set of apps is the union of stored sketches, never a new scan of the
events. A person active in several apps or on several days is one hash in the union, so is
counted once, as in the exact integrated MAU. The union is also idempotent: a sketch that
is read twice (a fragment and the compacted sketch that already holds it) changes nothing.

Accuracy: with ``LG_K = 14`` (k = 16,384 hashes) the relative standard error is about
1/sqrt(k) = 0.78%. Every estimate is given with the library's bounds at ``STD_DEVS = 2``
standard deviations (about 95.4% confidence); below k persons a sketch holds every hash and
its estimate is exact (bounds equal to it).

The hashed value is the first 8 bytes of the person key (itself a keyed SHA-256, so
uniform): the same person gives the same value in every app, batch and run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

import datasketches as ds
import numpy as np
import pyarrow as pa

__all__ = [
    "LG_K",
    "STD_DEVS",
    "Estimate",
    "estimate",
    "grouped_values",
    "key_values",
    "sketch_of",
    "union",
]

LG_K = 14
STD_DEVS = 2
SEED = 9001
"""The library's default seed: sketches made with another seed refuse to merge."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """An approximate distinct count with its bounds (``STD_DEVS`` standard deviations)."""

    estimate: float
    lower: float
    upper: float
    exact: bool
    """True when the sketches held every hash (fewer than k persons): the count is exact."""
    sketches: int
    """How many stored sketches the union read."""


def key_values(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The first 8 bytes of each 32-byte person key as a signed 64-bit integer."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_fixed_size_binary(keys.type):
        data = keys.buffers()[1]
        assert data is not None
        start, end = keys.offset * 32, (keys.offset + len(keys)) * 32
    else:  # variable-width binary (as DuckDB hands BLOBs back), every value 32 bytes
        offsets_buffer, data = keys.buffers()[1], keys.buffers()[2]
        assert offsets_buffer is not None
        assert data is not None
        width = np.int64 if pa.types.is_large_binary(keys.type) else np.int32
        offsets = np.frombuffer(offsets_buffer, dtype=width)[keys.offset :][: len(keys) + 1]
        start, end = int(offsets[0]), int(offsets[-1])
        if end - start != 32 * len(keys):
            raise ValueError("person keys must be 32 bytes each")
    raw = np.frombuffer(data, dtype=np.uint8)[start:end]
    return raw.reshape(-1, 32)[:, :8].copy().view("<i8").ravel()


def grouped_values(table: pa.Table) -> Iterator[tuple[tuple[str, date], np.ndarray]]:
    """The key values of each (app, day) of a table of ``app, day, person_key`` rows,
    sorted by app and day (repeats are left in: a sketch ignores them)."""
    if table.num_rows == 0:
        return
    apps = table["app"].combine_chunks().dictionary_encode()
    names = apps.dictionary.to_pylist()
    days = table["day"].combine_chunks().cast(pa.int32()).to_numpy(zero_copy_only=False)
    codes = apps.indices.to_numpy(zero_copy_only=False).astype(np.int64) << 32
    codes += days.astype(np.int64) - int(days.min())
    order = np.argsort(codes, kind="stable")
    codes, values = codes[order], key_values(table["person_key"])[order]
    edges = np.flatnonzero(np.diff(codes)) + 1
    bounds = [0, *edges.tolist(), len(codes)]
    base = int(days.min())
    for start, end in itertools.pairwise(bounds):
        code = int(codes[start])
        day = date.fromordinal(date(1970, 1, 1).toordinal() + (code & 0xFFFFFFFF) + base)
        yield (names[code >> 32], day), values[start:end]


def sketch_of(values: np.ndarray) -> bytes:
    """A serialized compact Theta sketch of the values (duplicates are harmless)."""
    made = ds.update_theta_sketch(LG_K, 1.0, SEED)
    update = made.update
    for value in values.tolist():
        update(value)
    return bytes(made.compact().serialize())


def union(blobs: Iterable[bytes]) -> tuple[ds.compact_theta_sketch, int]:
    """The union of serialized sketches, and how many there were."""
    merged = ds.theta_union(LG_K, 1.0, SEED)
    count = 0
    for blob in blobs:
        merged.update(ds.compact_theta_sketch.deserialize(blob, SEED))
        count += 1
    return merged.get_result(), count


def estimate(blobs: Iterable[bytes]) -> Estimate:
    """Distinct persons in the union of the sketches, with bounds."""
    result, count = union(blobs)
    return Estimate(
        estimate=float(result.get_estimate()),
        lower=float(result.get_lower_bound(STD_DEVS)),
        upper=float(result.get_upper_bound(STD_DEVS)),
        exact=not result.is_estimation_mode(),
        sketches=count,
    )

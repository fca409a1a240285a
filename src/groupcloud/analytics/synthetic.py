"""Seeded synthetic activity events, so that everything can be tried without customer data.

Calibration (public figures): the group's banking app had about 5.64M MAU at the end of
2021 and 7.19M at the end of October 2022. With ``persons`` = 10,000,000, the banking
app's expected MAU is exactly those figures in 2021-12 and 2022-10, on a straight line
between them (extended before and after). Everything else is an assumption, stated here:

- card app: 35% of persons active in 2021-12, +0.5 points a month; auto-finance app: 4%,
  +0.05 points; savings-bank app: 6%, +0.1 points. Shares stay within 1%..95%.
- Overlap: each person has a fixed engagement ``u`` (uniform 0..1). In a month, a person is
  active in an app with share ``f`` when ``x < f``, where ``x`` is ``u`` with probability
  0.6 (the same for every app and month: engaged persons use several apps, month after
  month) and a fresh uniform draw otherwise. Each app's expected MAU is still ``f·persons``.
- An active person is active on 1..2m-1 distinct days (uniform; mean m = 8 banking, 6 card,
  2 auto-finance, 3 savings) with one or two events a day at uniform times, written in
  Seoul time with an explicit +09:00 offset.

Events are made in bulk with numpy, ``CHUNK_PERSONS`` persons at a time (each chunk has its
own generator seeded from ``(seed, chunk)``), as Arrow tables: memory depends on the chunk,
not on the total, so 100M+ events stream to a file. Within a chunk rows come month by
month, app by app. The same seed gives the same events and ids, so ingesting a regenerated
file again loads nothing twice. ``occurred_at`` is an ISO 8601 string in Seoul time with
``+09:00`` (``timestamps=True``: an Arrow timestamp in UTC, as Parquet files carry it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from groupcloud.analytics.months import Month

__all__ = ["CHUNK_PERSONS", "PROFILES", "AppProfile", "expected_share", "generate", "tables"]

CORRELATION = 0.6
KINDS = ("login", "view", "transfer", "payment")
KIND_WEIGHTS = (0.45, 0.35, 0.12, 0.08)
ANCHOR = Month(2021, 12)
CHUNK_PERSONS = 100_000
_DAY_S = 86_400
_SEOUL_S = 9 * 3600


@dataclass(frozen=True, slots=True)
class AppProfile:
    app: str
    share: float
    """Share of persons active in the anchor month (2021-12)."""
    monthly_gain: float
    """Added to the share every month after the anchor (subtracted before)."""
    mean_days: int


PROFILES = (
    AppProfile("won_banking", 0.564, (0.719 - 0.564) / 10, 8),
    AppProfile("won_card", 0.35, 0.005, 6),
    AppProfile("won_car", 0.04, 0.0005, 2),
    AppProfile("won_savings", 0.06, 0.001, 3),
)


def expected_share(profile: AppProfile, month: Month) -> float:
    """Expected MAU / persons of the app in the month."""
    offset = (month.year - ANCHOR.year) * 12 + month.month - ANCHOR.month
    return min(max(profile.share + profile.monthly_gain * offset, 0.01), 0.95)


def _month_start_s(month: Month) -> int:
    """UTC seconds of 00:00 on the month's first day in Seoul."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return int(start.timestamp()) - _SEOUL_S


def _chunk(
    first: int, count: int, months: list[Month], seed: int, counter: int, timestamps: bool
) -> pa.Table:
    rng = np.random.default_rng([seed, first // CHUNK_PERSONS])
    engagement = rng.random(count)
    persons: list[np.ndarray] = []
    apps: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    for month in months:
        days = month.days
        base = _month_start_s(month)
        for index, profile in enumerate(PROFILES):
            fresh = rng.random(count)
            x = np.where(rng.random(count) < CORRELATION, engagement, fresh)
            active = np.flatnonzero(x < expected_share(profile, month))
            wanted = np.minimum(rng.integers(1, 2 * profile.mean_days, active.size), days)
            # distinct days: the first `wanted` of a random order of the month's days
            order = np.argsort(rng.random((active.size, days)), axis=1)
            chosen = np.arange(days)[None, :] < wanted[:, None]
            who = np.repeat(active, wanted)
            day = order[chosen]
            repeat = rng.integers(1, 3, who.size)
            who, day = np.repeat(who, repeat), np.repeat(day, repeat)
            persons.append(who)
            apps.append(np.full(who.size, index, dtype=np.int8))
            seconds.append(base + day * _DAY_S + rng.integers(0, _DAY_S, who.size))
    who = np.concatenate(persons) + first
    at = np.concatenate(seconds)
    app_names = pa.array([p.app for p in PROFILES])
    kinds = pa.array(list(KINDS))
    kind = rng.choice(len(KINDS), size=who.size, p=np.array(KIND_WEIGHTS))
    ids = pa.array(np.arange(counter + 1, counter + 1 + who.size, dtype=np.int64))
    instants = pa.array(at * 1_000_000, pa.timestamp("us", tz="UTC"))
    if timestamps:
        occurred: pa.Array = instants
    else:
        local = pa.array(at + _SEOUL_S, pa.timestamp("s"))
        text = pc.replace_substring(pc.cast(local, pa.string()), " ", "T")  # strftime: 30x slower
        occurred = pc.binary_join_element_wise(text, "+09:00", "")
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise(f"s{seed}-", pc.cast(ids, pa.string()), ""),
            "app": app_names.take(pa.array(np.concatenate(apps))),
            "person_id": pc.binary_join_element_wise(
                "CI", pc.utf8_lpad(pc.cast(pa.array(who), pa.string()), 10, "0"), ""
            ),
            "occurred_at": occurred,
            "kind": kinds.take(pa.array(kind)),
        }
    )


def tables(
    persons: int, months: list[Month], seed: int, *, timestamps: bool = False
) -> Iterator[pa.Table]:
    """Events of ``CHUNK_PERSONS`` persons at a time, as tables of the five columns."""
    counter = 0
    for first in range(0, persons, CHUNK_PERSONS):
        made = _chunk(first, min(CHUNK_PERSONS, persons - first), months, seed, counter, timestamps)
        counter += made.num_rows
        yield made


def generate(persons: int, months: list[Month], seed: int) -> Iterator[dict[str, str]]:
    """Events as rows of the five ingestion columns (for the CSV and NDJSON writers)."""
    for table in tables(persons, months, seed):
        yield from table.to_pylist()

"""MAU analytics at volume: ingest rate, exact MAU of one month, sketch unions, memory.

1. ``--events N`` synthetic events (``analytics/synthetic.py``, calibrated; months
   2022-01..2022-10, ``N / 116`` persons: the generator makes about 116 events a person
   over those months) are generated once into ``--cache`` (default ``benchmarks/.cache``,
   git-ignored) as Parquet with ``occurred_at`` as ISO 8601 strings (``+09:00``), the form
   event files carry, so the ingest parses them.
2. They are ingested into a fresh event store (checks, HMAC keys, de-dup anti-join,
   month-partitioned Parquet, Theta sketches): ``ingest_events_per_s``.
3. ``exact_month_s``: the exact report of 2022-10 (MAU per app and integrated, DAU, the
   month before); ``exact_integrated_s``: the integrated MAU alone (one count distinct).
4. ``sketch_query_ms``: median of ``--queries`` sketch unions of 12 months (2021-11..2022-10)
   for random non-empty app sets; ``sketch_check`` compares the 2022-10 integrated
   estimate with the exact count.
5. ``peak_rss_mb``: the process's peak resident memory (getrusage).

    python benchmarks/mau.py [--events 1000000] [--cache DIR] [--seed 1] [--queries 25]
                             [--batch-rows N] [--keep]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from calibration import cpu_calibration_ms
from groupcloud.activitystore.files import write_tables
from groupcloud.activitystore.store import EventStore
from groupcloud.analytics.months import Month
from groupcloud.analytics.synthetic import PROFILES, tables
from groupcloud.config import Settings
from groupcloud.services.analytics.activity import ingest_files, mau_report, sketch_estimate

MONTHS = Month(2022, 1).until(Month(2022, 10))
EVENTS_PER_PERSON = 116
REPORTED = Month(2022, 10)
SECRET = "benchmark-secret-not-for-production-0123456789"


def _events_file(cache: Path, events: int, seed: int) -> tuple[Path, float | None]:
    """The cached event file, generated on first use; and the seconds that took."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"mau-{events}-seed{seed}.parquet"
    if path.exists():
        return path, None
    persons = max(1, round(events / EVENTS_PER_PERSON))
    started = time.perf_counter()
    partial = path.with_suffix(".partial.parquet")
    write_tables(partial, tables(persons, MONTHS, seed))
    partial.rename(path)
    return path, time.perf_counter() - started


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=25)
    parser.add_argument("--batch-rows", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the event store.")
    args = parser.parse_args()

    source, generated_s = _events_file(args.cache, args.events, args.seed)
    (events,) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{source}')").fetchone() or (0,)
    data = Path(tempfile.mkdtemp(prefix="mau-store-", dir=args.cache))
    extra: dict[str, Any] = {}
    if args.batch_rows:
        extra["analytics_batch_rows"] = args.batch_rows
    settings = Settings(
        data_dir=data,
        database_url=None,
        analytics_secret=SECRET,
        **extra,
    )
    try:
        started = time.perf_counter()
        (summary,) = ingest_files(settings, [source])
        ingest_s = time.perf_counter() - started
        print(f"ingested {summary.loaded:,} of {events:,} events in {ingest_s:.1f} s", flush=True)

        started = time.perf_counter()
        report = mau_report(settings, REPORTED)
        exact_month_s = time.perf_counter() - started
        files = [str(p) for p in EventStore.under(data).month_files(REPORTED)]
        started = time.perf_counter()
        (integrated,) = duckdb.sql(
            f"SELECT count(DISTINCT person_key) FROM read_parquet({files!r})"
        ).fetchone() or (0,)
        exact_integrated_s = time.perf_counter() - started

        rng = random.Random(args.seed)
        apps = [p.app for p in PROFILES]
        timings = []
        for _ in range(args.queries):
            chosen = rng.sample(apps, rng.randint(1, len(apps)))
            started = time.perf_counter()
            sketch_estimate(settings, date(2021, 11, 1), date(2022, 10, 31), apps=chosen)
            timings.append((time.perf_counter() - started) * 1000)
        month = sketch_estimate(settings, REPORTED.first_day, REPORTED.last_day(), k=1)
        assert month.estimate is not None
        assert month.lower is not None
        assert month.upper is not None
        result = {
            "benchmark": "mau",
            "events": events,
            "loaded": summary.loaded,
            "persons": max(1, round(args.events / EVENTS_PER_PERSON)),
            "months": f"{MONTHS[0]}..{MONTHS[-1]}",
            "batch_rows": settings.analytics_batch_rows,
            "generate_s": None if generated_s is None else round(generated_s, 1),
            "ingest_s": round(ingest_s, 1),
            "ingest_events_per_s": round(events / ingest_s),
            "exact_month_s": round(exact_month_s, 3),
            "exact_integrated_s": round(exact_integrated_s, 3),
            "integrated_mau": report.integrated_mau,
            "sketch_query_ms": round(statistics.median(timings), 2),
            "sketch_query_max_ms": round(max(timings), 2),
            "sketch_check": {
                "month": str(REPORTED),
                "exact": int(integrated),
                "estimate": month.estimate,
                "lower": month.lower,
                "upper": month.upper,
                "within_bounds": month.lower <= integrated <= month.upper,
                "relative_error": round(month.estimate / max(int(integrated), 1) - 1, 5),
            },
            "peak_rss_mb": _rss_mb(),
            "cpu_calibration_ms": cpu_calibration_ms(),
        }
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

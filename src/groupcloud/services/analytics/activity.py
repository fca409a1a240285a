"""Analytics use cases: ingest activity events, and exact MAU and overlap reports.

They work on ``Settings`` alone (the data directory and the analytics secret), not on the
SQL database, so ``groupcloud mau ...`` batch jobs run without a server and the API calls
the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import duckdb

from groupcloud.activitystore.files import Chunk, Row, chunks_of_rows, read_chunks, write_tables
from groupcloud.activitystore.store import EventStore, Writer, connect
from groupcloud.analytics import sketches
from groupcloud.analytics.columns import check_columns
from groupcloud.analytics.keys import KeyMaker
from groupcloud.analytics.metrics import Counts, growth, overlap_matrix, progress, stickiness
from groupcloud.analytics.metrics import suppress as hide
from groupcloud.analytics.months import Month
from groupcloud.analytics.synthetic import tables as synthetic_tables
from groupcloud.config import Settings
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import AnalyticsSecretMissing, InvalidInput
from groupcloud.schemas.analytics import (
    BadRowOut,
    Combination,
    IngestSummary,
    MauReport,
    OverlapReport,
    SegmentMetrics,
    SketchEstimate,
)
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import require_group_admin

__all__ = [
    "ERROR_BOUND",
    "check_span",
    "ingest_batch",
    "ingest_files",
    "load_events",
    "mau_report",
    "overlap_report",
    "secret_of",
    "sketch_estimate",
    "write_synthetic",
]

ERROR_BOUND = (
    f"Theta sketches (lg_k={sketches.LG_K}, relative standard error about "
    f"{100 / 2 ** (sketches.LG_K / 2):.2f}%); bounds at {sketches.STD_DEVS} standard "
    "deviations (about 95.4% confidence)"
)

MIN_SECRET = 32
MAX_SPAN_DAYS = 3660
"""Days one span query may cover (ten years): what a report needs, and a bound on its work."""
MAX_SPAN_MONTHS = 240
MAX_LISTED_BAD = 100
"""Bad rows listed per source (all are counted)."""


def secret_of(settings: Settings) -> bytes:
    """The group secret of the person keys; refuses to go on without a usable one."""
    if settings.analytics_secret is None:
        raise AnalyticsSecretMissing(
            "set GROUPCLOUD_ANALYTICS_SECRET (at least 32 characters, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) to ingest events"
        )
    secret = settings.analytics_secret.get_secret_value().encode()
    if len(secret) < MIN_SECRET:
        raise AnalyticsSecretMissing(
            f"GROUPCLOUD_ANALYTICS_SECRET is shorter than {MIN_SECRET} characters: a short "
            "secret lets anyone who reads the store test guesses of person identifiers"
        )
    return secret


def _load(writer: Writer, keys: KeyMaker, chunks: Iterable[Chunk]) -> IngestSummary:
    """Check each chunk in bulk and write its good rows in one transaction."""
    received = loaded = duplicates = bad = 0
    listed: list[BadRowOut] = []
    new_apps: list[str] = []
    for chunk in chunks:
        received += chunk.rows
        checked = check_columns(chunk.table)
        refused = sorted([*chunk.bad, *checked.bad], key=lambda b: b.line)
        bad += len(refused)
        for row in refused[: max(MAX_LISTED_BAD - len(listed), 0)]:
            listed.append(BadRowOut(line=row.line, field=row.field, reason=row.reason))
        done = writer.write_checked(checked.good, keys)
        loaded += done.loaded
        duplicates += done.duplicates
        new_apps.extend(done.new_apps)
    return IngestSummary(
        received=received,
        loaded=loaded,
        duplicates=duplicates,
        bad=bad,
        bad_rows=listed,
        new_apps=new_apps,
    )


def ingest_files(settings: Settings, paths: Sequence[Path]) -> list[IngestSummary]:
    """Load every file in turn (one writer for all); an event id loaded before, from any
    file or run, is counted as a duplicate and not stored again."""
    secret = secret_of(settings)
    keys = KeyMaker(secret)
    store = EventStore.under(settings.data_dir)
    summaries = []
    with store.writer(secret) as writer:
        for path in paths:
            chunks = read_chunks(path, settings.analytics_batch_rows)
            summary = _load(writer, keys, chunks)
            summaries.append(summary.model_copy(update={"source": str(path)}))
    return summaries


def ingest_batch(settings: Settings, events: Sequence[Mapping[str, object]]) -> IngestSummary:
    """Load an API batch; ``line`` of a bad row is its 1-based position in the batch."""
    secret = secret_of(settings)
    rows: list[Row] = [(i, row) for i, row in enumerate(events, start=1)]
    with EventStore.under(settings.data_dir).writer(secret) as writer:
        chunks = chunks_of_rows(rows, settings.analytics_batch_rows)
        return _load(writer, KeyMaker(secret), chunks)


def load_events(
    rt: Runtime, actor: Principal, events: Sequence[Mapping[str, object]]
) -> IngestSummary:
    """``ingest_batch`` for an API caller: loading activity is the operator's (group
    admins); every role reads the group's app analytics (see docs/analytics.md)."""
    require_group_admin(actor, "loading activity events")
    return ingest_batch(rt.settings, events)


def _files(store: EventStore, month: Month) -> list[str] | None:
    found = [str(p) for p in store.month_files(month)]
    return found or None


def _counts(con: duckdb.DuckDBPyConnection, files: list[str] | None) -> dict[str | None, Counts]:
    """Exact counts per app and integrated (key None), in one scan of the month's files."""
    if files is None:
        return {None: Counts(0, 0, 0)}
    rows = con.execute(
        "SELECT app, count(DISTINCT person_key), count(DISTINCT (person_key, day)), count(*) "
        "FROM read_parquet(?, hive_partitioning = false) GROUP BY GROUPING SETS ((app), ())",
        [files],
    ).fetchall()
    return {app: Counts(int(mau), int(days), int(events)) for app, mau, days, events in rows}


def _month_estimates(
    store: EventStore, month: Month, apps: list[str]
) -> dict[str | None, sketches.Estimate]:
    """Sketch estimates of the month per app and integrated (key None)."""
    blobs = {app: [p.read_bytes() for p in store.sketch_files(month, app)] for app in apps}
    found: dict[str | None, sketches.Estimate] = {
        app: sketches.estimate(b) for app, b in blobs.items()
    }
    found[None] = sketches.estimate(b for part in blobs.values() for b in part)
    return found


def _approx_counts(store: EventStore, month: Month, apps: list[str]) -> dict[str | None, Counts]:
    """Counts of the month from sketches: MAU estimates, and person-days as the sum of the
    day estimates (each day's apps united for the integrated figure)."""
    estimates = _month_estimates(store, month, apps)
    person_days: dict[str | None, float] = dict.fromkeys([None, *apps], 0.0)
    for offset in range(month.days):
        day = month.first_day + timedelta(days=offset)
        blobs = {app: [p.read_bytes() for p in store.sketch_files(month, app, day)] for app in apps}
        for app, part in blobs.items():
            if part:
                person_days[app] += sketches.estimate(part).estimate
        every = [b for part in blobs.values() for b in part]
        if every:
            person_days[None] += sketches.estimate(every).estimate
    return {
        app: Counts(round(e.estimate), round(person_days[app]), 0) for app, e in estimates.items()
    }


def mau_report(
    settings: Settings,
    month: Month,
    *,
    k: int | None = None,
    target: int | None = None,
    approx: bool = False,
) -> MauReport:
    """MAU of the month per app and integrated, with the month before for growth: exact
    (DuckDB over the month's events) or, with ``approx``, from the stored Theta sketches
    with their bounds."""
    k = settings.analytics_k if k is None else k
    target = settings.analytics_target_mau if target is None else target
    store = EventStore.under(settings.data_dir)
    bounds: dict[str | None, sketches.Estimate] = {}
    if approx:
        apps = sorted(store.apps())
        now = _approx_counts(store, month, apps)
        before = {
            a: Counts(round(e.estimate), 0, 0)
            for a, e in _month_estimates(store, month.previous(), apps).items()
        }
        bounds = _month_estimates(store, month, apps)
    else:
        with connect() as con:
            now = _counts(con, _files(store, month))
            before = _counts(con, _files(store, month.previous()))
    zero = Counts(0, 0, 0)
    registered = sorted(set(store.apps()) | {a for a in now if a is not None})
    segments = []
    for app in [None, *registered]:
        counts, prior = now.get(app, zero), before.get(app, zero)
        mau, previous = hide(counts.mau, k), hide(prior.mau, k)
        dau = counts.average_dau(month.days) if mau is not None else None
        bound = bounds.get(app) if mau is not None else None
        segments.append(
            SegmentMetrics(
                app=app,
                mau=mau,
                previous_mau=previous,
                mom_growth=growth(mau, previous),
                average_dau=dau,
                stickiness=stickiness(dau, counts.mau) if dau is not None else None,
                suppressed=mau is None,
                mau_lower=None if bound is None else int(bound.lower),
                mau_upper=None if bound is None else -int(-bound.upper // 1),
            )
        )
    integrated = segments[0].mau
    return MauReport(
        month=str(month),
        exact=not approx,
        error_bound=ERROR_BOUND if approx else None,
        integrated_mau=integrated,
        apps={s.app: s.mau for s in segments[1:] if s.app is not None},
        k=k,
        target=target,
        progress=progress(integrated, target),
        segments=segments,
    )


def overlap_report(settings: Settings, month: Month, *, k: int | None = None) -> OverlapReport:
    """Pairwise overlap and exact app combinations of the month's persons."""
    k = settings.analytics_k if k is None else k
    store = EventStore.under(settings.data_dir)
    files = _files(store, month)
    combos: dict[tuple[str, ...], int] = {}
    if files is not None:
        with connect() as con:
            rows = con.execute(
                "SELECT apps, count(*) FROM ("
                "  SELECT list_sort(list(DISTINCT app)) AS apps"
                "  FROM read_parquet(?, hive_partitioning = false) GROUP BY person_key"
                ") GROUP BY apps",
                [files],
            ).fetchall()
        combos = {tuple(apps): int(persons) for apps, persons in rows}
    matrix = overlap_matrix(combos)

    # suppressed combinations go last, by name: their order must not rank small counts
    def rank(item: tuple[tuple[str, ...], int]) -> tuple[bool, int, int, tuple[str, ...]]:
        hidden = hide(item[1], k) is None
        return hidden, 0 if hidden else -item[1], len(item[0]), item[0]

    ordered = sorted(combos.items(), key=rank)
    return OverlapReport(
        month=str(month),
        k=k,
        apps=sorted(matrix),
        matrix={a: {b: hide(n, k) for b, n in row.items()} for a, row in matrix.items()},
        combinations=[Combination(apps=list(c), persons=hide(n, k)) for c, n in ordered],
    )


def _span_files(store: EventStore, first: date, last: date, apps: Sequence[str]) -> list[Path]:
    """Month sketches for the months wholly inside the span, day sketches for the rest."""
    files: list[Path] = []
    for month in Month.of(first).until(Month.of(last)):
        whole = first <= month.first_day and month.last_day() <= last
        for app in apps:
            if whole:
                files.extend(store.sketch_files(month, app))
                continue
            for offset in range(month.days):
                day = month.first_day + timedelta(days=offset)
                if first <= day <= last:
                    files.extend(store.sketch_files(month, app, day))
    return files


def sketch_estimate(
    settings: Settings,
    first: date,
    last: date,
    *,
    apps: Sequence[str] | None = None,
    k: int | None = None,
) -> SketchEstimate:
    """Distinct persons active on any Seoul day from ``first`` to ``last`` (inclusive) in
    any of ``apps`` (default: every registered app), each once: a union of stored sketches,
    no scan of the events."""
    k = settings.analytics_k if k is None else k
    check_span(first, last, (last - first).days + 1, MAX_SPAN_DAYS, "days", "last")
    store = EventStore.under(settings.data_dir)
    chosen = sorted(store.apps()) if apps is None else sorted(set(apps))
    found = sketches.estimate(p.read_bytes() for p in _span_files(store, first, last, chosen))
    shown = hide(round(found.estimate), k)
    return SketchEstimate(
        first_day=first.isoformat(),
        last_day=last.isoformat(),
        apps=chosen,
        estimate=shown,
        lower=None if shown is None else int(found.lower),
        upper=None if shown is None else -int(-found.upper // 1),
        std_devs=sketches.STD_DEVS,
        exact=found.exact,
        sketches=found.sketches,
        k=k,
    )


def write_synthetic(out: Path, persons: int, months: list[Month], seed: int) -> int:
    """Write seeded synthetic activity of ``persons`` over ``months`` to a file (its
    format by its name, as ``ingest`` reads it); the number of events written."""
    return write_tables(out, synthetic_tables(persons, months, seed))


def check_span(
    first: object, last: object, length: int, longest: int, unit: str, field: str
) -> None:
    """A span of days or months must end after it starts and be at most ``longest`` long."""
    if length < 1:
        message = f"the span ends ({last}) before it starts ({first})"
        raise InvalidInput(message, errors=[{"field": field, "message": f"{field} before first"}])
    if length > longest:
        message = f"the span covers {length} {unit}; at most {longest} per request"
        raise InvalidInput(message, errors=[{"field": field, "message": message}])

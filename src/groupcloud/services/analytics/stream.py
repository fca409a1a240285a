"""Consume activity events from NATS JetStream into the event store, at least once.

Each message is **one event as a JSON object** (the five ingestion columns); a publisher
with many events publishes many messages, so that one bad event never holds back good
ones and the stream sequence names the bad one exactly.

Delivery: a durable pull consumer (explicit acks) fetches up to ``batch`` messages, the good
events go through ``ingest_batch`` (the same checks, keys and de-dup index as files and the
API) in one transaction, and only **after that commit** are the messages acked. A crash or
kill before the ack leaves them unacked: JetStream delivers them again after ``ack_wait``
and the de-dup index counts them as duplicates, so nothing is loaded twice. Bad messages
(not a JSON object, or an event that fails the checks) are counted, reported with their
stream sequence as ``line`` and acked (events) or terminated (non-JSON) with the batch, so
they do not come back forever.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from groupcloud.config import Settings
from groupcloud.errors import EventStreamUnavailable
from groupcloud.schemas.analytics import BadRowOut, IngestSummary
from groupcloud.schemas.stream import ConsumeSummary
from groupcloud.services.analytics.activity import MAX_LISTED_BAD, ingest_batch, secret_of

__all__ = ["StreamOptions", "consume", "consume_blocking", "parse_message"]

POLL_S = 1.0
"""Longest wait of one fetch: how soon a stop request or the idle limit is noticed."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Where to read and when to stop; ``from_settings`` fills what is not given."""

    servers: list[str]
    stream: str
    subject: str
    durable: str
    batch: int
    ack_wait_s: float
    max_messages: int | None = None
    """Stop after this many deliveries (None: no limit)."""
    idle_exit_s: float | None = None
    """Stop after this many seconds without a message (None: wait forever)."""

    @classmethod
    def from_settings(cls, settings: Settings, **given: Any) -> StreamOptions:
        made = cls(
            servers=[s.strip() for s in settings.analytics_nats_servers.split(",") if s.strip()],
            stream=settings.analytics_nats_stream,
            subject=settings.analytics_nats_subject,
            durable=settings.analytics_nats_durable,
            batch=settings.analytics_nats_batch,
            ack_wait_s=settings.analytics_nats_ack_wait_s,
        )
        return replace(made, **{k: v for k, v in given.items() if v is not None})


def parse_message(data: bytes) -> dict[str, object] | str:
    """The event object of a message, or why the message is not one."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return "not JSON (each message is one event as a JSON object)"
    if not isinstance(value, dict):
        return "not a JSON object (each message is one event as a JSON object)"
    return value


class _Tally:
    def __init__(self) -> None:
        self.messages = self.redelivered = self.loaded = self.duplicates = self.bad = 0
        self.batches = 0
        self.first: float | None = None
        self.last: float | None = None
        self.bad_rows: list[BadRowOut] = []
        self.new_apps: list[str] = []

    def refuse(self, line: int, field: str, reason: str) -> None:
        self.bad += 1
        if len(self.bad_rows) < MAX_LISTED_BAD:
            self.bad_rows.append(BadRowOut(line=line, field=field, reason=reason))

    def add(self, summary: IngestSummary, sequences: list[int]) -> None:
        self.loaded += summary.loaded
        self.duplicates += summary.duplicates
        self.new_apps.extend(summary.new_apps)
        for row in summary.bad_rows:  # ingest_batch's line is the position in the batch
            self.refuse(sequences[row.line - 1], row.field, row.reason)
        self.bad += summary.bad - len(summary.bad_rows)  # counted but not listed there


async def _connect(options: StreamOptions) -> Client:
    try:
        return await nats.connect(
            servers=options.servers,
            connect_timeout=2,
            # a few quick tries, also at the start (the client counts those as reconnects);
            # a server gone for longer ends the run and the unacked batch comes back later
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            error_cb=_quiet,
        )
    except Exception as exc:  # any failure to reach the server ends the run the same way
        raise EventStreamUnavailable(
            f"cannot reach NATS at {', '.join(options.servers)}: {exc or type(exc).__name__}",
            servers=options.servers,
        ) from exc


async def _quiet(exc: Exception) -> None:
    """Connection errors surface as exceptions of the calls; no second report on stderr."""


async def _subscribe(
    js: JetStreamContext, options: StreamOptions
) -> JetStreamContext.PullSubscription:
    """The durable pull subscription; the stream is created when it does not exist."""
    try:
        await js.stream_info(options.stream)
    except nats.js.errors.NotFoundError:
        await js.add_stream(
            name=options.stream, subjects=[options.subject], storage=StorageType.FILE
        )
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=options.ack_wait_s,
        max_ack_pending=max(options.batch * 2, 1000),
    )
    return await js.pull_subscribe(
        options.subject, durable=options.durable, stream=options.stream, config=config
    )


async def _handle(
    settings: Settings,
    nc: Client,
    messages: list[Msg],
    tally: _Tally,
    after_commit: Callable[[ConsumeSummary], None] | None,
    started: float,
    options: StreamOptions,
) -> None:
    """Load one fetched batch, then ack it: never the other way round."""
    events: list[dict[str, object]] = []
    sequences: list[int] = []
    keep: list[Msg] = []
    drop: list[Msg] = []
    if tally.first is None:
        tally.first = time.perf_counter()
    for msg in messages:
        meta = msg.metadata
        tally.messages += 1
        tally.redelivered += meta.num_delivered > 1
        parsed = parse_message(msg.data)
        if isinstance(parsed, str):
            tally.refuse(meta.sequence.stream, "message", parsed)
            drop.append(msg)
        else:
            events.append(parsed)
            sequences.append(meta.sequence.stream)
            keep.append(msg)
    if events:
        summary = await asyncio.to_thread(ingest_batch, settings, events)
        tally.add(summary, sequences)
    tally.batches += 1
    if after_commit is not None:  # progress report; an exception here skips the ack
        after_commit(_summary(tally, options, started, "interrupted"))
    for msg in keep:
        await msg.ack()
    for msg in drop:
        await msg.term()
    await nc.flush()
    tally.last = time.perf_counter()


def _summary(
    tally: _Tally,
    options: StreamOptions,
    started: float,
    stopped: Literal["max_messages", "idle", "interrupted"],
) -> ConsumeSummary:
    return ConsumeSummary(
        stream=options.stream,
        durable=options.durable,
        messages=tally.messages,
        redelivered=tally.redelivered,
        loaded=tally.loaded,
        duplicates=tally.duplicates,
        bad=tally.bad,
        bad_rows=sorted(tally.bad_rows, key=lambda r: r.line),
        new_apps=tally.new_apps,
        batches=tally.batches,
        seconds=time.perf_counter() - started,
        busy_seconds=(tally.last or 0.0) - (tally.first or 0.0),
        stopped=stopped,
    )


async def consume(
    settings: Settings,
    options: StreamOptions,
    *,
    stop: asyncio.Event | None = None,
    after_commit: Callable[[ConsumeSummary], None] | None = None,
) -> ConsumeSummary:
    """Fetch, load and ack batches until ``max_messages`` deliveries, ``idle_exit_s``
    seconds without a message, or ``stop`` is set (the batch in hand is finished first).

    ``after_commit`` sees the running totals after each committed batch, before its acks:
    a progress hook (and, raising, the way tests stop a consumer between commit and ack)."""
    secret_of(settings)  # refuse before taking any message, not at the first batch
    stop = stop or asyncio.Event()
    started = time.perf_counter()
    tally = _Tally()
    nc = await _connect(options)
    stopped: Literal["max_messages", "idle", "interrupted"] = "interrupted"
    try:
        try:
            sub = await _subscribe(nc.jetstream(), options)
        except nats.errors.Error as exc:
            raise EventStreamUnavailable(
                f"JetStream refused stream {options.stream!r} / consumer {options.durable!r}: "
                f"{exc}",
                servers=options.servers,
            ) from exc
        idle_since = time.monotonic()
        while not stop.is_set():
            want = options.batch
            if options.max_messages is not None:
                want = min(want, options.max_messages - tally.messages)
                if want <= 0:
                    stopped = "max_messages"
                    break
            wait = POLL_S if options.idle_exit_s is None else min(POLL_S, options.idle_exit_s)
            try:
                messages = await sub.fetch(want, timeout=max(wait, 0.05))
            except TimeoutError:  # nats raises its own subclass or asyncio.TimeoutError
                messages = []
            if not messages:
                idle = time.monotonic() - idle_since
                if options.idle_exit_s is not None and idle >= options.idle_exit_s:
                    stopped = "idle"
                    break
                continue
            await _handle(settings, nc, messages, tally, after_commit, started, options)
            idle_since = time.monotonic()
    except nats.errors.ConnectionClosedError as exc:
        raise EventStreamUnavailable(
            f"lost the connection to NATS at {', '.join(options.servers)}; the batch in hand "
            "was not acked and will be delivered again",
            servers=options.servers,
        ) from exc
    finally:
        await nc.close()
    return _summary(tally, options, started, stopped)


def consume_blocking(
    settings: Settings,
    options: StreamOptions,
    *,
    after_commit: Callable[[ConsumeSummary], None] | None = None,
) -> ConsumeSummary:
    """``consume`` for a command line: SIGINT (Ctrl-C) and SIGTERM finish and ack the batch
    in hand, then stop (a second Ctrl-C is not needed and not caught)."""
    import signal

    async def run() -> ConsumeSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await consume(settings, options, stop=stop, after_commit=after_commit)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(run())

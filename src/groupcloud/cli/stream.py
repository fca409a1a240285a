"""``groupcloud mau consume``: the JetStream consumer of activity events, as a command that
stops by itself (``--max-messages``, ``--idle-exit``) or on Ctrl-C after committing and
acking the batch in hand."""

from __future__ import annotations

from typing import Annotated

import typer

from groupcloud.cli.output import EXIT_API, EXIT_CONNECTION, JsonFlag, console, errors, fail
from groupcloud.config import Settings
from groupcloud.errors import EventStreamUnavailable, GroupcloudError
from groupcloud.schemas.stream import ConsumeSummary
from groupcloud.services.analytics.stream import StreamOptions, consume_blocking

__all__ = ["register"]

SHOWN_BAD = 20


def consume(
    servers: Annotated[
        str | None,
        typer.Option(help="NATS URLs, comma-separated (GROUPCLOUD_ANALYTICS_NATS_SERVERS)."),
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            help="JetStream stream, created if missing (GROUPCLOUD_ANALYTICS_NATS_STREAM)."
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            help="Subject filter, e.g. analytics.events.> (GROUPCLOUD_ANALYTICS_NATS_SUBJECT)."
        ),
    ] = None,
    durable: Annotated[
        str | None,
        typer.Option(help="Durable consumer name (GROUPCLOUD_ANALYTICS_NATS_DURABLE)."),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(min=1, help="Messages per transaction (GROUPCLOUD_ANALYTICS_NATS_BATCH)."),
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many deliveries.")
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option(min=0, metavar="SECONDS", help="Stop after this long without a message."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Load activity events from NATS JetStream: each message one event as a JSON object.
    Messages are acked only after their batch is committed (at least once; a redelivered
    event_id is a duplicate, never loaded twice). Bad messages are listed by stream
    sequence and acked so they do not return. Without --max-messages or --idle-exit it runs
    until Ctrl-C. Needs GROUPCLOUD_ANALYTICS_SECRET."""
    settings = Settings()
    options = StreamOptions.from_settings(
        settings,
        servers=[s.strip() for s in servers.split(",") if s.strip()] if servers else None,
        stream=stream,
        subject=subject,
        durable=durable,
        batch=batch,
        max_messages=max_messages,
        idle_exit_s=idle_exit,
    )
    try:
        summary = consume_blocking(settings, options)
    except EventStreamUnavailable as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_CONNECTION) from None
    except GroupcloudError as exc:
        raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
    _report(summary, as_json)


def _report(s: ConsumeSummary, as_json: bool) -> None:
    for bad in s.bad_rows[:SHOWN_BAD]:
        errors.print(f"{s.stream}:seq {bad.line}: {bad.field}: {bad.reason}", highlight=False)
    if s.bad > SHOWN_BAD:
        errors.print(f"{s.stream}: ... and {s.bad - SHOWN_BAD} more bad messages", highlight=False)
    if as_json:
        print(s.model_dump_json())
        return
    apps = f"; new apps: {', '.join(s.new_apps)}" if s.new_apps else ""
    console.print(
        f"{s.stream}/{s.durable}: {s.messages} messages ({s.redelivered} redelivered), "
        f"{s.loaded} loaded, {s.duplicates} duplicates, {s.bad} bad, {s.batches} batches{apps}",
        highlight=False,
    )
    rate = f", {s.messages / s.busy_seconds:,.0f} messages/s while busy" if s.busy_seconds else ""
    console.print(f"stopped ({s.stopped}) after {s.seconds:.1f} s{rate}", highlight=False)


def register(mau_app: typer.Typer) -> None:
    """Add ``consume`` to ``groupcloud mau``."""
    mau_app.command("consume")(consume)

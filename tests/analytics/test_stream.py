"""The JetStream consumer against the real NATS server (GROUPCLOUD_TEST_NATS, default
nats://127.0.0.1:4222): duplicates and bad messages in the stream, a consumer stopped
between commit and ack, and the ``groupcloud mau consume`` command. Each test has a stream
and subject of its own, deleted afterwards. If the server is down these tests error out;
they are never skipped."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nats
import pytest
from typer.testing import CliRunner

from groupcloud.analytics.months import Month
from groupcloud.cli.main import app
from groupcloud.schemas.stream import ConsumeSummary
from groupcloud.services.analytics.activity import mau_report
from groupcloud.services.analytics.stream import StreamOptions, consume, parse_message
from tests.analytics.helpers import SECRET, settings_for

NATS_URL = os.environ.get("GROUPCLOUD_TEST_NATS", "nats://127.0.0.1:4222")
FEBRUARY = Month(2026, 2)


@dataclass(frozen=True)
class Stream:
    name: str
    subject: str

    def options(self, **given: Any) -> StreamOptions:
        return replace(
            StreamOptions(
                servers=[NATS_URL],
                stream=self.name,
                subject=f"{self.subject}.>",
                durable="gct-mau",
                batch=7,
                ack_wait_s=30.0,
                idle_exit_s=0.5,
            ),
            **given,
        )


async def _publish(subject: str, payloads: Sequence[bytes]) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=2)
    try:
        js = nc.jetstream()
        for payload in payloads:
            await js.publish(f"{subject}.app", payload)
    finally:
        await nc.close()


async def _make(stream: Stream) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=2)
    try:
        await nc.jetstream().add_stream(name=stream.name, subjects=[f"{stream.subject}.>"])
    finally:
        await nc.close()


async def _delete(name: str) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=2)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def stream() -> Iterator[Stream]:
    """A fresh stream name and subject; the stream is created by the test (or by the
    consumer, which creates a missing stream) and deleted at the end."""
    tag = uuid.uuid4().hex[:10]
    made = Stream(f"GCT_{tag}", f"gct.{tag}.events")
    yield made
    asyncio.run(_delete(made.name))


def _event(eid: str, person: int, app: str = "won_banking") -> bytes:
    return json.dumps(
        {
            "event_id": eid,
            "app": app,
            "person_id": f"CI-{person}",
            "occurred_at": "2026-02-03T10:00:00+09:00",
            "kind": "login",
        }
    ).encode()


def _mixed() -> list[bytes]:
    """30 good events of 30 persons, 5 of them published twice, and 4 bad messages at
    stream sequences 11, 22, 33 and 35."""
    payloads = [_event(f"e{i}", i) for i in range(30)]
    payloads += [_event(f"e{i}", i) for i in range(5)]  # redundant publishes: duplicates
    payloads.insert(10, b"{not json")
    payloads.insert(21, b'[{"event_id": "in-an-array"}]')
    payloads.insert(32, json.dumps({"event_id": "x", "app": "won_card"}).encode())
    payloads.insert(34, b"\xff\xfe")
    return payloads


def test_a_message_is_one_json_object() -> None:
    assert parse_message(_event("e1", 1))["event_id"] == "e1"  # type: ignore[index]
    assert "not JSON" in str(parse_message(b"{"))
    assert "not a JSON object" in str(parse_message(b"[1]"))
    assert "not JSON" in str(parse_message(b"\xff"))


def test_duplicates_and_bad_messages_load_exactly_once(tmp_path: Path, stream: Stream) -> None:
    settings = settings_for(tmp_path)
    asyncio.run(_make(stream))
    asyncio.run(_publish(stream.subject, _mixed()))

    first = asyncio.run(consume(settings, stream.options()))
    assert (first.messages, first.loaded, first.duplicates, first.bad) == (39, 30, 5, 4)
    assert [(r.line, r.field) for r in first.bad_rows] == [
        (11, "message"),
        (22, "message"),
        (33, "person_id"),
        (35, "message"),
    ]
    assert first.batches == 6  # 39 messages in batches of 7
    assert first.stopped == "idle"
    assert mau_report(settings, FEBRUARY).integrated_mau == 30

    again = asyncio.run(consume(settings, stream.options()))
    assert (again.messages, again.loaded, again.batches) == (0, 0, 0)  # all were acked


class Killed(Exception):
    """Stands for the process dying after the commit, before any ack went out."""


def test_a_consumer_stopped_before_its_ack_loads_nothing_twice(
    tmp_path: Path, stream: Stream
) -> None:
    settings = settings_for(tmp_path)
    asyncio.run(_publish_after_create(stream, [_event(f"e{i}", i) for i in range(20)]))

    def die(_: object) -> None:
        raise Killed

    with pytest.raises(Killed):
        asyncio.run(consume(settings, stream.options(ack_wait_s=1.0), after_commit=die))
    assert mau_report(settings, FEBRUARY, k=1).integrated_mau == 7  # the first batch committed

    # the unacked batch comes back after ack_wait and is recognised; the rest loads
    resumed = asyncio.run(consume(settings, stream.options(ack_wait_s=1.0, idle_exit_s=3.0)))
    assert resumed.redelivered == 7
    assert (resumed.messages, resumed.loaded, resumed.duplicates) == (20, 13, 7)
    assert mau_report(settings, FEBRUARY).integrated_mau == 20


def test_a_stop_request_finishes_and_acks_the_batch_in_hand(tmp_path: Path, stream: Stream) -> None:
    """What Ctrl-C (SIGINT) and SIGTERM do: set the stop event, as here after one batch."""
    settings = settings_for(tmp_path)
    asyncio.run(_publish_after_create(stream, [_event(f"e{i}", i) for i in range(20)]))

    async def stopped_after_one_batch() -> ConsumeSummary:
        stop = asyncio.Event()
        return await consume(
            settings, stream.options(), stop=stop, after_commit=lambda _: stop.set()
        )

    first = asyncio.run(stopped_after_one_batch())
    assert (first.messages, first.loaded, first.stopped) == (7, 7, "interrupted")
    rest = asyncio.run(consume(settings, stream.options()))
    assert (rest.messages, rest.redelivered, rest.loaded) == (13, 0, 13)  # nothing came back


async def _publish_after_create(stream: Stream, payloads: Sequence[bytes]) -> None:
    await _make(stream)
    await _publish(stream.subject, payloads)


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "GROUPCLOUD_DATA_DIR": str(tmp_path),
        "GROUPCLOUD_DATABASE_URL": None,
        "GROUPCLOUD_ANALYTICS_SECRET": SECRET,
    }
    result = CliRunner().invoke(app, ["mau", "consume", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_command_creates_the_stream_and_stops_at_max_messages(
    tmp_path: Path, stream: Stream
) -> None:
    # the consumer creates the missing stream; events published after that are kept
    where = ("--servers", NATS_URL, "--stream", stream.name, "--subject", f"{stream.subject}.>")
    code, out, err = _cli(tmp_path, *where, "--idle-exit", "0.2", "--json")
    assert code == 0, err
    assert json.loads(out)["messages"] == 0
    asyncio.run(_publish(stream.subject, [_event(f"e{i}", i) for i in range(12)] + [b"nope"]))

    code, out, err = _cli(tmp_path, *where, "--batch", "5", "--max-messages", "10", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["messages"], summary["loaded"], summary["stopped"]) == (10, 10, "max_messages")

    code, out, err = _cli(tmp_path, *where, "--idle-exit", "0.5")
    assert code == 0, err
    assert "3 messages (0 redelivered), 2 loaded, 0 duplicates, 1 bad" in out
    assert f"{stream.name}:seq 13: message: not JSON" in err


def test_an_unreachable_server_is_exit_3_with_the_reason(tmp_path: Path) -> None:
    code, _, err = _cli(tmp_path, "--servers", "nats://127.0.0.1:1", "--max-messages", "1")
    assert code == 3
    assert "event_stream_unavailable: cannot reach NATS at nats://127.0.0.1:1" in err

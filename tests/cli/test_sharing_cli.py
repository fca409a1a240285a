"""The sharing engine from the command line: leases, the queue and explain, keep and
extend, utilisation reports, quota limits, following events as a real process, and one
worker round on the embedded database."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from typer.testing import CliRunner, Result

from groupcloud.cli.main import app
from groupcloud.domain.clock import utcnow
from groupcloud.services.compute import worker
from tests.cli.conftest import Cli, Entry
from tests.support import check_consistency


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def _consistent(cli: Cli) -> None:
    found = check_consistency(cli.stack.rt)
    assert found.ok, found


def _api(cli: Cli, path: str, **params: Any) -> Any:
    response = cli.stack.admin.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_alloc_create_with_lease_pending_then_active_and_explained(cli: Cli) -> None:
    bank, card = cli.stack.world.bank_member, cli.stack.world.card_member
    before = utcnow()
    made = cli.json(
        "alloc", "create", "-p", "web", "-r", "GPU=2", "-r", "VCPU=1", "--lease", "2h", token=bank
    )
    assert made["state"] == "active"
    assert before + timedelta(hours=2) <= _when(made["expires_at"]) <= utcnow() + timedelta(hours=2)
    assert made == _api(cli, f"/v1/allocations/{made['id']}")

    shown = cli.ok("alloc", "show", made["id"], token=bank).stdout
    assert "active" in shown
    assert "lease ends" in shown
    assert "(then release)" in shown

    # card may borrow VCPU: a request beyond its nominal waits for the scheduler.
    cli.ok("alloc", "create", "-p", "pay", "-r", "VCPU=16", token=card)
    table = cli.ok(
        "alloc",
        "create",
        "-p",
        "pay",
        "-r",
        "VCPU=4",
        "--lease",
        "2h",
        "--priority",
        "700",
        "--minimum-runtime",
        "30m",
        "--on-reclaim",
        "release",
        token=card,
    ).stdout
    assert "pending" in table
    assert "borrowing_limit" in table  # card's borrowing limit is 0
    cli.ok("quota", "set", "card", "VCPU", "16", "--borrowing-limit", "none")
    waiting = cli.json("alloc", "list", "--state", "pending", token=card)["items"]
    assert len(waiting) == 1
    pending = waiting[0]
    assert (pending["priority"], pending["minimum_runtime_s"], pending["on_reclaim"]) == (
        700,
        1800,
        "release",
    )

    told = cli.ok("alloc", "explain", pending["id"], token=card).stdout
    assert told.startswith(f"{pending['id']} pending\n")
    assert "Pending: " in told
    assert "number 1 in the queue (priority 700" in told
    assert "- Lease ends " in told
    assert "allocation.requested" in told  # the history
    explained = cli.json("alloc", "explain", pending["id"], token=card)
    assert explained == _api(cli, f"/v1/allocations/{pending['id']}/explain")

    done = worker.run_round(cli.stack.rt, utcnow())
    assert (done.admitted, done.borrowed) == (1, 1)
    _consistent(cli)
    listed = cli.ok("alloc", "list", "--state", "active", token=card).stdout
    assert "active (borrowed)" in listed
    told = cli.ok("alloc", "explain", pending["id"], token=card).stdout
    assert f"{pending['id']} active" in told
    assert "borrowing 4 VCPU from bank" in told
    shown = cli.ok("alloc", "show", pending["id"], token=card).stdout
    assert "borrowed from bank: VCPU=4" in shown


def test_alloc_update_keep_and_extend_and_report(cli: Cli) -> None:
    bank = cli.stack.world.bank_member
    made = cli.json("alloc", "create", "-p", "web", "-r", "VCPU=2", "--lease", "1h", token=bank)
    assert made["keep"] is False

    kept = cli.json("alloc", "update", made["id"], "--keep", token=bank)
    assert kept["keep"] is True
    assert kept["expires_at"] == made["expires_at"]  # left out: unchanged
    assert "active" in cli.ok("alloc", "update", made["id"], "--no-keep", token=bank).stdout
    assert cli.json("alloc", "show", made["id"], token=bank)["keep"] is False

    before = utcnow()
    extended = cli.json("alloc", "update", made["id"], "--extend", "4h", token=bank)
    assert before + timedelta(hours=4) <= _when(extended["expires_at"])
    assert _when(extended["expires_at"]) <= utcnow() + timedelta(hours=4)
    assert extended["keep"] is False
    notify = cli.json("alloc", "update", made["id"], "--on-expiry", "notify", token=bank)
    assert (notify["on_expiry"], notify["expires_at"]) == ("notify", extended["expires_at"])

    nothing = cli("alloc", "update", made["id"], token=bank)
    assert nothing.exit_code == 2
    assert "give --keep/--no-keep, --extend or --on-expiry" in nothing.stderr
    bad = cli("alloc", "update", made["id"], "--extend", "soon", token=bank)
    assert bad.exit_code == 2
    assert "expected a duration" in bad.stderr

    reported = cli.ok("alloc", "report", made["id"], "0.01", token=bank)
    assert reported.stdout == f"reported 0.01 for {made['id']}\n"
    shown = _api(cli, f"/v1/allocations/{made['id']}")
    assert shown["utilisation"] == 0.01
    assert shown["idle_since"] is not None
    assert cli("alloc", "report", made["id"], "1.5", token=bank).exit_code == 2
    history = _api(cli, "/v1/events", subject=f"allocation/{made['id']}")["items"]
    kinds = [e["kind"] for e in history]
    assert kinds == ["allocation.created"] + ["allocation.updated"] * 4
    _consistent(cli)


def test_alloc_refusals_name_the_code(cli: Cli, entry: Entry) -> None:
    bank = cli.stack.world.bank_member
    base = ["--url", cli.stack.url, "--token", bank, "alloc", "create", "-p", "web"]
    assert entry(*base, "-r", "GPU=4").code == 0
    refused = entry(*base, "-r", "GPU=1", "--no-queue")
    assert refused.code == 1
    assert refused.stderr.startswith("error: quota_exceeded: bank would exceed its quota: GPU")
    never = entry(*base, "-r", "GPU=5")
    assert never.code == 1
    assert never.stderr.startswith("error: never_fits: ")
    past = entry(*base, "-r", "VCPU=1", "--lease", "0s")
    assert past.code == 2
    assert "must be at least 1s" in past.stderr


def test_quota_set_limits_none_and_left_out(cli: Cli) -> None:
    unlimited = cli.json(
        "quota", "set", "bank", "GPU", "6", "--borrowing-limit", "none", "--lending-limit", "2"
    )
    assert (unlimited["nominal"], unlimited["borrowing_limit"], unlimited["lending_limit"]) == (
        6,
        None,
        2,
    )
    kept = cli.json("quota", "set", "bank", "GPU", "5")
    assert (kept["nominal"], kept["borrowing_limit"], kept["lending_limit"]) == (5, None, 2)
    table = cli.ok("quota", "set", "bank", "GPU", "5", "--lending-limit", "none").stdout
    assert re.search(r"bank\s*│\s*GPU\s*│\s*5\s*│\s*unlimited\s*│\s*all\s*│", table), table
    limited = cli.json("quota", "set", "bank", "GPU", "5", "--borrowing-limit", "3")
    assert (limited["borrowing_limit"], limited["lending_limit"]) == (3, None)
    shown = cli.json("quota", "show", "bank")
    assert [q for q in shown if q["resource_class"] == "GPU"] == [limited]

    for bad in ("-1", "lots"):
        refused = cli("quota", "set", "bank", "GPU", "5", "--borrowing-limit", bad)
        assert refused.exit_code == 2, refused.stdout
    member = cli("quota", "set", "bank", "GPU", "9", token=cli.stack.world.bank_member)
    assert member.exit_code == 1
    assert _api(cli, "/v1/quotas", company="bank")[0] == limited  # GPU unchanged
    _consistent(cli)


# --- events --follow as a real process ----------------------------------------------------


@contextmanager
def _follow(cli: Cli, *args: str) -> Iterator[queue.Queue[str]]:
    """``groupcloud events --follow`` in a process of its own; its stdout lines arrive in
    the queue. Terminated (and waited for) at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPCLOUD_")}
    env["COLUMNS"] = "300"
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "groupcloud",
            "--url",
            cli.stack.url,
            "--token",
            cli.stack.world.admin,
            "events",
            "--follow",
            "--interval",
            "0.1",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line)

    assert process.stdout is not None
    assert process.stderr is not None
    reader = threading.Thread(target=pump, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        yield lines
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        finally:
            reader.join(timeout=10)
            process.stdout.close()
            process.stderr.close()


def _line_with(lines: queue.Queue[str], *words: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no line with {words} in {seen}"
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        seen.append(line)
        if all(w in line for w in words):
            return line


def test_events_follow_prints_new_events_as_they_happen(cli: Cli) -> None:
    bank = cli.stack.bank

    def create() -> str:
        made = bank.post("/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}})
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    earlier = create()
    with _follow(cli, "--kind", "allocation.") as lines:
        # The recent past first (--tail defaults to 20), then what happens next.
        line = _line_with(lines, "allocation.created", f"allocation/{earlier}")
        assert "bank" in line
        assert "token:bank-dev@bank" in line
        later = create()
        line = _line_with(lines, "allocation.created", f"allocation/{later}")
        assert "claimed={'VCPU': 1}" in line
        released = bank.post(f"/v1/allocations/{later}/release")
        assert released.status_code == 200, released.text
        _line_with(lines, "allocation.released", f"allocation/{later}")
        # Other kinds are not printed.
        assert cli.stack.admin.post("/v1/hosts/h2/drain").status_code == 200
        create()
        last = _line_with(lines, "allocation.created")
        assert "host.drained" not in last


# --- worker --once on the embedded database -----------------------------------------------


_ROUND = re.compile(
    r"\S+ \S+ admitted \d+ \(borrowing \d+\), reclaim notices \d+, reclaimed \d+, "
    r"expired \d+, lease warnings \d+, idle flagged \d+, idle released \d+; pending \d+\n"
)


def _local(data_dir: Path, *args: str) -> Result:
    env = {"GROUPCLOUD_DATA_DIR": str(data_dir), "GROUPCLOUD_DATABASE_URL": None}
    return CliRunner().invoke(app, list(args), env=env)


def test_worker_once_on_the_seeded_demo_prints_a_round_and_exits_0(tmp_path: Path) -> None:
    seeded = _local(tmp_path, "seed", "demo")
    assert seeded.exit_code == 0, seeded.stderr
    once = _local(tmp_path, "worker", "--once")
    assert once.exit_code == 0, (once.stdout, once.stderr)
    assert _ROUND.fullmatch(once.stdout), once.stdout
    assert once.stderr == ""
    again = _local(tmp_path, "worker", "--once")  # leadership was given back
    assert again.exit_code == 0, again.stderr
    assert _ROUND.fullmatch(again.stdout), again.stdout


def test_company_weight_and_project_priority_can_be_changed(cli: Cli) -> None:
    company = cli.json("company", "update", "card", "--fair-weight", "2.5")
    assert company["fair_weight"] == 2.5
    assert re.search(r"card\s*│\s*Card\s*│\s*2\.5\s*│", cli.ok("company", "list").stdout)
    lead = cli.stack.world.bank_admin
    project = cli.json(
        "project", "update", "bank", "batch", "--default-priority", "120", token=lead
    )
    assert project["default_priority"] == 120
    made = cli.json(
        "alloc", "create", "-p", "batch", "-r", "VCPU=1", token=cli.stack.world.bank_member
    )
    assert made["priority"] == 120  # the change applies to the next request at once
    assert cli("company", "update", "card", "--fair-weight", "2", token=lead).exit_code == 1
    assert cli("company", "update", "card", "--fair-weight", "0").exit_code == 2
    assert cli("project", "update", "bank", "nope", "--default-priority", "1").exit_code == 1
    assert (
        cli("project", "update", "card", "pay", "--default-priority", "1", token=lead).exit_code
        == 1
    )
    events = _api(cli, "/v1/events", kind="project.updated")["items"]
    assert [e["data"] for e in events] == [{"default_priority": 120}]
    _consistent(cli)


def test_a_request_the_api_would_refuse_as_invalid_is_a_usage_error(cli: Cli) -> None:
    zero = cli("alloc", "create", "-p", "web", "-r", "VCPU=0", token=cli.stack.world.bank_member)
    assert zero.exit_code == 2
    assert "amount must be an integer >= 1" in zero.output

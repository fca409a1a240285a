"""Exit codes and error lines: 0 ok, 1 refused by the API (``error: <code>: ...`` on one line
of stderr), 2 bad usage, 3 no token or API unreachable.

Checked through the entry point in-process, and once more as real ``python -m groupcloud``
processes (run side by side, since each one pays the interpreter's start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.stack import Stack, open_sqlite_stack
from tests.cli.conftest import Entry
from tests.support import free_port


def _as(stack: Stack, token: str, *args: str) -> list[str]:
    return ["--url", stack.url, "--token", token, *args]


def test_api_refusal_exits_1_with_one_error_line_naming_the_code(
    cli_stack: Stack, entry: Entry
) -> None:
    member = cli_stack.world.bank_member
    claim = ["alloc", "create", "-p", "web", "-r", "VCPU=16", "-n", "2", "--no-queue", "--json"]
    assert entry(*_as(cli_stack, member, *claim)).code == 0

    refused = entry(*_as(cli_stack, member, *claim))
    assert refused.code == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        "error: quota_exceeded: bank would exceed its quota: VCPU requested 32, own free "
        "nominal 0: needs to borrow 32, borrowing limit leaves 0\n"
    )

    missing = entry(*_as(cli_stack, member, "alloc", "show", "no-such-id"))
    assert missing.code == 1
    assert missing.stderr == "error: not_found: allocation 'no-such-id' not found\n"

    forbidden = entry(*_as(cli_stack, member, "host", "drain", "h1"))
    assert forbidden.code == 1
    assert forbidden.stderr.startswith("error: forbidden: ")
    assert forbidden.stderr.count("\n") == 1


def test_bad_usage_exits_2_without_calling_the_api(cli_stack: Stack, entry: Entry) -> None:
    admin = cli_stack.world.admin
    for args in [
        ["alloc", "create", "-c", "bank", "-p", "web", "-r", "VCPU"],
        ["alloc", "create", "-c", "bank", "-p", "web", "-r", "VCPU=two"],
        ["alloc", "create", "-c", "bank", "-p", "web", "-r", "VCPU=1", "-n", "0"],
        ["alloc", "create", "-c", "bank", "-r", "VCPU=1"],
        ["alloc", "list", "--state", "gone"],
        ["host", "add", "h9", "-r", "VCPU=4,ratio=x"],
        ["host", "add", "h9", "-r", "VCPU=4,spare=1"],
        ["usage", "--by", "galaxy"],
        ["host", "frobnicate"],
    ]:
        outcome = entry(*_as(cli_stack, admin, *args))
        assert outcome.code == 2, (args, outcome)
        assert "Usage:" in outcome.stderr, args
    events = cli_stack.admin.get("/v1/events", params={"kind": "allocation."}).json()
    assert events["items"] == []
    assert cli_stack.admin.get("/v1/hosts/h9").status_code == 404


def test_missing_token_exits_3_saying_how_to_get_one(cli_stack: Stack, entry: Entry) -> None:
    outcome = entry("--url", cli_stack.url, "host", "list")
    assert outcome.code == 3
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("error: no API token: set GROUPCLOUD_TOKEN")
    assert outcome.stderr.count("\n") == 1


def test_unreachable_api_exits_3(entry: Entry) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    outcome = entry("whoami", env={"GROUPCLOUD_URL": url, "GROUPCLOUD_TOKEN": "gc_x"})
    assert outcome.code == 3
    assert outcome.stderr.startswith(f"error: cannot reach groupcloud at {url}")
    assert outcome.stderr.count("\n") == 1


# --- real processes -------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def real_runs(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, Run]]]:
    """Several ``python -m groupcloud`` processes against one server, started together
    (exit code 3 for a missing token is the same ``typer.Exit`` in-process and for real)."""
    home = tmp_path_factory.mktemp("real")
    with open_sqlite_stack(sqlite_template, home / "stack") as stack:
        base = {k: v for k, v in os.environ.items() if not k.startswith("GROUPCLOUD_")}
        base["GROUPCLOUD_DATA_DIR"] = str(home / "unused")
        member = stack.world.bank_member
        unreachable = f"http://127.0.0.1:{free_port()}"
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "ok": (["alloc", "create", "-p", "web", "-r", "VCPU=2", "--json"], {}),
            "refused": (["alloc", "create", "-p", "web", "-r", "VCPU=33", "--no-queue"], {}),
            "usage": (["alloc", "create", "-p", "web", "-r", "VCPU"], {}),
            "unreachable": (["whoami"], {"GROUPCLOUD_URL": unreachable}),
        }
        started = {
            name: subprocess.Popen(
                [sys.executable, "-m", "groupcloud", *args],
                env={**base, "GROUPCLOUD_URL": stack.url, "GROUPCLOUD_TOKEN": member, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, (args, env) in commands.items()
        }
        runs = {}
        for name, process in started.items():
            out, err = process.communicate(timeout=120)
            runs[name] = Run(process.returncode, out, err)
        yield stack, runs


def test_real_process_exits_0_and_prints_the_api_answer_as_json(
    real_runs: tuple[Stack, dict[str, Run]],
) -> None:
    stack, runs = real_runs
    assert runs["ok"].code == 0, runs["ok"].stderr
    made = json.loads(runs["ok"].stdout)
    assert made == stack.bank.get(f"/v1/allocations/{made['id']}").json()


def test_real_process_exits_1_with_one_line_when_the_api_refuses(
    real_runs: tuple[Stack, dict[str, Run]],
) -> None:
    refused = real_runs[1]["refused"]
    assert refused.code == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: never_fits: the request exceeds bank's whole quota")
    assert refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr


def test_real_process_exits_2_on_bad_usage(real_runs: tuple[Stack, dict[str, Run]]) -> None:
    usage = real_runs[1]["usage"]
    assert usage.code == 2
    assert "expected CLASS=AMOUNT" in usage.stderr


def test_real_process_exits_3_when_the_api_is_unreachable(
    real_runs: tuple[Stack, dict[str, Run]],
) -> None:
    runs = real_runs[1]
    assert runs["unreachable"].code == 3
    assert runs["unreachable"].stderr.startswith("error: cannot reach groupcloud at")
    assert "Traceback" not in runs["unreachable"].stderr

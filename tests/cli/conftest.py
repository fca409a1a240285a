"""Fixtures of the CLI tests: the world on a real server (SQLite), and ways to run the
``groupcloud`` command against it.

``cli`` runs the Typer app in-process with ``CliRunner`` (Click >= 8.2 keeps stderr apart
from stdout: ``result.stdout`` / ``result.stderr``). ``entry`` runs the real entry point
``groupcloud.cli.main:main`` in-process, which is where API refusals and connection failures
become one line on stderr and exit codes 1 and 3."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from groupcloud.cli.main import app, main
from tests.api.stack import Stack, open_sqlite_stack
from tests.support import DBAAS_SETTINGS


@dataclass
class Cli:
    """``groupcloud --url <server> --token <token> ...`` through CliRunner."""

    stack: Stack
    runner: CliRunner

    def __call__(self, *args: str, token: str | None = None) -> Result:
        secret = self.stack.world.admin if token is None else token
        return self.runner.invoke(
            app,
            ["--url", self.stack.url, "--token", secret, *args],
            env={"GROUPCLOUD_URL": None, "GROUPCLOUD_TOKEN": None},
        )

    def ok(self, *args: str, token: str | None = None) -> Result:
        result = self(*args, token=token)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        assert result.stderr == ""
        return result

    def json(self, *args: str, token: str | None = None) -> Any:
        """Run with ``--json``; the parsed output."""
        return json.loads(self.ok(*args, "--json", token=token).stdout)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@dataclass
class Entry:
    """The real entry point ``main()`` in this process, with its exit code and streams."""

    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        with self.monkeypatch.context() as patch:
            for name in ("GROUPCLOUD_URL", "GROUPCLOUD_TOKEN"):
                patch.delenv(name, raising=False)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            patch.setattr(sys, "argv", ["groupcloud", *args])
            self.capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                main()
        out, err = self.capsys.readouterr()
        code = exited.value.code
        return Outcome(code if isinstance(code, int) else 1, out, err)


@pytest.fixture
def cli_stack(sqlite_template: Path, tmp_path: Path) -> Iterator[Stack]:
    with open_sqlite_stack(sqlite_template, tmp_path / "stack", **DBAAS_SETTINGS) as made:
        yield made


@pytest.fixture
def cli(cli_stack: Stack) -> Cli:
    return Cli(cli_stack, CliRunner())


@pytest.fixture
def entry(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Entry:
    return Entry(monkeypatch, capsys)

"""The client a command talks through, built from --url/--token or the environment."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from groupcloud.cli.output import EXIT_CONNECTION, fail
from groupcloud.client import Client

__all__ = ["Target", "client"]


@dataclass
class Target:
    url: str
    token: str | None


def client(ctx: typer.Context) -> Client:
    target: Target = ctx.find_root().obj
    if not target.token:
        raise fail(
            "no API token: set GROUPCLOUD_TOKEN (or pass --token); "
            "'make run' prints one, 'groupcloud admin issue-token' makes one",
            EXIT_CONNECTION,
        )
    return Client(target.url, target.token)

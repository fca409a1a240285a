"""The client a command talks through, built from --url/--token or the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from groupcloud.cli.output import EXIT_API, EXIT_CONNECTION, fail
from groupcloud.client import ApiError, Client, ConnectionFailed

__all__ = ["Target", "client"]


@dataclass
class Target:
    url: str
    token: str | None


@contextmanager
def client(ctx: typer.Context) -> Iterator[Client]:
    """A client of the configured API. A refusal ends the command with one line on stderr
    and exit code 1; an unreachable API or a missing token with exit code 3."""
    target: Target = ctx.find_root().obj
    if not target.token:
        raise fail(
            "no API token: set GROUPCLOUD_TOKEN (or pass --token); "
            "'make run' prints one, 'groupcloud admin issue-token' makes one",
            EXIT_CONNECTION,
        )
    with Client(target.url, target.token) as gc:
        try:
            yield gc
        except ApiError as exc:
            raise fail(f"{exc.code}: {exc.detail}", EXIT_API) from None
        except ConnectionFailed as exc:
            raise fail(str(exc), EXIT_CONNECTION) from None

"""How the CLI prints: Rich tables for people, JSON for scripts, one line for errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from groupcloud.schemas.base import Page

__all__ = [
    "EXIT_API",
    "EXIT_CONNECTION",
    "Cursor",
    "JsonFlag",
    "Limit",
    "bar",
    "console",
    "fail",
    "print_json",
    "render",
    "render_one",
    "stamp",
]

EXIT_API = 1
"""The API refused the request (the problem's code is printed)."""
EXIT_CONNECTION = 3
"""The API could not be reached, or no token is configured."""


def _console(stderr: bool = False) -> Console:
    """Rich wraps at 80 columns when not writing to a terminal; scripts and logs get 160
    (unless COLUMNS says otherwise) so that IDs and names are never cut."""
    out = Console(stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 160
    return out


console = _console()
errors = _console(stderr=True)

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
]
Cursor = Annotated[str | None, typer.Option(help="Continue a list where the last page ended.")]
Limit = Annotated[int | None, typer.Option(help="Page size (1-500, default 50).", min=1, max=500)]


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned Exit."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(value: BaseModel | Sequence[BaseModel]) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    else:
        data = [v.model_dump(mode="json") for v in value]
    console.print_json(json.dumps(data))


def render(
    value: Page[Any] | Sequence[BaseModel],
    as_json: bool,
    columns: Sequence[str],
    row: Callable[[Any], Sequence[Any]],
    *,
    title: str | None = None,
    more: str = "",
) -> None:
    """A table (or JSON) of a list or a page; for a page, how to get the next one."""
    items = value.items if isinstance(value, Page) else list(value)
    if as_json:
        print_json(value if isinstance(value, Page) else items)
        return
    table = Table(title=title, header_style="bold")
    for i, name in enumerate(columns):
        # The first column (a name or an id) stays whole; others wrap rather than lose text.
        table.add_column(name, no_wrap=i == 0, overflow="fold", min_width=len(name))
    for item in items:
        table.add_row(*row(item))
    console.print(table)
    if isinstance(value, Page) and value.next_cursor:
        console.print(f"more: add --cursor {value.next_cursor}{more}", style="dim")


def render_one(
    value: BaseModel,
    as_json: bool,
    columns: Sequence[str],
    row: Callable[[Any], Sequence[Any]],
) -> None:
    """One object: itself as JSON (what the API answered), or a table of one row."""
    if as_json:
        print_json(value)
    else:
        render([value], False, columns, row)


def bar(used: int, total: int, width: int = 20) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=min(used, max(total, 1)), width=width)


def stamp(at: datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-"

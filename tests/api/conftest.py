"""Fixtures of the API tests: the world served over real HTTP.

``stack`` runs on both databases (the shared ``server`` fixture); ``sqlite_stack`` only on
SQLite, for the tests whose behaviour does not depend on the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from groupcloud.services.common.runtime import Runtime
from tests.api.stack import Stack, open_sqlite_stack
from tests.support import World


@pytest.fixture
def stack(rt: Runtime, world: World, server: str) -> Iterator[Stack]:
    """The world on a real server, once per database."""
    made = Stack(url=server, rt=rt, world=world)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def sqlite_stack(sqlite_template: Path, tmp_path: Path) -> Iterator[Stack]:
    """The world on a real server over a fresh SQLite database."""
    with open_sqlite_stack(sqlite_template, tmp_path / "stack") as made:
        yield made


@pytest.fixture(scope="module")
def shared_stack(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One server for a whole module of tests that only read (OpenAPI, health, docs)."""
    with open_sqlite_stack(sqlite_template, tmp_path_factory.mktemp("shared")) as made:
        yield made

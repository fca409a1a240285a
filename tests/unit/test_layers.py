"""The layering of docs/architecture.md, checked on every module's imports (lazy imports
inside functions included), so that it stays true as the code grows.

Layers, from the bottom: ``domain`` (+ ``errors``) <- engines (pure computation) <-
adapters (database, activity store) and ``schemas`` <- services (capabilities; their
``common`` runtime below the others) <- interfaces (API, CLI, Python client).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import groupcloud

ROOT = Path(groupcloud.__file__).parent
ENGINES = frozenset({"placement", "quota", "ipam", "analytics", "simulator", "catalog", "metering"})
ADAPTERS = frozenset({"db", "activitystore", "providers", "dbaas"})
INTERFACES = frozenset({"api", "cli", "client", "web", "__main__"})
BASE = frozenset({"domain", "errors"})

ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "domain": BASE,
    **dict.fromkeys(ENGINES, BASE | ENGINES),
    "config": BASE | {"placement"},  # the placement policy setting is checked by name
    "schemas": BASE | {"schemas"},
    **dict.fromkeys(ADAPTERS, BASE | ENGINES | ADAPTERS | {"config"}),
    "services": BASE | ENGINES | ADAPTERS | {"config", "schemas", "services"},
    **dict.fromkeys(INTERFACES, BASE | ENGINES | INTERFACES | {"config", "schemas", "services"}),
    "groupcloud": frozenset(),  # the package's __init__
}
"""Which top-level parts of ``groupcloud`` each part may import."""


def layer(module: str) -> str:
    """``groupcloud.services.compute.hosts`` -> ``services``; ``groupcloud`` -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's scripts, run by the adapter that owns them
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(path: Path, module: str) -> Iterator[str]:
    """Every ``groupcloud`` module ``path`` imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("groupcloud"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "groupcloud":  # from groupcloud import x: a module, or a name
                for a in node.names:
                    is_module = (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists()
                    yield f"groupcloud.{a.name}" if is_module else "groupcloud"
            elif base.startswith("groupcloud"):
                yield base


def capability(module: str) -> str | None:
    """``groupcloud.services.network.ips`` -> ``network`` (None outside services)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "services" else None


ALL = list(modules())


@pytest.mark.parametrize(
    ("module", "path"),
    ALL,
    ids=[m for m, _ in ALL],
)
def test_every_module_imports_only_what_its_layer_may(module: str, path: Path) -> None:
    mine = layer(module)
    assert mine in ALLOWED, f"{module}: no layer rule for {mine!r}; add it to ALLOWED"
    wrong = sorted(
        target
        for target in imports(path, module)
        if layer(target) != mine and layer(target) not in ALLOWED[mine] | {"groupcloud"}
    )
    assert not wrong, f"{module} ({mine}) may not import {wrong}"


def test_the_common_runtime_depends_on_no_capability() -> None:
    """Capabilities use ``services.common``; the runtime knows none of them (no cycle)."""
    wrong = [
        (module, target)
        for module, path in ALL
        if capability(module) == "common"
        for target in imports(path, module)
        if capability(target) not in (None, "common")
    ]
    assert not wrong


def test_the_rules_catch_an_upward_import() -> None:
    """The checker itself: an engine importing a service, or an interface importing the
    database, is reported (so the tests above cannot pass by checking nothing)."""
    assert "services" not in ALLOWED[layer("groupcloud.placement.pipeline")]
    assert "db" not in ALLOWED[layer("groupcloud.api.app")]
    path = ROOT / "services/compute/allocations.py"
    found = list(imports(path, "groupcloud.services.compute.allocations"))
    assert "groupcloud.db.claims" in found or "groupcloud.db" in found
    assert len(ALL) > 100


DATABASE_LIBRARIES = frozenset(
    {"sqlalchemy", "alembic", "psycopg", "psycopg2", "sqlite3", "duckdb"}
)
IN_MEMORY_SQL = {"groupcloud.metering.bulk": frozenset({"duckdb"})}
"""Engine modules that run SQL on an in-memory DuckDB over the columns (or Parquet file) they
are handed (no database file or server: still driven without a database), only that library."""


def _third_party(path: Path) -> Iterator[str]:
    """The top-level names of every non-``groupcloud`` module ``path`` imports."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def test_engines_reach_no_database() -> None:
    """Engines are what the simulator and the property tests drive without a database
    (the simulator included: it runs the engines in memory), so none imports a database
    library, directly or lazily."""
    wrong = sorted(
        (module, name)
        for module, path in ALL
        if layer(module) in ENGINES
        for name in _third_party(path)
        if name in DATABASE_LIBRARIES - IN_MEMORY_SQL.get(module, frozenset())
    )
    assert not wrong
    simulator = [m for m, _ in ALL if layer(m) == "simulator"]
    assert "groupcloud.simulator.des" in simulator

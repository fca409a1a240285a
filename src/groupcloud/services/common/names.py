"""Name -> id lookups of companies, projects and zones, cached per process.

These objects are never renamed or deleted, so a positive answer stays true forever and
can be cached; a miss is always asked of the database again (the object may have been
created by another process since). This takes the lookups off the claim path. A
project's defaults (priority, data class, system type) can change: they are cached for a
couple of seconds only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Select, select

from groupcloud.db.engine import Database
from groupcloud.db.models import CompanyRow, ProjectRow, ZoneRow

__all__ = ["Names"]


class Names:
    def __init__(self, db: Database, priority_ttl_s: float = 2.0) -> None:
        self._db = db
        self._cache: dict[Hashable, int] = {}
        self._priorities: dict[int, tuple[tuple[int, str, str], float]] = {}
        self._priority_ttl_s = priority_ttl_s

    def company(self, slug: str) -> int | None:
        return self._lookup(
            ("company", slug), lambda: select(CompanyRow.id).where(CompanyRow.slug == slug)
        )

    def project(self, company_id: int, slug: str) -> int | None:
        return self._lookup(
            ("project", company_id, slug),
            lambda: select(ProjectRow.id).where(
                ProjectRow.company_id == company_id, ProjectRow.slug == slug
            ),
        )

    def default_priority(self, project_id: int) -> int:
        """The queue priority of the project's requests that name none."""
        return self.project_defaults(project_id)[0]

    def project_defaults(self, project_id: int) -> tuple[int, str, str]:
        """The priority, data class and system type of the project's requests that name
        none. They can change, so they are re-read after ``priority_ttl_s`` (and at once in
        the process that changed them)."""
        now = time.monotonic()
        cached = self._priorities.get(project_id)
        if cached is not None and now - cached[1] < self._priority_ttl_s:
            return cached[0]
        with self._db.read_conn() as conn:
            found = conn.execute(
                select(
                    ProjectRow.default_priority,
                    ProjectRow.default_data_class,
                    ProjectRow.default_system_type,
                ).where(ProjectRow.id == project_id)
            ).first()
        value = (
            (500, "D3", "external_service")
            if found is None
            else (int(found[0]), str(found[1]), str(found[2]))
        )
        self._priorities[project_id] = (value, now)
        return value

    def forget_priority(self, project_id: int) -> None:
        self._priorities.pop(project_id, None)

    def zone(self, name: str) -> int | None:
        return self._lookup(("zone", name), lambda: select(ZoneRow.id).where(ZoneRow.name == name))

    def _lookup(self, key: Hashable, query: Callable[[], Select[Any]]) -> int | None:
        found = self._cache.get(key)
        if found is None:
            with self._db.read_conn() as conn:
                found = conn.scalar(query())
            if found is not None:
                self._cache[key] = found  # a single dict store: atomic under the GIL
        return found

"""Name -> id lookups of companies, projects and zones, cached per process.

These objects are never renamed or deleted, so a positive answer stays true forever and
can be cached; a miss is always asked of the database again (the object may have been
created by another process since). This takes the lookups off the claim path.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Select, select

from groupcloud.db.engine import Database
from groupcloud.db.models import Company, Project, Zone

__all__ = ["Names"]


class Names:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[Hashable, int] = {}

    def company(self, slug: str) -> int | None:
        return self._lookup(
            ("company", slug), lambda: select(Company.id).where(Company.slug == slug)
        )

    def project(self, company_id: int, slug: str) -> int | None:
        return self._lookup(
            ("project", company_id, slug),
            lambda: select(Project.id).where(
                Project.company_id == company_id, Project.slug == slug
            ),
        )

    def default_priority(self, project_id: int) -> int:
        """The queue priority of the project's requests that name none (set at creation)."""
        found = self._lookup(
            ("priority", project_id),
            lambda: select(Project.default_priority).where(Project.id == project_id),
        )
        return 500 if found is None else found

    def zone(self, name: str) -> int | None:
        return self._lookup(("zone", name), lambda: select(Zone.id).where(Zone.name == name))

    def _lookup(self, key: Hashable, query: Callable[[], Select[Any]]) -> int | None:
        found = self._cache.get(key)
        if found is None:
            with self._db.read_conn() as conn:
                found = conn.scalar(query())
            if found is not None:
                self._cache[key] = found  # a single dict store: atomic under the GIL
        return found

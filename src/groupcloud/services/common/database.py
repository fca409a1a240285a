"""The database as an operator sees it: migrate it to the code's schema, and say whether
it is there. The interfaces (``groupcloud db upgrade``, ``serve``, ``/readyz``) call
these instead of the migration adapter."""

from __future__ import annotations

from groupcloud.db.migrate import current_revision, head_revision, upgrade
from groupcloud.services.common.runtime import Runtime

__all__ = ["migrate", "schema_revisions"]


def migrate(rt: Runtime) -> str | None:
    """Apply every pending migration (serialised between processes); the revision now."""
    return upgrade(rt.db)


def schema_revisions(rt: Runtime) -> tuple[str | None, str]:
    """(the database's schema revision or None when never migrated, the code's head)."""
    return current_revision(rt.db), head_revision()

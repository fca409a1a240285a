"""Alembic environment: always handed a live connection by groupcloud.db.migrate."""

from __future__ import annotations

from alembic import context

from groupcloud.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'groupcloud db upgrade' (groupcloud.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""The services' lifecycle: what an instance is doing (operation, failure, generation of
its parts for plan upgrades), each part's generation, and bindings with their sealed
credentials.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out here (not imported from models) so this revision never changes.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_instances") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("backend", sa.String(32), nullable=True))
        batch.add_column(sa.Column("operation", sa.String(16), nullable=True))
        batch.add_column(sa.Column("failure", sa.Text(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_service_instances_state", "service_instances", ["state"])
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("service_generation", sa.Integer(), nullable=True))
    op.create_index("ix_allocations_service_instance_id", "allocations", ["service_instance_id"])
    op.create_table(
        "service_bindings",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_bindings")),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["service_instances.id"],
            name=op.f("fk_service_bindings_instance_id_service_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_service_bindings_company_id_companies")
        ),
    )
    op.create_index("ix_service_bindings_instance_id", "service_bindings", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_service_bindings_instance_id", "service_bindings")
    op.drop_table("service_bindings")
    op.drop_index("ix_allocations_service_instance_id", "allocations")
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("service_generation")
    op.drop_index("ix_service_instances_state", "service_instances")
    with op.batch_alter_table("service_instances") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("failure")
        batch.drop_column("operation")
        batch.drop_column("backend")
        batch.drop_column("generation")

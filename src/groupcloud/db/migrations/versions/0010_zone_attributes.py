"""Placement rules for regulated data: zone attributes (country, network separation,
certifications, data classes, the group's approvals), each allocation's data class and
system type, and each project's defaults of both.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out here (not imported from models) so this revision never changes.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("zones") as batch:
        batch.add_column(sa.Column("country", sa.String(2), nullable=True))
        batch.add_column(
            sa.Column("internet_separated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("certifications", JSON, nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(
            sa.Column(
                "data_classes",
                JSON,
                nullable=False,
                server_default=sa.text('\'["D1", "D2", "D3"]\''),
            )
        )
        batch.add_column(
            sa.Column("approved", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("approved_for_d3", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column(
                "default_data_class", sa.String(2), nullable=False, server_default=sa.text("'D3'")
            )
        )
        batch.add_column(
            sa.Column(
                "default_system_type",
                sa.String(32),
                nullable=False,
                server_default=sa.text("'external_service'"),
            )
        )
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(
            sa.Column("data_class", sa.String(2), nullable=False, server_default=sa.text("'D3'"))
        )
        batch.add_column(
            sa.Column(
                "system_type",
                sa.String(32),
                nullable=False,
                server_default=sa.text("'external_service'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("system_type")
        batch.drop_column("data_class")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("default_system_type")
        batch.drop_column("default_data_class")
    with op.batch_alter_table("zones") as batch:
        for column in (
            "approved_for_d3",
            "approved",
            "data_classes",
            "certifications",
            "internet_separated",
            "country",
        ):
            batch.drop_column(column)

"""The catalog: service templates operators add (the shipped ones live in the package),
service instances, and each allocation's instance and part.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out here (not imported from models) so this revision never changes.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_templates")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_service_templates_name_version")),
    )
    op.create_table(
        "service_instances",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(63), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("plan", sa.String(63), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_instances")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_service_instances_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_service_instances_project_id_projects")
        ),
    )
    op.create_index(
        "ix_service_instances_company_id_created_at",
        "service_instances",
        ["company_id", "created_at"],
    )
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("service_instance_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("service_part", sa.String(63), nullable=True))
        batch.create_foreign_key(
            op.f("fk_allocations_service_instance_id_service_instances"),
            "service_instances",
            ["service_instance_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.drop_constraint(
            op.f("fk_allocations_service_instance_id_service_instances"), type_="foreignkey"
        )
        batch.drop_column("service_part")
        batch.drop_column("service_instance_id")
    op.drop_index("ix_service_instances_company_id_created_at", "service_instances")
    op.drop_table("service_instances")
    op.drop_table("service_templates")

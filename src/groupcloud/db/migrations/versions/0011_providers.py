"""The multi-hybrid cloud: providers, external zones as one region of a provider, local
zones lent to other companies, the
instances of external allocations, zone blocks (failover), and each allocation's zone
choice (zone kind, burst, external placement, repatriation flag).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out here (not imported from models) so this revision never changes.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
STAMP = sa.DateTime(timezone=True)

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    with op.batch_alter_table("zones") as batch:
        batch.add_column(sa.Column("provider_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("region", sa.String(63), nullable=True))
        batch.add_column(sa.Column("lent_to", JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.create_foreign_key(
            op.f("fk_zones_provider_id_providers"), "providers", ["provider_id"], ["id"]
        )
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("zone_kind", sa.String(16), nullable=True))
        for flag in ("burst", "external", "repatriate"):
            batch.add_column(
                sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch.add_column(sa.Column("repatriable_at", STAMP, nullable=True))
    op.create_table(
        "external_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.String(36), nullable=False),
        sa.Column("unit", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("client_token", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("price_per_hour", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_instances")),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_external_instances_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_external_instances_zone_id_zones")
        ),
        sa.UniqueConstraint("client_token", name=op.f("uq_external_instances_client_token")),
    )
    op.create_index(
        "ix_external_instances_allocation_id_unit",
        "external_instances",
        ["allocation_id", "unit"],
    )
    op.create_index("ix_external_instances_state", "external_instances", ["state"])
    op.create_table(
        "zone_blocks",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("until", STAMP, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("zone_id", name=op.f("pk_zone_blocks")),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_zone_blocks_zone_id_zones")
        ),
    )


def downgrade() -> None:
    op.drop_table("zone_blocks")
    op.drop_index("ix_external_instances_state", "external_instances")
    op.drop_index("ix_external_instances_allocation_id_unit", "external_instances")
    op.drop_table("external_instances")
    with op.batch_alter_table("allocations") as batch:
        for column in ("repatriable_at", "repatriate", "external", "burst", "zone_kind"):
            batch.drop_column(column)
    with op.batch_alter_table("zones") as batch:
        batch.drop_constraint(op.f("fk_zones_provider_id_providers"), type_="foreignkey")
        batch.drop_column("lent_to")
        batch.drop_column("region")
        batch.drop_column("provider_id")
    op.drop_table("providers")

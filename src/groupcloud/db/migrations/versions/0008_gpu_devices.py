"""GPU sharing in the claim path: allocations ask for a share of one device
(``gpu_share``) and GPU models (``gpu_models``); the devices that hold shares
(``gpu_devices``) and which device each sharing unit sits on (``allocation_devices``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out here (not imported from models) so this revision never changes.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("gpu_share", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("gpu_models", JSON, nullable=True))
    op.create_table(
        "gpu_devices",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.Integer(), nullable=False),
        sa.Column("free_milli", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "free_milli >= 0 AND free_milli < 1000", name=op.f("ck_gpu_devices_free_milli_range")
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_gpu_devices_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint("host_id", "device", name=op.f("pk_gpu_devices")),
    )
    op.create_table(
        "allocation_devices",
        sa.Column("allocation_id", sa.String(36), nullable=False),
        sa.Column("unit", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.Integer(), nullable=False),
        sa.Column("milli", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "milli > 0 AND milli < 1000", name=op.f("ck_allocation_devices_milli_range")
        ),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_allocation_devices_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_allocation_devices_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint("allocation_id", "unit", name=op.f("pk_allocation_devices")),
    )
    op.create_index(
        op.f("ix_allocation_devices_host_id_device"),
        "allocation_devices",
        ["host_id", "device"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_allocation_devices_host_id_device"), table_name="allocation_devices")
    op.drop_table("allocation_devices")
    op.drop_table("gpu_devices")
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("gpu_models")
        batch.drop_column("gpu_share")

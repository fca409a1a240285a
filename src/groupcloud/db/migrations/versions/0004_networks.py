"""Networks: address-space prefixes (supernets, VPCs, subnets) and IP addresses.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "net_prefixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["net_prefixes.id"], name=op.f("fk_net_prefixes_parent_id_net_prefixes")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_net_prefixes_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_net_prefixes_zone_id_zones")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_net_prefixes")),
        sa.UniqueConstraint("parent_id", "cidr", name=op.f("uq_net_prefixes_parent_id_cidr")),
        sa.UniqueConstraint(
            "kind", "company_id", "name", name=op.f("uq_net_prefixes_kind_company_id_name")
        ),
    )
    op.create_index("ix_net_prefixes_parent_id", "net_prefixes", ["parent_id"], unique=False)
    op.create_table(
        "ip_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subnet_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("released_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["subnet_id"], ["net_prefixes.id"], name=op.f("fk_ip_addresses_subnet_id_net_prefixes")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_ip_addresses_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ip_addresses")),
    )
    where = sa.text("released_at IS NULL")
    op.create_index(
        "uq_ip_addresses_live",
        "ip_addresses",
        ["subnet_id", "address"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("uq_ip_addresses_live", table_name="ip_addresses")
    op.drop_table("ip_addresses")
    op.drop_index("ix_net_prefixes_parent_id", table_name="net_prefixes")
    op.drop_table("net_prefixes")

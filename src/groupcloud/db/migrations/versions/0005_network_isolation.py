"""Networks, second part: quarantine of released addresses, floating addresses, addresses
claimed with allocations, VLAN/VXLAN segment pools, security rules, peerings, peering
bans and network quotas; change counters on prefixes for the processes' caches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
AMOUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _created() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("net_prefixes") as batch:
        batch.add_column(sa.Column("generation", AMOUNT, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("purpose", sa.String(16), nullable=False, server_default="private")
        )
        batch.add_column(sa.Column("data_class", sa.String(32), nullable=True))
    op.execute("UPDATE net_prefixes SET data_class = 'internal' WHERE kind = 'vpc'")
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("interfaces", JSON, nullable=True))

    op.drop_index("uq_ip_addresses_live", table_name="ip_addresses")
    with op.batch_alter_table("ip_addresses") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="fixed"))
        batch.add_column(sa.Column("allocation_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("unit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("attached_to", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reusable_at", TIME, nullable=True))
        batch.add_column(sa.Column("freed_at", TIME, nullable=True))
        batch.create_foreign_key(
            op.f("fk_ip_addresses_allocation_id_allocations"),
            "allocations",
            ["allocation_id"],
            ["id"],
        )
        batch.create_foreign_key(
            op.f("fk_ip_addresses_attached_to_ip_addresses"),
            "ip_addresses",
            ["attached_to"],
            ["id"],
        )
    # Addresses released before quarantine existed are free already.
    op.execute(
        "UPDATE ip_addresses SET reusable_at = released_at, freed_at = released_at "
        "WHERE released_at IS NOT NULL"
    )
    held = sa.text("freed_at IS NULL")
    op.create_index(
        "uq_ip_addresses_held",
        "ip_addresses",
        ["subnet_id", "address"],
        unique=True,
        sqlite_where=held,
        postgresql_where=held,
    )
    quarantined = sa.text("released_at IS NOT NULL AND freed_at IS NULL")
    op.create_index(
        "ix_ip_addresses_quarantine",
        "ip_addresses",
        ["subnet_id", "reusable_at"],
        sqlite_where=quarantined,
        postgresql_where=quarantined,
    )
    with_allocation = sa.text("allocation_id IS NOT NULL")
    op.create_index(
        "ix_ip_addresses_allocation_id",
        "ip_addresses",
        ["allocation_id"],
        sqlite_where=with_allocation,
        postgresql_where=with_allocation,
    )
    op.create_index(
        "ix_ip_addresses_company_id_released_at", "ip_addresses", ["company_id", "released_at"]
    )

    op.create_table(
        "net_segment_pools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("first", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.Column("generation", AMOUNT, nullable=False, server_default="0"),
        *_created(),
        sa.CheckConstraint(
            "first >= 1 AND first <= last", name=op.f("ck_net_segment_pools_range_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_net_segment_pools_zone_id_zones")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_net_segment_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_net_segment_pools_name")),
    )
    op.create_table(
        "net_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("prefix_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        *_created(),
        sa.Column("released_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["net_segment_pools.id"],
            name=op.f("fk_net_segments_pool_id_net_segment_pools"),
        ),
        sa.ForeignKeyConstraint(
            ["prefix_id"], ["net_prefixes.id"], name=op.f("fk_net_segments_prefix_id_net_prefixes")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_net_segments_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_net_segments")),
    )
    released = sa.text("released_at IS NULL")
    op.create_index(
        "uq_net_segments_held",
        "net_segments",
        ["pool_id", "value"],
        unique=True,
        sqlite_where=released,
        postgresql_where=released,
    )
    op.create_index("ix_net_segments_prefix_id", "net_segments", ["prefix_id"])

    op.create_table(
        "net_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vpc_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("port_from", sa.Integer(), nullable=True),
        sa.Column("port_to", sa.Integer(), nullable=True),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        *_created(),
        sa.CheckConstraint(
            "port_from IS NULL OR (port_from >= 0 AND port_from <= port_to AND port_to <= 65535)",
            name=op.f("ck_net_rules_ports_ordered"),
        ),
        sa.ForeignKeyConstraint(
            ["vpc_id"], ["net_prefixes.id"], name=op.f("fk_net_rules_vpc_id_net_prefixes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_net_rules")),
    )
    op.create_index("ix_net_rules_vpc_id", "net_rules", ["vpc_id"])

    op.create_table(
        "net_peerings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vpc_a_id", sa.Integer(), nullable=False),
        sa.Column("vpc_b_id", sa.Integer(), nullable=False),
        sa.Column("requester_vpc_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", TIME, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("decided_at", TIME, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("ended_at", TIME, nullable=True),
        sa.CheckConstraint("vpc_a_id < vpc_b_id", name=op.f("ck_net_peerings_pair_ordered")),
        *(
            sa.ForeignKeyConstraint(
                [column], ["net_prefixes.id"], name=op.f(f"fk_net_peerings_{column}_net_prefixes")
            )
            for column in ("vpc_a_id", "vpc_b_id", "requester_vpc_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_net_peerings")),
    )
    live = sa.text("ended_at IS NULL")
    op.create_index(
        "uq_net_peerings_live",
        "net_peerings",
        ["vpc_a_id", "vpc_b_id"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )

    op.create_table(
        "net_peering_bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("side_a", sa.String(63), nullable=False),
        sa.Column("side_b", sa.String(63), nullable=False),
        *_created(),
        sa.CheckConstraint("side_a <= side_b", name=op.f("ck_net_peering_bans_pair_ordered")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_net_peering_bans")),
        sa.UniqueConstraint(
            "kind", "side_a", "side_b", name=op.f("uq_net_peering_bans_kind_side_a_side_b")
        ),
    )

    op.create_table(
        "net_quotas",
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("quota_limit", AMOUNT, nullable=True),
        sa.Column("used", AMOUNT, nullable=False, server_default="0"),
        sa.Column("updated_at", TIME, nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_net_quotas_used_not_negative")),
        sa.CheckConstraint(
            "quota_limit IS NULL OR quota_limit >= 0", name=op.f("ck_net_quotas_limit_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_net_quotas_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("company_id", "kind", name=op.f("pk_net_quotas")),
    )


def downgrade() -> None:
    op.drop_table("net_quotas")
    op.drop_table("net_peering_bans")
    op.drop_index("uq_net_peerings_live", table_name="net_peerings")
    op.drop_table("net_peerings")
    op.drop_index("ix_net_rules_vpc_id", table_name="net_rules")
    op.drop_table("net_rules")
    op.drop_index("ix_net_segments_prefix_id", table_name="net_segments")
    op.drop_index("uq_net_segments_held", table_name="net_segments")
    op.drop_table("net_segments")
    op.drop_table("net_segment_pools")
    for index in (
        "ix_ip_addresses_company_id_released_at",
        "ix_ip_addresses_allocation_id",
        "ix_ip_addresses_quarantine",
        "uq_ip_addresses_held",
    ):
        op.drop_index(index, table_name="ip_addresses")
    with op.batch_alter_table("ip_addresses") as batch:
        batch.drop_constraint(op.f("fk_ip_addresses_attached_to_ip_addresses"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_ip_addresses_allocation_id_allocations"), type_="foreignkey")
        for column in ("freed_at", "reusable_at", "attached_to", "unit", "allocation_id", "kind"):
            batch.drop_column(column)
    live = sa.text("released_at IS NULL")
    op.create_index(
        "uq_ip_addresses_live",
        "ip_addresses",
        ["subnet_id", "address"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("interfaces")
    with op.batch_alter_table("net_prefixes") as batch:
        for column in ("data_class", "purpose", "generation"):
            batch.drop_column(column)

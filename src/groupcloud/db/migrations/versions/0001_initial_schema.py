"""Initial schema: tenancy, zones, hosts and inventories, quotas, allocations, audit, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out here (not imported from models) so this revision never changes.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AMOUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("slug", name=op.f("uq_companies_slug")),
    )
    pool_state = op.create_table(
        "pool_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", AMOUNT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_state")),
    )
    op.bulk_insert(pool_state, [{"id": 1, "generation": 0}])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_api_tokens_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_events_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_company_id_id", ["company_id", "id"], unique=False)
        batch_op.create_index("ix_events_subject", ["subject"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_projects_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("company_id", "slug", name=op.f("uq_projects_company_id_slug")),
    )
    op.create_table(
        "quotas",
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=255), nullable=False),
        sa.Column("nominal", AMOUNT, nullable=False),
        sa.Column("borrowing_limit", AMOUNT, nullable=True),
        sa.Column("lending_limit", AMOUNT, nullable=True),
        sa.Column("used", AMOUNT, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "borrowing_limit IS NULL OR used <= nominal + borrowing_limit",
            name=op.f("ck_quotas_used_within_limit"),
        ),
        sa.CheckConstraint("nominal >= 0", name=op.f("ck_quotas_nominal_not_negative")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_quotas_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_quotas_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("company_id", "resource_class", name=op.f("pk_quotas")),
    )
    op.create_table(
        "zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner_company_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_company_id"], ["companies.id"], name=op.f("fk_zones_owner_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zones")),
        sa.UniqueConstraint("name", name=op.f("uq_zones_name")),
    )
    op.create_table(
        "allocations",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("resources", JSON, nullable=False),
        sa.Column("zone", sa.String(length=63), nullable=True),
        sa.Column("required_traits", JSON, nullable=False),
        sa.Column("anti_affinity_group", sa.String(length=63), nullable=True),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_allocations_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_allocations_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_allocations")),
        sa.UniqueConstraint("id", name=op.f("uq_allocations_id")),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_allocations_company_id_idempotency_key",
            ["company_id", "idempotency_key"],
            unique=True,
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_allocations_company_id_state_seq", ["company_id", "state", "seq"], unique=False
        )

    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("traits", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], name=op.f("fk_hosts_zone_id_zones")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index("ix_hosts_zone_id_state", ["zone_id", "state"], unique=False)
        batch_op.create_index(
            "uq_hosts_live_name",
            ["name"],
            unique=True,
            sqlite_where=sa.text("state != 'removed'"),
            postgresql_where=sa.text("state != 'removed'"),
        )

    op.create_table(
        "affinity_members",
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("group_name", sa.String(length=63), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_affinity_members_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_affinity_members_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_affinity_members_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint(
            "company_id", "group_name", "host_id", name=op.f("pk_affinity_members")
        ),
    )
    op.create_table(
        "allocation_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.String(length=36), nullable=False),
        sa.Column("unit", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=255), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_allocation_items_amount_positive")),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_allocation_items_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_allocation_items_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_items")),
    )
    with op.batch_alter_table("allocation_items", schema=None) as batch_op:
        batch_op.create_index("ix_allocation_items_allocation_id", ["allocation_id"], unique=False)
        batch_op.create_index("ix_allocation_items_host_id", ["host_id"], unique=False)

    op.create_table(
        "inventories",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=255), nullable=False),
        sa.Column("total", AMOUNT, nullable=False),
        sa.Column("reserved", AMOUNT, nullable=False),
        sa.Column("allocation_ratio", sa.Float(), nullable=False),
        sa.Column("capacity", AMOUNT, nullable=False),
        sa.Column("used", AMOUNT, nullable=False),
        sa.CheckConstraint("allocation_ratio > 0", name=op.f("ck_inventories_ratio_positive")),
        sa.CheckConstraint(
            "reserved >= 0 AND reserved <= total", name=op.f("ck_inventories_reserved_within_total")
        ),
        sa.CheckConstraint("used <= capacity", name=op.f("ck_inventories_used_within_capacity")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_inventories_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_inventories_host_id_hosts")
        ),
        sa.PrimaryKeyConstraint("host_id", "resource_class", name=op.f("pk_inventories")),
    )


def downgrade() -> None:
    op.drop_table("inventories")
    with op.batch_alter_table("allocation_items", schema=None) as batch_op:
        batch_op.drop_index("ix_allocation_items_host_id")
        batch_op.drop_index("ix_allocation_items_allocation_id")

    op.drop_table("allocation_items")
    op.drop_table("affinity_members")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_hosts_live_name",
            sqlite_where=sa.text("state != 'removed'"),
            postgresql_where=sa.text("state != 'removed'"),
        )
        batch_op.drop_index("ix_hosts_zone_id_state")

    op.drop_table("hosts")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_allocations_company_id_state_seq")
        batch_op.drop_index("uq_allocations_company_id_idempotency_key")

    op.drop_table("allocations")
    op.drop_table("zones")
    op.drop_table("quotas")
    op.drop_table("projects")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_subject")
        batch_op.drop_index("ix_events_company_id_id")

    op.drop_table("events")
    op.drop_table("api_tokens")
    op.drop_table("pool_state")
    op.drop_table("companies")

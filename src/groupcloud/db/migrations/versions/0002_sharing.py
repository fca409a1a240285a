"""Sharing engine: borrowing and lending counters, loans, the pending queue, reclaim,
leases and idle reclaim.

Revision ID: 0002
Revises: 0001
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
TIME = sa.DateTime(timezone=True)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("companies") as batch:
        batch.add_column(sa.Column("fair_weight", sa.Float(), nullable=False, server_default="1"))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("default_priority", sa.Integer(), nullable=False, server_default="500")
        )
    with op.batch_alter_table("quotas", recreate="always") as batch:
        batch.add_column(sa.Column("borrowed", AMOUNT, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lent", AMOUNT, nullable=False, server_default="0"))
        batch.drop_constraint(op.f("ck_quotas_used_within_limit"), type_="check")
        batch.create_check_constraint(
            op.f("ck_quotas_borrowed_within_used"), "borrowed >= 0 AND borrowed <= used"
        )
        batch.create_check_constraint(op.f("ck_quotas_lent_not_negative"), "lent >= 0")
        batch.create_check_constraint(
            op.f("ck_quotas_own_and_lent_within_nominal"), "used - borrowed + lent <= nominal"
        )
        batch.create_check_constraint(
            op.f("ck_quotas_borrowed_within_limit"),
            "borrowing_limit IS NULL OR borrowed <= borrowing_limit",
        )
        batch.create_check_constraint(
            op.f("ck_quotas_lent_within_limit"), "lending_limit IS NULL OR lent <= lending_limit"
        )
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="500"))
        batch.add_column(sa.Column("pending_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("pending_detail", JSON, nullable=True))
        batch.add_column(sa.Column("not_before", TIME, nullable=True))
        batch.add_column(sa.Column("started_at", TIME, nullable=True))
        batch.add_column(
            sa.Column("minimum_runtime_s", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("on_reclaim", sa.String(16), nullable=False, server_default="requeue")
        )
        batch.add_column(
            sa.Column("reclaim_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("reclaim_at", TIME, nullable=True))
        batch.add_column(sa.Column("reclaim_for", sa.String(36), nullable=True))
        batch.add_column(sa.Column("expires_at", TIME, nullable=True))
        batch.add_column(
            sa.Column("on_expiry", sa.String(16), nullable=False, server_default="release")
        )
        batch.add_column(sa.Column("lease_warned_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("utilisation", sa.Float(), nullable=True))
        batch.add_column(sa.Column("reported_at", TIME, nullable=True))
        batch.add_column(sa.Column("idle_since", TIME, nullable=True))
        batch.add_column(sa.Column("idle_flagged_at", TIME, nullable=True))
        batch.add_column(sa.Column("keep", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("end_reason", sa.String(32), nullable=True))
        batch.create_index(
            "ix_allocations_state_priority_seq", ["state", "priority", "seq"], unique=False
        )
    op.execute("UPDATE allocations SET started_at = created_at WHERE state = 'active'")
    op.create_table(
        "loans",
        sa.Column("allocation_id", sa.String(36), nullable=False),
        sa.Column("lender_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(255), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_loans_amount_positive")),
        sa.ForeignKeyConstraint(
            ["allocation_id"], ["allocations.id"], name=op.f("fk_loans_allocation_id_allocations")
        ),
        sa.ForeignKeyConstraint(
            ["lender_id"], ["companies.id"], name=op.f("fk_loans_lender_id_companies")
        ),
        sa.PrimaryKeyConstraint(
            "allocation_id", "lender_id", "resource_class", name=op.f("pk_loans")
        ),
    )
    op.create_index(
        "ix_loans_lender_id_resource_class", "loans", ["lender_id", "resource_class"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_loans_lender_id_resource_class", table_name="loans")
    op.drop_table("loans")
    with op.batch_alter_table("allocations") as batch:
        batch.drop_index("ix_allocations_state_priority_seq")
        for column in (
            "end_reason", "keep", "idle_flagged_at", "idle_since", "reported_at", "utilisation",
            "lease_warned_s", "on_expiry", "expires_at", "reclaim_for", "reclaim_at",
            "reclaim_count", "on_reclaim", "minimum_runtime_s", "started_at", "not_before",
            "pending_detail", "pending_reason", "priority",
        ):  # fmt: skip
            batch.drop_column(column)
    with op.batch_alter_table("quotas", recreate="always") as batch:
        for name in (
            "ck_quotas_lent_within_limit", "ck_quotas_borrowed_within_limit",
            "ck_quotas_own_and_lent_within_nominal", "ck_quotas_lent_not_negative",
            "ck_quotas_borrowed_within_used",
        ):  # fmt: skip
            batch.drop_constraint(op.f(name), type_="check")
        batch.drop_column("lent")
        batch.drop_column("borrowed")
        batch.create_check_constraint(
            op.f("ck_quotas_used_within_limit"),
            "borrowing_limit IS NULL OR used <= nominal + borrowing_limit",
        )
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("default_priority")
    with op.batch_alter_table("companies") as batch:
        batch.drop_column("fair_weight")

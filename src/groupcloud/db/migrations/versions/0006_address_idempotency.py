"""Idempotency keys on addresses: a retried request for an address (fixed or floating)
gets the address of the first try instead of a second one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ip_addresses") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
    keyed = sa.text("idempotency_key IS NOT NULL")
    op.create_index(
        "uq_ip_addresses_company_id_idempotency_key",
        "ip_addresses",
        ["company_id", "idempotency_key"],
        unique=True,
        sqlite_where=keyed,
        postgresql_where=keyed,
    )


def downgrade() -> None:
    op.drop_index("uq_ip_addresses_company_id_idempotency_key", table_name="ip_addresses")
    with op.batch_alter_table("ip_addresses") as batch:
        batch.drop_column("request_hash")
        batch.drop_column("idempotency_key")

"""Peering requests addressed to a company and a VPC name, resolved at acceptance: the
peer VPC (``vpc_b_id``) is null until the other company accepts, so a request does not
tell an existing company or VPC name from a missing one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("ended_at IS NULL")
# The VPC of the side that did not ask, of every peering stored so far (all resolved).
_PEER_VPC = """CASE WHEN net_peerings.requester_vpc_id = net_peerings.vpc_a_id
    THEN net_peerings.vpc_b_id ELSE net_peerings.vpc_a_id END"""


def upgrade() -> None:
    with op.batch_alter_table("net_peerings") as batch:
        batch.add_column(sa.Column("peer_company", sa.String(63), nullable=True))
        batch.add_column(sa.Column("peer_name", sa.String(63), nullable=True))
    op.execute(
        "UPDATE net_peerings SET "
        "peer_company = (SELECT companies.slug FROM net_prefixes JOIN companies "
        f"ON companies.id = net_prefixes.company_id WHERE net_prefixes.id = {_PEER_VPC}), "
        f"peer_name = (SELECT name FROM net_prefixes WHERE net_prefixes.id = {_PEER_VPC})"
    )
    with op.batch_alter_table("net_peerings") as batch:
        batch.alter_column("peer_company", existing_type=sa.String(63), nullable=False)
        batch.alter_column("peer_name", existing_type=sa.String(63), nullable=False)
        batch.alter_column("vpc_b_id", existing_type=sa.Integer(), nullable=True)
    op.create_index(
        "uq_net_peerings_asked",
        "net_peerings",
        ["requester_vpc_id", "peer_company", "peer_name"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_net_peerings_asked", table_name="net_peerings")
    op.execute("DELETE FROM net_peerings WHERE vpc_b_id IS NULL")
    with op.batch_alter_table("net_peerings") as batch:
        batch.alter_column("vpc_b_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("peer_name")
        batch.drop_column("peer_company")

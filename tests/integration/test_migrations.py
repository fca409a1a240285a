"""The migrations build exactly the schema the models describe, on both databases, and
upgrade data written by the previous revision."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from groupcloud.db.engine import Database
from groupcloud.db.migrate import head_revision, upgrade
from groupcloud.db.models import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        db.dispose()
    assert differences == []


def test_upgrade_from_0001_keeps_quotas_and_allocations(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(db, "0001")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO companies (id, slug, name, created_at) VALUES (1, 'bank', 'Bank', "
                    "'2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO quotas (company_id, resource_class, nominal, borrowing_limit, "
                    "lending_limit, used, updated_at) VALUES (1, 'VCPU', 32, 0, 0, 8, "
                    "'2026-01-01 00:00:00')"
                )
            )
        assert upgrade(db) == head_revision()
        with db.engine.connect() as conn:
            row = conn.execute(
                text("SELECT nominal, used, borrowed, lent, borrowing_limit FROM quotas")
            ).one()
            weight = conn.scalar(text("SELECT fair_weight FROM companies"))
        assert tuple(row) == (32, 8, 0, 0, 0)
        assert weight == 1
    finally:
        db.dispose()


def test_upgrade_to_0009_addresses_stored_peerings_to_their_other_side(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    stamp = "'2026-01-01 00:00:00'"
    try:
        upgrade(db, "0008")
        with db.engine.begin() as conn:
            for i, slug in ((1, "bank"), (2, "card")):
                conn.execute(
                    text(
                        f"INSERT INTO companies (id, slug, name, created_at) "
                        f"VALUES ({i}, '{slug}', '{slug}', {stamp})"
                    )
                )
            for i, company, name, cidr in (
                (1, 1, "core", "10.0.0.0/16"),
                (2, 2, "pay", "10.1.0.0/16"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO net_prefixes (id, kind, company_id, name, cidr, created_at, "
                        f"created_by) VALUES ({i}, 'vpc', {company}, '{name}', '{cidr}', "
                        f"{stamp}, 'x')"
                    )
                )
            conn.execute(  # card/pay asked bank/core
                text(
                    "INSERT INTO net_peerings (id, vpc_a_id, vpc_b_id, requester_vpc_id, state, "
                    f"requested_at, requested_by) VALUES (1, 1, 2, 2, 'pending', {stamp}, 'x')"
                )
            )
        assert upgrade(db) == head_revision()
        with db.engine.connect() as conn:
            row = conn.execute(
                text("SELECT vpc_a_id, vpc_b_id, peer_company, peer_name FROM net_peerings")
            ).one()
        assert tuple(row) == (1, 2, "bank", "core")
    finally:
        db.dispose()

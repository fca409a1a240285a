"""A revoked token stops working at once in every API process, not only in the one that
revoked it: each request checks the token in the database (one indexed read), so there is
no cache to outlive a revocation."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from groupcloud.domain.tenancy import Role
from groupcloud.schemas.tenancy import TokenCreate
from groupcloud.services.tenancy.tokens import SYSTEM, issue_token
from tests.conftest import open_runtime
from tests.support import build_world, server_processes


@pytest.mark.slow
def test_a_token_revoked_in_one_process_is_refused_by_the_other_at_once(
    database_url: str, tmp_path: Path
) -> None:
    rt = open_runtime(database_url, tmp_path)
    try:
        world = build_world(rt)
        victim = issue_token(
            rt, SYSTEM, TokenCreate(name="leaver", role=Role.MEMBER, company="bank")
        )
    finally:
        rt.close()
    with server_processes(database_url, tmp_path, 2) as (first, second):
        as_victim = {"Authorization": f"Bearer {victim.secret}"}
        as_admin = {"Authorization": f"Bearer {world.admin}"}
        with httpx.Client(base_url=second, headers=as_victim, timeout=30) as other:
            for _ in range(3):  # used, so that a cache (if there were one) would hold it
                assert other.get("/v1/whoami").status_code == 200
            revoked = httpx.delete(f"{first}/v1/tokens/{victim.id}", headers=as_admin, timeout=30)
            assert revoked.status_code == 200, revoked.text
            refused = other.get("/v1/whoami")
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "unauthenticated"
            allocations = other.get("/v1/allocations")
            assert allocations.status_code == 401
        with httpx.Client(base_url=second, headers=as_admin, timeout=30) as admin:
            assert admin.get("/v1/whoami").status_code == 200  # other tokens go on working

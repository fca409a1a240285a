"""Local commands on the embedded SQLite database of GROUPCLOUD_DATA_DIR: db upgrade/current,
seed demo (the admin token printed once) and admin issue-token; the seeded database then
serves the client commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner, Result

from groupcloud.cli.main import app
from groupcloud.config import Settings
from groupcloud.db.migrate import head_revision
from groupcloud.services.common.runtime import Runtime
from tests.support import start_thread_server

TOKEN = re.compile(r"gc_[A-Za-z0-9_-]{43}")


def _local(data_dir: Path, *args: str) -> Result:
    env = {"GROUPCLOUD_DATA_DIR": str(data_dir), "GROUPCLOUD_DATABASE_URL": None}
    return CliRunner().invoke(app, list(args), env=env)


def test_db_current_then_upgrade_then_current(tmp_path: Path) -> None:
    head = head_revision()
    before = _local(tmp_path, "db", "current")
    assert before.exit_code == 0, before.stderr
    assert before.stdout == f"current none, newest {head}: needs 'groupcloud db upgrade'\n"

    upgraded = _local(tmp_path, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert f"sqlite:///{tmp_path}/groupcloud.db" in upgraded.stdout
    assert upgraded.stdout.rstrip().endswith(f"at revision {head}")
    assert (tmp_path / "groupcloud.db").is_file()

    after = _local(tmp_path, "db", "current")
    assert after.stdout == f"current {head}, newest {head}: up to date\n"
    assert _local(tmp_path, "db", "upgrade").exit_code == 0  # a second upgrade is harmless


def test_seed_demo_prints_the_admin_token_once_and_serves_the_demo_group(
    tmp_path: Path,
) -> None:
    seeded = _local(tmp_path, "seed", "demo")
    assert seeded.exit_code == 0, seeded.stderr
    assert "seeded the demo group: companies 4, hosts 48, allocations 5, zones 7" in seeded.stdout
    tokens = TOKEN.findall(seeded.stdout)
    assert len(tokens) == 1
    assert f"export GROUPCLOUD_TOKEN={tokens[0]}" in seeded.stdout

    again = _local(tmp_path, "seed", "demo")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: the database already holds a group")
    assert not TOKEN.search(again.stdout + again.stderr)

    if_empty = _local(tmp_path, "seed", "demo", "--if-empty")
    assert if_empty.exit_code == 0, if_empty.stderr
    assert "already holds a group" in if_empty.stdout
    assert not TOKEN.search(if_empty.stdout + if_empty.stderr)

    issued = _local(
        tmp_path, "admin", "issue-token", "--name", "ci", "--role", "member", "--company", "card"
    )
    assert issued.exit_code == 0, issued.stderr
    assert issued.stdout.startswith("token ")
    assert "(member) for ci" in issued.stdout
    member_token = TOKEN.findall(issued.stdout)
    assert len(member_token) == 1
    refused = _local(tmp_path, "admin", "issue-token", "--role", "member")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: validation_error: ")

    rt = Runtime.open(Settings(data_dir=tmp_path, database_url=None))
    try:
        with start_thread_server(rt) as url:
            runner = CliRunner()

            def client(token: str, *args: str) -> Result:
                return runner.invoke(app, ["--url", url, "--token", token, *args])

            me = client(tokens[0], "whoami")
            assert me.stdout == "bootstrap-admin: group-admin\n"
            hosts = json.loads(client(tokens[0], "host", "list", "--limit", "500", "--json").stdout)
            assert len(hosts["items"]) == 48
            companies = json.loads(client(tokens[0], "company", "list", "--json").stdout)
            assert [c["slug"] for c in companies["items"]] == ["bank", "card", "capital", "savings"]
            allocations = json.loads(client(member_token[0], "alloc", "list", "--json").stdout)
            assert [a["project"] for a in allocations["items"]] == ["fraud-ml"]
    finally:
        rt.close()

"""groupcloud catalog list/show/add/resolve/remove against a real server."""

from __future__ import annotations

from pathlib import Path

import psycopg

from groupcloud.schemas.compute import HostCreate, InventoryIn
from groupcloud.services.compute import hosts
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.cli.conftest import Cli
from tests.service.helpers import set_quotas


def test_catalog_commands(cli: Cli, tmp_path: Path) -> None:
    listed = cli.ok("catalog", "list").stdout
    assert "postgresql" in listed
    assert "gpu-notebook" in listed
    shown = cli.ok("catalog", "show", "postgresql").stdout
    assert "--param storage_gb=..." in shown
    assert "plan medium" in shown
    resolved = cli.json("catalog", "resolve", "postgresql", "--plan", "medium",
                        "--param", "replicas=1", "--param", "storage_gb=100")  # fmt: skip
    assert resolved["demand"] == {"DISK_GB": 200, "MEMORY_MB": 32768, "VCPU": 8}
    bad = cli("catalog", "resolve", "postgresql", "--plan", "small", "--param", "storage_gb=1")
    assert bad.exit_code == 1
    assert "storage_gb" in bad.stderr
    assert cli("catalog", "resolve", "redis", "--plan", "small", "--param", "x").exit_code == 2
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "name: tiny\nversion: '1'\ndescription: d\nplans:\n"
        "  - name: one\n    parts:\n      - name: a\n        resources: {VCPU: 1}\n"
    )
    assert "template tiny 1 added" in cli.ok("catalog", "add", str(mine)).stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    refused = cli("catalog", "add", str(broken))
    assert refused.exit_code == 1
    assert "yaml" in refused.stderr
    assert "removed" in cli.ok("catalog", "remove", "tiny", "1").stdout
    member = cli.stack.world.bank_member
    made = cli.json("svc", "create", "redis", "-p", "web", "--plan", "medium",
                    "--param", "replicas=1", token=member)  # fmt: skip
    assert made["state"] == "ready"
    assert made["id"] in cli.ok("svc", "list", token=member).stdout
    assert "replica" in cli.ok("svc", "show", made["id"], token=member).stdout
    assert cli.json("svc", "delete", made["id"], token=member)["state"] == "gone"
    short = cli("svc", "create", "redis", "-p", "web", "--plan", "medium", "--param",
                "replicas=5", token=member)  # fmt: skip
    assert short.exit_code == 1  # 5 replicas on different hosts: the world has 4
    assert "never_fits" in short.stderr


def test_a_managed_postgresql_from_the_command_line(cli: Cli) -> None:
    """svc create waits (a spinner) until the database exists; bind prints credentials
    that work; rotate, update, unbind and delete (waiting until gone)."""
    rt = cli.stack.rt
    disks = {"VCPU": InventoryIn(total=32), "MEMORY_MB": InventoryIn(total=131072),
             "DISK_GB": InventoryIn(total=500)}  # fmt: skip
    hosts.add_hosts(rt, SYSTEM, [HostCreate(name=n, inventories=disks) for n in ("d1", "d2")])
    set_quotas(rt, "bank", {"DISK_GB": 1000})
    member = cli.stack.world.bank_member
    made = cli.json("svc", "create", "postgresql", "-p", "web", "--plan", "small",
                    "--param", "storage_gb=20", token=member)  # fmt: skip
    assert made["state"] == "ready"
    assert made["backend"] == "postgresql"
    bound = cli.ok("svc", "bind", made["id"], token=member).stdout
    uri = next(line.split(": ", 1)[1] for line in bound.splitlines() if line.startswith("uri: "))
    with psycopg.connect(uri, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    listed = cli.json("svc", "bindings", made["id"], token=member)
    assert [b["credentials"] for b in listed] == [None]
    binding = listed[0]["id"]
    rotated = cli.json("svc", "rotate", made["id"], binding, token=member)
    assert rotated["credentials"]["uri"] != uri
    shown = cli.json("svc", "credentials", made["id"], binding, token=member)
    assert shown["credentials"] == rotated["credentials"]
    up = cli.json("svc", "update", made["id"], "--plan", "medium", token=member)
    assert (up["plan"], up["generation"], up["state"]) == ("medium", 1, "ready")
    # Large beside medium: 8 + 32 VCPU of bank's 32, refused whole.
    refused = cli("svc", "update", made["id"], "--plan", "large", "--param", "replicas=1",
                  token=member)  # fmt: skip
    assert refused.exit_code == 1
    assert "quota_exceeded" in refused.stderr
    assert cli.json("svc", "unbind", made["id"], binding, token=member)["state"] == "gone"
    assert cli.json("svc", "delete", made["id"], token=member)["state"] == "gone"
    redis = cli.json("svc", "create", "redis", "-p", "web", "--plan", "small", token=member)
    unbindable = cli("svc", "bind", redis["id"], token=member)
    assert unbindable.exit_code == 1
    assert "not_bindable" in unbindable.stderr
    assert "svc" in cli.ok("svc", "--help").stdout
    for command in ("bind", "bindings", "credentials", "rotate", "unbind", "update"):
        assert cli.ok("svc", command, "--help").stdout

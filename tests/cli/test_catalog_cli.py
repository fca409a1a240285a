"""groupcloud catalog list/show/add/resolve/remove against a real server."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli


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

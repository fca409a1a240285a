"""The net commands against a real server: carve, hand out, release, and refusals with
their problem codes (exit 1) or usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_net_commands_carve_and_hand_out(cli: Cli) -> None:
    supernet = cli.json("net", "supernet", "add", "corp", "10.0.0.0/8")
    assert (supernet["cidr"], supernet["zone"], supernet["free"]) == ("10.0.0.0/8", "shared", 2**24)
    lead = cli.stack.world.bank_admin
    vpc = cli.json("net", "vpc", "create", "core", "--supernet", "corp", "--size", "16", token=lead)
    assert (vpc["cidr"], vpc["company"]) == ("10.0.0.0/16", "bank")
    sub = cli.json("net", "subnet", "create", "bank", "core", "web", "--size", "24", token=lead)
    assert sub["cidr"] == "10.0.0.0/24"
    member = cli.stack.world.bank_member
    ip = cli.json("net", "ip", "allocate", "bank", "web", "--description", "db-1", token=member)
    assert ip["address"] == "10.0.0.2"
    listed = cli.json("net", "ip", "list", "bank", "web", token=member)
    assert [i["address"] for i in listed["items"]] == ["10.0.0.2"]
    table = cli.ok("net", "vpc", "list", token=member).stdout
    assert "10.0.0.0/16" in table
    assert "10.0.128.0/17" in table  # largest free block
    released = cli.json("net", "ip", "release", str(ip["id"]), token=member)
    assert released["released_at"] is not None
    assert cli.json("net", "ip", "list", "bank", "web", token=member)["items"] == []
    quarantined = cli.json("net", "ip", "list", "bank", "web", "--released", token=member)
    assert [i["address"] for i in quarantined["items"]] == ["10.0.0.2"]


def test_net_refusals_name_their_code(cli: Cli) -> None:
    cli.ok("net", "supernet", "add", "corp", "10.0.0.0/8")
    overlap = cli("net", "supernet", "add", "more", "10.1.0.0/16")
    assert overlap.exit_code == 1
    assert "prefix_overlaps" in overlap.stderr
    bad = cli("net", "supernet", "add", "bad", "10.0.0.1/8")  # host bits set
    assert bad.exit_code == 2
    assert "is not a CIDR prefix like 10.0.0.0/8" in bad.output
    both = cli("net", "vpc", "create", "x", "--supernet", "corp", "-c", "bank")
    assert both.exit_code == 2
    assert "exactly one of prefixlen and cidr" in both.output
    cli.ok("net", "vpc", "create", "core", "--supernet", "corp", "--size", "16", "-c", "bank")
    outside = cli("net", "subnet", "create", "bank", "core", "x", "--cidr", "10.9.0.0/24")
    assert outside.exit_code == 1
    assert "prefix_outside_parent" in outside.stderr
    member = cli(
        "net",
        "vpc",
        "create",
        "y",
        "--supernet",
        "corp",
        "--size",
        "24",
        token=cli.stack.world.card_member,
    )
    assert member.exit_code == 1
    assert "forbidden" in member.stderr
    assert cli("net", "ip", "release", "not-a-number").exit_code == 2


def test_net_pools_quotas_floating_addresses_plan_and_interfaces(cli: Cli, tmp_path: Path) -> None:
    lead = cli.stack.world.bank_admin
    pool = cli.json("net", "segment-pool", "add", "vni", "vxlan", "5000-5099")
    assert (pool["kind"], pool["size"], pool["zone"]) == ("vxlan", 100, "shared")
    assert cli("net", "segment-pool", "add", "bad", "vlan", "10-").exit_code == 2
    assert cli("net", "segment-pool", "add", "bad", "vlan", "1-5000").exit_code == 2
    cli.ok("net", "supernet", "add", "corp", "10.0.0.0/8")
    cli.ok("net", "supernet", "add", "internet", "198.51.100.0/28", "--purpose", "public")
    quota = cli.json("net", "quota", "set", "bank", "vpcs", "1")
    assert (quota["limit"], quota["used"]) == (1, 0)
    vpc = cli.json("net", "vpc", "create", "core", "--supernet", "corp", "--size", "16", token=lead)
    assert vpc["segment"] == 5000
    refused = cli("net", "vpc", "create", "more", "--supernet", "corp", "--size", "16", token=lead)
    assert refused.exit_code == 1
    assert "network_quota_exceeded" in refused.stderr
    cli.ok("net", "subnet", "create", "bank", "core", "web", "--size", "24", token=lead)
    made = cli.json(
        "alloc", "create", "-p", "web", "-r", "VCPU=1", "-n", "2", "-i", "web:2", token=lead
    )
    units = [[a["address"] for a in u["addresses"]] for u in made["units"]]
    assert units == [["10.0.0.2", "10.0.0.3"], ["10.0.0.4", "10.0.0.5"]]
    assert cli("alloc", "create", "-p", "web", "-r", "VCPU=1", "-i", "web:x").exit_code == 2
    fixed = cli.json("net", "ip", "allocate", "bank", "web", token=lead)
    fip = cli.json(
        "net", "fip", "allocate", "internet", "--attach-to", str(fixed["id"]), token=lead
    )
    assert (fip["kind"], fip["address"], fip["attached_to"]) == (
        "floating",
        "198.51.100.2",
        fixed["id"],
    )
    assert cli.json("net", "fip", "detach", str(fip["id"]), token=lead)["attached_to"] is None
    listed = cli.json("net", "fip", "list", token=lead)["items"]
    assert [f["address"] for f in listed] == ["198.51.100.2"]
    table = cli.ok("net", "quota", "list", "-c", "bank").stdout
    assert "floating_ips" in table
    assert "no limit" in table
    out = tmp_path / "plan.csv"
    cli.ok("net", "plan", "bank", "--format", "csv", "-o", str(out), token=lead)
    rows = out.read_text().splitlines()
    assert rows[0].startswith("kind,vpc,subnet,prefix,address,segment")
    assert sum(r.startswith("fixed_ip,") for r in rows) == 5
    assert any(r.startswith("floating_ip,") and "198.51.100.2" in r for r in rows)
    doc = json.loads(cli.ok("net", "plan", "bank", token=lead).stdout)
    assert doc["vpcs"][0]["vni"] == 5000
    busy = cli("net", "subnet", "delete", "bank", "web", token=lead)
    assert busy.exit_code == 1
    assert "prefix_in_use" in busy.stderr
    cli.ok("alloc", "release", made["id"], token=lead)
    shown = cli.json("net", "subnet", "show", "bank", "web", token=lead)
    assert shown["quarantined"] == 4

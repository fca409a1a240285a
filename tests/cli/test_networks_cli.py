"""The net commands against a real server: carve, hand out, release, and refusals with
their problem codes (exit 1) or usage errors (exit 2)."""

from __future__ import annotations

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

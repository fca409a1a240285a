"""The net rule, peering, ban and check commands against a real server: the handshake of
two companies, a port opened, verdicts with their exit codes, and refusals."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli


def _plan(cli: Cli) -> str:
    """bank/core 10.0.0.0/16 and card/pay 10.1.0.0/16; returns a card company-admin token."""
    cli.ok("net", "supernet", "add", "corp", "10.0.0.0/8")
    cli.ok("net", "vpc", "create", "core", "--supernet", "corp", "--size", "16", "-c", "bank")
    cli.ok("net", "vpc", "create", "pay", "--supernet", "corp", "--size", "16", "-c", "card")
    made = cli.json("token", "create", "card-lead", "--role", "company-admin", "--company", "card")
    secret: str = made["secret"]
    return secret


def test_two_companies_peer_open_a_port_and_check_it(cli: Cli) -> None:
    card_lead = _plan(cli)
    bank_lead, card_dev = cli.stack.world.bank_admin, cli.stack.world.card_member
    asked = cli.json("net", "peering", "request", "core", "card/pay", token=bank_lead)
    assert (asked["state"], asked["accepter"]["vpc"]) == ("pending", "pay")
    refused = cli("net", "peering", "accept", str(asked["id"]), token=card_dev)
    assert refused.exit_code == 1
    assert "forbidden" in refused.stderr
    table = cli.ok("net", "peering", "accept", str(asked["id"]), token=card_lead).stdout
    assert "active" in table
    assert "bank/core" in table

    denied = cli("net", "check", "10.0.0.5", "10.1.0.9", "--port", "443", token=bank_lead)
    assert denied.exit_code == 1
    assert denied.stdout.startswith("denied: no_egress_rule: no egress rule of bank/core")
    out = ("net", "rule", "add", "bank", "core", "egress", "10.1.0.0/16", "--protocol", "any")
    cli.ok(*out, token=bank_lead)
    rule = cli.json(
        "net", "rule", "add", "card", "pay", "ingress", "10.0.0.0/16", "--protocol", "tcp",
        "--port", "443-444", "--description", "core to payments", token=card_lead,
    )  # fmt: skip
    assert (rule["port_from"], rule["port_to"]) == (443, 444)
    allowed = cli.ok("net", "check", "10.0.0.5", "10.1.0.9", "--port", "443", token=card_lead)
    assert allowed.stdout.splitlines() == [
        "allowed: allowed_by_rules: bank/core and card/pay are peered; an egress rule of "
        "bank/core and an ingress rule of card/pay allow tcp port 443",
        "  egress rule of bank/core: another company's (not shown)",
        f"  ingress rule {rule['id']} of card/pay: tcp 443-444 10.0.0.0/16 core to payments",
    ]
    verdict = cli("net", "check", "10.0.0.5", "10.1.0.9", "--port", "22", "--json")
    assert verdict.exit_code == 1
    assert json.loads(verdict.stdout)["reason"] == "no_ingress_rule"

    listed = cli.ok("net", "rule", "list", "card", "pay", token=card_dev).stdout
    assert "443-444" in listed
    assert "core to payments" in listed
    assert cli("net", "rule", "list", "card", "pay", token=bank_lead).exit_code == 1  # not_found
    cli.ok("net", "rule", "delete", str(rule["id"]), token=card_lead)
    assert cli.json("net", "rule", "list", "card", "pay", token=card_dev)["items"] == []
    peerings = cli.json("net", "peering", "list", "--state", "active", token=card_dev)
    assert [p["id"] for p in peerings["items"]] == [asked["id"]]
    ended = cli.json("net", "peering", "delete", str(asked["id"]), token=card_lead)
    assert ended["state"] == "deleted"


def test_bans_and_refusals_from_the_command_line(cli: Cli) -> None:
    _plan(cli)
    asked = cli.json("net", "peering", "request", "bank/core", "card/pay")
    added = cli.ok("net", "ban", "add", "data_class", "internal", "internal").stdout
    assert f"live peerings it forbids (they stay until deleted): {asked['id']}" in added
    ban = cli.json("net", "ban", "list")[0]
    assert (ban["kind"], ban["side_a"], ban["side_b"]) == ("data_class", "internal", "internal")
    forbidden = cli("net", "peering", "accept", str(asked["id"]))
    assert forbidden.exit_code == 1
    assert "peering_forbidden" in forbidden.stderr
    assert f"banned by {ban['id']}" in cli.ok("net", "peering", "list").stdout
    cli.ok("net", "ban", "delete", str(ban["id"]))
    assert cli.json("net", "peering", "reject", str(asked["id"]))["state"] == "rejected"

    rule = ("net", "rule", "add", "bank", "core", "ingress")
    usage = [
        ((*rule, "10.0.0.0/8", "--protocol", "tcp", "--port", "x-1"), "expected PORT or"),
        ((*rule, "10.0.0.1/8", "--protocol", "tcp"), "is not a CIDR prefix"),
        ((*rule, "10.0.0.0/8", "--protocol", "icmp", "--port", "8"), "icmp rules take no"),
        (("net", "ban", "add", "data_class", "internal", "secret"), "not a data class"),
        (("net", "check", "10.0.0.5", "10.0.0.6"), "needs a destination port"),
        (("net", "check", "10.0.0.5", "fd00::1", "--protocol", "icmp"), "one address"),
    ]
    for args, message in usage:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    same = cli.ok("net", "check", "10.0.0.5", "10.0.0.6", "--protocol", "icmp").stdout
    assert same.startswith("allowed: same_vpc")

"""groupcloud zone add/set/list/show with the placement rules' attributes, and alloc
create/show/explain with a data class and system type, against a real server."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.cli.conftest import Cli


def _api(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_zone_add_set_list_and_show_the_rule_attributes(cli: Cli) -> None:
    added = cli.json(
        "zone", "add", "ext-kr", "--kind", "external", "--country", "KR",
        "--internet-separated", "--certification", "cloud_security_assessment",
        "--certification", "csap", "--approved", "--approved-for-d3",
    )  # fmt: skip
    assert added == _api(cli.stack.admin, "/v1/zones/ext-kr")
    assert added["certifications"] == ["cloud_security_assessment", "csap"]
    assert (added["internet_separated"], added["approved_for_d3"]) == (True, True)

    changed = cli.json("zone", "set", "ext-kr", "--data-class", "D1", "--data-class", "D2",
                       "--internet-connected")  # fmt: skip
    assert (changed["data_classes"], changed["internet_separated"]) == (["D1", "D2"], False)
    assert changed["country"] == "KR"  # left out: kept

    table = cli.ok("zone", "list").stdout
    assert re.search(r"ext-kr\s*│\s*external\s*│\s*-\s*│\s*KR\s*│\s*no\s*│", table), table
    assert re.search(r"shared\s*│\s*shared\s*│.*│\s*private\s*│\s*private\s*│", table), table
    shown = cli.ok("zone", "show", "ext-kr").stdout
    assert "cloud_security_assessment,csap" in shown
    assert "D1,D2" in shown
    assert cli.json("zone", "list") == _api(cli.stack.admin, "/v1/zones")


def test_zone_commands_refuse_bad_attributes_and_empty_changes(cli: Cli) -> None:
    bad = cli("zone", "add", "z", "--country", "Korea")
    assert bad.exit_code == 2
    assert "country" in bad.stderr
    wrong = cli("zone", "add", "z", "--data-class", "D4")
    assert wrong.exit_code == 2
    nothing = cli("zone", "set", "shared")
    assert nothing.exit_code == 2
    assert "nothing to change" in nothing.stderr
    private = cli("zone", "set", "shared", "--approved")
    assert private.exit_code == 1
    assert "external zones only" in private.stderr


def test_alloc_create_with_a_data_class_and_explain_names_the_rules(cli: Cli) -> None:
    cli.ok("zone", "add", "ext-us", "--kind", "external", "--country", "US", "--approved")
    member = cli.stack.world.bank_member
    d2 = cli.json("alloc", "create", "-p", "web", "-r", "VCPU=1", "--data-class", "D2",
                  token=member)  # fmt: skip
    assert (d2["data_class"], d2["system_type"]) == ("D2", "external_service")
    shown = cli.ok("alloc", "show", d2["id"], token=member).stdout
    assert "data class D2, system type external_service" in shown
    d3 = cli.json("alloc", "create", "-p", "web", "-r", "VCPU=1", token=member)
    assert d3["data_class"] == "D3"
    explained = cli.ok("alloc", "explain", d3["id"], token=member).stdout
    assert "ext-us: removed by d3_private_or_assessed_kr_external" in explained
    assert "shared: allowed by zone_data_classes" in explained
    refused = cli("alloc", "create", "-p", "web", "-r", "VCPU=1", "--zone", "ext-us",
                  "--no-queue", token=member)  # fmt: skip
    assert refused.exit_code == 1
    assert "d3_private_or_assessed_kr_external" in refused.stderr


def test_project_add_and_update_set_the_default_data_class_and_system_type(cli: Cli) -> None:
    added = cli.json("project", "add", "bank", "ledger", "--data-class", "D2",
                     "--system-type", "internal_business")  # fmt: skip
    assert (added["default_data_class"], added["default_system_type"]) == (
        "D2",
        "internal_business",
    )
    changed = cli.json("project", "update", "bank", "ledger", "--data-class", "D1")
    assert (changed["default_data_class"], changed["default_system_type"]) == (
        "D1",
        "internal_business",
    )
    assert re.search(r"ledger\s*│.*│\s*D1\s*│\s*internal_business\s*│",
                     cli.ok("project", "list", "bank").stdout)  # fmt: skip
    nothing = cli("project", "update", "bank", "ledger")
    assert nothing.exit_code == 2


def test_zone_lending_is_set_shown_and_cleared(cli: Cli) -> None:
    added = cli.json("zone", "add", "bank-local", "--kind", "local", "--owner", "bank",
                     "--lend-to", "card")  # fmt: skip
    assert added["lent_to"] == ["card"]
    assert "bank (lent: card)" in cli.ok("zone", "list").stdout
    cleared = cli.json("zone", "set", "bank-local", "--clear", "lending")
    assert cleared["lent_to"] == []
    wrong = cli("zone", "set", "shared", "--lend-to", "card")
    assert wrong.exit_code == 1
    assert "local zones only" in wrong.stderr

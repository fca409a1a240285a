"""groupcloud provider add/set/list/show/remove, zone add --provider/--region and
--clear, groupcloud offers, and alloc create --zone-kind external / --burst against a
real server."""

from __future__ import annotations

from groupcloud.services.providers import provisioner
from tests.cli.conftest import Cli


def test_provider_commands_and_external_zones(cli: Cli) -> None:
    added = cli.json("provider", "add", "sim", "--kind", "simulated", "--set", "latency_s=0",
                     "--set", "seed=7", "--description", "test cloud")  # fmt: skip
    assert added["settings"] == {"latency_s": 0, "seed": 7}
    zone = cli.json("zone", "add", "ext-kr", "--kind", "external", "--provider", "sim",
                    "--region", "kr-central-1", "--country", "KR", "--certification",
                    "cloud_security_assessment", "--approved", "--approved-for-d3")  # fmt: skip
    assert (zone["provider"], zone["region"]) == ("sim", "kr-central-1")
    assert "sim/kr-central-1" in cli.ok("zone", "list").stdout
    listed = cli.ok("provider", "list").stdout
    assert "sim" in listed
    assert "ext-kr" in listed
    shown = cli.ok("provider", "show", "sim").stdout
    assert '"seed": 7' in shown
    changed = cli.json("provider", "set", "sim", "--set", "seed=8")
    assert changed["settings"] == {"seed": 8}
    bad = cli("provider", "set", "sim", "--set", "latency")
    assert bad.exit_code == 2
    assert "key=value" in bad.stderr
    refused = cli("provider", "set", "sim", "--set", "latency=1")
    assert refused.exit_code != 0
    assert "latency" in refused.stderr
    assert cli("provider", "set", "sim").exit_code == 2
    in_use = cli("provider", "remove", "sim")
    assert in_use.exit_code != 0
    assert "provider_in_use" in in_use.stderr + in_use.stdout

    offers = cli.ok("offers", "--data-class", "D3", "--vcpu", "8", "--memory-gb", "32").stdout
    assert "ext-kr" in offers
    assert "KRW/H" in offers
    none = cli.ok("offers", "--system-type", "internal_business").stdout
    assert "internal_business_internet_separated" in none
    as_json = cli.json("offers", "--data-class", "D2", "--vcpu", "2", "--limit", "3")
    assert 1 <= len(as_json["offers"]) <= 3

    a = cli.json("alloc", "create", "-p", "web", "-r", "VCPU=2", "-r", "MEMORY_MB=4096",
                 "--zone-kind", "external", token=cli.stack.world.bank_member)  # fmt: skip
    assert a["state"] == "provisioning"
    assert a["units"][0]["zone"] == "ext-kr"
    provisioner.step(cli.stack.rt)
    shown = cli.ok("alloc", "show", a["id"], token=cli.stack.world.bank_member).stdout
    assert "KRW/h" in shown
    assert "active" in shown
    burst = cli.json("alloc", "create", "-p", "web", "-r", "VCPU=20", "--burst",
                     token=cli.stack.world.bank_member)  # fmt: skip
    assert burst["external"] is True

    cleared = cli.json("zone", "set", "ext-kr", "--clear", "provider", "--clear", "country")
    assert (cleared["provider"], cleared["region"], cleared["country"]) == (None, None, None)
    assert cli("zone", "set", "ext-kr", "--clear", "kind").exit_code == 2

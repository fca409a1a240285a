"""Client commands against a real server: tables for people, ``--json`` equal to the API."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from groupcloud.cli.main import app
from tests.cli.conftest import Cli


def _api(client: httpx.Client, path: str, **params: str) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_whoami_names_the_token_given_by_option_or_environment(cli: Cli) -> None:
    assert cli.ok("whoami").stdout == "ops: group-admin\n"
    member = cli.stack.world.bank_member
    assert cli.ok("whoami", token=member).stdout == "bank-dev: member of bank\n"
    assert cli.json("whoami", token=member) == {
        "name": "bank-dev",
        "role": "member",
        "company": "bank",
    }

    # --url and --token default to GROUPCLOUD_URL and GROUPCLOUD_TOKEN.
    result = cli.runner.invoke(
        app,
        ["whoami", "--json"],
        env={"GROUPCLOUD_URL": cli.stack.url, "GROUPCLOUD_TOKEN": cli.stack.world.card_member},
    )
    assert result.exit_code == 0, result.stderr
    assert '"company": "card"' in result.stdout


def test_host_lifecycle_add_show_set_inventory_drain_resume_remove(cli: Cli) -> None:
    admin = cli.stack.admin
    added = cli.json(
        "host", "add", "cpu-9", "-r", "VCPU=8,ratio=4", "-r", "MEMORY_MB=4096,reserved=96",
        "-t", "ssd", "-t", "rack=r1",
    )  # fmt: skip
    assert added == _api(admin, "/v1/hosts/cpu-9")
    assert added["inventories"]["VCPU"]["capacity"] == 32
    assert added["inventories"]["MEMORY_MB"]["capacity"] == 4000
    assert added["traits"] == ["rack=r1", "ssd"]

    shown = cli.ok("host", "show", "cpu-9").stdout
    assert "cpu-9" in shown
    assert re.search(r"VCPU\s*│\s*8\s*│\s*0\s*│\s*4\s*│\s*32\s*│\s*0\s*│\s*32", shown), shown
    assert cli.json("host", "show", "cpu-9") == _api(admin, "/v1/hosts/cpu-9")

    changed = cli.json("host", "set-inventory", "cpu-9", "-r", "VCPU=16", "-r", "GPU=2")
    assert set(changed["inventories"]) == {"GPU", "VCPU"}
    assert changed["inventories"]["VCPU"]["capacity"] == 16

    assert "draining" in cli.ok("host", "drain", "cpu-9").stdout
    assert _api(admin, "/v1/hosts/cpu-9")["state"] == "draining"
    assert cli.json("host", "resume", "cpu-9")["state"] == "active"
    assert cli.json("host", "remove", "cpu-9")["state"] == "removed"
    assert admin.get("/v1/hosts/cpu-9").status_code == 404


def test_host_list_shows_used_over_capacity_and_pages_with_cursor(cli: Cli) -> None:
    table = cli.ok("host", "list").stdout
    assert re.search(r"h1\s*│\s*shared\s*│\s*active\s*│\s*0/16\s*│\s*0/65536", table), table
    listed = cli.json("host", "list")
    assert listed == _api(cli.stack.admin, "/v1/hosts")

    first = cli.ok("host", "list", "--limit", "3").stdout
    found = re.search(r"more: add --cursor (\S+)", first)
    assert found, first
    rest = cli.json("host", "list", "--limit", "3", "--cursor", found.group(1))
    assert [h["name"] for h in rest["items"]] == ["h4"]
    assert rest["next_cursor"] is None


def test_quota_set_and_show(cli: Cli) -> None:
    assert "card" in cli.ok("quota", "set", "card", "GPU", "2").stdout
    shown = cli.json("quota", "show", "card")
    assert shown == _api(cli.stack.admin, "/v1/quotas", company="card")
    assert {q["resource_class"]: q["nominal"] for q in shown} == {
        "GPU": 2,
        "MEMORY_MB": 65536,
        "VCPU": 16,
    }
    table = cli.ok("quota", "show").stdout
    cells = r"\s*│\s*".join(["bank", "VCPU", "32", "0", "all", "0", "0", "0", "32", r"0\.0"])
    assert re.search(cells, table), table


def test_alloc_create_list_show_release(cli: Cli) -> None:
    member = cli.stack.world.bank_member
    made = cli.json(
        "alloc", "create", "-p", "web", "-r", "VCPU=2", "-r", "MEMORY_MB=1024", "-n", "3",
        "--anti-affinity-group", "replicas", "--strategy", "spread",
        token=member,
    )  # fmt: skip
    assert made["resources"] == {"MEMORY_MB": 1024, "VCPU": 2}
    assert made["count"] == 3
    assert made["anti_affinity_group"] == "replicas"
    assert made["strategy"] == "spread"
    assert len({u["host"] for u in made["units"]}) == 3
    assert made == _api(cli.stack.bank, f"/v1/allocations/{made['id']}")

    gpu = cli.json(
        "alloc", "create", "-p", "batch", "-r", "GPU=1", "-r", "VCPU=1", "-t", "ssd", token=member
    )
    assert [u["host"] for u in gpu["units"]] == ["h1"]
    assert gpu["required_traits"] == ["ssd"]

    table = cli.ok("alloc", "list", token=member).stdout
    assert made["id"] in table
    assert gpu["id"] in table
    assert "MEMORY_MB=1024" in table
    assert "VCPU=2" in table
    assert cli.json("alloc", "list", "--project", "batch", token=member)["items"] == [gpu]
    shown = cli.ok("alloc", "show", made["id"], token=member).stdout
    for unit in made["units"]:
        assert f"unit {unit['unit']}: {unit['host']}" in shown

    released = cli.json("alloc", "release", made["id"], token=member)
    assert released["state"] == "released"
    assert cli.json("alloc", "release", made["id"], token=member) == released
    active = cli.json("alloc", "list", "--state", "active", token=member)
    assert [a["id"] for a in active["items"]] == [gpu["id"]]
    assert cli.json("alloc", "list", "--host", "h1", "--state", "active")["items"] == [gpu]


def test_alloc_create_with_a_gpu_share_and_model(cli: Cli) -> None:
    member = cli.stack.world.bank_member
    made = cli.json(
        "alloc", "create", "-p", "batch", "-r", "VCPU=1", "-n", "2", "--gpu-share", "25%",
        token=member,
    )  # fmt: skip
    assert made["gpu_share"] == 250
    assert [u["host"] for u in made["units"]] == ["h1", "h1"]
    assert made["units"][0]["gpu_device"] == made["units"][1]["gpu_device"] is not None
    assert made == _api(cli.stack.bank, f"/v1/allocations/{made['id']}")
    assert "GPU share=0.25" in cli.ok("alloc", "list", token=member).stdout
    shown = cli.ok("alloc", "show", made["id"], token=member).stdout
    assert f"unit 0: h1 (GPU {made['units'][0]['gpu_device']})" in shown

    for share in ("1", "0", "0.0005", "half"):
        bad = cli("alloc", "create", "-p", "batch", "-r", "VCPU=1", "--gpu-share", share)
        assert bad.exit_code == 2, (share, bad.stdout)
        assert "part of one GPU" in bad.stderr
    both = cli("alloc", "create", "-p", "batch", "-r", "GPU=1", "--gpu-share", "0.5")
    assert both.exit_code == 2
    assert "not both" in both.stderr
    modelled = cli("alloc", "create", "-p", "batch", "-r", "VCPU=1", "--gpu-model", "A100")
    assert modelled.exit_code == 2
    assert "gpu_models needs GPUs" in modelled.stderr


def test_alloc_create_with_idempotency_key_claims_once(cli: Cli) -> None:
    member = cli.stack.world.card_member
    args = ["alloc", "create", "-p", "pay", "-r", "VCPU=4", "--idempotency-key", "job-7"]
    first = cli.json(*args, token=member)
    second = cli.json(*args, token=member)
    assert first["id"] == second["id"]
    quotas = _api(cli.stack.admin, "/v1/quotas", company="card")
    assert {q["resource_class"]: q["used"] for q in quotas}["VCPU"] == 4


def test_usage_by_each_scope_matches_the_api(cli: Cli) -> None:
    cli.ok("alloc", "create", "-c", "bank", "-p", "web", "-r", "VCPU=8")
    for by in ("pool", "zone", "host", "company"):
        assert cli.json("usage", "--by", by) == _api(cli.stack.admin, "/v1/usage", by=by), by
    assert cli.json("usage", "--by", "company", "--company", "bank", "--class", "VCPU") == {
        "items": [
            {
                "scope": "company",
                "name": "bank",
                "resource_class": "VCPU",
                "capacity": 32,
                "used": 8,
                "free": 24,
                "used_pct": 25.0,
            }
        ],
        "next_cursor": None,
    }
    table = cli.ok("usage").stdout
    assert re.search(r"pool\s*│\s*VCPU\s*│\s*64\s*│\s*8\s*│\s*56\s*│\s*12\.5", table), table


def test_company_project_and_zone_commands(cli: Cli) -> None:
    added = cli.ok("company", "add", "capital", "Group Capital").stdout
    assert "capital" in added
    assert "Group Capital" in added
    companies = cli.json("company", "list")
    assert [c["slug"] for c in companies["items"]] == ["bank", "card", "capital"]
    assert companies == _api(cli.stack.admin, "/v1/companies")

    cli.ok("project", "add", "capital", "loans", "--name", "Loan scoring")
    projects = cli.json("project", "list", "capital")
    assert [(p["slug"], p["name"]) for p in projects["items"]] == [("loans", "Loan scoring")]
    bank_admin = cli.stack.world.bank_admin
    cli.ok("project", "add", "bank", "mobile", token=bank_admin)
    mine = cli.json("project", "list", "bank", token=bank_admin)
    assert [p["slug"] for p in mine["items"]] == ["web", "batch", "mobile"]

    zones = cli.json("zone", "list")
    assert [z["name"] for z in zones] == ["shared"]
    assert zones == _api(cli.stack.admin, "/v1/zones")
    assert re.search(r"shared\s*│\s*shared", cli.ok("zone", "list").stdout)


def test_token_create_list_revoke(cli: Cli) -> None:
    printed = cli.ok("token", "create", "deployer", "--role", "member", "--company", "card")
    secret = re.search(r"gc_[A-Za-z0-9_-]{43}", printed.stdout)
    assert secret, printed.stdout
    assert cli.json("whoami", token=secret.group(0))["name"] == "deployer"

    listed = cli.json("token", "list", "--company", "card")
    assert [t["name"] for t in listed["items"]] == ["card-dev", "deployer"]
    assert secret.group(0) not in cli.ok("token", "list").stdout
    token_id = str(listed["items"][1]["id"])

    revoked = cli.ok("token", "revoke", token_id).stdout
    assert "deployer" in revoked
    assert cli.stack.client(secret.group(0)).get("/v1/whoami").status_code == 401
    created = cli.json("token", "create", "ops-2", "--role", "group-admin")
    assert created["secret"].startswith("gc_")


def test_events_filters(cli: Cli) -> None:
    made = cli.json("alloc", "create", "-c", "card", "-p", "pay", "-r", "VCPU=1")
    cli.ok("alloc", "release", made["id"])
    events = cli.json("events", "--kind", "allocation.", "--company", "card")
    assert [e["kind"] for e in events["items"]] == ["allocation.created", "allocation.released"]
    assert events == _api(cli.stack.admin, "/v1/events", kind="allocation.", company="card")
    subject = cli.json("events", "--subject", f"allocation/{made['id']}", "--limit", "1")
    assert len(subject["items"]) == 1
    assert subject["next_cursor"]
    table = cli.ok("events", "--kind", "allocation.released").stdout
    assert f"allocation/{made['id']}" in table
    assert "token:ops" in table


def test_commands_that_change_one_object_print_that_object_as_the_api_does(cli: Cli) -> None:
    """``--json`` prints what the API answered: one object for one object (host add and
    alloc create do; quota set, company add, project add, zone add and token revoke printed
    a list of one)."""
    admin = cli.stack.admin
    token_id = str(admin.get("/v1/tokens").json()["items"][3]["id"])
    expected: dict[str, tuple[list[str], Callable[[], Any]]] = {
        "quota set": (
            ["quota", "set", "bank", "GPU", "3"],
            lambda: next(
                q for q in _api(admin, "/v1/quotas", company="bank") if q["resource_class"] == "GPU"
            ),
        ),
        "company add": (
            ["company", "add", "savings", "Savings"],
            lambda: _api(admin, "/v1/companies/savings"),
        ),
        "project add": (
            ["project", "add", "bank", "ml"],
            lambda: _api(admin, "/v1/companies/bank/projects")["items"][-1],
        ),
        "zone add": (
            ["zone", "add", "edge", "--description", "Branch offices"],
            lambda: next(z for z in _api(admin, "/v1/zones") if z["name"] == "edge"),
        ),
        "token revoke": (
            ["token", "revoke", token_id],
            lambda: _api(admin, "/v1/tokens")["items"][3],
        ),
    }
    shapes: dict[str, str] = {}
    for name, (args, api) in expected.items():
        printed = cli.json(*args)
        shapes[name] = "same as the API" if printed == api() else f"printed {printed!r}"
    assert shapes == dict.fromkeys(expected, "same as the API")

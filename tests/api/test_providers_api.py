"""Providers, external zones, offers and an external allocation's life over real HTTP:
registration (group admins), settings hidden from other roles, bad settings as 422
problems naming the field, a provider in use refused, offers as the rules allow them, and
an allocation that bursts, provisions, releases and returns its quota."""

from __future__ import annotations

from typing import Any

from groupcloud.services.providers import provisioner
from tests.api.stack import Stack, assert_problem, quota_used

KR = {
    "name": "ext-kr",
    "kind": "external",
    "provider": "sim",
    "region": "kr-central-1",
    "country": "KR",
    "certifications": ["cloud_security_assessment"],
    "approved": True,
    "approved_for_d3": True,
}


def _hybrid(stack: Stack) -> None:
    made = stack.admin.post(
        "/v1/providers", json={"name": "sim", "kind": "simulated", "settings": {"seed": 1}}
    )
    assert made.status_code == 201, made.text
    zone = stack.admin.post("/v1/zones", json=KR)
    assert zone.status_code == 201, zone.text


def test_providers_are_registered_by_group_admins_and_read_by_all(sqlite_stack: Stack) -> None:
    _hybrid(sqlite_stack)
    admin, bank = sqlite_stack.admin, sqlite_stack.bank
    shown = admin.get("/v1/providers/sim").json()
    assert shown["settings"] == {"seed": 1}
    assert shown["zones"] == ["ext-kr"]
    assert shown["regions"] == ["kr-central-1"]
    as_member = bank.get("/v1/providers").json()
    assert [p["name"] for p in as_member] == ["sim"]
    assert as_member[0]["settings"] is None  # settings are the operators' business
    assert_problem(bank.post("/v1/providers", json={"name": "x", "kind": "simulated"}),
                   403, "forbidden")  # fmt: skip
    assert_problem(admin.get("/v1/providers/nope"), 404, "not_found")
    assert_problem(
        admin.post("/v1/providers", json={"name": "sim", "kind": "simulated"}), 409,
        "already_exists",
    )  # fmt: skip
    bad = assert_problem(
        admin.post("/v1/providers", json={"name": "y", "kind": "simulated",
                                           "settings": {"latency": 1}}), 422, "validation_error",
    )  # fmt: skip
    assert "latency" in bad["detail"]
    assert_problem(admin.post("/v1/providers", json={"name": "z", "kind": "azure"}),
                   422, "validation_error")  # fmt: skip
    assert_problem(admin.delete("/v1/providers/sim"), 409, "provider_in_use")
    zone = admin.get("/v1/zones/ext-kr").json()
    assert (zone["provider"], zone["region"]) == ("sim", "kr-central-1")
    half = admin.post("/v1/zones", json={"name": "ext-x", "kind": "external", "provider": "sim"})
    assert_problem(half, 422, "validation_error")
    private = admin.post("/v1/zones", json={"name": "p", "provider": "sim", "region": "r1"})
    assert_problem(private, 422, "validation_error")
    assert_problem(admin.post("/v1/zones", json={**KR, "name": "e2", "provider": "nope"}),
                   404, "not_found")  # fmt: skip
    cleared = admin.patch("/v1/zones/ext-kr", json={"provider": None, "region": None})
    assert cleared.status_code == 200, cleared.text
    assert admin.delete("/v1/providers/sim").status_code == 204
    assert admin.get("/v1/providers").json() == []
    kinds = [e["kind"] for e in admin.get("/v1/events", params={"subject": "provider/sim"})
             .json()["items"]]  # fmt: skip
    assert kinds == ["provider.created", "provider.deleted"]


def test_offers_follow_the_rules(sqlite_stack: Stack) -> None:
    _hybrid(sqlite_stack)
    bank = sqlite_stack.bank
    d3 = bank.get("/v1/offers", params={"data_class": "D3", "vcpu": 8, "memory_gb": 32})
    assert d3.status_code == 200, d3.text
    body: dict[str, Any] = d3.json()
    assert body["offers"]
    assert {o["zone"] for o in body["offers"]} == {"ext-kr"}
    prices = [float(o["price_per_hour"]) for o in body["offers"]]
    assert prices == sorted(prices)
    assert all(o["vcpu"] >= 8 and o["memory_mb"] >= 32 * 1024 for o in body["offers"])
    internal = bank.get("/v1/offers", params={"system_type": "internal_business"}).json()
    assert internal["offers"] == []
    assert internal["zones"][0]["removed_by"] == ["internal_business_internet_separated"]
    assert_problem(bank.get("/v1/offers", params={"data_class": "D9"}), 422, "validation_error")
    assert_problem(bank.get("/v1/offers", params={"limit": 0}), 422, "validation_error")


def test_an_external_allocation_over_http(sqlite_stack: Stack) -> None:
    _hybrid(sqlite_stack)
    rt, bank = sqlite_stack.rt, sqlite_stack.bank
    asked = bank.post("/v1/allocations", json={
        "project": "web", "resources": {"VCPU": 20, "MEMORY_MB": 8192}, "burst": True,
    })  # fmt: skip
    assert asked.status_code == 201, asked.text
    a = asked.json()
    assert (a["state"], a["external"], a["units"][0]["zone"]) == ("provisioning", True, "ext-kr")
    assert float(a["cost_per_hour"]) > 0
    assert quota_used(bank, "bank")["VCPU"] == 20
    provisioner.step(rt)
    a = bank.get(f"/v1/allocations/{a['id']}").json()
    assert a["state"] == "active"
    assert a["units"][0]["instance_id"]
    assert sqlite_stack.card.get(f"/v1/allocations/{a['id']}").status_code == 404
    gone = bank.post(f"/v1/allocations/{a['id']}/release")
    assert gone.status_code == 200
    assert gone.json()["state"] == "releasing"
    provisioner.step(rt)
    assert bank.get(f"/v1/allocations/{a['id']}").json()["state"] == "released"
    assert quota_used(bank, "bank").get("VCPU", 0) == 0
    refused = bank.post("/v1/allocations", json={
        "project": "web", "resources": {"VCPU": 2, "CUSTOM_X": 1}, "zone_kind": "external",
    })  # fmt: skip
    assert_problem(refused, 422, "no_offer")

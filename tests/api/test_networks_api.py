"""Networks over real HTTP: problem documents with stable codes for bad input, refusals
that store nothing, the addressing plan as CSV, and another company's objects invisible."""

from __future__ import annotations

import csv
import io

from tests.api.stack import Stack, assert_problem


def _plan(stack: Stack) -> None:
    ok = stack.admin.post("/v1/networks/supernets", json={"name": "corp", "cidr": "10.0.0.0/8"})
    assert ok.status_code == 201, ok.text
    vpc = {"name": "core", "supernet": "corp", "prefixlen": 16}
    assert stack.bank_admin.post("/v1/networks/vpcs", json=vpc).status_code == 201
    sub = {"name": "tiny", "prefixlen": 30}
    made = stack.bank_admin.post("/v1/networks/vpcs/bank/core/subnets", json=sub)
    assert made.status_code == 201, made.text


def test_bad_network_input_is_a_problem_naming_the_field(sqlite_stack: Stack) -> None:
    _plan(sqlite_stack)
    admin, bank = sqlite_stack.admin, sqlite_stack.bank_admin
    cases = [
        ({"name": "x", "cidr": "10.0.0.1/8"}, "cidr", "is not a CIDR prefix"),
        ({"name": "x", "cidr": "300.0.0.0/8"}, "cidr", "is not a CIDR prefix"),
        ({"name": "x", "cidr": "10.0.0.0/8", "purpose": "dmz"}, "purpose", ""),
    ]
    for body, field, message in cases:
        problem = assert_problem(
            admin.post("/v1/networks/supernets", json=body), 422, "validation_error"
        )
        assert [e["field"] for e in problem["errors"]] == [field]
        assert message in problem["errors"][0]["message"]
    both = bank.post(
        "/v1/networks/vpcs",
        json={"name": "v", "supernet": "corp", "prefixlen": 20, "cidr": "10.9.0.0/20"},
    )
    assert (
        "exactly one of prefixlen and cidr"
        in assert_problem(both, 422, "validation_error")["detail"]
    )
    vlan = {"name": "p", "kind": "vlan", "first": 1, "last": 5000}
    assert (
        "up to 4094"
        in assert_problem(
            admin.post("/v1/networks/segment-pools", json=vlan), 422, "validation_error"
        )["detail"]
    )
    bad_ip = bank.post("/v1/networks/subnets/bank/tiny/ips", json={"address": "10.0.0.256"})
    assert [e["field"] for e in assert_problem(bad_ip, 422, "validation_error")["errors"]] == [
        "address"
    ]
    quota = admin.put("/v1/networks/quotas/bank/vlans", json={"limit": 1})
    assert [e["field"] for e in assert_problem(quota, 422, "validation_error")["errors"]] == [
        "kind"
    ]


def test_refusals_have_stable_codes_and_store_nothing(sqlite_stack: Stack) -> None:
    _plan(sqlite_stack)
    admin, bank, card = sqlite_stack.admin, sqlite_stack.bank_admin, sqlite_stack.card
    overlap = admin.post("/v1/networks/supernets", json={"name": "more", "cidr": "10.1.0.0/16"})
    assert assert_problem(overlap, 409, "prefix_overlaps")["overlaps"] == "10.0.0.0/8"
    outside = bank.post(
        "/v1/networks/vpcs/bank/core/subnets", json={"name": "o", "cidr": "10.9.0.0/24"}
    )
    assert assert_problem(outside, 422, "prefix_outside_parent")["parent"] == "10.0.0.0/16"
    assert bank.post("/v1/networks/subnets/bank/tiny/ips", json={}).status_code == 201
    full = bank.post("/v1/networks/subnets/bank/tiny/ips", json={})
    assert_problem(full, 409, "address_space_exhausted")
    big = bank.post("/v1/networks/vpcs", json={"name": "big", "supernet": "corp", "prefixlen": 8})
    assert assert_problem(big, 409, "address_space_exhausted")["largest_free"] == "10.128.0.0/9"
    assert admin.put("/v1/networks/quotas/bank/vpcs", json={"limit": 1}).json()["used"] == 1
    over = bank.post("/v1/networks/vpcs", json={"name": "two", "supernet": "corp", "prefixlen": 24})
    assert assert_problem(over, 409, "network_quota_exceeded")["limit"] == 1
    busy = bank.delete("/v1/networks/subnets/bank/tiny")
    assert assert_problem(busy, 409, "prefix_in_use")["holds"] == 1
    assert_problem(card.get("/v1/networks/subnets/bank/tiny/ips"), 404, "not_found")
    assert_problem(card.get("/v1/networks/plan/bank"), 404, "not_found")
    vpcs = admin.get("/v1/networks/vpcs").json()["items"]
    assert [v["name"] for v in vpcs] == ["core"]
    assert card.get("/v1/networks/vpcs").json()["items"] == []


def test_the_addressing_plan_downloads_as_csv(sqlite_stack: Stack) -> None:
    _plan(sqlite_stack)
    bank = sqlite_stack.bank_admin
    assert (
        bank.post("/v1/networks/subnets/bank/tiny/ips", json={"description": "gw-2"}).status_code
        == 201
    )
    got = bank.get("/v1/networks/plan/bank", params={"format": "csv"})
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["kind"], r["prefix"] or r["address"]) for r in rows] == [
        ("vpc", "10.0.0.0/16"),
        ("subnet", "10.0.0.0/30"),
        ("fixed_ip", "10.0.0.2"),
    ]
    assert rows[2]["description"] == "gw-2"
    doc = bank.get("/v1/networks/plan/bank").json()
    assert doc["vpcs"][0]["subnets"][0]["gateway"] == "10.0.0.1"

"""Network isolation over real HTTP: rules, the peering handshake between two companies,
bans, reachability, and every refusal as a problem document with its stable code."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem
from tests.support import import_supernet


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _plan(s: Stack) -> httpx.Client:
    """Supernet corp; bank/core 10.0.0.0/16, bank/batch 10.1.0.0/16, card/pay 10.2.0.0/16;
    returns a client of a card company admin."""
    _ok(s.admin.post("/v1/networks/supernets", json={"name": "corp", "cidr": "10.0.0.0/8"}), 201)
    for company, name in (("bank", "core"), ("bank", "batch"), ("card", "pay")):
        body = {"name": name, "supernet": "corp", "company": company, "prefixlen": 16}
        _ok(s.admin.post("/v1/networks/vpcs", json=body), 201)
    token = {"name": "card-lead", "role": "company-admin", "company": "card"}
    return s.client(_ok(s.admin.post("/v1/tokens", json=token), 201)["secret"])


Query = dict[str, str | int | None]


def _check(client: httpx.Client, source: str, destination: str, **more: str | int) -> Any:
    query: Query = {"source": source, "destination": destination, "protocol": "tcp", "port": 443}
    return _ok(client.get("/v1/networks/reachability", params={**query, **more}))


def test_two_companies_peer_and_open_one_port_over_http(stack: Stack) -> None:
    card_admin = _plan(stack)
    web = ("10.0.0.5", "10.2.0.9")
    assert _check(stack.admin, *web)["reason"] == "no_peering"

    asked = _ok(
        stack.bank_admin.post("/v1/networks/peerings", json={"vpc": "core", "peer": "card/pay"}),
        201,
    )
    assert (asked["state"], asked["requester"]["vpc"], asked["accepter"]["company"]) == (
        "pending",
        "core",
        "card",
    )
    again = stack.client(stack.world.admin).post(
        "/v1/networks/peerings", json={"vpc": "card/pay", "peer": "bank/core"}
    )
    assert assert_problem(again, 409, "already_exists")["peering"] == asked["id"]
    assert_problem(stack.card.post(f"/v1/networks/peerings/{asked['id']}/accept"), 403, "forbidden")
    accepted = _ok(card_admin.post(f"/v1/networks/peerings/{asked['id']}/accept"))
    assert accepted["state"] == "active"
    assert _ok(stack.card.get(f"/v1/networks/peerings/{asked['id']}")) == accepted

    out = _ok(
        stack.bank_admin.post(
            "/v1/networks/vpcs/bank/core/rules",
            json={"direction": "egress", "protocol": "tcp", "cidr": "10.2.0.0/16"},
        ),
        201,
    )
    assert _check(stack.bank, *web)["reason"] == "no_ingress_rule"
    into = _ok(
        card_admin.post(
            "/v1/networks/vpcs/card/pay/rules",
            json={
                "direction": "ingress",
                "protocol": "tcp",
                "cidr": "10.0.0.0/16",
                "port_from": 443,
            },
        ),
        201,
    )
    assert (into["port_from"], into["port_to"]) == (443, 443)
    seen = _check(stack.bank, *web)
    assert {k: seen[k] for k in ("allowed", "reason", "source_vpc", "destination_vpc")} == {
        "allowed": True,
        "reason": "allowed_by_rules",
        "source_vpc": "bank/core",
        "destination_vpc": "card/pay",
    }
    assert (seen["peering"], seen["egress_rule"], seen["ingress_rule"]) == (asked["id"], out, None)
    assert _check(stack.card, *web)["ingress_rule"] == into
    assert _check(stack.bank, *web, port=22)["reason"] == "no_ingress_rule"

    rules = _ok(stack.bank.get("/v1/networks/vpcs/bank/core/rules", params={"limit": 1}))
    assert ([r["id"] for r in rules["items"]], rules["next_cursor"]) == ([out["id"]], None)
    assert_problem(stack.card.get("/v1/networks/vpcs/bank/core/rules"), 404, "not_found")
    assert_problem(card_admin.delete(f"/v1/networks/rules/{out['id']}"), 404, "not_found")

    ended = _ok(card_admin.delete(f"/v1/networks/peerings/{asked['id']}"))
    assert ended["state"] == "deleted"
    assert _check(stack.bank, *web)["allowed"] is False
    problem = assert_problem(
        card_admin.post(f"/v1/networks/peerings/{asked['id']}/accept"), 409, "peering_not_pending"
    )
    assert problem["state"] == "deleted"
    kinds = [
        e["kind"] for e in _ok(stack.card.get("/v1/events", params={"kind": "network."}))["items"]
    ]
    assert kinds == [
        "network.vpc_created",
        "network.peering_requested",
        "network.peering_accepted",
        "network.rule_added",
        "network.peering_deleted",
    ]


def test_peerings_and_bans_are_paged_listed_and_refused_with_stable_codes(
    sqlite_stack: Stack,
) -> None:
    s = sqlite_stack
    card_admin = _plan(s)
    import_supernet(s.rt, "legacy", "10.0.0.0/16")  # the card's old plan reuses the bank's
    _ok(
        card_admin.post(
            "/v1/networks/vpcs", json={"name": "old", "supernet": "legacy", "cidr": "10.0.64.0/18"}
        ),
        201,
    )
    _ok(s.admin.post("/v1/networks/supernets", json={"name": "six", "cidr": "fd00::/8"}), 201)
    _ok(
        card_admin.post(
            "/v1/networks/vpcs", json={"name": "six", "supernet": "six", "prefixlen": 48}
        ),
        201,
    )

    def ask(client: httpx.Client, vpc: str, peer: str) -> httpx.Response:
        return client.post("/v1/networks/peerings", json={"vpc": vpc, "peer": peer})

    itself = assert_problem(ask(s.bank_admin, "core", "bank/core"), 422, "validation_error")
    assert itself["errors"] == [{"field": "peer", "message": "must be another VPC"}]
    bad_ref = assert_problem(ask(s.bank_admin, "core", "card/pay/x"), 422, "validation_error")
    assert bad_ref["errors"][0]["field"] == "peer"
    assert_problem(ask(s.bank_admin, "none", "card/pay"), 404, "not_found")  # one's own VPC
    assert_problem(ask(s.bank, "core", "card/pay"), 403, "forbidden")
    assert_problem(s.bank.get("/v1/networks/peerings/999"), 404, "not_found")

    first = _ok(ask(s.bank_admin, "core", "card/pay"), 201)
    second = _ok(ask(s.bank_admin, "core", "batch"), 201)
    assert second["state"] == "active"
    page = _ok(s.bank.get("/v1/networks/peerings", params={"limit": 1}))
    assert [p["id"] for p in page["items"]] == [first["id"]]
    rest = _ok(s.bank.get("/v1/networks/peerings", params={"cursor": page["next_cursor"]}))
    assert ([p["id"] for p in rest["items"]], rest["next_cursor"]) == ([second["id"]], None)
    pending = _ok(s.card.get("/v1/networks/peerings", params={"state": "pending"}))
    assert [p["id"] for p in pending["items"]] == [first["id"]]
    assert_problem(
        s.bank.get("/v1/networks/peerings", params={"state": "gone"}), 422, "validation_error"
    )

    ban = {"kind": "data_class", "side_a": "internal", "side_b": "internal"}
    assert_problem(s.bank_admin.post("/v1/networks/peering-bans", json=ban), 403, "forbidden")
    made = _ok(s.admin.post("/v1/networks/peering-bans", json=ban), 201)
    assert made["violating_peerings"] == [first["id"], second["id"]]
    assert_problem(s.admin.post("/v1/networks/peering-bans", json=ban), 409, "already_exists")
    wrong = assert_problem(
        s.admin.post("/v1/networks/peering-bans", json={**ban, "side_b": "secret"}),
        422,
        "validation_error",
    )
    assert "not a data class" in wrong["detail"]
    assert [b["id"] for b in _ok(s.card.get("/v1/networks/peering-bans"))] == [made["id"]]
    forbidden = assert_problem(
        card_admin.post(f"/v1/networks/peerings/{first['id']}/accept"), 409, "peering_forbidden"
    )
    assert forbidden["ban"] == {
        "id": made["id"],
        "kind": "data_class",
        "side_a": "internal",
        "side_b": "internal",
    }
    assert _ok(s.card.get(f"/v1/networks/peerings/{first['id']}"))["banned_by"] == made["id"]
    _ok(s.admin.delete(f"/v1/networks/peering-bans/{made['id']}"))
    assert_problem(s.admin.delete(f"/v1/networks/peering-bans/{made['id']}"), 404, "not_found")
    assert (
        _ok(card_admin.post(f"/v1/networks/peerings/{first['id']}/reject"))["state"] == "rejected"
    )

    # Between companies, what depends on the other VPC is checked when it accepts: the
    # request tells the requester nothing of that VPC.
    overlapping = _ok(ask(s.bank_admin, "core", "card/old"), 201)
    assert overlapping["accepter"] == {
        "company": "card",
        "vpc": "old",
        "cidr": None,
        "zone": None,
        "data_class": None,
    }
    accept = f"/v1/networks/peerings/{overlapping['id']}/accept"
    overlap = assert_problem(card_admin.post(accept), 409, "peering_prefixes_overlap")
    assert overlap["cidrs"] == ["10.0.0.0/16", "10.0.64.0/18"]
    assert "10.0.64.0/18" in overlap["detail"]
    mixed = _ok(ask(s.bank_admin, "core", "card/six"), 201)
    assert_problem(
        card_admin.post(f"/v1/networks/peerings/{mixed['id']}/accept"),
        422,
        "peering_address_families_differ",
    )


def test_bad_rules_and_flows_are_422_naming_the_field(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    _plan(s)
    rules = "/v1/networks/vpcs/bank/core/rules"
    for body, field, message in [
        ({"direction": "in", "protocol": "tcp", "cidr": "10.0.0.0/8"}, "direction", "'ingress'"),
        ({"direction": "ingress", "protocol": "tcp", "cidr": "10.0.0.1/8"}, "cidr", "CIDR"),
        (
            {"direction": "ingress", "protocol": "icmp", "cidr": "10.0.0.0/8", "port_from": 1},
            "port_from",
            "icmp rules take no ports",
        ),
        (
            {"direction": "ingress", "protocol": "tcp", "cidr": "10.0.0.0/8", "port_from": 70000},
            "port_from",
            "65535",
        ),
        ({"direction": "ingress", "protocol": "tcp", "cidr": "fd00::/8"}, "cidr", "is IPv6 but"),
    ]:
        problem = assert_problem(s.bank_admin.post(rules, json=body), 422, "validation_error")
        assert problem["errors"][0]["field"] == field, problem
        assert message in problem["detail"], problem
    assert _ok(s.bank.get(rules))["items"] == []

    base: Query = {"source": "10.0.0.5", "destination": "10.0.0.6", "protocol": "tcp", "port": 443}
    changes: list[tuple[Query, str, str]] = [
        ({"port": None}, "port", "needs a destination port"),
        ({"protocol": "any"}, "protocol", "one protocol"),
        ({"protocol": "icmp"}, "port", "icmp has no ports"),
        ({"source": "10.0.0.300"}, "source", "not an IPv4 or IPv6 address"),
        ({"destination": "fd00::1"}, "destination", "one address family"),
    ]
    for change, field, message in changes:
        query = {k: v for k, v in {**base, **change}.items() if v is not None}
        response = s.bank.get("/v1/networks/reachability", params=query)
        problem = assert_problem(response, 422, "validation_error")
        assert [(e["field"], e["location"]) for e in problem["errors"]] == [(field, "query")]
        assert message in problem["detail"], change
    assert _check(s.bank, "10.0.0.5", "10.0.0.6")["reason"] == "same_vpc"
    assert_problem(
        s.card.get("/v1/networks/reachability", params=base), 404, "not_found"
    )  # neither end is the card's


def test_a_peering_request_over_http_is_no_oracle_for_vpc_or_company_names(stack: Stack) -> None:
    """The same status and the same body (but the name asked) whether the other company's
    VPC exists, does not exist, or the company itself does not."""
    card_admin = _plan(stack)

    def ask(peer: str) -> dict[str, Any]:
        response = stack.bank_admin.post(
            "/v1/networks/peerings", json={"vpc": "core", "peer": peer}
        )
        body: dict[str, Any] = _ok(response, 201)
        for volatile in ("id", "requested_at"):
            body.pop(volatile)
        body["accepter"].pop("vpc")
        body["accepter"].pop("company")
        return body

    real, ghost, nowhere = ask("card/pay"), ask("card/nope"), ask("nosuch/vpc")
    assert real == ghost == nowhere
    assert real["accepter"] == {"cidr": None, "zone": None, "data_class": None}
    assert real["state"] == "pending"
    listed = _ok(stack.card.get("/v1/networks/peerings"))["items"]
    assert [p["accepter"]["vpc"] for p in listed] == ["pay", "nope"]  # card sees both asks
    accept = card_admin.post(f"/v1/networks/peerings/{listed[1]['id']}/accept")
    assert_problem(accept, 404, "not_found")

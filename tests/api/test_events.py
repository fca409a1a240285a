"""GET /v1/events: the audit trail, oldest first, filtered by company, kind and subject."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.stack import Stack, assert_problem


def _events(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/events", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_events_record_each_change_oldest_first_and_filter(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    assert s.admin.post("/v1/hosts/h2/drain").status_code == 200
    made = s.bank.post("/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}})
    assert made.status_code == 201
    allocation_id = made.json()["id"]
    assert s.bank.post(f"/v1/allocations/{allocation_id}/release").status_code == 200
    assert s.admin.put("/v1/quotas/card/GPU", json={"nominal": 1}).status_code == 200

    everything = _events(s.admin)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids)
    assert {"host.added", "company.created", "project.created", "quota.set"} <= {
        e["kind"] for e in everything
    }
    assert everything[-1]["kind"] == "quota.set"
    assert everything[-1]["actor"] == "token:ops"
    assert everything[-1]["company"] == "card"
    assert everything[-1]["data"] == {"nominal": 1, "borrowing_limit": 0, "lending_limit": None}

    allocation = _events(s.admin, kind="allocation.")
    assert [(e["kind"], e["subject"], e["actor"]) for e in allocation] == [
        ("allocation.created", f"allocation/{allocation_id}", "token:bank-dev@bank"),
        ("allocation.released", f"allocation/{allocation_id}", "token:bank-dev@bank"),
    ]
    assert allocation[0]["data"]["claimed"] == {"VCPU": 1}
    assert [e["kind"] for e in _events(s.admin, kind="allocation.released")] == [
        "allocation.released"
    ]
    assert [e["kind"] for e in _events(s.admin, subject="host/h2")] == [
        "host.added",
        "host.drained",
    ]
    assert {e["company"] for e in _events(s.admin, company="bank")} == {"bank"}
    assert _events(s.admin, kind="%") == []  # a kind prefix, not a LIKE pattern


def test_company_tokens_see_only_their_company_events(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    made = s.card.post("/v1/allocations", json={"project": "pay", "resources": {"VCPU": 1}})
    assert made.status_code == 201
    bank_view = _events(s.bank)
    assert bank_view
    assert {e["company"] for e in bank_view} == {"bank"}
    assert not [e for e in bank_view if e["kind"].startswith("host.")]
    hidden = s.bank.get("/v1/events", params={"company": "card"})
    assert assert_problem(hidden, 404, "not_found")["resource"] == "company"
    card_view = _events(s.card, kind="allocation.")
    assert [e["subject"] for e in card_view] == [f"allocation/{made.json()['id']}"]

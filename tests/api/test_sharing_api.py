"""The group sharing engine over real HTTP: borrowing idle nominal, the queue, reclaim with
notice, leases, idle reclaim, refusals and the event feed.

The worker is driven by hand: ``worker.run_round(rt, now)`` on the Runtime the server
uses, with explicit times, so every step is deterministic. After every step the
counters are recomputed from the allocation rows (``check_consistency``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from groupcloud.domain.clock import utcnow
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import worker
from groupcloud.services.compute.worker import Round
from tests.api.stack import Stack, assert_problem
from tests.support import check_consistency

# --- helpers ---------------------------------------------------------------------------


def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _body(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = _json(response, status)
    return out


def _consistent(rt: Runtime) -> None:
    found = check_consistency(rt)
    assert found.ok, found


def _round(rt: Runtime, now: datetime) -> Round:
    done = worker.run_round(rt, now)
    _consistent(rt)
    return done


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def _gpu_world(s: Stack) -> None:
    """Two more hosts of 8 GPUs (20 GPUs in all); bank and card 8 GPU nominal each, bank
    may borrow 8, bank's VCPU has no borrowing limit."""
    for name in ("g1", "g2"):
        added = s.admin.post(
            "/v1/hosts",
            json={
                "name": name,
                "inventories": {
                    "VCPU": {"total": 16},
                    "MEMORY_MB": {"total": 65536},
                    "GPU": {"total": 8},
                },
            },
        )
        _body(added, 201)
    for path, body in [
        ("/v1/quotas/bank/GPU", {"nominal": 8, "borrowing_limit": 8}),
        ("/v1/quotas/card/GPU", {"nominal": 8}),
        ("/v1/quotas/bank/VCPU", {"nominal": 32, "borrowing_limit": None}),
    ]:
        _body(s.admin.put(path, json=body))
    _consistent(s.rt)


def _gpus(client: httpx.Client, n: int, project: str, **extra: Any) -> httpx.Response:
    return client.post(
        "/v1/allocations", json={"project": project, "resources": {"GPU": n, "VCPU": 1}, **extra}
    )


def _get(client: httpx.Client, allocation_id: str) -> dict[str, Any]:
    return _body(client.get(f"/v1/allocations/{allocation_id}"))


def _explain(client: httpx.Client, allocation_id: str) -> dict[str, Any]:
    return _body(client.get(f"/v1/allocations/{allocation_id}/explain"))


def _events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    page = _body(client.get("/v1/events", params={"limit": 500, **params}))
    items: list[dict[str, Any]] = page["items"]
    return items


def _kinds(client: httpx.Client, allocation_id: str) -> list[str]:
    return [e["kind"] for e in _events(client, subject=f"allocation/{allocation_id}")]


def _quota(client: httpx.Client, company: str, rc: str) -> dict[str, Any]:
    for q in _json(client.get("/v1/quotas", params={"company": company})):
        if q["resource_class"] == rc:
            return dict(q)
    raise AssertionError(f"no quota {company}/{rc}")


def _sharing(client: httpx.Client, company: str, rc: str) -> tuple[int, int, int]:
    """(used, borrowed, lent) of a quota line as the API shows it."""
    q = _quota(client, company, rc)
    return q["used"], q["borrowed"], q["lent"]


# --- 1. borrow, reclaim with notice, give back --------------------------------------------


def test_borrow_idle_gpus_then_reclaim_with_notice_for_the_lender(stack: Stack) -> None:
    s, rt = stack, stack.rt
    _gpu_world(s)
    rt.settings.reclaim_notice_s = 120
    rt.settings.reclaim_backoff_s = 30

    own = [_body(_gpus(s.bank, 4, "web"), 201) for _ in range(2)]  # bank's whole nominal
    assert [a["state"] for a in own] == ["active", "active"]
    assert all(a["borrowed"] == {} for a in own)
    asked = _gpus(s.bank, 4, "batch", lease_s=86400)  # needs card's idle GPUs
    extra = _body(asked, 202)
    assert (extra["state"], extra["pending_reason"]) == ("pending", "awaiting_scheduler")
    assert extra["units"] == []
    _consistent(rt)
    told = _explain(s.bank, extra["id"])
    assert (told["state"], told["pending_reason"], told["queue_position"]) == (
        "pending",
        "awaiting_scheduler",
        1,
    )
    assert "borrow" in told["summary"]
    assert any("4 GPU from card" in r for r in told["reasons"]), told["reasons"]
    assert _sharing(s.admin, "bank", "GPU") == (8, 0, 0)  # a pending request holds nothing

    t0 = utcnow()
    done = _round(rt, t0)
    assert (done.admitted, done.borrowed, done.reclaims_started) == (1, 1, 0)
    extra = _get(s.bank, extra["id"])
    assert extra["state"] == "active"
    assert extra["borrowed"] == {"card": {"GPU": 4}}
    assert extra["pending_reason"] is None
    assert _when(extra["started_at"]) == t0
    assert len(extra["units"]) == 1
    assert _sharing(s.admin, "bank", "GPU") == (12, 4, 0)
    card_gpu = _quota(s.admin, "card", "GPU")
    assert (card_gpu["used"], card_gpu["lent"], card_gpu["free"]) == (0, 4, 4)
    assert _sharing(s.card, "card", "GPU") == (0, 0, 4)  # card sees its own line
    assert [e["kind"] for e in _events(s.bank, subject=f"allocation/{extra['id']}")] == [
        "allocation.requested",
        "allocation.pending",
        "allocation.admitted",
        "allocation.borrowed",
    ]
    told = _explain(s.bank, extra["id"])
    assert told["state"] == "active"
    assert told["lenders"] == {"card": {"GPU": 4}}
    assert "borrowing 4 GPU from card" in told["summary"]
    assert told["queue_position"] is None
    # Card does not see the bank's allocation (nor can it explain it).
    assert_problem(s.card.get(f"/v1/allocations/{extra['id']}/explain"), 404, "not_found")

    mine = _body(_gpus(s.card, 4, "pay"), 201)  # card's own free 4
    assert mine["borrowed"] == {}
    waiting = _body(_gpus(s.card, 4, "pay"), 202)  # the 4 lent to bank
    assert waiting["pending_reason"] == "awaiting_reclaim"
    _consistent(rt)
    told = _explain(s.card, waiting["id"])
    assert (told["pending_reason"], told["queue_position"]) == ("awaiting_reclaim", 1)
    assert "lent" in told["summary"]
    assert any("lent and must be reclaimed" in r for r in told["reasons"]), told["reasons"]
    # While its lender waits for its nominal, the borrowed lease cannot be extended.
    later = _when(extra["expires_at"]) + timedelta(hours=1)
    refused = s.bank.patch(f"/v1/allocations/{extra['id']}", json={"expires_at": later.isoformat()})
    assert assert_problem(refused, 409, "quota_exceeded")["lenders"] == ["card"]

    t1 = t0 + timedelta(seconds=5)
    done = _round(rt, t1)
    assert (done.admitted, done.reclaims_started, done.reclaimed) == (0, 1, 0)
    notice = _get(s.bank, extra["id"])
    assert notice["state"] == "reclaiming"
    assert _when(notice["reclaim_at"]) == t1 + timedelta(seconds=120)
    assert notice["borrowed"] == {"card": {"GPU": 4}}  # still held during the notice
    assert [_get(s.bank, a["id"])["state"] for a in own] == ["active", "active"]
    assert _sharing(s.admin, "bank", "GPU") == (12, 4, 0)
    assert _sharing(s.admin, "card", "GPU") == (4, 0, 4)
    sent = _events(s.bank, kind="allocation.reclaim_notice")
    assert [e["subject"] for e in sent] == [f"allocation/{extra['id']}"]
    assert sent[0]["data"]["for"] == waiting["id"]
    assert sent[0]["data"]["lenders"] == ["card"]
    assert _when(sent[0]["data"]["reclaim_at"]) == t1 + timedelta(seconds=120)
    told = _explain(s.bank, extra["id"])
    assert told["state"] == "reclaiming"
    assert f"for card's request {waiting['id']}" in told["summary"]
    assert "queued again after a backoff" in told["summary"]
    told = _explain(s.card, waiting["id"])
    assert told["pending_reason"] == "awaiting_reclaim"
    assert any(extra["id"] in r and "being reclaimed" in r for r in told["reasons"]), told
    refused = s.bank.patch(f"/v1/allocations/{extra['id']}", json={"expires_at": later.isoformat()})
    assert assert_problem(refused, 409, "quota_exceeded")["reason"] == "reclaiming"
    assert _get(s.bank, extra["id"])["expires_at"] == extra["expires_at"]

    # During the notice nothing more is reclaimed and card still waits.
    done = _round(rt, t1 + timedelta(seconds=60))
    assert (done.admitted, done.reclaims_started, done.reclaimed) == (0, 0, 0)
    assert _get(s.card, waiting["id"])["state"] == "pending"
    assert len(_events(s.admin, kind="allocation.reclaim_notice")) == 1

    t2 = t1 + timedelta(seconds=121)
    done = _round(rt, t2)
    assert (done.reclaimed, done.admitted, done.borrowed) == (1, 1, 0)
    admitted = _get(s.card, waiting["id"])
    assert (admitted["state"], admitted["borrowed"]) == ("active", {})
    requeued = _get(s.bank, extra["id"])
    assert (requeued["state"], requeued["pending_reason"]) == ("pending", "backoff")
    assert requeued["reclaim_count"] == 1
    assert _when(requeued["not_before"]) == t2 + timedelta(seconds=30)
    assert (requeued["units"], requeued["borrowed"], requeued["reclaim_at"]) == ([], {}, None)
    assert [_get(s.bank, a["id"])["state"] for a in own] == ["active", "active"]
    assert _sharing(s.admin, "bank", "GPU") == (8, 0, 0)
    assert _sharing(s.admin, "card", "GPU") == (8, 0, 0)
    history = _kinds(s.bank, extra["id"])
    assert history[-3] == "allocation.reclaim_notice"
    assert sorted(history[-2:]) == ["allocation.reclaimed", "allocation.requeued"]
    reclaimed = _events(s.bank, kind="allocation.reclaimed")
    assert [(e["subject"], e["data"]["for"]) for e in reclaimed] == [
        (f"allocation/{extra['id']}", waiting["id"])
    ]
    requeue = _events(s.bank, kind="allocation.requeued")[0]
    assert requeue["data"]["reason"] == "reclaimed"
    assert requeue["data"]["returned"] == {"GPU": 4, "VCPU": 1}
    assert _when(requeue["data"]["not_before"]) == t2 + timedelta(seconds=30)
    told = _explain(s.bank, extra["id"])
    assert (told["pending_reason"], told["queue_position"]) == ("backoff", 1)
    assert "backoff" in told["summary"]
    assert any("reclaimed 1 time(s)" in r for r in told["reasons"]), told["reasons"]

    # No idle nominal is left anywhere: the backed-off request waits, nothing moves.
    done = _round(rt, t2 + timedelta(seconds=31))
    assert (done.admitted, done.reclaims_started, done.reclaimed) == (0, 0, 0)
    assert _get(s.bank, extra["id"])["state"] == "pending"
    assert _get(s.bank, extra["id"])["pending_reason"] == "no_lendable"
    # Card gives back 4: the bank's request borrows them again.
    _body(s.card.post(f"/v1/allocations/{mine['id']}/release"))
    done = _round(rt, t2 + timedelta(seconds=32))
    assert (done.admitted, done.borrowed) == (1, 1)
    assert _get(s.bank, extra["id"])["borrowed"] == {"card": {"GPU": 4}}
    assert _sharing(s.admin, "card", "GPU") == (4, 0, 4)


def test_minimum_runtime_protects_and_on_reclaim_release_ends(sqlite_stack: Stack) -> None:
    s, rt = sqlite_stack, sqlite_stack.rt
    _gpu_world(s)
    rt.settings.reclaim_notice_s = 60
    # While bank is above nominal every allocation of it is a candidate, whichever holds
    # the loans (Kueue): its own 8 are protected longer than the rest here.
    _body(_gpus(s.bank, 8, "web", minimum_runtime_s=7200), 201)
    protected = _body(_gpus(s.bank, 4, "batch", priority=100, minimum_runtime_s=3600), 202)
    ending = _body(_gpus(s.bank, 4, "batch", on_reclaim="release"), 202)
    assert (protected["minimum_runtime_s"], ending["on_reclaim"]) == (3600, "release")
    t0 = utcnow()
    assert _round(rt, t0).borrowed == 2
    assert _sharing(s.admin, "card", "GPU") == (0, 0, 8)

    first = _body(_gpus(s.card, 4, "pay"), 202)
    assert first["pending_reason"] == "awaiting_reclaim"
    # The lowest priority goes first, but not before its minimum runtime.
    assert _round(rt, t0 + timedelta(seconds=10)).reclaims_started == 1
    assert _get(s.bank, protected["id"])["state"] == "active"
    assert _get(s.bank, ending["id"])["state"] == "reclaiming"
    told = _explain(s.bank, ending["id"])
    assert "queued again" not in told["summary"]

    done = _round(rt, t0 + timedelta(seconds=71))
    assert (done.reclaimed, done.admitted) == (1, 1)
    ended = _get(s.bank, ending["id"])
    assert (ended["state"], ended["end_reason"], ended["reclaim_count"]) == (
        "released",
        "reclaimed",
        1,
    )
    assert "allocation.requeued" not in _kinds(s.bank, ending["id"])
    told = _explain(s.bank, ending["id"])
    assert told["summary"].startswith("Released (reclaimed)")
    assert any("reclaimed for its lender(s) card" in r for r in told["reasons"]), told
    assert _get(s.card, first["id"])["state"] == "active"

    second = _body(_gpus(s.card, 4, "pay"), 202)
    assert second["pending_reason"] == "awaiting_reclaim"
    done = _round(rt, t0 + timedelta(seconds=3599))
    assert (done.reclaims_started, done.admitted) == (0, 0)
    assert _explain(s.card, second["id"])["pending_reason"] == "awaiting_reclaim"
    assert _round(rt, t0 + timedelta(seconds=3600)).reclaims_started == 1
    assert _get(s.bank, protected["id"])["state"] == "reclaiming"

    # The owner releases it during the notice: nothing is reclaimed twice, and the
    # lender gets its nominal at the next round.
    released = _body(s.bank.post(f"/v1/allocations/{protected['id']}/release"))
    assert (released["state"], released["end_reason"]) == ("released", "released")
    _consistent(rt)
    done = _round(rt, t0 + timedelta(seconds=3601))
    assert (done.reclaimed, done.admitted) == (0, 1)
    assert _get(s.card, second["id"])["state"] == "active"
    assert _sharing(s.admin, "card", "GPU") == (8, 0, 0)
    assert _sharing(s.admin, "bank", "GPU") == (8, 0, 0)
    assert "allocation.reclaimed" not in _kinds(s.bank, protected["id"])


# --- 2. the queue ----------------------------------------------------------------------------


def test_queue_drains_by_priority_then_fifo_several_per_company_per_round(
    sqlite_stack: Stack,
) -> None:
    s, rt = sqlite_stack, sqlite_stack.rt
    _gpu_world(s)
    first = _body(_gpus(s.card, 8, "pay"), 201)
    queued = [
        _body(_gpus(s.card, n, "pay", priority=p), 202)
        for n, p in [(4, 100), (4, 900), (2, 100), (4, 100)]
    ]
    assert {a["pending_reason"] for a in queued} == {"borrowing_limit"}
    assert [a["priority"] for a in queued] == [100, 900, 100, 100]
    positions = [_explain(s.card, a["id"])["queue_position"] for a in queued]
    assert positions == [2, 1, 3, 4]  # priority first, then arrival
    # A bank request with its own free nominal is claimed at once, queue or not.
    bank_now = _body(_gpus(s.bank, 2, "web"), 201)
    _consistent(rt)

    _body(s.card.post(f"/v1/allocations/{first['id']}/release"))
    done = _round(rt, utcnow())
    # 8 GPUs free again for card: the high-priority 4, then the oldest 4 of priority 100;
    # the 2 behind it does not fit in what is left (card may not borrow), nor does the last.
    assert (done.admitted, done.borrowed, done.pending) == (2, 0, 4)
    states = [_get(s.card, a["id"])["state"] for a in queued]
    assert states == ["active", "active", "pending", "pending"]
    admitted = [e["subject"] for e in _events(s.card, kind="allocation.admitted")]
    assert admitted == [f"allocation/{queued[1]['id']}", f"allocation/{queued[0]['id']}"]
    assert _sharing(s.admin, "card", "GPU") == (8, 0, 0)
    assert [_explain(s.card, a["id"])["queue_position"] for a in queued[2:]] == [1, 2]

    # Card frees 4: the 2 gets in; the 4 behind it would need borrowing.
    _body(s.bank.post(f"/v1/allocations/{bank_now['id']}/release"))
    _body(s.card.post(f"/v1/allocations/{queued[0]['id']}/release"))
    done = _round(rt, utcnow())
    assert done.admitted == 1  # the 2 of priority 100 first; the next 4 does not fit
    assert [_get(s.card, a["id"])["state"] for a in queued[2:]] == ["active", "pending"]
    assert _sharing(s.admin, "card", "GPU") == (6, 0, 0)


# --- 3. leases ------------------------------------------------------------------------------


def test_lease_warnings_expiry_extension_and_notify(sqlite_stack: Stack) -> None:
    s, rt = sqlite_stack, sqlite_stack.rt
    rt.settings.lease_warnings_s = [3600, 600]
    vcpu = {"project": "web", "resources": {"VCPU": 2}}

    before = utcnow()
    leased = _body(s.bank.post("/v1/allocations", json={**vcpu, "lease_s": 7200}), 201)
    after = utcnow()
    expires = _when(leased["expires_at"])
    assert before + timedelta(hours=2) <= expires <= after + timedelta(hours=2)
    assert leased["on_expiry"] == "release"
    _consistent(rt)

    subject = f"allocation/{leased['id']}"

    def warnings() -> list[dict[str, Any]]:
        return _events(s.bank, kind="allocation.lease_warning", subject=subject)

    assert _round(rt, expires - timedelta(seconds=3700)).lease_warnings == 0
    assert _round(rt, expires - timedelta(seconds=3500)).lease_warnings == 1
    assert warnings()[0]["data"]["seconds_left"] == 3500
    assert _round(rt, expires - timedelta(seconds=3000)).lease_warnings == 0
    assert _round(rt, expires - timedelta(seconds=900)).lease_warnings == 0
    assert _round(rt, expires - timedelta(seconds=500)).lease_warnings == 1
    assert _round(rt, expires - timedelta(seconds=100)).lease_warnings == 0
    assert [w["data"]["seconds_left"] for w in warnings()] == [3500, 500]
    assert any("Lease ends" in r for r in _explain(s.bank, leased["id"])["reasons"])

    # Extending re-arms the warnings.
    longer = expires + timedelta(hours=2)
    extended = _body(
        s.bank.patch(f"/v1/allocations/{leased['id']}", json={"expires_at": longer.isoformat()})
    )
    assert _when(extended["expires_at"]) == longer
    assert _kinds(s.bank, leased["id"])[-1] == "allocation.updated"
    assert _round(rt, longer - timedelta(seconds=3500)).lease_warnings == 1
    assert _round(rt, longer - timedelta(seconds=3400)).lease_warnings == 0
    assert len(warnings()) == 3
    assert _get(s.bank, leased["id"])["state"] == "active"

    # The lease ends: released, everything given back.
    done = _round(rt, longer + timedelta(seconds=1))
    assert (done.expired, done.lease_warnings) == (1, 0)
    ended = _get(s.bank, leased["id"])
    assert (ended["state"], ended["end_reason"]) == ("released", "expired")
    assert ended["released_by"] == "lease-expiry"
    assert _kinds(s.bank, leased["id"])[-1] == "allocation.released"
    assert _quota(s.admin, "bank", "VCPU")["used"] == 0

    # on_expiry=notify: allocation.expired once, and the allocation stays.
    notified = _body(
        s.bank.post("/v1/allocations", json={**vcpu, "lease_s": 60, "on_expiry": "notify"}), 201
    )
    end = _when(notified["expires_at"])
    done = _round(rt, end + timedelta(seconds=1))
    assert (done.expired, done.lease_warnings) == (0, 1)
    assert _round(rt, end + timedelta(seconds=600)).lease_warnings == 0
    kinds = _kinds(s.bank, notified["id"])
    assert kinds.count("allocation.expired") == 1
    assert "allocation.released" not in kinds
    assert _get(s.bank, notified["id"])["state"] == "active"
    assert _quota(s.admin, "bank", "VCPU")["used"] == 2
    # An extension after the notification re-arms it.
    renewed = end + timedelta(days=1)
    _body(
        s.bank.patch(f"/v1/allocations/{notified['id']}", json={"expires_at": renewed.isoformat()})
    )
    assert _round(rt, renewed + timedelta(seconds=1)).lease_warnings == 1
    assert _kinds(s.bank, notified["id"]).count("allocation.expired") == 2

    # Bad leases are refused before anything is stored.
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    assert_problem(
        s.bank.post("/v1/allocations", json={**vcpu, "expires_at": past}), 422, "validation_error"
    )
    assert_problem(
        s.bank.patch(f"/v1/allocations/{notified['id']}", json={"expires_at": past}),
        422,
        "validation_error",
    )
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert_problem(
        s.bank.post("/v1/allocations", json={**vcpu, "expires_at": naive}), 422, "validation_error"
    )
    assert_problem(
        s.bank.post("/v1/allocations", json={**vcpu, "lease_s": 0}), 422, "validation_error"
    )
    assert len(_body(s.bank.get("/v1/allocations"))["items"]) == 2
    _consistent(rt)


# --- 4. idle reclaim --------------------------------------------------------------------------


def test_idle_allocations_are_flagged_then_released_unless_busy_or_kept(
    sqlite_stack: Stack,
) -> None:
    s, rt = sqlite_stack, sqlite_stack.rt
    rt.settings.idle_threshold = 0.05
    rt.settings.idle_window_s = 600
    rt.settings.idle_grace_s = 300

    def vcpu(client: httpx.Client, project: str) -> str:
        made = client.post("/v1/allocations", json={"project": project, "resources": {"VCPU": 1}})
        return str(_body(made, 201)["id"])

    idle_one, busy_again, busy, kept, silent = (vcpu(s.bank, "web") for _ in range(5))
    card_own = vcpu(s.card, "pay")
    t0 = utcnow()

    one = s.bank.post(
        f"/v1/allocations/{idle_one}/utilisation", json={"utilisation": 0.01, "at": t0.isoformat()}
    )
    assert _body(one) == {"stored": 1}
    batch = s.bank.post(
        "/v1/utilisation",
        json={
            "reports": [
                {"allocation": busy_again, "utilisation": 0.0, "at": t0.isoformat()},
                {"allocation": busy, "utilisation": 0.9, "at": t0.isoformat()},
                {"allocation": kept, "utilisation": 0.02, "at": t0.isoformat()},
            ]
        },
    )
    assert _body(batch) == {"stored": 3}
    shown = _get(s.bank, idle_one)
    assert (shown["utilisation"], _when(shown["idle_since"])) == (0.01, t0)
    assert _get(s.bank, busy)["idle_since"] is None
    _consistent(rt)

    # Another company's allocation, or an unknown one: not_found, and nothing is stored
    # (the whole batch is refused).
    assert_problem(
        s.card.post(f"/v1/allocations/{busy}/utilisation", json={"utilisation": 0.0}),
        404,
        "not_found",
    )
    mixed = s.card.post(
        "/v1/utilisation",
        json={
            "reports": [
                {"allocation": card_own, "utilisation": 0.0},
                {"allocation": busy, "utilisation": 0.0},
            ]
        },
    )
    assert_problem(mixed, 404, "not_found")
    assert_problem(
        s.bank.post("/v1/allocations/no-such-id/utilisation", json={"utilisation": 0.5}),
        404,
        "not_found",
    )
    assert (_get(s.bank, busy)["utilisation"], _get(s.bank, busy)["idle_since"]) == (0.9, None)
    assert _get(s.card, card_own)["utilisation"] is None
    assert_problem(
        s.bank.post(f"/v1/allocations/{busy}/utilisation", json={"utilisation": 1.5}),
        422,
        "validation_error",
    )

    assert _round(rt, t0 + timedelta(seconds=599)).idle_flagged == 0
    done = _round(rt, t0 + timedelta(seconds=601))
    assert (done.idle_flagged, done.idle_released) == (3, 0)
    flagged = _events(s.bank, kind="allocation.idle_flagged")
    assert {e["subject"] for e in flagged} == {
        f"allocation/{a}" for a in (idle_one, busy_again, kept)
    }
    assert _round(rt, t0 + timedelta(seconds=700)).idle_flagged == 0  # flagged once
    assert _get(s.bank, idle_one)["idle_flagged_at"] is not None
    assert any("Flagged idle" in r for r in _explain(s.bank, idle_one)["reasons"])

    # Busy again: the flag is cleared. Marked keep: never released.
    cleared = s.bank.post(f"/v1/allocations/{busy_again}/utilisation", json={"utilisation": 0.5})
    assert _body(cleared) == {"stored": 1}
    assert _kinds(s.bank, busy_again)[-1] == "allocation.idle_cleared"
    after_busy = _get(s.bank, busy_again)
    assert (after_busy["idle_flagged_at"], after_busy["idle_since"]) == (None, None)
    keep = _body(s.bank.patch(f"/v1/allocations/{kept}", json={"keep": True}))
    assert keep["keep"] is True
    _consistent(rt)

    done = _round(rt, t0 + timedelta(seconds=601 + 299))
    assert done.idle_released == 0  # still in the grace period
    done = _round(rt, t0 + timedelta(seconds=601 + 301))
    assert (done.idle_released, done.idle_flagged) == (1, 0)
    gone = _get(s.bank, idle_one)
    assert (gone["state"], gone["end_reason"], gone["released_by"]) == (
        "released",
        "idle",
        "idle-reclaim",
    )
    assert [_get(s.bank, a)["state"] for a in (busy_again, busy, kept, silent)] == ["active"] * 4
    assert _quota(s.admin, "bank", "VCPU")["used"] == 4

    # Much later: the kept one and the silent one (no data is no evidence) stay.
    done = _round(rt, t0 + timedelta(days=2))
    assert (done.idle_flagged, done.idle_released) == (0, 0)
    assert [_get(s.bank, a)["state"] for a in (kept, silent)] == ["active", "active"]
    # A released allocation keeps its last report.
    late = s.bank.post(f"/v1/allocations/{idle_one}/utilisation", json={"utilisation": 0.0})
    assert late.status_code == 200, late.text
    assert _get(s.bank, idle_one)["utilisation"] == 0.01


# --- 5. refusals and quota changes -----------------------------------------------------------


def test_refusals_with_queue_false_and_validation(sqlite_stack: Stack) -> None:
    s, rt = sqlite_stack, sqlite_stack.rt

    def ask(client: httpx.Client, project: str, **body: Any) -> httpx.Response:
        return client.post("/v1/allocations", json={"project": project, **body})

    # Beyond the whole quota, borrowing included: never_fits, queue or not.
    for queue in (True, False):
        never = ask(s.card, "pay", resources={"VCPU": 17}, queue=queue)
        assert assert_problem(never, 422, "never_fits")["exceeded"][0]["resource_class"] == "VCPU"
    assert_problem(ask(s.bank, "web", resources={"VCPU": 17}), 422, "never_fits")  # no host

    _body(ask(s.card, "pay", resources={"VCPU": 16}), 201)
    over = ask(s.card, "pay", resources={"VCPU": 1}, queue=False)
    assert assert_problem(over, 409, "quota_exceeded")["exceeded"][0]["kind"] == "borrowing_limit"
    # May borrow, but only the scheduler lends: refused with queue=false.
    _body(s.admin.put("/v1/quotas/card/VCPU", json={"nominal": 16, "borrowing_limit": None}))
    borrow = ask(s.card, "pay", resources={"VCPU": 1}, queue=False)
    assert assert_problem(borrow, 409, "quota_exceeded")["needs_borrowing"] == {"VCPU": 1}

    # Quota allows it, the hosts are full: no_capacity now (409) or queued (202).
    _body(s.admin.put("/v1/quotas/bank/VCPU", json={"nominal": 80}))
    _body(ask(s.bank, "web", resources={"VCPU": 16}, count=3), 201)
    full = ask(s.bank, "web", resources={"VCPU": 1}, queue=False)
    assert assert_problem(full, 409, "no_capacity")["explain"]["units_placeable"] == 0
    waiting = _body(ask(s.bank, "web", resources={"VCPU": 1}), 202)
    assert waiting["pending_reason"] == "no_capacity"
    assert _explain(s.bank, waiting["id"])["placement"]["units_placeable"] == 0

    both = ask(s.bank, "web", resources={"VCPU": 1}, lease_s=60, expires_at=utcnow().isoformat())
    assert_problem(both, 422, "validation_error")
    wrongs: list[dict[str, Any]] = [
        {"priority": 1001},
        {"on_reclaim": "x"},
        {"minimum_runtime_s": -1},
    ]
    for wrong in wrongs:
        refused = ask(s.bank, "web", resources={"VCPU": 1}, **wrong)
        assert_problem(refused, 422, "validation_error")
    assert [a["state"] for a in _body(s.admin.get("/v1/allocations"))["items"]] == [
        "active",
        "active",
        "pending",
    ]
    _consistent(rt)


def test_quota_limits_are_kept_when_left_out_and_never_below_use(stack: Stack) -> None:
    s, rt = stack, stack.rt
    _gpu_world(s)
    for body in [
        {"nominal": 8, "borrowing_limit": -1},
        {"nominal": 8, "lending_limit": -1},
        {"nominal": -1},
        {"nominal": 8, "spare": 1},
    ]:
        assert_problem(s.admin.put("/v1/quotas/card/GPU", json=body), 422, "validation_error")
    assert_problem(s.bank_admin.put("/v1/quotas/bank/GPU", json={"nominal": 100}), 403, "forbidden")

    def limits(company: str) -> tuple[int, int | None, int | None]:
        q = _quota(s.admin, company, "GPU")
        return q["nominal"], q["borrowing_limit"], q["lending_limit"]

    assert limits("bank") == (8, 8, None)
    _body(s.admin.put("/v1/quotas/card/GPU", json={"nominal": 8, "lending_limit": 6}))
    _body(s.admin.put("/v1/quotas/card/GPU", json={"nominal": 8}))
    assert limits("card") == (8, 0, 6)  # left out: unchanged
    _body(s.admin.put("/v1/quotas/card/GPU", json={"nominal": 8, "borrowing_limit": None}))
    assert limits("card") == (8, None, 6)
    _body(s.admin.put("/v1/quotas/card/GPU", json={"nominal": 8, "borrowing_limit": 0}))

    # bank borrows 4 of card's GPUs; card uses 2 of its own.
    _body(_gpus(s.bank, 8, "web"), 201)
    borrowed = _body(_gpus(s.bank, 4, "web"), 202)
    assert _round(rt, utcnow()).borrowed == 1
    _body(_gpus(s.card, 2, "pay"), 201)
    assert _get(s.bank, borrowed["id"])["borrowed"] == {"card": {"GPU": 4}}
    assert _sharing(s.admin, "card", "GPU") == (2, 0, 4)

    for company, body in [
        ("card", {"nominal": 5}),  # own 2 + lent 4 > 5
        ("card", {"nominal": 8, "lending_limit": 3}),  # lends 4
        ("bank", {"nominal": 8, "borrowing_limit": 3}),  # borrows 4
        ("bank", {"nominal": 7}),  # uses 8 of its own
    ]:
        refused = s.admin.put(f"/v1/quotas/{company}/GPU", json=body)
        problem = assert_problem(refused, 409, "quota_below_usage")
        assert problem["requested"] == body["nominal"]
    assert limits("card") == (8, 0, 6)
    assert limits("bank") == (8, 8, None)
    # Exactly at the use is allowed.
    _body(s.admin.put("/v1/quotas/card/GPU", json={"nominal": 6, "lending_limit": 4}))
    _body(s.admin.put("/v1/quotas/bank/GPU", json={"nominal": 8, "borrowing_limit": 4}))
    assert limits("card") == (6, 0, 4)
    assert limits("bank") == (8, 4, None)
    assert _quota(s.admin, "card", "GPU")["free"] == 0
    _consistent(rt)


# --- 6. the event feed ----------------------------------------------------------------------------


def test_events_filter_by_kind_prefix_follow_after_id_and_tail(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    made = [
        _body(
            s.bank.post("/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}}), 201
        )["id"]
        for _ in range(3)
    ]
    _body(s.bank.post(f"/v1/allocations/{made[0]}/release"))
    card_made = _body(
        s.card.post("/v1/allocations", json={"project": "pay", "resources": {"VCPU": 1}}), 201
    )["id"]

    everything = _events(s.admin, kind="allocation.")
    assert [(e["kind"], e["subject"]) for e in everything] == [
        ("allocation.created", f"allocation/{made[0]}"),
        ("allocation.created", f"allocation/{made[1]}"),
        ("allocation.created", f"allocation/{made[2]}"),
        ("allocation.released", f"allocation/{made[0]}"),
        ("allocation.created", f"allocation/{card_made}"),
    ]
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids)
    assert {e["kind"] for e in _events(s.admin)} > {e["kind"] for e in everything}

    # after_id: only what came later (what a follower has not seen yet).
    later = _events(s.admin, kind="allocation.", after_id=ids[1])
    assert [e["id"] for e in later] == ids[2:]
    assert _events(s.admin, kind="allocation.", after_id=ids[-1]) == []
    # tail: the newest N, still oldest first; with after_id, of what came later.
    assert [e["id"] for e in _events(s.admin, kind="allocation.", tail=2)] == ids[-2:]
    assert [e["id"] for e in _events(s.admin, kind="allocation.", tail=100)] == ids
    assert [e["id"] for e in _events(s.admin, kind="allocation.created", tail=1)] == [ids[-1]]
    assert [e["id"] for e in _events(s.admin, kind="allocation.", after_id=ids[0], tail=2)] == (
        ids[-2:]
    )
    assert [e["id"] for e in _events(s.bank, kind="allocation.", tail=2)] == ids[2:4]
    # A company token sees only its own company's events.
    assert [e["id"] for e in _events(s.card, kind="allocation.")] == [ids[-1]]

    # Pages of 2 with after_id, followed by cursor to the end.
    seen: list[int] = []
    params: dict[str, Any] = {"kind": "allocation.", "after_id": ids[0], "limit": 2}
    while True:
        page = _body(s.admin.get("/v1/events", params=params))
        assert len(page["items"]) <= 2
        seen.extend(e["id"] for e in page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ids[1:]

    bad_params: list[dict[str, Any]] = [
        {"tail": 0},
        {"tail": 1001},
        {"after_id": -1},
        {"after_id": "x"},
    ]
    for bad in bad_params:
        assert_problem(s.admin.get("/v1/events", params=bad), 422, "validation_error")


# --- found by these tests, fixed ----------------------------------------------------------------


def test_changing_a_released_allocation_is_a_409_allocation_released(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    made = s.bank.post("/v1/allocations", json={"project": "web", "resources": {"VCPU": 1}})
    allocation_id = _body(made, 201)["id"]
    _body(s.bank.post(f"/v1/allocations/{allocation_id}/release"))
    refused = s.bank.patch(f"/v1/allocations/{allocation_id}", json={"keep": True})
    assert_problem(refused, 409, "allocation_released")
    assert _get(s.bank, allocation_id)["keep"] is False
    _consistent(s.rt)


def test_switching_an_expired_notify_lease_to_release_releases_it(sqlite_stack: Stack) -> None:
    s, rt = sqlite_stack, sqlite_stack.rt
    made = s.bank.post(
        "/v1/allocations",
        json={"project": "web", "resources": {"VCPU": 1}, "lease_s": 60, "on_expiry": "notify"},
    )
    leased = _body(made, 201)
    end = _when(leased["expires_at"])
    assert _round(rt, end + timedelta(seconds=1)).lease_warnings == 1  # allocation.expired
    switched = s.bank.patch(f"/v1/allocations/{leased['id']}", json={"on_expiry": "release"})
    assert _body(switched)["on_expiry"] == "release"
    assert _round(rt, end + timedelta(seconds=2)).expired == 1
    ended = _get(s.bank, leased["id"])
    assert (ended["state"], ended["end_reason"]) == ("released", "expired")

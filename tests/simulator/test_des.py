"""The discrete-event loop on tiny traces whose outcome can be worked out by hand: the
server's engines decide, in memory; the virtual clock times, nothing sleeps."""

from __future__ import annotations

import time

import pytest

from groupcloud.simulator.demand import Request
from groupcloud.simulator.des import HostGroup, Pool, QuotaLine, simulate

HOST = {"VCPU": 4, "MEMORY_MB": 4096}
HOUR = 3600.0


def ask(t: float, seconds: float, company: str = "bank", **kw: object) -> Request:
    return Request.model_validate(
        {"arrival_s": t, "duration_s": seconds, "company": company,
         "resources": {"VCPU": 4, "MEMORY_MB": 4096}, **kw}
    )  # fmt: skip


def pool(hosts: int, companies: dict[str, int], borrowing: bool = False) -> Pool:
    """``hosts`` hosts in one zone; nominal: that many hosts' worth per company."""
    limit = None if borrowing else 0
    return Pool(
        (HostGroup("h", hosts, HOST),),
        {c: {rc: QuotaLine(n * HOST[rc], limit) for rc in HOST} for c, n in companies.items()},
    )


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"the simulation slept {seconds} s")

    monkeypatch.setattr(time, "sleep", refuse)


def test_one_host_two_requests_the_second_waits_for_the_first() -> None:
    out = simulate([ask(0, HOUR), ask(0, HOUR)], pool(1, {"bank": 1}), horizon_s=2 * HOUR)
    assert out.waits_s == [0.0, HOUR]
    assert (out.admitted, out.admitted_at_once, out.abandoned, out.unfinished) == (2, 1, 0, 0)
    assert out.served["VCPU"] == pytest.approx(8.0)  # VCPU-hours
    assert out.samples[-1].t == 2 * HOUR  # two hours of virtual time
    assert [(s.t, s.used.get("VCPU", 0), s.pending) for s in out.samples] == [
        (0.0, 4, 1),
        (HOUR, 4, 0),
        (2 * HOUR, 0, 0),
    ]


def test_the_queue_admits_higher_priority_first() -> None:
    trace = [ask(0, HOUR), ask(60, HOUR, priority=100), ask(120, HOUR, priority=900)]
    out = simulate(trace, pool(1, {"bank": 1}), horizon_s=3 * HOUR)
    assert out.waits_s == [0.0, 2 * HOUR - 60, HOUR - 120]


def test_borrowed_capacity_is_reclaimed_with_notice_and_the_victim_runs_the_rest_later() -> None:
    trace = [ask(0, 2 * HOUR, "card"), ask(0, 2 * HOUR, "card"), ask(600, HOUR, "bank")]
    out = simulate(
        trace,
        pool(2, {"bank": 1, "card": 1}, borrowing=True),
        horizon_s=3 * HOUR,
        reclaim_notice_s=60,
        reclaim_backoff_s=0,
    )
    # card's second request borrows bank's idle host; bank's own request gets it back
    # after the 60 s notice; the victim ran 660 s and runs its other 6,540 s once bank's
    # request is done (at 4,260 s): it ends at 10,800 s.
    assert out.waits_s == [0.0, 0.0, 60.0]
    assert (out.reclaim_notices, out.reclaims) == (1, 1)
    ends = [s.t for s in out.samples]
    assert ends[-3:] == [4260.0, 7200.0, 10800.0]
    assert out.served["VCPU"] == pytest.approx(8 + 8 + 4)


def test_without_borrowing_an_idle_neighbour_does_not_help() -> None:
    trace = [ask(0, HOUR, "bank"), ask(0, HOUR, "bank")]
    out = simulate(trace, pool(2, {"bank": 1, "card": 1}), horizon_s=2 * HOUR)
    assert out.waits_s == [0.0, HOUR]
    borrowed = simulate(trace, pool(2, {"bank": 1, "card": 1}, borrowing=True), horizon_s=2 * HOUR)
    assert borrowed.waits_s == [0.0, 0.0]


def test_a_request_that_waits_past_its_patience_gives_up() -> None:
    trace = [ask(0, 2 * HOUR), ask(0, HOUR, patience_s=1800)]
    out = simulate(trace, pool(1, {"bank": 1}), horizon_s=2 * HOUR)
    assert out.waits_s == [0.0, None]
    assert (out.admitted, out.abandoned, out.gave_up) == (1, 1, {1})
    assert out.asked["VCPU"] == pytest.approx(12.0)
    assert out.served["VCPU"] == pytest.approx(8.0)


def test_zones_pin_a_company_to_its_own_hosts() -> None:
    hosts = (HostGroup("b", 1, HOST, zone="bank-cpu"), HostGroup("c", 1, HOST, zone="card-cpu"))
    quotas = {c: {rc: QuotaLine(8 * HOST[rc], None) for rc in HOST} for c in ("bank", "card")}
    separate = Pool(hosts, quotas, zones={("bank", "cpu"): "bank-cpu"})
    out = simulate([ask(0, HOUR), ask(0, HOUR)], separate, horizon_s=2 * HOUR, kinds=["cpu", "cpu"])
    assert out.waits_s == [0.0, HOUR]  # card's host stays idle


def test_a_run_repeats_exactly() -> None:
    trace = [ask(600 * (i // 3), 1800 + 300 * (i % 4), ("bank", "card")[i % 2]) for i in range(30)]
    runs = [
        simulate(trace, pool(3, {"bank": 1, "card": 2}, borrowing=True), horizon_s=6 * HOUR)
        for _ in range(2)
    ]
    assert runs[0].waits_s == runs[1].waits_s
    assert runs[0].samples == runs[1].samples
    assert runs[0].waits_s.count(None) == 0
    assert max(w or 0 for w in runs[0].waits_s) > 0

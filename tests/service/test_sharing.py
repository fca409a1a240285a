"""The sharing engine end to end on the services: borrow idle nominal, queue, reclaim with
notice, give back, backoff -- on SQLite and PostgreSQL, checking every counter each step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from groupcloud.db import claims
from groupcloud.domain.allocation import AllocationState, EndReason, PendingReason
from groupcloud.domain.clock import utcnow
from groupcloud.schemas.compute import AllocationCreate, QuotaSet
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, explain, hosts, quotas, scheduler, worker
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.service.helpers import ask, who
from tests.support import World, check_consistency, host


def _gpu_world(rt: Runtime, world: World) -> None:
    """Two extra hosts of 8 GPUs; bank and card each 8 GPU nominal, bank may borrow 8."""
    hosts.add_hosts(rt, SYSTEM, [host("g1", gpu=8), host("g2", gpu=8)])
    quotas.set_quota(rt, SYSTEM, "bank", "GPU", QuotaSet(nominal=8, borrowing_limit=8))
    quotas.set_quota(rt, SYSTEM, "card", "GPU", QuotaSet(nominal=8))
    quotas.set_quota(rt, SYSTEM, "bank", "VCPU", QuotaSet(nominal=32, borrowing_limit=None))


def _gpus(n: int, project: str = "web", **extra: Any) -> AllocationCreate:
    return ask({"GPU": n, "VCPU": 1}, project=project, queue=True, zone=None, **extra)


def test_borrow_then_reclaim_with_notice_then_owner_admitted(rt: Runtime, world: World) -> None:
    _gpu_world(rt, world)
    rt.settings.reclaim_notice_s = 60
    rt.settings.reclaim_backoff_s = 30
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)

    own = [allocations.allocate(rt, bank, _gpus(4)) for _ in range(2)]  # bank's own 8 GPUs
    assert [a.state for a in own] == [AllocationState.ACTIVE] * 2
    extra = allocations.allocate(rt, bank, _gpus(4))  # needs card's idle GPUs
    assert extra.state is AllocationState.PENDING
    assert extra.pending_reason is PendingReason.AWAITING_SCHEDULER

    t0 = utcnow()
    cycle = scheduler.run_cycle(rt, t0)
    assert (cycle.admitted, cycle.borrowed) == (1, 1)
    borrowed = allocations.get_allocation(rt, bank, extra.id)
    assert borrowed.state is AllocationState.ACTIVE
    assert borrowed.borrowed == {"card": {"GPU": 4}}
    assert check_consistency(rt).ok

    mine = allocations.allocate(rt, card, _gpus(4, project="pay"))  # card's free 4
    assert mine.state is AllocationState.ACTIVE
    waiting = allocations.allocate(rt, card, _gpus(4, project="pay"))  # lent to bank
    assert waiting.state is AllocationState.PENDING
    assert waiting.pending_reason is PendingReason.AWAITING_RECLAIM

    cycle = scheduler.run_cycle(rt, t0)
    assert (cycle.admitted, cycle.reclaims_started) == (0, 1)
    notice = allocations.get_allocation(rt, bank, extra.id)
    assert notice.state is AllocationState.RECLAIMING
    assert notice.reclaim_at == t0 + timedelta(seconds=60)
    # The owners' own allocations are never touched.
    assert all(allocations.get_allocation(rt, bank, a.id).state is AllocationState.ACTIVE
               for a in own)  # fmt: skip
    assert check_consistency(rt).ok
    # A second cycle during the notice does not reclaim more.
    assert scheduler.run_cycle(rt, t0 + timedelta(seconds=10)).reclaims_started == 0
    text = explain.explain(rt, card, waiting.id)
    assert text.pending_reason is PendingReason.AWAITING_RECLAIM
    assert any(extra.id in r for r in text.reasons), text.model_dump()

    done = worker.run_round(rt, t0 + timedelta(seconds=61))
    assert (done.reclaimed, done.admitted) == (1, 1)
    assert allocations.get_allocation(rt, card, waiting.id).state is AllocationState.ACTIVE
    requeued = allocations.get_allocation(rt, bank, extra.id)
    assert requeued.state is AllocationState.PENDING
    assert requeued.pending_reason is PendingReason.BACKOFF
    assert requeued.reclaim_count == 1
    assert requeued.not_before == t0 + timedelta(seconds=61 + 30)
    assert check_consistency(rt).ok
    q = {(x.company, x.resource_class): x for x in quotas.list_quotas(rt, SYSTEM)}
    assert (q["bank", "GPU"].used, q["bank", "GPU"].borrowed) == (8, 0)
    assert (q["card", "GPU"].used, q["card", "GPU"].lent) == (8, 0)

    # Card releases one: after its backoff the bank's workload borrows again.
    allocations.release(rt, card, mine.id)
    assert scheduler.run_cycle(rt, t0 + timedelta(seconds=62)).admitted == 0  # backoff
    assert scheduler.run_cycle(rt, t0 + timedelta(seconds=92)).admitted == 1
    assert allocations.get_allocation(rt, bank, extra.id).borrowed == {"card": {"GPU": 4}}
    assert check_consistency(rt).ok


def test_borrowing_never_exceeds_the_borrowing_limit(rt: Runtime, world: World) -> None:
    _gpu_world(rt, world)
    quotas.set_quota(rt, SYSTEM, "bank", "GPU", QuotaSet(nominal=8, borrowing_limit=2))
    bank = who(rt, world.bank_member)
    allocations.allocate(rt, bank, _gpus(8))
    over = allocations.allocate(rt, bank, _gpus(4))
    assert over.pending_reason is PendingReason.BORROWING_LIMIT
    ok = allocations.allocate(rt, bank, _gpus(2))
    scheduler.run_cycle(rt)
    assert allocations.get_allocation(rt, bank, ok.id).state is AllocationState.ACTIVE
    assert allocations.get_allocation(rt, bank, over.id).state is AllocationState.PENDING
    assert check_consistency(rt).ok


def test_queue_drains_in_priority_order_then_fifo(rt: Runtime, world: World) -> None:
    _gpu_world(rt, world)
    card = who(rt, world.card_member)
    first = allocations.allocate(rt, card, _gpus(8, project="pay"))
    queued = [
        allocations.allocate(rt, card, _gpus(4, project="pay", priority=p)) for p in (100, 900, 100)
    ]
    assert all(a.state is AllocationState.PENDING for a in queued)
    allocations.release(rt, card, first.id)
    scheduler.run_cycle(rt)
    states = [allocations.get_allocation(rt, card, a.id).state for a in queued]
    # 8 GPUs free again: the high-priority one and the older low-priority one get in.
    assert states == [AllocationState.ACTIVE, AllocationState.ACTIVE, AllocationState.PENDING]


def test_cancel_a_pending_request_holds_nothing(rt: Runtime, world: World) -> None:
    _gpu_world(rt, world)
    card = who(rt, world.card_member)
    allocations.allocate(rt, card, _gpus(8, project="pay"))
    waiting = allocations.allocate(rt, card, _gpus(8, project="pay"))
    out = allocations.release(rt, card, waiting.id)
    assert out.state is AllocationState.RELEASED
    assert out.end_reason is EndReason.CANCELLED
    assert check_consistency(rt).ok


def test_a_new_quota_line_can_start_without_limits(rt: Runtime, world: World) -> None:
    made = quotas.set_quota(
        rt, SYSTEM, "card", "GPU", QuotaSet(nominal=4, borrowing_limit=None, lending_limit=None)
    )
    assert (made.borrowing_limit, made.lending_limit) == (None, None)
    stored = {(q.company, q.resource_class): q for q in quotas.list_quotas(rt, SYSTEM)}
    assert stored["card", "GPU"].borrowing_limit is None
    default = quotas.set_quota(rt, SYSTEM, "card", "CUSTOM_FPGA", QuotaSet(nominal=1))
    assert (default.borrowing_limit, default.lending_limit) == (0, None)


def test_a_project_s_default_priority_and_a_company_s_weight_are_set_at_creation(
    rt: Runtime, world: World
) -> None:
    from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
    from groupcloud.services.tenancy import companies

    made = companies.create_company(
        rt, SYSTEM, CompanyCreate(slug="life", name="Life", fair_weight=2)
    )
    assert made.fair_weight == 2
    urgent = companies.create_project(
        rt, SYSTEM, "card", ProjectCreate(slug="ops", default_priority=900)
    )
    assert urgent.default_priority == 900
    _gpu_world(rt, world)
    card = who(rt, world.card_member)
    allocations.allocate(rt, card, _gpus(8, project="pay"))
    waiting = allocations.allocate(rt, card, _gpus(4, project="ops"))
    assert (waiting.state, waiting.priority) == (AllocationState.PENDING, 900)
    explicit = allocations.allocate(rt, card, _gpus(4, project="ops", priority=10))
    assert explicit.priority == 10


def test_a_failed_admission_in_a_batch_leaves_the_others_admitted(
    rt: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admissions are committed in batches; one that fails alone (here: its host was taken,
    as a concurrent claim would) is taken out of the cycle's snapshot and stays pending,
    the rest of the batch is committed."""
    _gpu_world(rt, world)
    card = who(rt, world.card_member)
    first = allocations.allocate(rt, card, _gpus(8, project="pay"))
    queued = [allocations.allocate(rt, card, _gpus(2, project="pay")) for _ in range(4)]
    allocations.release(rt, card, first.id)
    unlucky = queued[2].id
    real_admit = scheduler._admit

    def admit(rt_: Runtime, batch: list[Any], *args: Any) -> None:
        if any(p.row.id == unlucky for p in batch):
            raise claims.StaleHosts([h for p in batch for h in p.claim.placement.host_ids])
        real_admit(rt_, batch, *args)

    monkeypatch.setattr(scheduler, "_admit", admit)
    cycle = scheduler.run_cycle(rt)
    assert cycle.admitted == 3
    states = {a.id: allocations.get_allocation(rt, card, a.id) for a in queued}
    assert states[unlucky].state is AllocationState.PENDING
    assert states[unlucky].pending_reason is PendingReason.NO_CAPACITY
    assert sum(s.state is AllocationState.ACTIVE for s in states.values()) == 3
    assert check_consistency(rt).ok
    monkeypatch.setattr(scheduler, "_admit", real_admit)
    assert scheduler.run_cycle(rt).admitted == 1  # the index was corrected: it fits now
    assert check_consistency(rt).ok

"""Usage-based sharing on the services (issue #14), on SQLite and PostgreSQL: a lender
gets its lent nominal back from the idle pool before anybody is reclaimed (the loans move
to another lender), a borrower whose own nominal is free again repays its loans, and a
stale repay or move fails its conditional update instead of committing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from groupcloud.db import claims
from groupcloud.db.models import CompanyRow, EventRow, QuotaRow
from groupcloud.domain.allocation import AllocationState, PendingReason
from groupcloud.domain.clock import utcnow
from groupcloud.quota.cohort import Move
from groupcloud.schemas.compute import Allocation, AllocationCreate, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas, reclaims, scheduler
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.service.helpers import ask
from tests.support import World, check_consistency, host


def _pool(rt: Runtime, capital_lends: int | None) -> None:
    """Three hosts of 8 GPUs; bank, card and capital 8 GPUs nominal each, bank may
    borrow 8; capital lends ``capital_lends`` (None: all its idle nominal)."""
    hosts.add_hosts(rt, SYSTEM, [host(f"g{i}", gpu=8) for i in (1, 2, 3)])
    companies.create_company(rt, SYSTEM, CompanyCreate(slug="capital", name="Capital"))
    companies.create_project(rt, SYSTEM, "capital", ProjectCreate(slug="risk"))
    quotas.set_quota(rt, SYSTEM, "bank", "GPU", QuotaSet(nominal=8, borrowing_limit=8))
    quotas.set_quota(rt, SYSTEM, "card", "GPU", QuotaSet(nominal=8))
    quotas.set_quota(rt, SYSTEM, "capital", "GPU", QuotaSet(nominal=8, lending_limit=capital_lends))
    quotas.set_quota(rt, SYSTEM, "bank", "VCPU", QuotaSet(nominal=32, borrowing_limit=None))
    quotas.set_quota(rt, SYSTEM, "capital", "VCPU", QuotaSet(nominal=8))


def _gpus(
    n: int, company: str = "bank", project: str = "web", priority: int | None = None
) -> AllocationCreate:
    body = ask({"GPU": n, "VCPU": 1}, company=company, project=project, queue=True, zone=None)
    return body if priority is None else body.model_copy(update={"priority": priority})


def _bank_borrows_from_card(rt: Runtime) -> tuple[list[Allocation], Allocation]:
    """bank's own 8 GPUs in two allocations, then 4 borrowed from card (card and capital
    have as much to lend: the lower company id lends)."""
    own = [allocations.allocate(rt, SYSTEM, _gpus(4)) for _ in range(2)]
    assert [a.state for a in own] == [AllocationState.ACTIVE] * 2
    extra = allocations.allocate(rt, SYSTEM, _gpus(4))
    assert extra.state is AllocationState.PENDING
    cycle = scheduler.run_cycle(rt, utcnow())
    assert (cycle.admitted, cycle.borrowed) == (1, 1)
    assert allocations.get_allocation(rt, SYSTEM, extra.id).borrowed == {"card": {"GPU": 4}}
    return own, extra


def _ids(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as s:
        return {slug: int(i) for i, slug in s.execute(select(CompanyRow.id, CompanyRow.slug))}


def _line(rt: Runtime, company: str, rc: str) -> tuple[int, int, int]:
    """(used, borrowed, lent) of a quota line."""
    with rt.db.read() as s:
        row = s.get(QuotaRow, (_ids(rt)[company], rc))
        assert row is not None
        return (row.used, row.borrowed, row.lent)


def _kinds(rt: Runtime, subject: str) -> list[str]:
    with rt.db.read() as s:
        return list(
            s.scalars(
                select(EventRow.kind).where(EventRow.subject == subject).order_by(EventRow.id)
            )
        )


def test_a_lender_gets_its_nominal_from_the_idle_pool_and_nobody_is_reclaimed(
    rt: Runtime, world: World
) -> None:
    _pool(rt, capital_lends=None)
    _, extra = _bank_borrows_from_card(rt)
    mine = allocations.allocate(rt, SYSTEM, _gpus(8, company="card", project="pay"))
    # within card's nominal, but 4 of it is lent: the scheduler moves the loan first
    assert mine.state is AllocationState.PENDING
    assert mine.pending_reason is PendingReason.AWAITING_SCHEDULER
    cycle = scheduler.run_cycle(rt, utcnow())
    assert (cycle.admitted, cycle.borrowed, cycle.reclaims_started) == (1, 0, 0)
    assert allocations.get_allocation(rt, SYSTEM, mine.id).state is AllocationState.ACTIVE
    moved = allocations.get_allocation(rt, SYSTEM, extra.id)
    assert moved.state is AllocationState.ACTIVE  # it kept running
    assert moved.borrowed == {"capital": {"GPU": 4}}
    assert _kinds(rt, f"allocation/{extra.id}")[-1] == "allocation.lender_changed"
    assert _line(rt, "card", "GPU") == (8, 0, 0)
    assert _line(rt, "capital", "GPU") == (0, 0, 4)
    assert _line(rt, "bank", "GPU") == (12, 4, 0)
    assert check_consistency(rt).ok


def test_without_idle_capacity_the_lender_still_reclaims(rt: Runtime, world: World) -> None:
    _pool(rt, capital_lends=0)
    _, extra = _bank_borrows_from_card(rt)
    mine = allocations.allocate(rt, SYSTEM, _gpus(8, company="card", project="pay"))
    assert mine.state is AllocationState.PENDING
    assert mine.pending_reason is PendingReason.AWAITING_RECLAIM
    cycle = scheduler.run_cycle(rt, utcnow())
    assert (cycle.admitted, cycle.reclaims_started) == (0, 1)
    assert allocations.get_allocation(rt, SYSTEM, extra.id).state is AllocationState.RECLAIMING
    assert check_consistency(rt).ok


def test_a_borrower_back_below_nominal_repays_and_is_not_reclaimed(
    rt: Runtime, world: World
) -> None:
    _pool(rt, capital_lends=0)
    own, extra = _bank_borrows_from_card(rt)
    allocations.end(rt, SYSTEM, own[0].id)  # bank uses 8 = its nominal: it borrows nothing
    mine = allocations.allocate(rt, SYSTEM, _gpus(8, company="card", project="pay"))
    assert mine.state is AllocationState.PENDING
    cycle = scheduler.run_cycle(rt, utcnow())
    assert (cycle.admitted, cycle.reclaims_started) == (1, 0)
    kept = allocations.get_allocation(rt, SYSTEM, extra.id)
    assert kept.state is AllocationState.ACTIVE
    assert kept.borrowed == {}
    assert "allocation.loan_repaid" in _kinds(rt, f"allocation/{extra.id}")
    assert _line(rt, "bank", "GPU") == (8, 0, 0)
    assert _line(rt, "card", "GPU") == (8, 0, 0)
    assert check_consistency(rt).ok


def test_the_victim_is_the_borrowers_lowest_priority_allocation_loans_or_not(
    rt: Runtime, world: World
) -> None:
    # bank: its own 8 GPUs in a low- and a high-priority allocation, then 4 borrowed
    # from card at high priority. Card wants its nominal and nothing is idle: the
    # low-priority allocation goes (it holds no loan), and once it has ended bank
    # repays the loan from the nominal it freed; the high-priority work keeps running.
    _pool(rt, capital_lends=0)
    rt.settings.reclaim_notice_s = 0
    low = allocations.allocate(rt, SYSTEM, _gpus(4, priority=100))
    high = allocations.allocate(rt, SYSTEM, _gpus(4, priority=900))
    extra = allocations.allocate(rt, SYSTEM, _gpus(4, priority=900))
    now = utcnow()
    assert scheduler.run_cycle(rt, now).borrowed == 1
    assert allocations.get_allocation(rt, SYSTEM, extra.id).borrowed == {"card": {"GPU": 4}}
    mine = allocations.allocate(rt, SYSTEM, _gpus(8, company="card", project="pay"))
    assert mine.pending_reason is PendingReason.AWAITING_RECLAIM
    assert scheduler.run_cycle(rt, now).reclaims_started == 1
    states = {a.id: allocations.get_allocation(rt, SYSTEM, a.id).state for a in (low, high, extra)}
    assert states == {
        low.id: AllocationState.RECLAIMING,
        high.id: AllocationState.ACTIVE,
        extra.id: AllocationState.ACTIVE,
    }
    assert check_consistency(rt).ok
    assert reclaims.finish_due(rt, now) == 1
    cycle = scheduler.run_cycle(rt, now)
    assert (cycle.admitted, cycle.reclaims_started) == (1, 0)
    assert allocations.get_allocation(rt, SYSTEM, mine.id).state is AllocationState.ACTIVE
    kept = allocations.get_allocation(rt, SYSTEM, extra.id)
    assert (kept.state, kept.borrowed) == (AllocationState.ACTIVE, {})
    assert _line(rt, "bank", "GPU") == (8, 0, 0)
    assert _line(rt, "card", "GPU") == (8, 0, 0)
    assert check_consistency(rt).ok


def test_the_ledger_follows_usage_even_when_nobody_waits(rt: Runtime, world: World) -> None:
    _pool(rt, capital_lends=None)
    own, extra = _bank_borrows_from_card(rt)
    allocations.end(rt, SYSTEM, own[0].id)
    cycle = scheduler.run_cycle(rt, utcnow())  # nothing is pending: it only repays
    assert (cycle.pending, cycle.admitted) == (0, 0)
    assert allocations.get_allocation(rt, SYSTEM, extra.id).borrowed == {}
    assert _line(rt, "bank", "GPU") == (8, 0, 0)
    assert _line(rt, "card", "GPU") == (0, 0, 0)
    assert check_consistency(rt).ok
    # an idle round after that reads nothing more
    assert scheduler.run_cycle(rt, utcnow()).pending == 0


def _repay_move(rt: Runtime, allocation_id: str) -> Move:
    bank, card = _ids(rt)["bank"], _ids(rt)["card"]
    return Move(allocation_id, bank, "GPU", card, bank, 4, whole=True)


def test_a_repay_planned_before_the_borrower_took_its_free_nominal_fails(
    rt: Runtime, world: World
) -> None:
    _pool(rt, capital_lends=0)
    own, extra = _bank_borrows_from_card(rt)
    allocations.end(rt, SYSTEM, own[0].id)
    move = _repay_move(rt, extra.id)  # what a cycle would plan now ...
    again = allocations.allocate(rt, SYSTEM, _gpus(4))  # ... but bank takes its free 4
    assert again.state is AllocationState.ACTIVE
    with pytest.raises(claims.QuotaRefused), rt.db.fast_write() as cur:
        claims.repay(cur, rt.db, [move])
    assert _line(rt, "bank", "GPU") == (12, 4, 0)  # nothing was committed
    assert allocations.get_allocation(rt, SYSTEM, extra.id).borrowed == {"card": {"GPU": 4}}
    assert check_consistency(rt).ok


def test_a_move_of_a_released_allocation_fails(rt: Runtime, world: World) -> None:
    _pool(rt, capital_lends=0)
    own, extra = _bank_borrows_from_card(rt)
    allocations.end(rt, SYSTEM, own[0].id)
    move = _repay_move(rt, extra.id)
    allocations.end(rt, SYSTEM, extra.id)  # released: its loans went back already
    with pytest.raises(claims.QuotaRefused), rt.db.fast_write() as cur:
        claims.repay(cur, rt.db, [move])
    assert _line(rt, "card", "GPU") == (0, 0, 0)
    assert check_consistency(rt).ok

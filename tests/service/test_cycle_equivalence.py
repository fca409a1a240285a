"""The scheduler cycle decides the same on the database as in memory.

One scenario -- three companies, quotas with borrowing and lending limits, a queue over
several rounds, releases, reclaims with notice and backoff -- runs through (a) the
services on a real database (``allocations.allocate``/``end``, ``reclaims.finish_due``,
``scheduler.run_cycle``) and (b) the engines in memory, as the simulator drives them
(``simulator.des._Server``: ``quota.cycle``, ``placement``, ``quota.reclaim``, no
database). After every round both must hold the same states, hosts, loans, pending
reasons of the cycle and reclaim deadlines, request by request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from groupcloud.db.models import (
    AllocationItemRow,
    AllocationRow,
    CompanyRow,
    EventRow,
    HostRow,
    LoanRow,
)
from groupcloud.schemas.compute import AllocationCreate, HostCreate, InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas, reclaims, scheduler
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from groupcloud.simulator.demand import Request
from groupcloud.simulator.des import HostGroup, Pool, QuotaLine, _Alloc, _Server
from tests.support import check_consistency

T0 = datetime(2031, 3, 2, 9, 0, tzinfo=UTC)
HOST = {"VCPU": 8, "MEMORY_MB": 8192}
POOL = Pool(
    (HostGroup("h", 5, HOST),),
    {
        "bank": {"VCPU": QuotaLine(16, None), "MEMORY_MB": QuotaLine(16384, None)},
        "card": {"VCPU": QuotaLine(16, 8, 8), "MEMORY_MB": QuotaLine(16384, 8192, 8192)},
        "capital": {"VCPU": QuotaLine(8, 16), "MEMORY_MB": QuotaLine(8192, 16384)},
    },
)
# Per round: (requests arriving: company, VCPU per unit, units, priority), then the
# request numbers released before the round's cycle.
ROUNDS: list[tuple[list[tuple[str, int, int, int]], list[int]]] = [
    ([("bank", 8, 2, 500), ("bank", 8, 1, 500)], []),  # 1 borrows card's idle nominal
    # card's own nominal is lent: 1's loans move to capital's idle nominal (no reclaim)
    ([("card", 8, 2, 500)], []),
    # capital's nominal is lent now and nothing is idle: a reclaim notice to bank's newest
    # allocation, 1
    ([("capital", 4, 1, 300), ("bank", 4, 1, 700)], []),
    ([], []),
    ([], []),  # 1's notice is over: it queues again (backoff), 4 borrows, 3 is admitted
    ([("card", 8, 1, 900)], []),
    # bank's own 0 ends: 4 repays its loans from bank's free nominal, card's 5 borrows
    # beyond nominal, 1 is admitted again
    ([], [0]),
    # bank waits for what card borrows: card's lowest-priority allocation (2, within
    # nominal when it came) gets the notice, not 5 that holds the loan
    ([("bank", 8, 1, 500)], []),
    ([("capital", 8, 1, 500)], [3]),
    ([], []),
    ([], [2]),  # 2 ends during its notice: card's 5 repays, 6 borrows, 7 is admitted
    ([], []),
    ([], [1, 4]),
    ([], []),
    ([], []),
]
STEP = timedelta(seconds=40)
NOTICE_S, BACKOFF_S = 60.0, 30.0


def _build(rt: Runtime) -> None:
    """The pool on the database, through the services, in the order the simulator
    numbers it (hosts and companies in creation order)."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    bodies = [
        HostCreate(
            name=f"{g.name}-{i:04d}",
            zone=g.zone,
            inventories={rc: InventoryIn(total=n) for rc, n in g.resources.items()},
        )
        for g in POOL.hosts
        for i in range(g.count)
    ]
    hosts.add_hosts(rt, SYSTEM, bodies)
    for company, lines in POOL.quotas.items():
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=company, name=company.title()))
        companies.create_project(rt, SYSTEM, company, ProjectCreate(slug="sim"))
        for rc, line in lines.items():
            body = QuotaSet(
                nominal=line.nominal,
                borrowing_limit=line.borrowing_limit,
                lending_limit=line.lending_limit,
            )
            quotas.set_quota(rt, SYSTEM, company, rc, body)


def _request(company: str, vcpu: int, units: int, priority: int) -> Request:
    return Request(
        arrival_s=0,
        duration_s=1,
        company=company,
        priority=priority,
        resources={"VCPU": vcpu, "MEMORY_MB": vcpu * 1024},
        count=units,
    )


def _on_database(rt: Runtime, ids: list[str]) -> list[dict[str, Any]]:
    """Each request's state as the database holds it (by request number)."""
    with rt.db.read() as s:
        slugs = dict(s.execute(select(CompanyRow.id, CompanyRow.slug)).all())
        names = dict(s.execute(select(HostRow.id, HostRow.name)).all())
        rows = {r.id: r for r in s.scalars(select(AllocationRow))}
        held: dict[str, set[str]] = {i: set() for i in ids}
        for alloc_id, host_id in s.execute(
            select(AllocationItemRow.allocation_id, AllocationItemRow.host_id)
        ):
            if rows[alloc_id].state in ("active", "reclaiming"):
                held[alloc_id].add(names[host_id])
        loans: dict[str, dict[tuple[str, str], int]] = {i: {} for i in ids}
        for alloc_id, lender, rc, n in s.execute(
            select(LoanRow.allocation_id, LoanRow.lender_id, LoanRow.resource_class, LoanRow.amount)
        ):
            if rows[alloc_id].state in ("active", "reclaiming"):
                loans[alloc_id][slugs[lender], rc] = n
    return [
        {
            "state": rows[i].state,
            "hosts": held[i],
            "loans": loans[i],
            "reclaim_at": _utc(rows[i].reclaim_at),
            "not_before": _utc(rows[i].not_before) if rows[i].state == "pending" else None,
        }
        for i in ids
    ]


def _in_memory(server: _Server, made: list[_Alloc]) -> list[dict[str, Any]]:
    slugs = {i: c for c, i in server.company_ids.items()}
    names = dict(zip(server.index.host_ids.tolist(), server.index.host_names, strict=True))
    return [
        {
            "state": a.state,
            "hosts": {names[h] for h, _, _ in a.deltas},
            "loans": {(slugs[lender], rc): n for (lender, rc), n in a.loans.items()},
            "reclaim_at": a.reclaim_at,
            "not_before": a.not_before if a.state == "pending" else None,
        }
        for a in made
    ]


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _reasons_on_database(rt: Runtime, ids: list[str]) -> dict[str, str | None]:
    with rt.db.read() as s:
        return dict(
            s.execute(
                select(AllocationRow.id, AllocationRow.pending_reason).where(
                    AllocationRow.id.in_(ids)
                )
            ).all()
        )


def test_the_service_cycle_and_the_engine_in_memory_decide_the_same(rt: Runtime) -> None:
    rt.settings.reclaim_notice_s = NOTICE_S
    rt.settings.reclaim_backoff_s = BACKOFF_S
    _build(rt)
    server = _Server(
        POOL,
        seed=rt.settings.placement_seed,
        notice_s=NOTICE_S,
        backoff_s=BACKOFF_S,
        backoff_max_s=rt.settings.reclaim_backoff_max_s,
    )
    ids: list[str] = []  # database ids, by request number
    made: list[_Alloc] = []  # in-memory allocations, by request number
    seen = {"admitted": 0, "reclaims": 0, "notices": 0, "borrowed": 0}
    for step, (arrivals, releases) in enumerate(ROUNDS):
        now = T0 + step * STEP
        rt.clock = lambda now=now: now  # type: ignore[misc]
        for number in releases:
            allocations.end(rt, SYSTEM, ids[number])
            server.end(made[number])
        for company, vcpu, units, priority in arrivals:
            r = _request(company, vcpu, units, priority)
            body = AllocationCreate(
                company=company,
                project="sim",
                resources=dict(r.resources),
                count=units,
                priority=priority,
                queue=True,
            )
            ids.append(allocations.allocate(rt, SYSTEM, body).id)
            made.append(server.allocate(r, None, now))
        assert _on_database(rt, ids) == _in_memory(server, made), f"after the arrivals of {step}"

        reclaimed = reclaims.finish_due(rt, now)
        assert reclaimed == server.finish_due(now), f"round {step}"
        report = scheduler.run_cycle(rt, now)
        notices = server.run_cycle(now)
        assert (report.reclaims_started, step) == (notices, step)
        assert _on_database(rt, ids) == _in_memory(server, made), f"after round {step}"
        assert check_consistency(rt).ok
        seen["admitted"] += report.admitted
        seen["borrowed"] += report.borrowed
        seen["reclaims"] += reclaimed
        seen["notices"] += notices
        plan = server.last_plan
        if plan is None:  # nothing was ready: the service's cycle did nothing either
            assert (report.pending, report.admitted) == (0, 0)
            continue
        assert report.admitted == len(plan.admitted)
        by_seq = {a.seq: number for number, a in enumerate(made)}
        reasons = _reasons_on_database(rt, ids)
        for seq, (reason, _) in plan.reasons.items():
            number = by_seq[seq]
            assert reasons[ids[number]] == reason.value, f"request {number}, round {step}"
    # The scenario exercised what it is about: borrowing, reclaims, notices, a queue.
    # (idle pool first spares a notice; card's lowest-priority allocation, not the one
    # holding the loan, gets the second, and its owner releases it during the notice)
    assert seen == {"admitted": 8, "reclaims": 1, "notices": 2, "borrowed": 4}
    with rt.db.read() as s:
        kinds = dict(
            s.execute(
                select(EventRow.kind, func.count())
                .where(EventRow.kind.in_(["allocation.lender_changed", "allocation.loan_repaid"]))
                .group_by(EventRow.kind)
            ).all()
        )
    assert kinds == {"allocation.lender_changed": 2, "allocation.loan_repaid": 8}

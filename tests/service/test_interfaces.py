"""Allocations with network interfaces, on SQLite and PostgreSQL: addresses claimed in the
capacity's transaction (at once or when the scheduler admits), released with it into
quarantine, and refusals that leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from groupcloud.db.models import AllocationRow, EventRow
from groupcloud.domain.allocation import AllocationState, PendingReason
from groupcloud.errors import AddressSpaceExhausted, NotFound
from groupcloud.schemas.compute import InterfaceSpec, QuotaSet
from groupcloud.schemas.network import SubnetCreate, SupernetCreate, VpcCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, quotas, scheduler
from groupcloud.services.network import ips, prefixes
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import ask, counters, who
from tests.support import World, check_consistency


def _subnets(rt: Runtime, **sizes: int) -> None:
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    for company in ("bank", "card"):
        prefixes.create_vpc(
            rt, SYSTEM, VpcCreate(name="core", supernet="corp", company=company, prefixlen=16)
        )
    for name, prefixlen in sizes.items():
        prefixes.create_subnet(
            rt, SYSTEM, "bank", "core", SubnetCreate(name=name, prefixlen=prefixlen)
        )


def _nics(*specs: tuple[str, int]) -> list[InterfaceSpec]:
    return [InterfaceSpec(subnet=s, count=n) for s, n in specs]


def test_units_get_their_addresses_with_their_capacity(rt: Runtime, world: World) -> None:
    _subnets(rt, web=24, db=28)
    bank = who(rt, world.bank_member)
    body = ask({"VCPU": 2}, count=2, interfaces=_nics(("web", 2), ("db", 1)))
    made = allocations.allocate(rt, bank, body)
    assert made.state is AllocationState.ACTIVE
    got = [[(a.subnet, a.address) for a in u.addresses] for u in made.units]
    assert got == [  # in the order asked
        [("web", "10.0.0.2"), ("web", "10.0.0.3"), ("db", "10.0.1.2")],
        [("web", "10.0.0.4"), ("web", "10.0.0.5"), ("db", "10.0.1.3")],
    ]
    shown = allocations.get_allocation(rt, bank, made.id)
    assert [[(a.subnet, a.address) for a in u.addresses] for u in shown.units] == got
    listed = ips.list_ips(rt, bank, "bank", "web").items
    assert {(i.allocation, i.unit) for i in listed} == {(made.id, 0), (made.id, 1)}
    assert check_consistency(rt).ok

    allocations.release(rt, bank, made.id)
    assert ips.list_ips(rt, bank, "bank", "web").items == []
    web = prefixes.get_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "web")
    assert web.quarantined == 4  # held until the quarantine ends: not handed to the next
    again = allocations.allocate(rt, bank, ask({"VCPU": 2}, interfaces=_nics(("web", 1))))
    assert [a.address for a in again.units[0].addresses] == ["10.0.0.6"]
    assert check_consistency(rt).ok
    with rt.db.read() as s:
        released = s.scalars(
            select(EventRow.data).where(
                EventRow.kind == "allocation.released", EventRow.subject == f"allocation/{made.id}"
            )
        ).one()
    assert sorted(released["addresses"]) == [
        "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.1.2", "10.0.1.3",
    ]  # fmt: skip


def test_a_claim_without_enough_addresses_leaves_nothing_behind(rt: Runtime, world: World) -> None:
    _subnets(rt, tiny=29)  # 8 addresses, 3 reserved
    bank = who(rt, world.bank_member)
    before = counters(rt)
    with pytest.raises(AddressSpaceExhausted, match="tiny"):
        allocations.allocate(rt, bank, ask({"VCPU": 2}, count=3, interfaces=_nics(("tiny", 2))))
    assert counters(rt) == before
    assert ips.list_ips(rt, bank, "bank", "tiny").items == []
    # the cached free space of the subnet was not changed by the failed claim
    made = allocations.allocate(rt, bank, ask({"VCPU": 2}, interfaces=_nics(("tiny", 5))))
    assert [a.address for a in made.units[0].addresses] == [f"10.0.0.{n}" for n in range(2, 7)]
    with pytest.raises(NotFound, match="subnet 'nope'"):
        allocations.allocate(rt, bank, ask({"VCPU": 2}, interfaces=_nics(("nope", 1))))
    card = who(rt, world.card_member)
    with pytest.raises(NotFound, match="subnet 'tiny' not found in 'card'"):
        allocations.allocate(
            rt, card, ask({"VCPU": 2}, project="pay", interfaces=_nics(("tiny", 1)))
        )
    assert check_consistency(rt).ok


def test_queued_requests_get_addresses_when_admitted(
    database_url: str, tmp_path: Path, rt: Runtime, world: World
) -> None:
    _subnets(rt, web=29)
    quotas.set_quota(rt, SYSTEM, "bank", "VCPU", QuotaSet(nominal=4, borrowing_limit=16))
    bank = who(rt, world.bank_member)
    own = allocations.allocate(rt, bank, ask({"VCPU": 4}, interfaces=_nics(("web", 2))))
    borrowing = allocations.allocate(
        rt, bank, ask({"VCPU": 4}, queue=True, interfaces=_nics(("web", 2)))
    )
    starved = allocations.allocate(
        rt, bank, ask({"VCPU": 4}, queue=True, interfaces=_nics(("web", 2)))
    )
    assert (borrowing.state, starved.state) == (AllocationState.PENDING,) * 2
    cycle = scheduler.run_cycle(rt)
    assert cycle.admitted == 1  # the subnet has 5 addresses: 2 + 2, then 1 left
    admitted = allocations.get_allocation(rt, bank, borrowing.id)
    assert admitted.state is AllocationState.ACTIVE
    assert [a.address for a in admitted.units[0].addresses] == ["10.0.0.4", "10.0.0.5"]
    waiting = allocations.get_allocation(rt, bank, starved.id)
    assert waiting.state is AllocationState.PENDING
    assert waiting.pending_reason is PendingReason.NO_ADDRESSES
    assert check_consistency(rt).ok

    # once the quarantine of released addresses is over, the waiting one gets them
    quick = open_runtime(database_url, tmp_path, ip_quarantine_s=0)
    try:
        allocations.release(quick, bank, own.id)
        assert scheduler.run_cycle(quick).admitted == 1
        done = allocations.get_allocation(quick, bank, starved.id)
        assert [a.address for a in done.units[0].addresses] == ["10.0.0.2", "10.0.0.3"]
        assert check_consistency(quick).ok
    finally:
        quick.close()
    with rt.db.read() as s:
        states = dict(s.execute(select(AllocationRow.id, AllocationRow.state)).all())
        assert s.scalar(select(func.count()).select_from(AllocationRow)) == 3
    assert states[starved.id] == "active"

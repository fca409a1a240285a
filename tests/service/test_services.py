"""Catalog services on both databases: a plan's parts are claimed as one gang (all or
nothing: a part that does not fit, or a quota that does not take the sum, leaves nothing
held), deletion returns everything, and tenancy holds."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from groupcloud.db.models import AllocationRow, ServiceInstanceRow
from groupcloud.domain.allocation import AllocationState
from groupcloud.errors import InvalidInput, NeverFits, NoCapacity, NotFound, QuotaExceeded
from groupcloud.schemas.catalog import ServiceCreate
from groupcloud.services.catalog import instances
from groupcloud.services.common.runtime import Runtime
from tests.service.helpers import set_quotas, who
from tests.support import World, check_consistency


def _counts(rt: Runtime) -> tuple[int, int]:
    with rt.db.read() as s:
        return (
            int(s.scalar(select(func.count()).select_from(AllocationRow)) or 0),
            int(s.scalar(select(func.count()).select_from(ServiceInstanceRow)) or 0),
        )


def _ask(plan: str, template: str = "redis", **params: object) -> ServiceCreate:
    return ServiceCreate(project="web", template=template, plan=plan, parameters=params)


def test_a_plan_is_claimed_as_one_gang_and_deleted_whole(rt: Runtime, world: World) -> None:
    bank = who(rt, world.bank_member)
    made = instances.create_service(rt, bank, _ask("medium", replicas=2))
    assert made.state == "ready"
    assert [(p.name, p.count, p.state) for p in made.parts] == [
        ("primary", 1, AllocationState.ACTIVE), ("replica", 2, AllocationState.ACTIVE),
    ]  # fmt: skip
    assert len(made.parts[1].hosts) == 2  # replicas on different hosts (anti-affinity)
    assert made.parameters == {"replicas": 2, "eviction": "allkeys-lru"}
    assert check_consistency(rt).ok
    assert [s.id for s in instances.list_services(rt, bank)] == [made.id]
    card = who(rt, world.card_member)
    assert instances.list_services(rt, card) == []
    with pytest.raises(NotFound):
        instances.get_service(rt, card, made.id)
    with pytest.raises(NotFound):
        instances.delete_service(rt, card, made.id)
    gone = instances.delete_service(rt, bank, made.id)
    assert gone.state == "gone"
    assert {p.state for p in gone.parts} == {AllocationState.RELEASED}
    assert instances.delete_service(rt, bank, made.id).state == "gone"  # idempotent
    assert instances.list_services(rt, bank) == []
    assert check_consistency(rt).ok


def test_nothing_is_held_when_one_part_does_not_fit(rt: Runtime, world: World) -> None:
    bank = who(rt, world.bank_member)
    before = _counts(rt)
    # 5 replicas on different hosts, but the world has 4 hosts: the gang never fits.
    with pytest.raises(NeverFits, match="part replica"):
        instances.create_service(rt, bank, _ask("medium", replicas=5))
    # Each part alone fits bank's quota (2 VCPU of 3), the gang (4 VCPU) does not.
    set_quotas(rt, "bank", {"VCPU": 3, "MEMORY_MB": 131072})
    with pytest.raises(QuotaExceeded, match="whole gang"):
        instances.create_service(rt, bank, _ask("medium", replicas=1))
    assert _counts(rt) == before  # no allocation, no instance
    assert check_consistency(rt).ok
    with pytest.raises(InvalidInput) as bad:
        instances.create_service(rt, bank, _ask("medium", replicas=9, colour="red"))
    assert {e["field"] for e in bad.value.extra["errors"]} == {"parameters", "replicas"}
    with pytest.raises(NotFound):
        instances.create_service(rt, bank, _ask("small", template="nope"))


def test_a_gang_that_fills_the_hosts_leaves_the_next_one_out_whole(
    rt: Runtime, world: World
) -> None:
    bank = who(rt, world.bank_member)
    set_quotas(rt, "bank", {"VCPU": 64, "MEMORY_MB": 262144})
    # Four hosts of 16 VCPU / 64 GiB: each medium redis with 1 replica takes 2 x 16 GiB.
    made = [instances.create_service(rt, bank, _ask("medium", replicas=1)) for _ in range(4)]
    assert all(m.state == "ready" for m in made)
    before = _counts(rt)
    refused: Exception | None = None
    for _ in range(8):
        try:
            instances.create_service(rt, bank, _ask("medium", replicas=1))
        except (NoCapacity, QuotaExceeded) as exc:
            refused = exc
            break
    assert refused is not None, "the hosts never filled up"
    with rt.db.read() as s:  # every instance has all of its parts
        parts = dict(
            s.execute(
                select(AllocationRow.service_instance_id, func.count())
                .where(AllocationRow.state == AllocationState.ACTIVE.value)
                .group_by(AllocationRow.service_instance_id)
            ).all()
        )
    assert set(parts.values()) == {2}
    assert _counts(rt)[0] >= before[0]
    assert check_consistency(rt).ok

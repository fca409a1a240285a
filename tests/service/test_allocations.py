"""Claim and release through the service layer: exact counter movements, idempotent
release, reuse of released capacity, Idempotency-Key (invariants 1 and 3)."""

from __future__ import annotations

import pytest

from groupcloud.domain.allocation import AllocationState
from groupcloud.errors import IdempotencyKeyReused, InvalidInput, NoCapacity, NotFound
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.service.helpers import ask, counters, who
from tests.support import World, build_world, check_consistency


def test_allocate_claims_exactly_the_requested_amounts_on_the_chosen_hosts(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    before = counters(rt)

    out = allocations.allocate(rt, dev, ask({"VCPU": 4, "MEMORY_MB": 8192}, count=2))

    assert out.company == "bank"
    assert out.project == "web"
    assert out.state is AllocationState.ACTIVE
    assert out.count == 2
    assert [u.unit for u in out.units] == [0, 1]
    assert out.created_by == "token:bank-dev@bank"
    assert out.released_at is None
    after = counters(rt)
    expected: dict[tuple[str, str], int] = {}
    for unit in out.units:
        for rc, n in {"VCPU": 4, "MEMORY_MB": 8192}.items():
            expected[(unit.host, rc)] = expected.get((unit.host, rc), 0) + n
    assert after.inventory_delta(before) == expected
    assert after.quota_delta(before) == {("bank", "VCPU"): 8, ("bank", "MEMORY_MB"): 16384}
    assert after.allocations == before.allocations + 1
    assert after.items == before.items + 4  # 2 units x 2 classes
    assert check_consistency(rt).ok


def test_release_returns_exactly_what_was_claimed(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    before = counters(rt)
    out = allocations.allocate(rt, dev, ask({"VCPU": 3, "MEMORY_MB": 1000, "GPU": 1}, count=2))

    released = allocations.release(rt, dev, out.id)

    assert released.id == out.id
    assert released.state is AllocationState.RELEASED
    assert released.released_by == "token:bank-dev@bank"
    assert released.released_at is not None
    assert released.units == out.units  # where it was stays on record
    after = counters(rt)
    assert after.inventory == before.inventory
    assert after.quota == before.quota
    assert check_consistency(rt).ok


def test_second_release_changes_nothing_and_returns_the_same_state(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    out = allocations.allocate(rt, dev, ask({"VCPU": 2, "MEMORY_MB": 2048}))
    first = allocations.release(rt, dev, out.id)
    after_first = counters(rt)

    second = allocations.release(rt, dev, out.id)

    assert second == first  # same released_at and released_by: nothing was freed twice
    assert counters(rt) == after_first  # not even an event
    released_events = events.list_events(
        rt, SYSTEM, kind="allocation.released", subject=f"allocation/{out.id}"
    ).items
    assert len(released_events) == 1
    assert check_consistency(rt).ok


def test_released_capacity_is_immediately_claimable_by_another_company(rt: Runtime) -> None:
    world = build_world(rt, n_hosts=1)  # one host of 16 VCPU
    bank, card = who(rt, world.bank_member), who(rt, world.card_member)
    held = allocations.allocate(rt, bank, ask({"VCPU": 12, "MEMORY_MB": 1024}))
    with pytest.raises(NoCapacity):
        allocations.allocate(rt, card, ask({"VCPU": 8, "MEMORY_MB": 1024}, project="pay"))

    allocations.release(rt, bank, held.id)
    taken = allocations.allocate(rt, card, ask({"VCPU": 16, "MEMORY_MB": 1024}, project="pay"))

    assert [u.host for u in taken.units] == ["h1"]
    assert taken.company == "card"
    assert counters(rt).inventory[("h1", "VCPU")] == 16
    assert counters(rt).quota[("bank", "VCPU")] == 0
    assert check_consistency(rt).ok


def test_get_allocation_shows_the_stored_allocation_and_unknown_ids_are_not_found(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    out = allocations.allocate(rt, dev, ask({"VCPU": 1}, project="batch", traits=["ssd"]))

    shown = allocations.get_allocation(rt, dev, out.id)

    assert shown.id == out.id
    assert shown.project == "batch"
    assert shown.required_traits == ["ssd"]
    assert shown.units == out.units
    assert shown.resources == {"VCPU": 1}
    assert shown.state is AllocationState.ACTIVE
    unknown = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(NotFound) as err:
        allocations.get_allocation(rt, SYSTEM, unknown)
    assert (err.value.code, err.value.status) == ("not_found", 404)
    with pytest.raises(NotFound):
        allocations.release(rt, SYSTEM, unknown)
    assert check_consistency(rt).ok


def test_list_allocations_filters_by_project_state_and_host(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    web = allocations.allocate(rt, dev, ask({"VCPU": 1}, traits=["ssd"]))  # on h1
    batch = allocations.allocate(rt, dev, ask({"VCPU": 1}, project="batch"))
    gone = allocations.allocate(rt, dev, ask({"VCPU": 1}, project="batch"))
    allocations.release(rt, dev, gone.id)

    def ids(**filters: object) -> list[str]:
        page = allocations.list_allocations(rt, dev, **filters)  # type: ignore[arg-type]
        return [a.id for a in page.items]

    assert ids() == [web.id, batch.id, gone.id]  # oldest first
    assert ids(project="batch") == [batch.id, gone.id]
    assert ids(state=AllocationState.ACTIVE) == [web.id, batch.id]
    assert ids(state=AllocationState.RELEASED) == [gone.id]
    assert web.id in ids(host="h1")
    assert all(
        any(u.host == "h1" for u in a.units)
        for a in allocations.list_allocations(rt, dev, host="h1").items
    )
    assert ids(host="no-such-host") == []
    assert check_consistency(rt).ok


def test_group_admin_must_name_the_company(rt: Runtime, world: World) -> None:
    admin = who(rt, world.admin)
    before = counters(rt)
    with pytest.raises(InvalidInput) as err:
        allocations.allocate(rt, admin, ask({"VCPU": 1}))
    assert err.value.code == "validation_error"
    assert err.value.status == 422

    out = allocations.allocate(rt, admin, ask({"VCPU": 1}, company="card", project="pay"))

    assert out.company == "card"
    assert counters(rt).quota_delta(before) == {("card", "VCPU"): 1}
    assert check_consistency(rt).ok


# --- Idempotency-Key -----------------------------------------------------------------


def test_same_idempotency_key_and_body_returns_the_first_allocation_without_a_second_claim(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    body = ask({"VCPU": 2, "MEMORY_MB": 4096}, count=2)
    first = allocations.allocate(rt, dev, body, idempotency_key="deploy-42")
    after_first = counters(rt)

    again = allocations.allocate(rt, dev, body, idempotency_key="deploy-42")

    assert again.id == first.id
    assert again.units == first.units
    assert counters(rt) == after_first  # no claim, no row, no event
    assert len(allocations.list_allocations(rt, dev).items) == 1
    assert check_consistency(rt).ok


def test_same_idempotency_key_with_a_different_body_is_refused(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    first = allocations.allocate(rt, dev, ask({"VCPU": 2}), idempotency_key="k1")
    after_first = counters(rt)

    with pytest.raises(IdempotencyKeyReused) as err:
        allocations.allocate(rt, dev, ask({"VCPU": 3}), idempotency_key="k1")

    assert err.value.code == "idempotency_key_reused"
    assert err.value.status == 422
    assert err.value.extra["allocation"] == first.id
    assert counters(rt) == after_first
    assert check_consistency(rt).ok


def test_idempotency_keys_are_per_company_whoever_sends_them(rt: Runtime, world: World) -> None:
    """The company named in the body or implied by the token hash the same way; another
    company's use of the same key is a different request."""
    bank, card, admin = (who(rt, s) for s in (world.bank_member, world.card_member, world.admin))
    first = allocations.allocate(rt, bank, ask({"VCPU": 2}), idempotency_key="same")

    again = allocations.allocate(
        rt, admin, ask({"VCPU": 2}, company="bank"), idempotency_key="same"
    )
    other = allocations.allocate(rt, card, ask({"VCPU": 2}, project="pay"), idempotency_key="same")

    assert again.id == first.id
    assert other.id != first.id
    assert other.company == "card"
    assert counters(rt).quota[("bank", "VCPU")] == 2
    assert counters(rt).quota[("card", "VCPU")] == 2
    assert check_consistency(rt).ok


def test_replay_after_release_returns_the_released_allocation_and_claims_nothing(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    body = ask({"VCPU": 2})
    first = allocations.allocate(rt, dev, body, idempotency_key="once")
    allocations.release(rt, dev, first.id)
    after_release = counters(rt)

    again = allocations.allocate(rt, dev, body, idempotency_key="once")

    assert again.id == first.id
    assert again.state is AllocationState.RELEASED
    assert counters(rt) == after_release
    assert check_consistency(rt).ok

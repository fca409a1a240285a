"""Two runtimes on one database, as two API processes: each has its own in-memory capacity
index, which may be stale. The database stays the source of truth (invariant 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from groupcloud.db import claims
from groupcloud.domain.allocation import Strategy
from groupcloud.errors import NoCapacity
from groupcloud.schemas.compute import Allocation
from groupcloud.schemas.tenancy import ProjectCreate
from groupcloud.services.common import index_cache
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import ask, counters, set_quotas, who
from tests.support import World, build_world, check_consistency, host

T = TypeVar("T")


@pytest.fixture
def pair(database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, Runtime]]:
    """Runtimes A and B on the same database; B never refreshes on a timer (refresh_s=0),
    so whatever B knows about other processes it learns on the claim path."""
    a = open_runtime(database_url, tmp_path / "a")
    b = open_runtime(database_url, tmp_path / "b", index_refresh_s=0)
    yield a, b
    b.close()
    a.close()


@pytest.fixture
def slow_generation_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """B's periodic pool-generation check has not come round yet (it runs at most every
    GENERATION_CHECK_S): the claim path alone must cope with what changed meanwhile."""
    monkeypatch.setattr(index_cache, "GENERATION_CHECK_S", 3600.0)


def test_capacity_released_through_a_is_claimable_through_b(
    pair: tuple[Runtime, Runtime],
) -> None:
    a, b = pair
    world = build_world(a, n_hosts=1)
    card = who(a, world.card_member)
    held = allocations.allocate(a, card, ask({"VCPU": 12}, project="pay"))
    b.index.get()  # B's index is built now: it believes h1 has 4 VCPU free
    assert b.index.get().used_of(int(b.index.get().host_ids[0]), "VCPU") == 12

    allocations.release(a, card, held.id)
    out = allocations.allocate(b, who(b, world.bank_member), ask({"VCPU": 16}))

    assert [u.host for u in out.units] == ["h1"]
    assert counters(a).inventory[("h1", "VCPU")] == 16
    assert check_consistency(a).ok


def test_b_never_over_allocates_with_a_stale_index(pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    world = build_world(a, n_hosts=1)
    b.index.get()  # B believes h1 is empty
    allocations.allocate(a, who(a, world.card_member), ask({"VCPU": 12}, project="pay"))
    bank_b = who(b, world.bank_member)

    with pytest.raises(NoCapacity):
        allocations.allocate(b, bank_b, ask({"VCPU": 8}))
    fits = allocations.allocate(b, bank_b, ask({"VCPU": 4}))

    assert [u.host for u in fits.units] == ["h1"]
    assert counters(a).inventory[("h1", "VCPU")] == 16
    assert counters(a).quota[("bank", "VCPU")] == 4
    assert check_consistency(a).ok


def test_interleaved_claims_through_two_runtimes_fill_the_pool_exactly(
    pair: tuple[Runtime, Runtime],
) -> None:
    a, b = pair
    world = build_world(a, n_hosts=2)  # 32 VCPU
    set_quotas(a, "bank", {"VCPU": 64})
    set_quotas(a, "card", {"VCPU": 64})
    actors = [(a, who(a, world.bank_member), "web"), (b, who(b, world.card_member), "pay")]
    taken = 0
    refused = 0
    for i in range(40):
        rt, actor, project = actors[i % 2]
        try:
            allocations.allocate(rt, actor, ask({"VCPU": 3}, project=project))
            taken += 3
        except NoCapacity:
            refused += 1

    after = counters(a)
    assert taken == 30  # 2 hosts of 16 hold 5 units of 3 each
    assert refused == 30
    assert after.inventory[("h1", "VCPU")] + after.inventory[("h2", "VCPU")] == 30
    assert after.quota[("bank", "VCPU")] + after.quota[("card", "VCPU")] == 30
    assert check_consistency(a).ok


def test_host_drained_through_a_is_not_used_by_b(
    pair: tuple[Runtime, Runtime], slow_generation_check: None
) -> None:
    a, b = pair
    world = build_world(a, n_hosts=2)
    bank_b = who(b, world.bank_member)
    first = allocations.allocate(b, bank_b, ask({"VCPU": 2}))  # pack: the next one goes here too
    drained = first.units[0].host

    hosts.drain_host(a, SYSTEM, drained)
    second = allocations.allocate(b, bank_b, ask({"VCPU": 2}))

    assert second.units[0].host != drained
    assert counters(a).inventory[(drained, "VCPU")] == 2
    assert check_consistency(a).ok


def test_host_removed_through_a_is_not_used_by_b(
    pair: tuple[Runtime, Runtime], slow_generation_check: None
) -> None:
    a, b = pair
    world = build_world(a, n_hosts=2)
    bank_b = who(b, world.bank_member)
    first = allocations.allocate(b, bank_b, ask({"VCPU": 2}))
    empty = ({"h1", "h2"} - {first.units[0].host}).pop()

    hosts.remove_host(a, SYSTEM, empty)
    second = allocations.allocate(b, bank_b, ask({"VCPU": 2}, strategy=Strategy.SPREAD))

    assert second.units[0].host == first.units[0].host
    assert check_consistency(a).ok


def test_host_added_through_a_is_used_by_b_after_b_syncs(pair: tuple[Runtime, Runtime]) -> None:
    a, b = pair
    world = build_world(a, n_hosts=1)
    bank_b = who(b, world.bank_member)
    before = b.index.get().generation

    hosts.add_hosts(a, SYSTEM, [host("n1", traits=["fresh"])])
    out = allocations.allocate(b, bank_b, ask({"VCPU": 2}, traits=["fresh"]))

    assert [u.host for u in out.units] == ["n1"]
    assert b.index.get().generation > before
    assert b.index.get().generation == a.index.get().generation
    assert check_consistency(a).ok


def test_projects_created_through_a_are_usable_through_b_at_once(
    pair: tuple[Runtime, Runtime],
) -> None:
    a, b = pair
    world: World = build_world(a, n_hosts=1)
    allocations.allocate(b, who(b, world.bank_member), ask({"VCPU": 1}))  # warms B's caches

    companies.create_project(a, SYSTEM, "bank", ProjectCreate(slug="fresh"))
    out = allocations.allocate(b, who(b, world.bank_member), ask({"VCPU": 1}, project="fresh"))

    assert out.project == "fresh"
    assert check_consistency(b).ok


def test_quota_freed_between_a_refused_claim_and_its_report_is_no_internal_error(
    pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's claim is refused by the quota row; before B builds its refusal, A releases the
    allocation that filled the quota. The quota is free again, so B's claim is retried and
    succeeds (not an internal error), and the counters stay exact."""
    a, b = pair
    world = build_world(a, n_hosts=2)
    card_a = who(a, world.card_member)
    held = allocations.allocate(a, card_a, ask({"VCPU": 16}, project="pay"))  # card quota full
    claim = b.db.retrying
    interleaved: list[Allocation] = []

    def release_after_refusal(fn: Callable[[], T]) -> T:
        try:
            return claim(fn)
        except claims.QuotaRefused:
            if not interleaved:
                interleaved.append(allocations.release(a, card_a, held.id))
            raise

    monkeypatch.setattr(b.db, "retrying", release_after_refusal)
    out = allocations.allocate(b, who(b, world.card_member), ask({"VCPU": 4}, project="pay"))

    assert len(interleaved) == 1  # the release did land between claim and report
    assert out.company == "card"
    assert counters(a).quota[("card", "VCPU")] == 4
    assert check_consistency(a).ok

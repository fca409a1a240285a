"""The capacity index kept current by deltas and refreshes, and its incremental ranking cache.

The central property: after any sequence of placements applied as claims, releases and
refreshes, (1) no placement proposes a host without room for what it puts there, judged
by an independent model of the pool, (2) a placement fails only when the model says the
request cannot be placed, and (3) ``place`` on the long-lived index (whose rankings are
cached and patched row by row) answers exactly what it answers on a fresh index of the
same state.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.allocation import PlacementSpec, Strategy
from groupcloud.placement.index import CapacityIndex, InventoryRecord
from groupcloud.placement.pipeline import Placement, Rejection, place
from tests.unit.pool import Host, build, free_units, host, static_fit, total_units

CLASSES = ("VCPU", "MEMORY_MB", "GPU")
ZONES = ("a", "b")
TRAITS = ("ssd", "nvme")


@st.composite
def pools(draw: st.DrawFn) -> list[Host]:
    hosts: list[Host] = []
    for i in range(draw(st.integers(1, 10))):
        inventory: dict[str, list[int]] = {}
        vcpu = draw(st.integers(0, 16))
        inventory["VCPU"] = [vcpu, draw(st.integers(0, vcpu))]
        if draw(st.booleans()):
            memory = draw(st.integers(0, 32))
            inventory["MEMORY_MB"] = [memory, draw(st.integers(0, memory))]
        if draw(st.integers(0, 3)) == 0:
            gpu = draw(st.integers(0, 4))
            inventory["GPU"] = [gpu, draw(st.integers(0, gpu))]
        hosts.append(
            Host(
                id=draw(st.integers(1, 3)) + 3 * i,  # gaps in the ids, never duplicates
                inventory=inventory,
                zone=draw(st.sampled_from(ZONES)),
                schedulable=draw(st.integers(0, 5)) > 0,
                traits=tuple(draw(st.lists(st.sampled_from(TRAITS), unique=True))),
            )
        )
    return hosts


def random_shape(rng: random.Random) -> PlacementSpec:
    """The part of a request that keys the ranking cache (strategy, zone, traits, amounts).

    A program draws only a few shapes and reuses them, so that most placements find a
    cached ranking to patch; with a new shape each time the cache would never be tested.
    """
    classes = rng.sample(CLASSES, rng.randint(1, 3))
    return PlacementSpec(
        per_unit={rc: rng.randint(1, 2 if rc == "GPU" else 6) for rc in classes},
        zone=rng.choice([None, None, "a", "b", "c"]),
        required_traits=tuple(rng.sample(TRAITS, rng.choice([0, 0, 1, 2]))),
        strategy=rng.choice(list(Strategy)),
    )


def random_spec(
    rng: random.Random, shapes: list[PlacementSpec], host_ids: list[int]
) -> PlacementSpec:
    """A request of one of ``shapes`` with a random gang size and anti-affinity.

    Drawn from ``rng``: one Hypothesis draw seeds a whole program of steps (drawing every
    field through Hypothesis costs far more than running the engine)."""
    return dataclasses.replace(
        rng.choice(shapes),
        count=rng.choice([1, 1, 1, 2, 3, 5]),
        distinct_hosts=rng.random() < 0.3,
        exclude_hosts=frozenset(rng.sample([*host_ids, 999], rng.choice([0, 0, 0, 1, 2]))),
    )


def check_placement(hosts: list[Host], spec: PlacementSpec, outcome: Placement) -> None:
    """Every host chosen passes the request's rules and has room for all its units."""
    by_id = {h.id: h for h in hosts}
    assert len(outcome.host_ids) == spec.count
    assert outcome.host_names == tuple(by_id[i].name for i in outcome.host_ids)
    units = Counter(outcome.host_ids)
    if spec.distinct_hosts:
        assert max(units.values()) == 1
    for host_id, k in units.items():
        h = by_id[host_id]
        assert h.schedulable
        assert static_fit(h, spec)
        assert host_id not in spec.exclude_hosts
        for rc, amount in spec.per_unit.items():
            assert h.free(rc) >= k * amount, (host_id, rc, h.inventory, k, amount)


def check_rejection(hosts: list[Host], spec: PlacementSpec, outcome: Rejection) -> None:
    """Refused only when the model cannot place it either; never_fits from sizes alone."""
    possible_now = sum(free_units(h, spec) for h in hosts)
    assert possible_now < spec.count, (possible_now, spec)
    assert outcome.units_placeable == min(possible_now, spec.count)
    assert outcome.never_fits == (total_units(hosts, spec) < spec.count)
    assert outcome.explanation.hosts_total == len(hosts)


def check_index_matches_model(index: CapacityIndex, hosts: list[Host]) -> None:
    for h in hosts:
        for rc, (_capacity, used) in h.inventory.items():
            assert index.used_of(h.id, rc) == used


@settings(max_examples=200, deadline=None)
@given(hosts=pools(), seed=st.integers(0, 2**64 - 1), program=st.integers(0, 2**32))
def test_placements_fit_the_model_and_cached_rankings_equal_a_fresh_index(
    hosts: list[Host], seed: int, program: int
) -> None:
    rng = random.Random(program)  # the sequence of steps, reproducible from one number
    index = build(hosts, seed=seed)
    by_id = {h.id: h for h in hosts}
    claims: list[list[tuple[int, str, int]]] = []  # the deltas each claim applied
    shapes = [random_shape(rng) for _ in range(rng.randint(1, 3))]
    for _ in range(rng.randint(1, 40)):
        action = rng.choice(["place", "place", "place", "release", "refresh"])
        if action == "place":
            spec = random_spec(rng, shapes, list(by_id))
            outcome = place(index, spec)
            assert outcome == place(build(hosts, seed=seed), spec), spec
            if isinstance(outcome, Placement):
                check_placement(hosts, spec, outcome)
                deltas = [(h, rc, a) for h in outcome.host_ids for rc, a in spec.per_unit.items()]
                index.apply(deltas)  # what the service does after the claim commits
                for host_id, rc, delta in deltas:
                    by_id[host_id].inventory[rc][1] += delta
                claims.append(deltas)
            else:
                check_rejection(hosts, spec, outcome)
        elif action == "release" and claims:
            deltas = claims.pop(rng.randrange(len(claims)))
            index.apply([(h, rc, -delta) for h, rc, delta in deltas])
            for host_id, rc, delta in deltas:
                by_id[host_id].inventory[rc][1] -= delta
        elif action == "refresh":
            # Another process claimed or released on this host, or its inventory was resized:
            # the index re-reads the row. Our own claims there are now part of that state.
            h = rng.choice(hosts)
            rc = rng.choice(sorted(h.inventory))
            capacity = rng.randint(0, 20)
            used = rng.randint(0, capacity)
            h.inventory[rc] = [capacity, used]
            index.set_used([InventoryRecord(h.id, rc, capacity, used)])
            claims = [c for c in claims if all(d[0] != h.id for d in c)]
        check_index_matches_model(index, hosts)


def test_a_claim_applied_to_the_index_changes_the_next_answer() -> None:
    hosts = [host(1, VCPU=(16, 12)), host(2, VCPU=16)]
    index = build(hosts)
    spec = PlacementSpec(per_unit={"VCPU": 4})
    assert place(index, spec) == Placement((1,), ("h1",))  # pack: the fuller host
    index.apply([(1, "VCPU", 4)])
    assert place(index, spec) == Placement((2,), ("h2",))  # h1 is full now
    index.apply([(1, "VCPU", -4)])
    assert place(index, spec) == Placement((1,), ("h1",))  # released: back to h1


def test_set_used_refreshes_usage_and_capacity_and_the_cached_ranking() -> None:
    index = build([host(1, VCPU=(16, 12)), host(2, VCPU=(16, 8))])
    spec = PlacementSpec(per_unit={"VCPU": 4})
    assert place(index, spec) == Placement((1,), ("h1",))
    index.set_used([InventoryRecord(1, "VCPU", 16, 16), InventoryRecord(2, "VCPU", 16, 2)])
    assert index.used_of(1, "VCPU") == 16
    assert place(index, spec) == Placement((2,), ("h2",))
    index.set_used([InventoryRecord(1, "VCPU", 32, 16)])  # h1 resized: now half free
    assert int(index.capacity[index.rc_col["VCPU"], index.row_of[1]]) == 32
    assert place(index, spec) == Placement((1,), ("h1",))  # 20/32 > 6/16


def test_set_used_and_apply_ignore_hosts_and_classes_the_index_does_not_know() -> None:
    index = build([host(1, VCPU=16)])
    index.set_used([InventoryRecord(7, "VCPU", 16, 3), InventoryRecord(1, "GPU", 4, 1)])
    index.apply([(7, "VCPU", 2), (1, "CUSTOM_X", 1)])
    assert index.used_of(1, "VCPU") == 0
    assert index.used_of(7, "VCPU") is None
    assert index.used_of(1, "GPU") is None


def test_changes_since_lists_changed_rows_until_there_are_too_many() -> None:
    index = build([host(i, VCPU=64) for i in range(1, 11)])
    rows, mark = index.changes_since(0)
    assert rows is not None
    assert rows.size == 0
    assert mark == 0
    index.apply([(3, "VCPU", 1), (5, "VCPU", 1), (3, "VCPU", 1)])
    rows, mark = index.changes_since(0)
    assert rows is not None
    assert sorted(rows.tolist()) == sorted({index.row_of[3], index.row_of[5]})
    assert mark == 3
    rows, mark = index.changes_since(mark)
    assert rows is not None
    assert rows.size == 0
    index.apply([(1, "VCPU", 1)] * 65)  # more than max(len // 8, 64) changes
    assert index.changes_since(mark) == (None, mark + 65)
    assert index.changes_since(mark + 1000)[0] is None  # a mark from a cleared log


def test_many_changes_between_requests_fall_back_to_a_full_recompute() -> None:
    """After more changes than it is worth patching (more than 64 here), the cached ranking
    is recomputed in full; the change that matters (h1 filling up) must not be lost."""
    hosts = [host(i, VCPU=(64, i), MEMORY_MB=(1024, 16 * i)) for i in range(1, 41)]
    index = build(hosts, seed=7)
    spec = PlacementSpec(per_unit={"VCPU": 2, "MEMORY_MB": 64}, strategy=Strategy.SPREAD)
    assert place(index, spec) == Placement((1,), ("h1",))  # the emptiest, now cached
    index.apply([(1, "VCPU", 63)])  # h1 is full
    hosts[0].inventory["VCPU"][1] = 64
    rng = np.random.default_rng(3)
    for _ in range(100):  # then 200 harmless changes on other hosts
        h = hosts[int(rng.integers(1, len(hosts)))]
        index.apply([(h.id, "VCPU", 1), (h.id, "VCPU", -1)])
    outcome = place(index, spec)
    assert outcome == place(build(hosts, seed=7), spec)
    assert outcome == Placement((2,), ("h2",))


def test_a_few_changes_patch_only_their_rows_and_stay_exact() -> None:
    """600 hosts: up to 75 changed rows are re-ranked instead of recomputing everything."""
    hosts = [host(i, VCPU=(64, (i * 7) % 60)) for i in range(1, 601)]
    index = build(hosts, seed=11)
    specs = [
        PlacementSpec(per_unit={"VCPU": 2}),
        PlacementSpec(per_unit={"VCPU": 2}, strategy=Strategy.SPREAD),
        PlacementSpec(per_unit={"VCPU": 5}, count=3),
    ]
    by_id = {h.id: h for h in hosts}
    for _ in range(25):
        for spec in specs:
            outcome = place(index, spec)
            assert outcome == place(build(hosts, seed=11), spec)
            assert isinstance(outcome, Placement)
            for host_id in outcome.host_ids:
                by_id[host_id].inventory["VCPU"][1] += spec.per_unit["VCPU"]
                index.apply([(host_id, "VCPU", spec.per_unit["VCPU"])])
    check_index_matches_model(index, hosts)


def churn(index: CapacityIndex, host_id: int, until: int) -> None:
    """Log changes on ``host_id`` that cancel out, until the change log holds ``until``."""
    while index.changes_since(0)[1] < until:
        index.apply([(host_id, "VCPU", 1), (host_id, "VCPU", -1)])


def test_an_overflowing_change_log_drops_cached_rankings() -> None:
    """The log is bounded (64 entries per host + 4096 = 4224 here); past that it is cleared.
    A ranking cached at mark 4100 must not then be patched from positions 4100.. of the
    new log, which would miss a change made early in it."""
    hosts = [host(1, VCPU=(8, 4)), host(2, VCPU=8)]
    index = build(hosts)
    spec = PlacementSpec(per_unit={"VCPU": 4})
    churn(index, 2, until=4100)
    assert place(index, spec) == Placement((1,), ("h1",))  # pack: the fuller host; cached
    churn(index, 2, until=4224)  # the next change overflows the log
    index.apply([(2, "VCPU", 1)])
    assert index.changes_since(0)[1] == 0  # cleared
    index.apply([(2, "VCPU", -1), (1, "VCPU", 4)])  # h1 fills up
    hosts[0].inventory["VCPU"][1] = 8
    churn(index, 2, until=4110)
    assert place(index, spec) == Placement((2,), ("h2",))
    assert place(index, spec) == place(build(hosts), spec)


def test_many_request_shapes_evict_old_rankings_without_changing_answers() -> None:
    """The cache keeps 64 shapes; the 65th evicts the least recently used one."""
    hosts = [host(i, VCPU=(64, i), MEMORY_MB=(4096, 64 * i)) for i in range(1, 9)]
    index = build(hosts, seed=5)
    shapes = [PlacementSpec(per_unit={"VCPU": 1, "MEMORY_MB": m}) for m in range(1, 81)]
    for round_ in range(2):
        for n, spec in enumerate(shapes):
            assert place(index, spec) == place(build(hosts, seed=5), spec)
            h = hosts[(n + round_) % len(hosts)]
            h.inventory["VCPU"][1] += 1
            index.apply([(h.id, "VCPU", 1)])

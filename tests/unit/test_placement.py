"""The placement pipeline (groupcloud.placement): filters with reasons, pack/spread scoring,
gangs, the "no capacity now" / "never fits" split, and seeded determinism."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.allocation import PlacementSpec, Strategy
from groupcloud.placement.index import CapacityIndex, tiebreak_keys
from groupcloud.placement.pipeline import (
    Explanation,
    FilterCount,
    Placement,
    Rejection,
    explain,
    place,
)
from tests.unit.pool import Host, build, host


def placed(index: CapacityIndex, spec: PlacementSpec) -> tuple[int, ...]:
    """The host ids of a placement that must succeed."""
    outcome = place(index, spec)
    assert isinstance(outcome, Placement), outcome
    assert outcome.host_names == tuple(f"h{i}" for i in outcome.host_ids)
    return outcome.host_ids


def rejected(index: CapacityIndex, spec: PlacementSpec) -> Rejection:
    outcome = place(index, spec)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def removed(explanation: Explanation) -> dict[str, int]:
    return {c.reason: c.hosts_removed for c in explanation.filters}


# --- filters and their explanation ---------------------------------------------------------


def filter_pool() -> list[Host]:
    """Ten hosts, each failing exactly one rule of ``FILTER_SPEC`` (the last two fit)."""
    return [
        host(1, zone="a", schedulable=False, traits=["ssd"], VCPU=16, GPU=4),  # draining
        host(2, zone="b", traits=["ssd"], VCPU=16, GPU=4),  # other zone
        host(3, zone="b", traits=["ssd"], VCPU=16, GPU=4),  # other zone
        host(4, zone="a", VCPU=16, GPU=4),  # no ssd
        host(5, zone="a", traits=["ssd"], VCPU=16, GPU=4),  # holds a group member
        host(6, zone="a", traits=["ssd"], VCPU=(16, 15), GPU=4),  # 1 VCPU free
        host(7, zone="a", traits=["ssd"], VCPU=16),  # lacks GPU
        host(8, zone="a", traits=["ssd"], VCPU=16, GPU=(4, 4)),  # GPUs all in use
        host(9, zone="a", traits=["ssd", "nvme"], VCPU=16, GPU=(4, 2)),
        host(10, zone="a", traits=["ssd"], VCPU=(16, 8), GPU=4),
    ]


FILTER_SPEC = PlacementSpec(
    per_unit={"VCPU": 2, "GPU": 1},
    zone="a",
    required_traits=("ssd",),
    exclude_hosts=frozenset({5}),
)


def test_explain_counts_the_hosts_each_filter_removes_in_stack_order() -> None:
    index = build(filter_pool())
    explanation = explain(index, FILTER_SPEC)
    assert explanation == Explanation(
        hosts_total=10,
        hosts_fitting=2,
        filters=(
            FilterCount("schedulable", "host_draining", 1),
            FilterCount("zone", "zone_not_allowed", 2),
            FilterCount("traits", "missing_trait", 1),
            FilterCount("anti_affinity", "anti_affinity", 1),
            FilterCount("resources:VCPU", "insufficient_vcpu", 1),
            FilterCount("resources:GPU", "insufficient_gpu", 2),
        ),
    )
    assert set(placed(index, FILTER_SPEC)) <= {9, 10}


ZONE_CASES = [
    # the zone named, the zones the rules allow -> the hosts that fit
    (None, None, {1, 2, 3}),
    (None, frozenset({"a", "c"}), {1, 3}),
    ("a", None, {1}),
    ("a", frozenset({"a", "b"}), {1}),
    ("c", frozenset({"a"}), set()),
    (None, frozenset(), set()),
    (None, frozenset({"gone"}), set()),
]


@pytest.mark.parametrize(("zone", "zones", "fits"), ZONE_CASES)
def test_the_zone_filter_keeps_the_named_zone_within_the_zones_the_rules_allow(
    zone: str | None, zones: frozenset[str] | None, fits: set[int]
) -> None:
    index = build([host(1, zone="a", VCPU=4), host(2, zone="b", VCPU=4), host(3, zone="c", VCPU=4)])
    spec = PlacementSpec(per_unit={"VCPU": 1}, count=max(len(fits), 1), zone=zone, zones=zones,
                         distinct_hosts=True)  # fmt: skip
    if fits:
        assert set(placed(index, spec)) == fits
    else:
        rejection = rejected(index, spec)
        assert rejection.never_fits
        assert removed(rejection.explanation)["zone_not_allowed"] == 3


def test_a_rejection_explains_which_filter_removed_how_many_hosts() -> None:
    hosts = filter_pool()
    hosts[8].inventory["GPU"][1] = 4  # h9 and h10 lose their GPUs to others
    hosts[9].inventory["GPU"][1] = 4
    rejection = rejected(build(hosts), FILTER_SPEC)
    assert removed(rejection.explanation) == {
        "host_draining": 1,
        "zone_not_allowed": 2,
        "missing_trait": 1,
        "anti_affinity": 1,
        "insufficient_vcpu": 1,
        "insufficient_gpu": 4,
    }
    assert rejection.explanation.hosts_fitting == 0
    assert sum(removed(rejection.explanation).values()) == 10
    assert not rejection.never_fits  # the GPUs come back when released
    assert rejection.message == (
        "0 of 10 hosts fit: 1 removed by schedulable (host_draining), 2 removed by zone "
        "(zone_not_allowed), 1 removed by traits (missing_trait), 1 removed by anti_affinity "
        "(anti_affinity), 1 removed by resources:VCPU (insufficient_vcpu), 4 removed by "
        "resources:GPU (insufficient_gpu)"
    )


def test_only_the_rules_a_request_asks_for_are_in_the_explanation() -> None:
    index = build([host(1, VCPU=(4, 4)), host(2, VCPU=(4, 3))])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 2}))
    assert rejection.explanation.filters == (
        FilterCount("schedulable", "host_draining", 0),
        FilterCount("resources:VCPU", "insufficient_vcpu", 2),
    )
    assert rejection.message == "0 of 2 hosts fit: 2 removed by resources:VCPU (insufficient_vcpu)"


def test_custom_resource_classes_have_their_own_reason() -> None:
    index = build([host(1, VCPU=8, CUSTOM_FPGA=(2, 2)), host(2, VCPU=8)])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 1, "CUSTOM_FPGA": 1}))
    assert removed(rejection.explanation)["insufficient_custom_fpga"] == 2
    assert not rejection.never_fits


def test_a_trait_that_no_host_has_removes_every_host_in_the_zone() -> None:
    index = build([host(1, traits=["ssd"], VCPU=8), host(2, VCPU=8)])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 1}, required_traits=("ssd", "x")))
    assert removed(rejection.explanation)["missing_trait"] == 2
    assert rejection.never_fits


def test_a_zone_that_does_not_exist_removes_every_host() -> None:
    index = build([host(1, VCPU=8), host(2, VCPU=8)])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 1}, zone="nowhere"))
    assert removed(rejection.explanation)["zone_not_allowed"] == 2
    assert rejection.never_fits


def test_every_required_trait_must_be_present() -> None:
    index = build(
        [
            host(1, traits=["ssd"], VCPU=8),
            host(2, traits=["gpu_model=V100M32"], VCPU=8),
            host(3, traits=["ssd", "gpu_model=V100M32"], VCPU=(8, 7)),
        ]
    )
    spec = PlacementSpec(per_unit={"VCPU": 1}, required_traits=("ssd", "gpu_model=V100M32"))
    assert placed(index, spec) == (3,)


def test_a_host_lacking_a_resource_class_is_never_chosen_for_it() -> None:
    """h1 has far more free VCPU (pack would love it) but no GPU inventory at all."""
    index = build([host(1, VCPU=(64, 60)), host(2, VCPU=64, GPU=(8, 7))])
    for strategy in Strategy:
        assert placed(index, PlacementSpec(per_unit={"VCPU": 2, "GPU": 1}, strategy=strategy)) == (
            2,
        )
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 2, "GPU": 2}))
    assert removed(rejection.explanation)["insufficient_gpu"] == 2
    assert not rejection.never_fits


def test_a_resource_class_that_no_host_has_can_never_fit() -> None:
    index = build([host(1, VCPU=8), host(2, VCPU=8)])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 1, "GPU": 1}))
    assert removed(rejection.explanation) == {
        "host_draining": 0,
        "insufficient_vcpu": 0,
        "insufficient_gpu": 2,
    }
    assert rejection.never_fits


def test_draining_hosts_take_no_new_placements() -> None:
    index = build([host(1, schedulable=False, VCPU=64), host(2, VCPU=(8, 6))])
    assert placed(index, PlacementSpec(per_unit={"VCPU": 2})) == (2,)
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 4}))
    assert removed(rejection.explanation)["host_draining"] == 1
    # The draining host is big enough: an operator can undrain it, so this is "not now".
    assert not rejection.never_fits


def test_hosts_of_the_anti_affinity_group_are_never_chosen() -> None:
    """h1 is the fullest host (pack's favourite) but already holds a member of the group."""
    index = build([host(1, VCPU=(8, 6)), *(host(i, VCPU=8) for i in range(2, 5))])
    assert placed(index, PlacementSpec(per_unit={"VCPU": 1})) == (1,)
    for strategy in Strategy:
        for count in (1, 2):
            spec = PlacementSpec(
                per_unit={"VCPU": 1},
                count=count,
                exclude_hosts=frozenset({1, 3, 99}),  # 99: a host removed since
                distinct_hosts=True,
                strategy=strategy,
            )
            chosen = placed(index, spec)
            assert set(chosen) <= {2, 4}
            assert len(set(chosen)) == count
    three = PlacementSpec(
        per_unit={"VCPU": 1}, count=3, distinct_hosts=True, exclude_hosts=frozenset({1, 3})
    )
    rejection = rejected(index, three)
    assert removed(rejection.explanation)["anti_affinity"] == 2
    assert rejection.units_placeable == 2
    assert not rejection.never_fits  # the group's other members may be released


# --- scoring --------------------------------------------------------------------------------


def used_pool() -> list[Host]:
    return [host(1, VCPU=(16, 4)), host(2, VCPU=(16, 12)), host(3, VCPU=(16, 15)), host(4, VCPU=16)]


def test_pack_chooses_the_fullest_host_that_still_fits() -> None:
    assert placed(build(used_pool()), PlacementSpec(per_unit={"VCPU": 2})) == (2,)
    assert placed(build(used_pool()), PlacementSpec(per_unit={"VCPU": 1})) == (3,)


def test_spread_chooses_the_emptiest_host() -> None:
    spec = PlacementSpec(per_unit={"VCPU": 2}, strategy=Strategy.SPREAD)
    assert placed(build(used_pool()), spec) == (4,)


def test_scores_use_only_the_requested_classes() -> None:
    """h1's VCPUs are nearly all used but its memory is empty; a memory-only request that
    packs must go where memory is fullest."""
    hosts = [host(1, VCPU=(16, 15), MEMORY_MB=1000), host(2, VCPU=16, MEMORY_MB=(1000, 500))]
    assert placed(build(hosts), PlacementSpec(per_unit={"MEMORY_MB": 100})) == (2,)
    spread = PlacementSpec(per_unit={"MEMORY_MB": 100}, strategy=Strategy.SPREAD)
    assert placed(build(hosts), spread) == (1,)


def test_scores_compare_shares_of_capacity_not_absolute_amounts() -> None:
    """A big host with many free units is emptier than a small one with few."""
    hosts = [host(1, VCPU=(128, 64)), host(2, VCPU=(8, 2))]
    assert placed(build(hosts), PlacementSpec(per_unit={"VCPU": 1})) == (1,)  # 51 % > 37.5 %
    spread = PlacementSpec(per_unit={"VCPU": 1}, strategy=Strategy.SPREAD)
    assert placed(build(hosts), spread) == (2,)


# --- gangs ----------------------------------------------------------------------------------


def test_a_packed_gang_fills_the_fullest_host_before_moving_on() -> None:
    index = build([host(1, VCPU=16), host(2, VCPU=(16, 8)), host(3, VCPU=(16, 4))])
    assert placed(index, PlacementSpec(per_unit={"VCPU": 4}, count=4)) == (2, 2, 3, 3)


def test_a_spread_gang_goes_to_different_hosts_while_they_are_emptier() -> None:
    index = build([host(i, VCPU=16) for i in range(1, 4)])
    hosts = placed(index, PlacementSpec(per_unit={"VCPU": 4}, count=3, strategy=Strategy.SPREAD))
    assert sorted(hosts) == [1, 2, 3]
    six = placed(index, PlacementSpec(per_unit={"VCPU": 4}, count=6, strategy=Strategy.SPREAD))
    assert Counter(six) == {1: 2, 2: 2, 3: 2}


def test_a_gang_never_puts_more_units_on_a_host_than_fit() -> None:
    index = build([host(1, VCPU=10, MEMORY_MB=100), host(2, VCPU=10, MEMORY_MB=(100, 70))])
    spec = PlacementSpec(per_unit={"VCPU": 3, "MEMORY_MB": 10}, count=6)
    counts = Counter(placed(index, spec))
    assert counts == {1: 3, 2: 3}  # 10 // 3 VCPU; h2 has 30 MB = 3 units
    assert isinstance(place(index, PlacementSpec(per_unit={"VCPU": 3}, count=7)), Rejection)


def test_a_gang_is_all_or_nothing() -> None:
    index = build([host(i, VCPU=(8, 6)) for i in range(1, 4)])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 2}, count=4))
    assert rejection.units_placeable == 3
    assert not rejection.never_fits  # 12 units would fit an empty pool
    assert all(index.used_of(i, "VCPU") == 6 for i in range(1, 4))  # place() claims nothing


def test_distinct_hosts_puts_every_unit_on_its_own_host() -> None:
    index = build([host(i, VCPU=64) for i in range(1, 6)])
    for strategy in Strategy:
        spec = PlacementSpec(per_unit={"VCPU": 1}, count=5, distinct_hosts=True, strategy=strategy)
        assert sorted(placed(index, spec)) == [1, 2, 3, 4, 5]
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 1}, count=6, distinct_hosts=True))
    assert rejection.units_placeable == 5
    assert rejection.never_fits  # five hosts can never hold six distinct units


# --- never fits versus not now --------------------------------------------------------------


def test_a_request_bigger_than_any_host_in_the_zone_never_fits() -> None:
    index = build([host(1, zone="a", VCPU=16), host(2, zone="b", VCPU=64)])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 32}, zone="a"))
    assert rejection.never_fits
    assert placed(index, PlacementSpec(per_unit={"VCPU": 32})) == (2,)  # any zone: h2 is big
    assert rejected(index, PlacementSpec(per_unit={"VCPU": 65})).never_fits


def test_a_full_pool_is_no_capacity_now() -> None:
    index = build([host(1, VCPU=(16, 16)), host(2, VCPU=(16, 15))])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 8}))
    assert not rejection.never_fits
    assert removed(rejection.explanation)["insufficient_vcpu"] == 2


def test_a_gang_larger_than_the_whole_zone_never_fits() -> None:
    index = build([host(1, zone="a", VCPU=16), host(2, zone="a", VCPU=16), host(3, VCPU=64)])
    assert Counter(placed(index, PlacementSpec(per_unit={"VCPU": 8}, count=4, zone="a"))) == {
        1: 2,
        2: 2,
    }
    spec = PlacementSpec(per_unit={"VCPU": 8}, count=5, zone="a")
    assert rejected(index, spec).never_fits  # 2 + 2 units at most in zone a


def test_never_fits_uses_sizes_not_usage_for_gangs() -> None:
    """Four units fit zone a when empty (2 per host) although only one is free now."""
    index = build([host(1, zone="a", VCPU=(16, 16)), host(2, zone="a", VCPU=(16, 8))])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 8}, count=4, zone="a"))
    assert rejection.units_placeable == 1
    assert not rejection.never_fits


def test_traits_are_static_but_draining_and_anti_affinity_are_not() -> None:
    index = build([host(1, VCPU=16, traits=["ssd"], schedulable=False), host(2, VCPU=64)])
    ssd = PlacementSpec(per_unit={"VCPU": 32}, required_traits=("ssd",))
    assert rejected(index, ssd).never_fits  # h1 is too small, h2 has no ssd
    assert not rejected(
        index, PlacementSpec(per_unit={"VCPU": 8}, required_traits=("ssd",))
    ).never_fits
    excluded = PlacementSpec(per_unit={"VCPU": 32}, exclude_hosts=frozenset({2}))
    assert not rejected(index, excluded).never_fits


def test_placing_in_an_empty_pool_is_a_never_fits_rejection() -> None:
    """A new deployment has no hosts yet; a request must be refused as never_fits
    (HTTP 422), not crash the engine (``np.argmax`` of an empty ranking)."""
    index = CapacityIndex([], [])
    rejection = rejected(index, PlacementSpec(per_unit={"VCPU": 1}))
    assert rejection.never_fits
    assert rejection.units_placeable == 0
    assert rejection.explanation.hosts_total == 0


# --- determinism ----------------------------------------------------------------------------


def identical_hosts(n: int) -> list[Host]:
    return [host(i, VCPU=32, MEMORY_MB=65536) for i in range(1, n + 1)]


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(1, 30), strategy=st.sampled_from(Strategy))
def test_ties_go_to_the_host_first_in_the_seeded_order(
    seed: int, n: int, strategy: Strategy
) -> None:
    hosts = identical_hosts(n)
    keys = tiebreak_keys(np.arange(1, n + 1, dtype=np.int64), seed)
    first = int(np.argmin(keys)) + 1
    spec = PlacementSpec(per_unit={"VCPU": 2, "MEMORY_MB": 1024}, strategy=strategy)
    assert placed(build(hosts, seed=seed), spec) == (first,)


def test_different_seeds_break_ties_differently() -> None:
    spec = PlacementSpec(per_unit={"VCPU": 2})
    winners = {placed(build(identical_hosts(8), seed=seed), spec)[0] for seed in range(32)}
    assert len(winners) >= 4


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    used=st.lists(st.integers(0, 16), min_size=1, max_size=25),
    count=st.integers(1, 6),
    strategy=st.sampled_from(Strategy),
    shuffle=st.randoms(use_true_random=False),
)
def test_the_same_pool_and_seed_give_the_same_answer_whatever_the_input_order(
    seed: int, used: list[int], count: int, strategy: Strategy, shuffle: random.Random
) -> None:
    hosts = [host(i, VCPU=(16, u)) for i, u in enumerate(used, start=1)]
    spec = PlacementSpec(per_unit={"VCPU": 2}, count=count, strategy=strategy)
    first = place(build(hosts, seed=seed), spec)
    shuffle.shuffle(hosts)
    assert place(build(hosts, seed=seed), spec) == first
    assert place(build(hosts, seed=seed), spec) == first


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(2, 20))
def test_adding_a_host_does_not_reshuffle_the_others(seed: int, n: int) -> None:
    """Tie-break keys depend on the host id, not its position: a new host changes the
    winner among equals only if it wins itself."""
    spec = PlacementSpec(per_unit={"VCPU": 2})
    before = placed(build(identical_hosts(n), seed=seed), spec)[0]
    after = placed(build(identical_hosts(n + 1), seed=seed), spec)[0]
    assert after in (before, n + 1)


def test_place_does_not_change_the_index() -> None:
    """Placement proposes; only ``apply`` (after the database commit) changes usage."""
    index = build(used_pool())
    used = index.used.copy()
    placed(index, PlacementSpec(per_unit={"VCPU": 1}, count=5))
    assert np.array_equal(index.used, used)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_single_host_takes_a_gang_up_to_its_capacity(strategy: Strategy) -> None:
    index = build([host(1, VCPU=(16, 1))])
    assert (
        placed(index, PlacementSpec(per_unit={"VCPU": 3}, count=5, strategy=strategy)) == (1,) * 5
    )
    assert rejected(index, PlacementSpec(per_unit={"VCPU": 3}, count=6)).units_placeable == 5


@pytest.mark.parametrize("strategy", list(Strategy))
def test_cpu_only_requests_keep_off_gpu_hosts_while_another_host_fits(strategy: Strategy) -> None:
    """The GPU host is the emptiest and the biggest, so pack and spread alone would both like
    it at some point; keeping scarce classes free for the requests that need them wins."""
    gpu = host(1, VCPU=64, MEMORY_MB=65536, GPU=8)
    cpu_full = host(2, VCPU=(16, 12), MEMORY_MB=16384)
    cpu_empty = host(3, VCPU=16, MEMORY_MB=16384)
    index = build([gpu, cpu_full, cpu_empty])

    cpu_only = place(index, PlacementSpec(per_unit={"VCPU": 4}, strategy=strategy))
    needs_gpu = place(index, PlacementSpec(per_unit={"VCPU": 4, "GPU": 1}, strategy=strategy))
    too_big = place(index, PlacementSpec(per_unit={"VCPU": 32}, strategy=strategy))

    assert isinstance(cpu_only, Placement)
    assert cpu_only.host_names == (("h2",) if strategy is Strategy.PACK else ("h3",))
    assert isinstance(needs_gpu, Placement)
    assert needs_gpu.host_names == ("h1",)
    assert isinstance(too_big, Placement), "no other host fits: the GPU host is used"
    assert too_big.host_names == ("h1",)

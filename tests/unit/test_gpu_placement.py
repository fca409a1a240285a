"""GPUs device by device in the placement engine: shares of one GPU, GPU models, claims
applied to devices, the fragmentation measures against a workload, and the policies.

Checked against hand-computed numbers and, for random programs, against an independent
model of every device."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.allocation import PlacementSpec, Strategy
from groupcloud.placement.index import CapacityIndex, HostRecord, InventoryRecord
from groupcloud.placement.pipeline import Placement, Rejection, explain, place
from groupcloud.placement.policies import POLICIES, Policy, policy
from groupcloud.placement.workload import Demand, Workload
from tests.unit.pool import Host, build, host


def gpu_host(id: int, gpus: int, model: str = "T4", *, vcpu: int = 32, memory: int = 256) -> Host:
    return host(id, traits=[f"gpu_model={model}"], VCPU=vcpu, MEMORY_MB=memory, GPU=gpus)


def share(milli: int, vcpu: int = 1, memory: int = 1, **kw: Any) -> PlacementSpec:
    return PlacementSpec(per_unit={"VCPU": vcpu, "MEMORY_MB": memory}, gpu_share=milli, **kw)


def whole(gpus: int, vcpu: int = 1, memory: int = 1, **kw: Any) -> PlacementSpec:
    return PlacementSpec(per_unit={"VCPU": vcpu, "MEMORY_MB": memory, "GPU": gpus}, **kw)


def claim(index: CapacityIndex, spec: PlacementSpec, p: Policy | None = None) -> Placement:
    outcome = place(index, spec, p)
    assert isinstance(outcome, Placement), outcome
    index.apply_placement(spec, outcome)
    return outcome


def chosen(index: CapacityIndex, spec: PlacementSpec, p: Policy | None = None) -> tuple[int, ...]:
    """The hosts of a placement that must succeed (nothing is claimed)."""
    outcome = place(index, spec, p)
    assert isinstance(outcome, Placement), outcome
    return outcome.host_ids


def devices_of(index: CapacityIndex, host_id: int) -> list[int]:
    return [int(d) for d in index.devices[index.row_of[host_id]]]


# --- the request ----------------------------------------------------------------------------


def test_a_unit_asks_for_whole_gpus_or_a_share_of_one_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        PlacementSpec(per_unit={"GPU": 1}, gpu_share=500)
    with pytest.raises(ValueError, match="thousandths"):
        PlacementSpec(per_unit={}, gpu_share=1000)
    assert (share(250).gpus, share(250).gpu_milli) == (1, 250)
    assert (whole(2).gpus, whole(2).gpu_milli) == (2, 1000)
    assert (PlacementSpec(per_unit={"VCPU": 1}).gpus, PlacementSpec(per_unit={}).gpu_milli) == (
        0,
        0,
    )


# --- devices ----------------------------------------------------------------------------------


def test_whole_gpus_take_free_devices_and_the_gpu_class_counts_devices_in_use() -> None:
    index = build([gpu_host(1, 4)])
    first = claim(index, whole(2))
    assert first.devices == ((0, 1),)
    assert devices_of(index, 1) == [0, 0, 1000, 1000]
    assert index.used_of(1, "GPU") == 2
    index.apply_placement(whole(2), first, release=True)
    assert devices_of(index, 1) == [1000] * 4
    assert index.used_of(1, "GPU") == 0


def test_shares_of_one_gpu_fill_a_device_before_starting_another() -> None:
    index = build([gpu_host(1, 2)])
    for _ in range(3):
        claim(index, share(300))
    assert sorted(devices_of(index, 1)) == [100, 1000]  # 3 x 300 on one device
    assert index.used_of(1, "GPU") == 1  # a shared device is no longer a whole free GPU
    assert isinstance(place(index, whole(2)), Rejection)
    assert place(index, whole(1)) == Placement(
        (1,), ("h1",), ((devices_of(index, 1).index(1000),),)
    )


def test_a_share_needs_one_device_with_that_much_free() -> None:
    index = build([gpu_host(1, 2)])
    claim(index, share(600))
    claim(index, share(600))  # the second device: 600 + 600 does not fit one
    assert sorted(devices_of(index, 1)) == [400, 400]
    rejection = place(index, share(500))
    assert isinstance(rejection, Rejection)
    assert not rejection.never_fits
    counts = {c.reason: c.hosts_removed for c in rejection.explanation.filters}
    assert counts["insufficient_gpu_share"] == 1
    assert isinstance(place(index, share(400)), Placement)


def test_releasing_a_share_gives_back_exactly_its_part() -> None:
    index = build([gpu_host(1, 1)])
    a = claim(index, share(250))
    claim(index, share(500))
    index.apply_placement(share(250), a, release=True)
    assert devices_of(index, 1) == [500]
    assert index.used_of(1, "GPU") == 1


def test_a_claim_beyond_a_device_is_refused() -> None:
    index = build([gpu_host(1, 1)])
    placement = claim(index, share(800))
    with pytest.raises(ValueError, match="over- or under-used"):
        index.apply_placement(share(800), placement)


def test_a_gang_of_shares_uses_the_room_left_by_its_own_units() -> None:
    index = build([gpu_host(1, 1, vcpu=64)])
    three = place(index, share(300, count=3))
    assert isinstance(three, Placement)
    assert three.devices == ((0,), (0,), (0,))
    four = place(index, share(300, count=4))
    assert isinstance(four, Rejection)
    assert four.units_placeable == 3
    assert four.never_fits  # one GPU holds three shares of 300, ever


def test_the_server_s_gpu_counts_set_whole_devices() -> None:
    """The database counts GPUs; the index turns a count into whole devices."""
    index = build([host(1, VCPU=8, GPU=(4, 1))])
    assert devices_of(index, 1) == [1000, 1000, 1000, 0]
    index.apply([(1, "GPU", 2)])
    assert devices_of(index, 1) == [1000, 0, 0, 0]
    assert index.used_of(1, "GPU") == 3


def _index_with_shares(capacity: int, shared: dict[int, int], whole_used: int) -> CapacityIndex:
    """One host as the server's database has it: ``shared`` devices (device -> free
    thousandths) counted in the GPU inventory with ``whole_used`` whole GPUs."""
    used = len(shared) + whole_used
    return CapacityIndex(
        [HostRecord(1, "h1", "z", True)],
        [InventoryRecord(1, "VCPU", 64, 0), InventoryRecord(1, "GPU", capacity, used)],
        shared={1: shared} if shared else None,
    )


def test_shared_devices_keep_their_number_when_the_gpu_count_changes() -> None:
    index = _index_with_shares(4, {2: 500}, whole_used=1)
    assert devices_of(index, 1) == [1000, 1000, 500, 0]
    index.apply([(1, "GPU", 1)])  # a whole GPU taken elsewhere: shared device 2 stays
    assert devices_of(index, 1) == [1000, 0, 500, 0]
    index.apply([(1, "GPU", 1)], devices=[(1, 0, -250)])  # a share opened device 0
    assert devices_of(index, 1) == [750, 0, 500, 0]
    index.apply([(1, "GPU", -1)], devices=[(1, 2, 500)])  # device 2's last share left
    assert devices_of(index, 1) == [750, 1000, 0, 0]  # whole devices laid out again
    index.set_used([InventoryRecord(1, "GPU", 4, 1)], {})  # the database: only device 0
    assert devices_of(index, 1) == [1000, 1000, 1000, 0]  # has no shares any more either


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 8),
    data=st.data(),
)
def test_the_layout_matches_what_the_database_counts(capacity: int, data: st.DataObject) -> None:
    """Whatever shared devices and GPU count the database holds, the index shows exactly
    those shared devices at their numbers and capacity - used entirely free devices."""
    numbers = data.draw(st.sets(st.integers(0, capacity - 1), max_size=capacity))
    shared = {d: data.draw(st.integers(0, 999)) for d in sorted(numbers)}
    whole_used = data.draw(st.integers(0, capacity - len(shared)))
    index = _index_with_shares(capacity, shared, whole_used)
    row = devices_of(index, 1)

    def check() -> None:
        row = devices_of(index, 1)
        for d, free in shared.items():
            assert row[d] == free
        used = int(index.used[index.rc_col["GPU"], 0])
        assert row.count(1000) == capacity - used
        whole_in_use = [d for d, v in enumerate(row) if v == 0 and d not in shared]
        assert len(whole_in_use) == used - len(shared)

    check()
    if row.count(1000):  # take a whole GPU, then give it back: shared devices never move
        index.apply([(1, "GPU", 1)])
        check()
        index.apply([(1, "GPU", -1)])
        check()
    spec = share(data.draw(st.integers(1, 999)))
    outcome = place(index, spec)
    if isinstance(outcome, Placement):  # the share lands on a shared device with room or a free one
        d = outcome.devices[0][0]
        assert shared.get(d, 1000) >= spec.gpu_share


# --- GPU models ---------------------------------------------------------------------------------


def test_gpu_models_accept_any_of_the_listed_models() -> None:
    index = build([gpu_host(1, 8, "G2"), gpu_host(2, 2, "T4"), gpu_host(3, 4, "V100M16")])
    spec = whole(1, gpu_models=frozenset({"T4", "V100M16"}))
    assert chosen(index, spec)[0] in {2, 3}
    counts = {c.reason: c.hosts_removed for c in explain(index, spec).filters}
    assert counts["gpu_model_not_allowed"] == 1
    too_big = whole(8, gpu_models=frozenset({"T4", "V100M16"}))
    rejection = place(index, too_big)
    assert isinstance(rejection, Rejection)
    assert rejection.never_fits  # no host of these models has 8 GPUs
    unknown = place(index, share(100, gpu_models=frozenset({"A100"})))
    assert isinstance(unknown, Rejection)
    assert unknown.never_fits


def test_cpu_only_requests_ignore_gpu_models() -> None:
    index = build([gpu_host(1, 1, "T4")])
    spec = PlacementSpec(per_unit={"VCPU": 1}, gpu_models=frozenset({"A100"}))
    assert isinstance(place(index, spec), Placement)


# --- fragmentation measures ---------------------------------------------------------------


def compiled(index: CapacityIndex, demand: dict[Demand, float]) -> None:
    index.set_workload(Workload(demand))
    assert index.workload is not None


def test_an_index_recompiles_its_workload_only_when_the_gpu_demand_changes() -> None:
    """The server hands its index a fresh workload every refresh: rankings survive unless
    what the GPU measures look at changed."""
    index = build([gpu_host(1, 2)])
    index.set_workload(Workload({Demand(gpus=1, gpu_milli=1000): 2}))
    compiled, version = index.workload, index.workload_version
    assert compiled is not None
    index.set_workload(Workload({Demand(gpus=1, gpu_milli=1000): 2, Demand(vcpu=4): 7}))
    assert (index.workload, index.workload_version) == (compiled, version)
    index.set_workload(Workload({Demand(gpus=1, gpu_milli=500): 1}))
    assert index.workload_version == version + 1
    index.set_workload(Workload({Demand(vcpu=4): 1}))  # no GPU demand: nothing to measure
    assert index.workload is None


def test_fragmentation_counts_free_gpu_the_workload_could_not_use() -> None:
    """Half the requests want a whole GPU, half a share of 300 (hand-computed)."""
    index = build([gpu_host(1, 2, vcpu=10)])
    compiled(
        index, {Demand(vcpu=4, gpus=1, gpu_milli=1000): 1, Demand(vcpu=4, gpus=1, gpu_milli=300): 1}
    )
    w = index.workload
    assert w is not None
    model = np.array([0, 0, 0])
    devices = np.array([[1000, 1000], [1000, 200], [1000, 1000]])
    vcpu = np.array([10, 10, 2])  # the third host cannot feed any request
    frag = w.fragmentation(vcpu, None, devices, model)
    # host 2: whole GPU requests cannot use the 200 left; shares of 300 cannot either.
    assert frag.tolist() == pytest.approx([0.0, 0.2, 2.0])


def test_stranding_counts_gpus_the_free_cpu_cannot_feed() -> None:
    index = build([gpu_host(1, 4)])
    compiled(index, {Demand(vcpu=8, memory_mb=16, gpus=1, gpu_milli=1000): 1})
    w = index.workload
    assert w is not None
    assert (w.vcpu_per_gpu, w.memory_per_gpu) == (8.0, 16.0)
    devices = np.array([[1000] * 4, [1000] * 4, [1000, 500, 0, 0]])
    stranded = w.stranding(np.array([32, 16, 32]), np.array([64, 64, 8]), devices)
    assert stranded.tolist() == pytest.approx([0.0, 2.0, 1.0])


def test_pressure_marks_models_short_of_the_demand_only_they_can_take() -> None:
    """T4-only demand is 60 % of the GPU demand but T4s are a third of the free GPUs."""
    index = build([gpu_host(1, 8, "G2"), gpu_host(2, 4, "T4")])
    compiled(
        index,
        {
            Demand(gpus=1, gpu_milli=1000, models=("T4",)): 3,
            Demand(gpus=1, gpu_milli=1000): 2,
        },
    )
    w = index.workload
    assert w is not None
    pressed = w.pressure(index.gpu_free_by_model())
    assert pressed.tolist() == [False, True, False]  # G2, T4, unnamed


def test_unconstrained_requests_leave_pressed_models_to_those_that_need_them() -> None:
    hosts = [gpu_host(1, 2, "T4", vcpu=64), gpu_host(2, 8, "G2")]
    index = build(hosts)
    assert chosen(index, whole(1)) == (1,)
    compiled(
        index,
        {Demand(gpus=1, gpu_milli=1000, models=("T4",)): 1, Demand(gpus=1, gpu_milli=1000): 1},
    )
    assert chosen(index, whole(1)) == (2,)
    assert chosen(index, whole(1, gpu_models=frozenset({"T4"}))) == (1,)


def test_fgd_puts_a_share_where_it_fills_a_fragment() -> None:
    """A share of 200 fits the 200 left on one host's device (which nothing else of the
    workload could use) instead of breaking the whole GPU of the other host."""
    index = build([gpu_host(1, 1), gpu_host(2, 1)])
    claim(index, share(800))
    fragment = next(h for h in (1, 2) if devices_of(index, h) == [200])
    compiled(index, {Demand(gpus=1, gpu_milli=1000): 3, Demand(gpus=1, gpu_milli=200): 1})
    for name in ("fgd", "fgd-fluid"):
        outcome = place(index, share(200), policy(name))
        assert isinstance(outcome, Placement)
        assert outcome.host_ids == (fragment,)


# --- policies -------------------------------------------------------------------------------


def test_every_policy_places_only_where_the_unit_fits() -> None:
    hosts = [gpu_host(1, 2, vcpu=4), gpu_host(2, 8, "G2"), host(3, VCPU=64, MEMORY_MB=512)]
    for name in POLICIES:
        index = build(hosts)
        compiled(index, {Demand(vcpu=2, gpus=1, gpu_milli=1000): 1})
        for spec in (whole(8), share(500, vcpu=4), PlacementSpec(per_unit={"VCPU": 64})):
            outcome = place(index, spec, policy(name))
            assert isinstance(outcome, Placement), (name, spec)
        assert chosen(index, whole(8), policy(name)) == (2,)
        assert isinstance(place(index, whole(9), policy(name)), Rejection)


def test_keeping_gpu_hosts_free_outweighs_packing_and_fragmentation() -> None:
    """h1 is the fuller host (utilisation alone would take it) and has CPU to spare."""
    gpu = host(1, traits=["gpu_model=T4"], VCPU=(64, 40), MEMORY_MB=256, GPU=2)
    index = build([gpu, host(2, VCPU=64, MEMORY_MB=256)])
    compiled(index, {Demand(vcpu=2, gpus=1, gpu_milli=1000): 1})
    cpu_only = PlacementSpec(per_unit={"VCPU": 2})
    assert chosen(index, cpu_only, policy("pack")) == (2,)
    assert chosen(index, cpu_only, policy("fgd-fluid")) == (2,)


def test_baselines_follow_the_paper() -> None:
    hosts = [
        gpu_host(1, 8, "G2", vcpu=96),
        gpu_host(2, 8, "G2", vcpu=96),
        gpu_host(3, 2, "T4", vcpu=96),
    ]
    index = build(hosts)
    claim(index, share(500, gpu_models=frozenset({"G2"})))
    used = next(h for h in (1, 2) if min(devices_of(index, h)) < 1000)
    # GPU packing: the shared device first; best-fit: least CPU and GPU left.
    assert chosen(index, share(300), policy("gpu-packing")) == (used,)
    assert chosen(index, whole(1), policy("best-fit")) == (3,)
    # Dot-product: the smallest product of free and requested shares.
    assert chosen(index, whole(1), policy("dot-product")) == (used,)


def test_random_repeats_with_its_seed_and_differs_without() -> None:
    hosts = [gpu_host(i, 8, "G2", vcpu=128) for i in range(1, 30)]

    def run(seed: int) -> list[int]:
        index = build(hosts)
        draws = policy("random", seed)
        return [claim(index, whole(1), draws).host_ids[0] for _ in range(20)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert len(set(run(1))) > 5


def test_unknown_policies_are_refused_with_the_names_there_are() -> None:
    with pytest.raises(ValueError, match="fgd-fluid"):
        policy("first-fit")


# --- random programs against a model of every device ----------------------------------------


MODELS = ("T4", "G2")


@st.composite
def gpu_pools(draw: st.DrawFn) -> list[Host]:
    return [
        gpu_host(
            i,
            draw(st.integers(0, 4)),
            draw(st.sampled_from(MODELS)),
            vcpu=draw(st.integers(1, 16)),
            memory=draw(st.integers(1, 16)),
        )
        for i in range(1, draw(st.integers(1, 8)) + 1)
    ]


def random_gpu_spec(rng: random.Random) -> PlacementSpec:
    kind = rng.choice(["cpu", "share", "whole"])
    per_unit = {"VCPU": rng.randint(0, 4), "MEMORY_MB": rng.randint(0, 4)}
    models = frozenset(rng.sample(MODELS, rng.choice([0, 0, 1])))
    count = rng.choice([1, 1, 1, 2, 3])
    if kind == "share":
        return PlacementSpec(
            per_unit=per_unit, gpu_share=rng.choice([100, 250, 500, 700]), gpu_models=models,
            count=count,
        )  # fmt: skip
    if kind == "whole":
        per_unit["GPU"] = rng.randint(1, 3)
    return PlacementSpec(per_unit=per_unit, gpu_models=models, count=count)


@settings(max_examples=150, deadline=None)
@given(hosts=gpu_pools(), seed=st.integers(0, 2**32), program=st.integers(0, 2**32))
def test_gpu_programs_never_overuse_a_device_and_cached_rankings_equal_fresh_ones(
    hosts: list[Host], seed: int, program: int
) -> None:
    rng = random.Random(program)
    name = rng.choice([p for p in POLICIES if p != "random"])
    workload = Workload.of_specs((random_gpu_spec(rng), rng.random()) for _ in range(4))
    index = build(hosts, seed=seed)
    index.set_workload(workload)
    # The model: free thousandths of every device, and free VCPU/memory per host.
    devices = {h.id: [1000] * h.inventory["GPU"][0] for h in hosts}
    free = {h.id: {rc: h.free(rc) for rc in ("VCPU", "MEMORY_MB")} for h in hosts}
    done: list[tuple[PlacementSpec, Placement]] = []
    for _ in range(rng.randint(1, 25)):
        spec = random_gpu_spec(rng)
        outcome = place(index, spec, policy(name))
        fresh = build(hosts, seed=seed)
        fresh.set_workload(workload)
        for s, p in done:
            fresh.apply_placement(s, p)
        assert outcome == place(fresh, spec, policy(name)), spec
        if isinstance(outcome, Rejection):
            continue
        units = Counter(outcome.host_ids)
        for host_id, k in units.items():
            for rc, amount in spec.per_unit.items():
                if rc != "GPU":
                    free[host_id][rc] -= k * amount
                    assert free[host_id][rc] >= 0
            if spec.gpus and spec.gpu_models:
                model = next(h for h in hosts if h.id == host_id).traits[0].split("=")[1]
                assert model in spec.gpu_models
        if not spec.gpus:
            assert outcome.devices == ()
        for host_id, taken in zip(outcome.host_ids, outcome.devices, strict=bool(spec.gpus)):
            assert len(taken) == spec.gpus
            assert len(set(taken)) == len(taken)
            for d in taken:
                if spec.gpu_share:
                    devices[host_id][d] -= spec.gpu_share
                else:
                    assert devices[host_id][d] == 1000
                    devices[host_id][d] = 0
                assert devices[host_id][d] >= 0
        index.apply_placement(spec, outcome)
        done.append((spec, outcome))
        for h in hosts:
            assert devices_of(index, h.id)[: len(devices[h.id])] == devices[h.id]
            whole_free = sum(1 for d in devices[h.id] if d == 1000)
            assert index.used_of(h.id, "GPU") == h.inventory["GPU"][0] - whole_free


def test_spreading_requests_ignore_the_packing_policy() -> None:
    index = build([gpu_host(1, 2), gpu_host(2, 2)])
    claim(index, whole(1))
    spread = place(index, whole(1, strategy=Strategy.SPREAD))
    packed = place(index, whole(1))
    assert isinstance(spread, Placement)
    assert isinstance(packed, Placement)
    assert spread.host_ids != packed.host_ids

"""GPU sharing and GPU models in the claim path: units take thousandths of one device,
devices are tracked one by one in the database, whole GPUs and shares live side by side,
and every counter matches the rows after claims, releases, admissions and lost races."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from groupcloud.db.models import GpuDeviceRow, HostRow
from groupcloud.domain.allocation import AllocationState, PendingReason
from groupcloud.errors import NeverFits, NoCapacity
from groupcloud.schemas.compute import Allocation, QuotaSet
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, explain, hosts, quotas, scheduler
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import ask, counters, set_quotas, who
from tests.support import World, build_world, check_consistency, host


def device(a: Allocation, unit: int = 0) -> int:
    """The GPU device a sharing unit sits on."""
    found = a.units[unit].gpu_device
    assert found is not None
    return found


def shared_devices(rt: Runtime) -> dict[tuple[str, int], int]:
    """(host, device) -> free thousandths of every device that holds shares."""
    with rt.db.read() as s:
        rows = s.execute(
            select(HostRow.name, GpuDeviceRow.device, GpuDeviceRow.free_milli).join(
                HostRow, HostRow.id == GpuDeviceRow.host_id
            )
        )
        return {(h, d): free for h, d, free in rows}


def test_shares_pack_onto_one_device_and_are_charged_whole_gpus_per_allocation(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    four = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=4, gpu_share=250))
    assert {u.host for u in four.units} == {"h1"}
    assert {u.gpu_device for u in four.units} == {device(four, 0)}  # one device
    assert four.gpu_share == 250
    assert shared_devices(rt) == {("h1", device(four, 0)): 0}
    c = counters(rt)
    assert c.inventory[("h1", "GPU")] == 1  # one device in use, three entirely free
    assert c.quota[("bank", "GPU")] == 1  # 4 x 0.25 = 1 GPU
    third = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=300))
    assert device(third, 0) != device(four, 0)
    assert counters(rt).inventory[("h1", "GPU")] == 2
    assert counters(rt).quota[("bank", "GPU")] == 2  # 0.3 GPU rounded up to one
    assert check_consistency(rt).ok

    allocations.release(rt, dev, four.id)
    allocations.release(rt, dev, third.id)
    assert shared_devices(rt) == {}
    assert counters(rt).inventory[("h1", "GPU")] == 0
    assert counters(rt).quota[("bank", "GPU")] == 0
    assert check_consistency(rt).ok


def test_a_device_is_shared_until_full_then_the_next_share_opens_another(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    a = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=600))
    b = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=400))  # fills it exactly
    c = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=100))
    assert device(a, 0) == device(b, 0) != device(c, 0)
    assert shared_devices(rt) == {
        ("h1", device(a, 0)): 0,
        ("h1", device(c, 0)): 900,
    }
    allocations.release(rt, dev, a.id)  # the device keeps b's share
    assert shared_devices(rt)[("h1", device(b, 0))] == 600
    assert counters(rt).inventory[("h1", "GPU")] == 2
    assert check_consistency(rt).ok


def test_whole_gpus_and_shares_live_side_by_side(rt: Runtime, world: World) -> None:
    set_quotas(rt, "bank", {"GPU": 8})
    dev = who(rt, world.bank_member)
    share = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=500))
    whole = allocations.allocate(rt, dev, ask({"GPU": 3}))  # the three free devices
    with pytest.raises(NoCapacity):  # no device is entirely free any more
        allocations.allocate(rt, dev, ask({"GPU": 1}))
    other = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=500))  # joins the share
    assert device(other, 0) == device(share, 0)
    with pytest.raises(NoCapacity):
        allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=1))
    assert counters(rt).inventory[("h1", "GPU")] == 4
    assert check_consistency(rt).ok
    allocations.release(rt, dev, whole.id)
    again = allocations.allocate(rt, dev, ask({"GPU": 2}))
    assert [u.host for u in again.units] == ["h1"]
    assert check_consistency(rt).ok


def test_gpu_models_choose_hosts_by_their_gpu_model_trait(rt: Runtime, world: World) -> None:
    hosts.add_hosts(
        rt,
        SYSTEM,
        [
            host("a100", gpu=2, traits=["gpu_model=A100"]),
            host("v100", gpu=2, traits=["gpu_model=V100"]),
        ],
    )
    set_quotas(rt, "bank", {"GPU": 8})
    dev = who(rt, world.bank_member)
    out = allocations.allocate(rt, dev, ask({"GPU": 1}, gpu_models=["V100"]))
    assert [u.host for u in out.units] == ["v100"]
    shared = allocations.allocate(rt, dev, ask({"VCPU": 1}, gpu_share=200, gpu_models=["A100"]))
    assert [u.host for u in shared.units] == ["a100"]
    assert shared.gpu_models == ["A100"]
    with pytest.raises(NeverFits):  # no host has this model: waiting will not help
        allocations.allocate(rt, dev, ask({"GPU": 1}, gpu_models=["H100"], queue=True))
    assert check_consistency(rt).ok


def test_gpu_fields_are_validated() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ask({"GPU": 1}, gpu_share=500)
    with pytest.raises(ValidationError, match="needs GPUs"):
        ask({"VCPU": 1}, gpu_models=["A100"])
    with pytest.raises(ValidationError):
        ask({"VCPU": 1}, gpu_share=1000)  # a whole device: ask resources.GPU
    with pytest.raises(ValidationError, match="GPU model"):
        ask({"GPU": 1}, gpu_models=["A 100"])


def test_a_queued_share_is_admitted_by_the_scheduler_onto_a_device(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    set_quotas(rt, "bank", {"GPU": 8})
    full = allocations.allocate(rt, dev, ask({"GPU": 4}))
    waiting = allocations.allocate(rt, dev, ask({"VCPU": 1}, count=2, gpu_share=450, queue=True))
    assert waiting.state is AllocationState.PENDING
    assert waiting.pending_reason is PendingReason.NO_CAPACITY
    words = explain.explain(rt, dev, waiting.id)
    assert words.pending_reason is PendingReason.NO_CAPACITY
    allocations.release(rt, dev, full.id)

    cycle = scheduler.run_cycle(rt, rt.clock() + timedelta(seconds=1))

    assert cycle.admitted == 1
    now = allocations.get_allocation(rt, dev, waiting.id)
    assert now.state is AllocationState.ACTIVE
    assert [u.host for u in now.units] == ["h1", "h1"]
    assert device(now, 0) == device(now, 1)  # 2 x 0.45 on one device
    assert shared_devices(rt) == {("h1", device(now, 0)): 100}
    assert counters(rt).quota[("bank", "GPU")] == 1  # 0.9 GPU rounded up
    assert check_consistency(rt).ok
    allocations.release(rt, dev, waiting.id)
    assert shared_devices(rt) == {}
    assert check_consistency(rt).ok


@pytest.fixture
def pair(database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, Runtime]]:
    """Two runtimes on one database (two API processes); B never refreshes on a timer."""
    a = open_runtime(database_url, tmp_path / "a")
    b = open_runtime(database_url, tmp_path / "b", index_refresh_s=0)
    yield a, b
    b.close()
    a.close()


def stale_host_id(rt: Runtime) -> int:
    with rt.db.read() as s:
        return int(s.scalar(select(HostRow.id).where(HostRow.name == "h1")) or 0)


def test_a_stale_index_loses_a_device_race_and_places_again(
    pair: tuple[Runtime, Runtime],
) -> None:
    a, b = pair
    world = build_world(a, n_hosts=1)
    b.index.get()  # B believes every device of h1 is entirely free
    first = allocations.allocate(a, who(a, world.bank_member), ask({"VCPU": 1}, gpu_share=700))
    stale = b.index.get()
    assert stale.devices[stale.row_of[stale_host_id(b)], device(first, 0)] == 1000

    second = allocations.allocate(b, who(b, world.bank_member), ask({"VCPU": 1}, gpu_share=700))

    # B planned the same (entirely free, it believed) device, lost, re-read h1 and moved on
    assert device(second, 0) != device(first, 0)
    assert shared_devices(a) == {
        ("h1", device(first, 0)): 300,
        ("h1", device(second, 0)): 300,
    }
    third = allocations.allocate(b, who(b, world.bank_member), ask({"VCPU": 1}, gpu_share=300))
    assert device(third, 0) in {device(first, 0), device(second, 0)}
    assert check_consistency(a).ok


def test_a_borrowed_share_is_a_reclaim_victim_for_the_gpus_it_is_charged(
    rt: Runtime, world: World
) -> None:
    """Reclaims count what a share is charged (its GPUs of quota), not only its items."""
    quotas.set_quota(rt, SYSTEM, "card", "GPU", QuotaSet(nominal=0, borrowing_limit=4))
    card = who(rt, world.card_member)
    t0 = rt.clock() + timedelta(seconds=1)
    notebook = allocations.allocate(
        rt, card, ask({"VCPU": 1}, project="pay", gpu_share=500, queue=True)
    )
    assert scheduler.run_cycle(rt, t0).admitted == 1
    assert allocations.get_allocation(rt, card, notebook.id).borrowed == {"bank": {"GPU": 1}}
    bank = who(rt, world.bank_member)
    wants = allocations.allocate(rt, bank, ask({"GPU": 4}, queue=True))
    assert wants.state is AllocationState.PENDING

    cycle = scheduler.run_cycle(rt, t0 + timedelta(seconds=1))

    assert cycle.reclaims_started == 1
    assert allocations.get_allocation(rt, card, notebook.id).state is AllocationState.RECLAIMING
    assert check_consistency(rt).ok

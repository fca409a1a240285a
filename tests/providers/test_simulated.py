"""The simulated provider: idempotent, shared by processes, and as unreliable as asked."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from groupcloud.providers.base import (
    TAG_ALLOCATION,
    TAG_MANAGED,
    InstanceSpec,
    InstanceState,
    Offer,
    Provider,
    ProviderError,
    ProviderUnavailable,
    with_retries,
)
from groupcloud.providers.simulated import SimulatedProvider, instance_id_for

REGION = "kr-central-1"
OFFERS = [
    Offer("sim", REGION, "s.small", 2, 4096, Decimal("120")),
    Offer("sim", REGION, "g.large", 16, 131072, Decimal("4200"), gpu=1, gpu_model="A100"),
    Offer("sim", "kr-south-1", "s.small", 2, 4096, Decimal("110")),
    Offer("other", REGION, "s.small", 2, 4096, Decimal("1")),
]


def spec(token: str, region: str = REGION, instance_type: str = "s.small") -> InstanceSpec:
    return InstanceSpec(token, region, instance_type, {TAG_ALLOCATION: f"alloc-{token}"})


def test_it_is_a_provider() -> None:
    assert isinstance(SimulatedProvider("sim", OFFERS), Provider)


def test_list_offers_returns_this_providers_offers_in_the_region() -> None:
    sim = SimulatedProvider("sim", OFFERS)
    offers = asyncio.run(sim.list_offers(REGION))
    assert [o.instance_type for o in offers] == ["s.small", "g.large"]
    assert asyncio.run(sim.list_offers("nowhere")) == []


def test_create_is_idempotent_on_the_client_token() -> None:
    sim = SimulatedProvider("sim", OFFERS)

    async def run() -> None:
        first = await sim.create_instance(spec("t1"))
        again = await sim.create_instance(spec("t1"))
        other = await sim.create_instance(spec("t2"))
        assert first == again
        assert other.id != first.id
        assert first.id == instance_id_for("sim", "t1")
        assert first.state is InstanceState.RUNNING
        assert first.tags == {TAG_ALLOCATION: "alloc-t1", TAG_MANAGED: "true"}
        assert [i.id for i in await sim.list_instances(REGION)] == [first.id, other.id]

    asyncio.run(run())


def test_a_token_reused_for_another_type_is_refused() -> None:
    sim = SimulatedProvider("sim", OFFERS)
    asyncio.run(sim.create_instance(spec("t1")))
    with pytest.raises(ProviderError) as caught:
        asyncio.run(sim.create_instance(spec("t1", instance_type="g.large")))
    assert (caught.value.retryable, caught.value.code) == (False, "idempotent_parameter_mismatch")


def test_instances_persist_across_providers_on_one_state_file(tmp_path: Path) -> None:
    path = tmp_path / "providers" / "sim.sqlite"
    made = asyncio.run(SimulatedProvider("sim", OFFERS, state_path=path).create_instance(spec("t")))
    later = SimulatedProvider("sim", OFFERS, state_path=path)
    assert asyncio.run(later.describe(REGION, made.id)) == made
    assert asyncio.run(later.create_instance(spec("t"))) == made
    assert asyncio.run(later.list_instances(REGION)) == [made]
    # another provider's instances in the same file are not this one's
    stranger = SimulatedProvider("other", OFFERS, state_path=path)
    assert asyncio.run(stranger.list_instances(REGION)) == []


def test_threads_racing_on_one_token_get_one_instance(tmp_path: Path) -> None:
    sim = SimulatedProvider("sim", OFFERS, state_path=tmp_path / "sim.sqlite")
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def race() -> None:
        barrier.wait()
        ids.append(asyncio.run(sim.create_instance(spec("contested"))).id)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8
    assert set(ids) == {instance_id_for("sim", "contested")}
    assert len(asyncio.run(sim.list_instances(REGION))) == 1


def _create_at(path: Path, tokens: list[str], start_at: float) -> list[str]:
    """In a process of its own: wait for the common start, then create every token."""
    sim = SimulatedProvider("sim", OFFERS, state_path=path)
    time.sleep(max(0.0, start_at - time.time()))

    async def run() -> list[str]:
        return [(await sim.create_instance(spec(t))).id for t in tokens]

    return asyncio.run(run())


def test_processes_racing_on_the_same_tokens_get_one_instance_per_token(tmp_path: Path) -> None:
    path = tmp_path / "sim.sqlite"
    tokens = [f"t{i}" for i in range(20)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        start_at = time.time() + 2.0  # every process imported and waiting by then
        futures = [pool.submit(_create_at, path, tokens, start_at) for _ in range(3)]
        answers = [f.result(timeout=30) for f in futures]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0] == [instance_id_for("sim", t) for t in tokens]
    listed = asyncio.run(SimulatedProvider("sim", OFFERS, state_path=path).list_instances(REGION))
    assert sorted(i.id for i in listed) == sorted(answers[0])


def test_delete_is_idempotent_and_describe_of_a_deleted_instance_is_none() -> None:
    sim = SimulatedProvider("sim", OFFERS)

    async def run() -> None:
        made = await sim.create_instance(spec("t"))
        await sim.delete_instance(REGION, made.id)
        await sim.delete_instance(REGION, made.id)
        await sim.delete_instance(REGION, "sim-never-existed")
        assert await sim.describe(REGION, made.id) is None
        assert await sim.list_instances(REGION) == []
        with pytest.raises(ProviderError) as caught:
            await sim.create_instance(spec("t"))
        assert (caught.value.retryable, caught.value.code) == (False, "client_token_used")

    asyncio.run(run())


def test_a_vanished_instance_is_no_longer_described_or_listed(tmp_path: Path) -> None:
    path = tmp_path / "sim.sqlite"
    sim = SimulatedProvider("sim", OFFERS, state_path=path)
    kept = asyncio.run(sim.create_instance(spec("kept")))
    lost = asyncio.run(sim.create_instance(spec("lost")))
    SimulatedProvider("sim", OFFERS, state_path=path).vanish(lost.id)  # from another handle
    assert asyncio.run(sim.describe(REGION, lost.id)) is None
    assert asyncio.run(sim.list_instances(REGION)) == [kept]


def test_instances_are_pending_until_they_booted() -> None:
    now = [1000.0]
    sim = SimulatedProvider("sim", OFFERS, boot_s=30, clock=lambda: now[0])
    made = asyncio.run(sim.create_instance(spec("t")))
    assert made.state is InstanceState.PENDING
    now[0] += 30
    described = asyncio.run(sim.describe(REGION, made.id))
    assert described is not None
    assert described.state is InstanceState.RUNNING


def test_an_unknown_instance_type_fails_non_retryably_at_once() -> None:
    sim = SimulatedProvider("sim", OFFERS)
    calls = 0

    async def create() -> object:
        nonlocal calls
        calls += 1
        return await sim.create_instance(spec("t", instance_type="x.huge"))

    with pytest.raises(ProviderError) as caught:
        asyncio.run(with_retries(create, timeout_s=1, attempts=3, backoff_s=0.001))
    assert not isinstance(caught.value, ProviderUnavailable)
    assert (caught.value.code, calls) == ("invalid_instance_type", 1)
    # the type exists, but not in this region
    with pytest.raises(ProviderError, match=r"g\.large"):
        asyncio.run(sim.create_instance(spec("t", region="kr-south-1", instance_type="g.large")))


def test_a_failed_region_becomes_unavailable_through_with_retries() -> None:
    sim = SimulatedProvider("sim", OFFERS, fail_regions={REGION})

    async def run() -> None:
        with pytest.raises(ProviderUnavailable, match="down"):
            await with_retries(lambda: sim.create_instance(spec("t")), timeout_s=1, backoff_s=0.001)
        assert await sim.list_instances("kr-south-1") == []  # other regions still answer
        sim.fail_regions.clear()
        assert (await sim.create_instance(spec("t"))).id == instance_id_for("sim", "t")

    asyncio.run(run())


def test_a_hung_region_costs_the_timeout_then_provider_unavailable() -> None:
    sim = SimulatedProvider("sim", OFFERS, hang_regions={REGION})
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="timed out"):
        asyncio.run(
            with_retries(
                lambda: sim.list_instances(REGION), timeout_s=0.05, attempts=2, backoff_s=0.01
            )
        )
    assert time.monotonic() - started < 2


def test_latency_is_injected_into_every_call() -> None:
    sim = SimulatedProvider("sim", OFFERS, latency_s=0.1)
    started = time.monotonic()
    asyncio.run(sim.list_offers(REGION))
    assert time.monotonic() - started >= 0.1
    with pytest.raises(ProviderUnavailable):
        asyncio.run(with_retries(lambda: sim.list_offers(REGION), timeout_s=0.02, attempts=2))


def test_random_failures_are_seeded_and_retries_ride_them_out() -> None:
    def outcomes(seed: int) -> list[bool]:
        sim = SimulatedProvider("sim", OFFERS, failure_rate=0.5, seed=seed)
        result = []
        for _ in range(40):
            try:
                asyncio.run(sim.list_offers(REGION))
                result.append(True)
            except ProviderError as exc:
                result.append(not exc.retryable)  # a non-retryable one would read as True
        return result

    first = outcomes(7)
    assert first == outcomes(7)
    assert 5 < first.count(False) < 35
    sim = SimulatedProvider("sim", OFFERS, failure_rate=0.5, seed=7)
    offers = asyncio.run(
        with_retries(lambda: sim.list_offers(REGION), timeout_s=1, attempts=20, backoff_s=0)
    )
    assert len(offers) == 2


def test_a_lost_response_is_retried_onto_the_same_instance() -> None:
    sim = SimulatedProvider("sim", OFFERS, lost_response_rate=0.6, seed=3)

    async def run() -> None:
        made = await with_retries(
            lambda: sim.create_instance(spec("t")), timeout_s=1, attempts=20, backoff_s=0
        )
        assert made.id == instance_id_for("sim", "t")
        sim.lost_response_rate = 0
        assert [i.id for i in await sim.list_instances(REGION)] == [made.id]

    asyncio.run(run())

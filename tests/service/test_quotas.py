"""Quotas: set and list, never below usage, and no claim of a class without a quota."""

from __future__ import annotations

import pytest

from groupcloud.errors import Forbidden, InvalidInput, NeverFits, NotFound, QuotaBelowUsage
from groupcloud.schemas.compute import QuotaSet
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, quotas
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.service.helpers import ask, counters, who
from tests.support import World, check_consistency


def test_set_quota_creates_and_changes_a_line_and_list_shows_usage(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    allocations.allocate(rt, dev, ask({"VCPU": 8}))

    created = quotas.set_quota(rt, SYSTEM, "bank", "CUSTOM_FPGA", QuotaSet(nominal=3))
    changed = quotas.set_quota(rt, SYSTEM, "bank", "VCPU", QuotaSet(nominal=40))

    assert (created.nominal, created.used, created.free) == (3, 0, 3)
    assert created.borrowing_limit == 0
    assert created.lending_limit is None  # lends all of its idle nominal
    assert created.borrowing_limit == 0  # borrows nothing until allowed
    assert (changed.nominal, changed.used, changed.free, changed.used_pct) == (40, 8, 32, 20.0)
    lines = {(q.company, q.resource_class): q.nominal for q in quotas.list_quotas(rt, SYSTEM)}
    assert lines == {
        ("bank", "CUSTOM_FPGA"): 3,
        ("bank", "GPU"): 4,
        ("bank", "MEMORY_MB"): 131072,
        ("bank", "VCPU"): 40,
        ("card", "MEMORY_MB"): 65536,
        ("card", "VCPU"): 16,
    }
    assert [q.resource_class for q in quotas.list_quotas(rt, SYSTEM, "card")] == [
        "MEMORY_MB",
        "VCPU",
    ]
    assert check_consistency(rt).ok


def test_quota_cannot_be_lowered_below_usage(rt: Runtime, world: World) -> None:
    dev = who(rt, world.bank_member)
    allocations.allocate(rt, dev, ask({"VCPU": 8}, count=2))
    before = counters(rt)

    with pytest.raises(QuotaBelowUsage) as err:
        quotas.set_quota(rt, SYSTEM, "bank", "VCPU", QuotaSet(nominal=15))

    assert err.value.code == "quota_below_usage"
    assert err.value.status == 409
    assert err.value.extra == {"used": 16, "borrowed": 0, "lent": 0, "requested": 15}
    assert counters(rt) == before  # no quota.set event for a refused change
    assert {q.resource_class: q.nominal for q in quotas.list_quotas(rt, SYSTEM, "bank")}[
        "VCPU"
    ] == 32
    exact = quotas.set_quota(rt, SYSTEM, "bank", "VCPU", QuotaSet(nominal=16))
    assert (exact.nominal, exact.free) == (16, 0)
    assert check_consistency(rt).ok


def test_a_class_without_quota_cannot_be_claimed(rt: Runtime, world: World) -> None:
    card = who(rt, world.card_member)  # card has no GPU quota; h1 has free GPUs
    before = counters(rt)

    with pytest.raises(NeverFits) as err:
        allocations.allocate(rt, card, ask({"GPU": 1, "VCPU": 1}, project="pay"))

    assert err.value.extra["exceeded"] == [
        {
            "resource_class": "GPU",
            "kind": "never",
            "requested": 1,
            "own_free": 0,
            "missing": 1,
            "borrowable": 0,
            "limit": 0,
        }
    ]
    assert counters(rt) == before
    quotas.set_quota(rt, SYSTEM, "card", "GPU", QuotaSet(nominal=0))
    with pytest.raises(NeverFits):
        allocations.allocate(rt, card, ask({"GPU": 1}, project="pay"))
    quotas.set_quota(rt, SYSTEM, "card", "GPU", QuotaSet(nominal=1))
    placed = allocations.allocate(rt, card, ask({"GPU": 1}, project="pay"))
    assert [u.host for u in placed.units] == ["h1"]
    assert check_consistency(rt).ok


def test_quota_changes_are_refused_for_bad_input_and_non_admins(rt: Runtime, world: World) -> None:
    with pytest.raises(InvalidInput):
        quotas.set_quota(rt, SYSTEM, "bank", "cpu", QuotaSet(nominal=1))
    with pytest.raises(NotFound):
        quotas.set_quota(rt, SYSTEM, "nobank", "VCPU", QuotaSet(nominal=1))
    for secret in (world.bank_admin, world.bank_member):
        with pytest.raises(Forbidden):
            quotas.set_quota(rt, who(rt, secret), "bank", "VCPU", QuotaSet(nominal=1000))
    assert {q.resource_class: q.nominal for q in quotas.list_quotas(rt, SYSTEM, "bank")} == {
        "GPU": 4,
        "MEMORY_MB": 131072,
        "VCPU": 32,
    }
    assert check_consistency(rt).ok

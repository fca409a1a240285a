"""Quota admission (groupcloud.quota.admission): the readable statement of the rule the
claim transaction enforces with ``used + n <= nominal``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.quota.admission import Excess, QuotaLine, admit, ceiling

CLASSES = ("VCPU", "MEMORY_MB", "DISK_GB", "GPU", "CUSTOM_FPGA")


@st.composite
def quota_lines(draw: st.DrawFn) -> dict[str, QuotaLine]:
    """Quotas for a random subset of classes; ``used`` may exceed a quota lowered later."""
    lines: dict[str, QuotaLine] = {}
    for rc in draw(st.lists(st.sampled_from(CLASSES), unique=True, max_size=len(CLASSES))):
        nominal = draw(st.integers(0, 1000))
        used = draw(st.integers(0, 1200))
        lines[rc] = QuotaLine(rc, nominal, used)
    return lines


demands = st.dictionaries(st.sampled_from(CLASSES), st.integers(1, 1200), min_size=1)


def limit_of(quotas: dict[str, QuotaLine], rc: str) -> int:
    return quotas[rc].nominal if rc in quotas else 0


def used_of(quotas: dict[str, QuotaLine], rc: str) -> int:
    return quotas[rc].used if rc in quotas else 0


@settings(max_examples=150, deadline=None)
@given(quotas=quota_lines(), demand=demands)
def test_admit_is_empty_exactly_when_every_class_stays_within_its_limit(
    quotas: dict[str, QuotaLine], demand: dict[str, int]
) -> None:
    fits = all(used_of(quotas, rc) + n <= limit_of(quotas, rc) for rc, n in demand.items())
    assert (admit(quotas, demand) == []) is fits


@settings(max_examples=150, deadline=None)
@given(quotas=quota_lines(), demand=demands)
def test_admit_lists_each_overshot_class_once_in_class_order_with_its_excess(
    quotas: dict[str, QuotaLine], demand: dict[str, int]
) -> None:
    excesses = admit(quotas, demand)
    over = sorted(rc for rc, n in demand.items() if used_of(quotas, rc) + n > limit_of(quotas, rc))
    assert [e.resource_class for e in excesses] == over
    for e in excesses:
        assert e.requested == demand[e.resource_class]
        assert e.used == used_of(quotas, e.resource_class)
        assert e.limit == limit_of(quotas, e.resource_class)
        assert e.excess == e.used + e.requested - e.limit
        assert e.excess > 0


def test_a_class_without_a_quota_line_has_a_limit_of_zero() -> None:
    quotas = {"VCPU": QuotaLine("VCPU", 32, 0)}
    assert admit(quotas, {"VCPU": 4, "GPU": 1}) == [Excess("GPU", 1, 0, 0)]
    assert admit(quotas, {"GPU": 1})[0].excess == 1


def test_a_demand_that_exactly_reaches_the_limit_is_admitted() -> None:
    quotas = {"VCPU": QuotaLine("VCPU", 32, 30)}
    assert admit(quotas, {"VCPU": 2}) == []
    assert admit(quotas, {"VCPU": 3}) == [Excess("VCPU", 3, 30, 32)]
    assert admit(quotas, {"VCPU": 3})[0].excess == 1


def test_the_limit_is_the_nominal_quota_while_borrowing_is_not_enabled() -> None:
    assert QuotaLine("GPU", 8, 3).limit == 8


@settings(max_examples=100, deadline=None)
@given(quotas=quota_lines(), demand=demands)
def test_ceiling_ignores_what_is_in_use_now(
    quotas: dict[str, QuotaLine], demand: dict[str, int]
) -> None:
    never = ceiling(quotas, demand)
    over = sorted(rc for rc, n in demand.items() if n > limit_of(quotas, rc))
    assert [e.resource_class for e in never] == over
    assert all(e.used == 0 and e.excess == e.requested - e.limit for e in never)
    # What can never be admitted is not admitted now either.
    assert {e.resource_class for e in never} <= {e.resource_class for e in admit(quotas, demand)}


def test_ceiling_admits_a_demand_that_only_waits_for_releases() -> None:
    quotas = {"VCPU": QuotaLine("VCPU", 16, 16)}
    assert admit(quotas, {"VCPU": 8}) != []
    assert ceiling(quotas, {"VCPU": 8}) == []
    assert ceiling(quotas, {"VCPU": 17}) == [Excess("VCPU", 17, 0, 16)]

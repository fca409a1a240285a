"""Capacity arithmetic and resource-class validation (groupcloud.domain.resources)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.domain.resources import (
    STANDARD_CLASSES,
    capacity,
    check_amounts,
    check_resource_class,
    percent,
    scale,
)

# Totals up to 10**9 times a ratio of at most 17 significant digits fit the decimal
# context's 28 digits exactly; larger totals are covered by an explicit test below.
totals = st.integers(min_value=0, max_value=10**9)
ratios = st.floats(min_value=1e-3, max_value=1000.0, allow_nan=False, allow_infinity=False)
custom_classes = st.from_regex(r"CUSTOM_[A-Z0-9_]{1,40}", fullmatch=True)
classes = st.one_of(st.sampled_from(STANDARD_CLASSES), custom_classes)


def exact(total: int, reserved: int, ratio: float) -> int:
    """The reference: the ratio taken as the decimal number it is written as."""
    return math.floor((total - reserved) * Fraction(repr(ratio)))


# --- capacity ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(total=totals, data=st.data(), ratio=ratios)
def test_capacity_equals_exact_arithmetic_on_the_decimal_spelling_of_the_ratio(
    total: int, data: st.DataObject, ratio: float
) -> None:
    reserved = data.draw(st.integers(min_value=0, max_value=total))
    assert capacity(total, reserved, ratio) == exact(total, reserved, ratio)


@pytest.mark.parametrize(
    ("total", "reserved", "ratio", "expected"),
    [
        (100, 0, 1.15, 115),  # float arithmetic says 114.99999999999999
        (10, 0, 1.1, 11),
        (3, 0, 0.1, 0),
        (64, 0, 4.0, 256),
        (64, 4, 1.5, 90),
        (262144, 0, 1.0, 262144),
        (7, 7, 16.0, 0),
        (9, 0, 0.3333, 2),
        (1000, 1, 0.999, 998),  # 998.001
    ],
)
def test_capacity_examples_from_the_formula(
    total: int, reserved: int, ratio: float, expected: int
) -> None:
    assert capacity(total, reserved, ratio) == expected


@pytest.mark.parametrize(
    ("total", "ratio"),
    [
        (10**18 + 1, 0.9999999999999999),
        (2**62 + 10**6 + 1, 0.9999999999999999),
        (9 * 10**15 + 1, 999.9999999999999),
    ],
)
def test_capacity_is_exact_for_totals_the_database_can_store(total: int, ratio: float) -> None:
    """Inventories are BIGINT columns (up to 2**63 - 1). The product of such a total and a
    17-digit ratio has more digits than the default decimal context keeps (28), and a
    product just below an integer must not be rounded up to it before the floor."""
    expected = exact(total, 0, ratio)
    assert expected < 2**63
    assert capacity(total, 0, ratio) == expected


@settings(max_examples=100, deadline=None)
@given(total=totals, extra=st.integers(0, 10**6), ratio=ratios, data=st.data())
def test_capacity_never_decreases_when_total_grows(
    total: int, extra: int, ratio: float, data: st.DataObject
) -> None:
    reserved = data.draw(st.integers(min_value=0, max_value=total))
    assert capacity(total, reserved, ratio) <= capacity(total + extra, reserved, ratio)


@settings(max_examples=100, deadline=None)
@given(total=totals, r1=ratios, r2=ratios, data=st.data())
def test_capacity_never_decreases_when_the_ratio_grows(
    total: int, r1: float, r2: float, data: st.DataObject
) -> None:
    reserved = data.draw(st.integers(min_value=0, max_value=total))
    low, high = sorted((r1, r2))
    assert capacity(total, reserved, low) <= capacity(total, reserved, high)


@settings(max_examples=100, deadline=None)
@given(total=totals, ratio=ratios, data=st.data())
def test_capacity_is_never_negative_and_shrinks_with_reserved(
    total: int, ratio: float, data: st.DataObject
) -> None:
    reserved = data.draw(st.integers(min_value=0, max_value=total))
    more = data.draw(st.integers(min_value=reserved, max_value=total))
    assert capacity(total, more, ratio) >= 0
    assert capacity(total, more, ratio) <= capacity(total, reserved, ratio)
    assert capacity(total, total, ratio) == 0


@settings(max_examples=100, deadline=None)
@given(total=totals, data=st.data())
def test_capacity_with_ratio_one_is_total_minus_reserved(total: int, data: st.DataObject) -> None:
    reserved = data.draw(st.integers(min_value=0, max_value=total))
    assert capacity(total, reserved, 1.0) == total - reserved
    assert capacity(total, reserved, 1) == total - reserved  # an int ratio is accepted


@pytest.mark.parametrize(
    ("total", "reserved", "ratio"),
    [
        (10, 11, 1.0),  # reserved above total
        (-1, 0, 1.0),
        (10, -1, 1.0),
        (10, 0, 0.0),
        (10, 0, -1.5),
        (0, 1, 1.0),
    ],
)
def test_capacity_refuses_impossible_inventories(total: int, reserved: int, ratio: float) -> None:
    with pytest.raises(ValueError, match=r"reserved|allocation_ratio"):
        capacity(total, reserved, ratio)


@pytest.mark.parametrize("total", [0, 10])
@pytest.mark.parametrize("ratio", [math.nan, math.inf])
def test_capacity_refuses_a_ratio_that_is_not_a_finite_number(total: int, ratio: float) -> None:
    """The function's contract is a ValueError for a bad ratio; NaN and infinity must not
    leak OverflowError or decimal.InvalidOperation (the API bounds the ratio, but the
    domain function is also used directly by services and the seeder)."""
    with pytest.raises(ValueError, match="allocation_ratio"):
        capacity(total, 0, ratio)


# --- resource classes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [*STANDARD_CLASSES, "CUSTOM_FPGA", "CUSTOM_A100_80G", "CUSTOM_1"])
def test_check_resource_class_accepts_standard_and_custom_classes(name: str) -> None:
    assert check_resource_class(name) == name


@settings(max_examples=100, deadline=None)
@given(name=custom_classes)
def test_check_resource_class_accepts_any_well_formed_custom_class(name: str) -> None:
    assert check_resource_class(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "vcpu",
        "CPU",
        "CUSTOM_",
        "custom_fpga",
        "CUSTOM_fpga",
        "CUSTOM-FPGA",
        "CUSTOM_FPGA ",
        " CUSTOM_FPGA",
        "XCUSTOM_FPGA",
        "CUSTOM_" + "A" * 246,
    ],
)
def test_check_resource_class_rejects_unknown_and_malformed_names(name: str) -> None:
    with pytest.raises(ValueError, match="unknown resource class"):
        check_resource_class(name)


def test_check_resource_class_allows_the_longest_custom_name() -> None:
    name = "CUSTOM_" + "A" * 245
    assert check_resource_class(name) == name


@pytest.mark.parametrize("name", ["CUSTOM_FPGA\n", "VCPU\n"])
def test_check_resource_class_rejects_a_trailing_newline(name: str) -> None:
    """``re.match`` with ``$`` accepts a string ending in a newline; such a class name
    would be stored and shown as a different class than the one the user meant."""
    with pytest.raises(ValueError, match="unknown resource class"):
        check_resource_class(name)


# --- amounts ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(amounts=st.dictionaries(classes, st.integers(1, 10**12), min_size=1, max_size=6))
def test_check_amounts_returns_valid_amounts_sorted_by_class(amounts: dict[str, int]) -> None:
    checked = check_amounts(amounts)
    assert checked == amounts
    assert list(checked) == sorted(amounts)


@pytest.mark.parametrize(
    "amounts",
    [
        {"VCPU": True},  # bool is an int subclass, and not an amount
        {"VCPU": False},
        {"VCPU": 0},
        {"VCPU": -1},
        {"VCPU": 1.0},
        {"VCPU": "2"},
        {"VCPU": None},
        {"VCPU": 2, "MEMORY_MB": 0},
    ],
)
def test_check_amounts_rejects_anything_but_positive_integers(amounts: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="amount must be an integer >= 1"):
        check_amounts(amounts)  # type: ignore[arg-type]


@pytest.mark.parametrize("amounts", [{"GPUS": 1}, {"VCPU": 1, "custom_x": 1}])
def test_check_amounts_rejects_unknown_classes(amounts: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="unknown resource class"):
        check_amounts(amounts)


def test_check_amounts_requires_at_least_one_class() -> None:
    with pytest.raises(ValueError, match="at least one resource class"):
        check_amounts({})


# --- scale and percent ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    per_unit=st.dictionaries(classes, st.integers(1, 10**6), min_size=1, max_size=5),
    count=st.integers(1, 1000),
)
def test_scale_multiplies_every_class_by_the_count(per_unit: dict[str, int], count: int) -> None:
    whole = scale(per_unit, count)
    assert whole.keys() == per_unit.keys()
    assert all(whole[rc] == per_unit[rc] * count for rc in per_unit)
    assert scale(per_unit, 1) == per_unit


@pytest.mark.parametrize(
    ("used", "total", "expected"),
    [(0, 10, 0.0), (5, 10, 50.0), (1, 3, 33.33), (2, 3, 66.67), (10, 10, 100.0), (3, 0, 0.0)],
)
def test_percent_rounds_to_two_decimals_and_is_zero_without_a_total(
    used: int, total: int, expected: float
) -> None:
    assert percent(used, total) == expected


@settings(max_examples=100, deadline=None)
@given(total=st.integers(1, 10**9), data=st.data())
def test_percent_stays_between_0_and_100_when_used_fits(total: int, data: st.DataObject) -> None:
    used = data.draw(st.integers(0, total))
    assert 0.0 <= percent(used, total) <= 100.0
    # Rounding to two decimals moves a value by at most half a hundredth (plus float noise).
    assert abs(percent(used, total) - 100 * used / total) <= 0.005 + 1e-9

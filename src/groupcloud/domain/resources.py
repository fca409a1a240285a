"""Resource classes and capacity arithmetic.

Capacity follows OpenStack Placement: ``floor((total - reserved) * allocation_ratio)``.
The ratio is applied with exact rational arithmetic on its shortest decimal spelling,
so that ``1.1`` behaves as 1.1 and never as 1.0999999999999999 (which would lose a unit
to the floor), whatever the size of the total (a ``Decimal`` product would be rounded
to the context's 28 digits before the floor).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction

from groupcloud.domain.limits import MAX_AMOUNT

__all__ = [
    "RESOURCE_CLASS",
    "STANDARD_CLASSES",
    "capacity",
    "check_amounts",
    "check_resource_class",
    "percent",
    "scale",
]

STANDARD_CLASSES = ("VCPU", "MEMORY_MB", "DISK_GB", "GPU")
_CUSTOM = re.compile(r"^CUSTOM_[A-Z0-9_]{1,245}$")
RESOURCE_CLASS = re.compile(r"^(VCPU|MEMORY_MB|DISK_GB|GPU|CUSTOM_[A-Z0-9_]{1,245})$")
"""Every valid class name (the published pattern; ``check_resource_class`` says why not)."""


def check_resource_class(name: str) -> str:
    """Return ``name`` if it is a standard class or ``CUSTOM_*``; raise ValueError otherwise."""
    if name in STANDARD_CLASSES or _CUSTOM.fullmatch(name):
        return name
    raise ValueError(
        f"unknown resource class {name!r}: use one of {', '.join(STANDARD_CLASSES)} "
        "or CUSTOM_<NAME> (upper-case letters, digits, underscores)"
    )


def check_amounts(amounts: Mapping[str, int]) -> dict[str, int]:
    """Validate a per-unit demand: known classes, each amount a positive integer."""
    if not amounts:
        raise ValueError("at least one resource class is required")
    checked: dict[str, int] = {}
    for rc, amount in amounts.items():
        check_resource_class(rc)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError(f"{rc}: amount must be an integer >= 1 (omit a class you do not need)")
        if amount > MAX_AMOUNT:
            raise ValueError(f"{rc}: amount must be at most {MAX_AMOUNT}")
        checked[rc] = amount
    return dict(sorted(checked.items()))


def capacity(total: int, reserved: int, allocation_ratio: float) -> int:
    """Usable capacity of one inventory; never negative."""
    if total < 0 or reserved < 0 or not (math.isfinite(allocation_ratio) and allocation_ratio > 0):
        raise ValueError("total and reserved must be >= 0 and allocation_ratio a finite number > 0")
    if reserved > total:
        raise ValueError(f"reserved ({reserved}) exceeds total ({total})")
    return math.floor((total - reserved) * Fraction(repr(float(allocation_ratio))))


def scale(per_unit: Mapping[str, int], count: int) -> dict[str, int]:
    """The whole demand of ``count`` units."""
    return {rc: amount * count for rc, amount in per_unit.items()}


def percent(used: int, total: int) -> float:
    """Share of ``total`` in use, in percent with two decimals (0 when there is no total)."""
    return round(100.0 * used / total, 2) if total else 0.0

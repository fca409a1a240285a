"""Admission of a demand against a company's quotas.

The database enforces the same rule inside the claim transaction with a conditional
``UPDATE quotas SET used = used + :n WHERE used + :n <= nominal``; this module is the
readable statement of that rule and what builds the explanation when it refuses.
Borrowing (``borrowing_limit``/``lending_limit``) is stored but not yet used: the limit
of a company is its nominal quota.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Excess", "QuotaLine", "admit", "ceiling"]


@dataclass(frozen=True, slots=True)
class QuotaLine:
    """A company's quota for one resource class and what it uses now."""

    resource_class: str
    nominal: int
    used: int = 0

    @property
    def limit(self) -> int:
        return self.nominal


@dataclass(frozen=True, slots=True)
class Excess:
    """By how much a demand overshoots one quota line."""

    resource_class: str
    requested: int
    used: int
    limit: int

    @property
    def excess(self) -> int:
        return self.used + self.requested - self.limit


def admit(quotas: Mapping[str, QuotaLine], demand: Mapping[str, int]) -> list[Excess]:
    """The lines ``demand`` would overshoot now; empty means admitted.

    A class without a quota line has a limit of 0: companies get only what was granted.
    """
    out: list[Excess] = []
    for rc, amount in sorted(demand.items()):
        line = quotas.get(rc, QuotaLine(rc, 0, 0))
        if line.used + amount > line.limit:
            out.append(Excess(rc, amount, line.used, line.limit))
    return out


def ceiling(quotas: Mapping[str, QuotaLine], demand: Mapping[str, int]) -> list[Excess]:
    """The lines ``demand`` overshoots even with nothing in use: it can never be admitted."""
    empty = {rc: QuotaLine(rc, q.nominal, 0) for rc, q in quotas.items()}
    return admit(empty, demand)

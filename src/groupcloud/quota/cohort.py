"""Borrowing arithmetic of the group's pool (the cohort): who may use whose idle nominal.

Every company has per resource class a ``nominal`` (guaranteed) share of the pool. What
it does not use, it lends (up to its ``lending_limit``); what it needs beyond its nominal,
it borrows (up to its ``borrowing_limit``) from the others' lendable idle nominal. The
database holds three counters per line (``used``, ``borrowed``, ``lent``) and CHECKs the
same rules this module states, so a plan made here on a stale snapshot can only fail its
conditional update, never break an invariant.

Two rules decide what a request needs (``plan``):

* A request that fits in the company's nominal (own use + request <= nominal) is
  **guaranteed**: it takes its own free nominal, and if part of that nominal is lent out,
  the shortfall is ``reclaim`` (taken back from borrowers), never borrowed elsewhere.
* A request beyond nominal **borrows** what its own free nominal cannot cover, from the
  lenders with the most lendable capacity first (fewest loans per allocation).

"Available" is what a company could get now; "potentially available" (``ceiling``) is
what it could get if every other company were idle: a request above that never fits.
This module does no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "Admission",
    "Blocked",
    "Cohort",
    "QuotaLine",
    "Shortfall",
    "ShortfallKind",
]


@dataclass(frozen=True, slots=True)
class QuotaLine:
    """One company's quota for one resource class and how much of the pool it holds."""

    resource_class: str
    nominal: int
    used: int = 0
    borrowed: int = 0
    lent: int = 0
    borrowing_limit: int | None = 0
    """How far above nominal the company may go by borrowing; None: no limit."""
    lending_limit: int | None = None
    """How much of its idle nominal others may hold; None: all of it."""

    @property
    def own_used(self) -> int:
        """What the company holds out of its own nominal."""
        return self.used - self.borrowed

    @property
    def committed(self) -> int:
        """The part of the nominal that is spoken for: used by the company or lent out
        (a nominal below it would take back what is held)."""
        return self.own_used + self.lent

    @property
    def own_free(self) -> int:
        """Nominal neither used by the company nor lent to others."""
        return max(self.nominal - self.committed, 0)

    @property
    def lendable(self) -> int:
        """What others may borrow from this line now."""
        if self.lending_limit is None:
            return self.own_free
        return max(min(self.own_free, self.lending_limit - self.lent), 0)

    @property
    def borrow_headroom(self) -> int | None:
        """How much more the company may borrow; None: no limit."""
        if self.borrowing_limit is None:
            return None
        return max(self.borrowing_limit - self.borrowed, 0)

    @property
    def potential_lending(self) -> int:
        """What this line could lend if its company used nothing."""
        if self.lending_limit is None:
            return self.nominal
        return min(self.nominal, self.lending_limit)


class ShortfallKind(enum.StrEnum):
    """Why a resource class of a request cannot be admitted now (stable, machine-readable)."""

    LENT_OUT = "lent_out"
    """Within nominal, but part of the nominal is lent: it must be reclaimed from borrowers."""
    BORROWING_LIMIT = "borrowing_limit"
    """Beyond nominal by more than the company may borrow (above what it borrows already)."""
    NO_LENDABLE = "no_lendable"
    """Beyond nominal, and the other companies have not enough idle nominal to lend."""
    NEVER = "never"
    """Beyond nominal + everything the company could ever borrow."""


@dataclass(frozen=True, slots=True)
class Shortfall:
    """What is missing on one resource class, with the figures to explain it."""

    resource_class: str
    kind: ShortfallKind
    requested: int
    own_free: int
    missing: int
    borrowable: int = 0
    limit: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """How a request is admitted: from the company's own nominal and by loans."""

    own: dict[str, int]
    loans: dict[tuple[int, str], int] = field(default_factory=dict)
    """(lender company id, resource class) -> amount borrowed from that lender."""

    @property
    def borrowed(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, rc), n in self.loans.items():
            out[rc] = out.get(rc, 0) + n
        return out


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why a request cannot be admitted now (or ever, when a shortfall is ``never``)."""

    shortfalls: tuple[Shortfall, ...]

    @property
    def never(self) -> bool:
        return any(s.kind is ShortfallKind.NEVER for s in self.shortfalls)

    @property
    def reclaim(self) -> dict[str, int]:
        """Per class, what must come back from borrowers for a guaranteed request."""
        return {
            s.resource_class: s.missing for s in self.shortfalls if s.kind is ShortfallKind.LENT_OUT
        }


class Cohort:
    """The quota lines of every company, mutable so a scheduler cycle can plan many
    admissions one after the other on one snapshot.

    ``earmarked`` holds, per (company, class), nominal the company itself is waiting for
    (pending guaranteed requests): it is not lent to anybody, so capacity coming back
    from a reclaim goes to the owner and not to the next borrower.
    """

    def __init__(
        self,
        lines: Iterable[tuple[int, QuotaLine]],
        weights: Mapping[int, float] | None = None,
    ) -> None:
        self.lines: dict[int, dict[str, QuotaLine]] = {}
        for company, line in lines:
            self.lines.setdefault(company, {})[line.resource_class] = line
        self.weights = dict(weights or {})
        self.earmarked: dict[tuple[int, str], int] = {}
        self._pool: dict[str, int] = {}
        for by_rc in self.lines.values():
            for rc, line in by_rc.items():
                self._pool[rc] = self._pool.get(rc, 0) + line.nominal

    def line(self, company: int, rc: str) -> QuotaLine:
        """A missing line is a quota of 0 that may not borrow."""
        return self.lines.get(company, {}).get(rc) or QuotaLine(rc, 0)

    def pool(self, rc: str) -> int:
        """The group's pool of a class: the sum of all nominal quotas."""
        return self._pool.get(rc, 0)

    def lendable(self, lender: int, rc: str) -> int:
        line = self.line(lender, rc)
        return max(line.lendable - self.earmarked.get((lender, rc), 0), 0)

    def ceiling(self, company: int, rc: str) -> int:
        """Potentially available: nominal + all the company could borrow if others were idle."""
        line = self.line(company, rc)
        others = sum(
            by_rc[rc].potential_lending
            for c, by_rc in self.lines.items()
            if c != company and rc in by_rc
        )
        if line.borrowing_limit is not None:
            others = min(others, line.borrowing_limit)
        return line.nominal + others

    def available(self, company: int, rc: str) -> int:
        """What the company could get now: its own free nominal plus what it may borrow."""
        line = self.line(company, rc)
        borrowable = self._borrowable(company, rc)
        headroom = line.borrow_headroom
        if headroom is not None:
            borrowable = min(borrowable, headroom)
        return line.own_free + borrowable

    def _borrowable(self, company: int, rc: str) -> int:
        return sum(self.lendable(c, rc) for c in self.lines if c != company)

    def is_guaranteed(self, company: int, demand: Mapping[str, int]) -> bool:
        """Whether ``demand`` fits in the company's nominal next to what it uses itself."""
        return all(
            self.line(company, rc).own_used + n <= self.line(company, rc).nominal
            for rc, n in demand.items()
        )

    def plan(self, company: int, demand: Mapping[str, int]) -> Admission | Blocked:
        """How ``demand`` would be admitted now, or what is missing (see the module doc)."""
        own: dict[str, int] = {}
        loans: dict[tuple[int, str], int] = {}
        shortfalls: list[Shortfall] = []
        guaranteed = self.is_guaranteed(company, demand)
        for rc, n in sorted(demand.items()):
            line = self.line(company, rc)
            take = min(n, line.own_free)
            need = n - take
            own[rc] = take
            if need == 0:
                continue
            ceiling = self.ceiling(company, rc)
            if n > ceiling:
                shortfalls.append(
                    Shortfall(rc, ShortfallKind.NEVER, n, line.own_free, need, limit=ceiling)
                )
                continue
            if guaranteed:
                shortfalls.append(Shortfall(rc, ShortfallKind.LENT_OUT, n, line.own_free, need))
                continue
            headroom = line.borrow_headroom
            borrowable = self._borrowable(company, rc)
            if headroom is not None and need > headroom:
                shortfalls.append(
                    Shortfall(
                        rc,
                        ShortfallKind.BORROWING_LIMIT,
                        n,
                        line.own_free,
                        need,
                        borrowable=borrowable,
                        limit=line.borrowing_limit or 0,
                    )
                )
                continue
            if need > borrowable:
                shortfalls.append(
                    Shortfall(
                        rc, ShortfallKind.NO_LENDABLE, n, line.own_free, need, borrowable=borrowable
                    )
                )
                continue
            lenders = sorted(
                ((self.lendable(c, rc), c) for c in self.lines if c != company),
                key=lambda t: (-t[0], t[1]),
            )
            for lendable, lender in lenders:
                if need == 0:
                    break
                part = min(need, lendable)
                if part > 0:
                    loans[lender, rc] = part
                    need -= part
        if shortfalls:
            return Blocked(tuple(shortfalls))
        return Admission(own=own, loans=loans)

    def take(self, company: int, admission: Admission) -> None:
        """Count an admission in the snapshot (what the claim transaction does in the DB)."""
        borrowed = admission.borrowed
        for rc, n in admission.own.items():
            line = self.line(company, rc)
            extra = borrowed.get(rc, 0)
            self._set(
                company, replace(line, used=line.used + n + extra, borrowed=line.borrowed + extra)
            )
        for (lender, rc), n in admission.loans.items():
            line = self.line(lender, rc)
            self._set(lender, replace(line, lent=line.lent + n))

    def give(
        self, company: int, used: Mapping[str, int], loans: Mapping[tuple[int, str], int]
    ) -> None:
        """Count a release (or reclaim) in the snapshot."""
        borrowed: dict[str, int] = {}
        for (lender, rc), n in loans.items():
            borrowed[rc] = borrowed.get(rc, 0) + n
            line = self.line(lender, rc)
            self._set(lender, replace(line, lent=line.lent - n))
        for rc, n in used.items():
            line = self.line(company, rc)
            self._set(
                company,
                replace(line, used=line.used - n, borrowed=line.borrowed - borrowed.get(rc, 0)),
            )

    def earmark(self, wanted: Mapping[tuple[int, str], int]) -> None:
        """Earmark, per (company, class), the nominal its owner waits for: at most what
        the company does not use itself (the part lent out is counted too, so that it is
        reclaimed, not lent again when it comes back)."""
        for (company, rc), n in wanted.items():
            line = self.line(company, rc)
            self.earmarked[company, rc] = min(n, line.nominal - line.own_used)

    def spend_earmark(self, company: int, demand: Mapping[str, int]) -> None:
        """The owner took ``demand`` of its own nominal: that much is no longer waited for."""
        for rc, n in demand.items():
            key = (company, rc)
            if key in self.earmarked:
                self.earmarked[key] = max(self.earmarked[key] - n, 0)

    def reclaim_needs(
        self, incoming: Mapping[tuple[int, str], int] | None = None
    ) -> dict[tuple[int, str], int]:
        """Per (lender, class), the lent nominal to take back for what its owner still
        waits for (earmarked beyond its own free nominal), less ``incoming``: what
        reclaims under way bring back already (so a notice is sent once, not per cycle)."""
        needs: dict[tuple[int, str], int] = {}
        for (company, rc), want in self.earmarked.items():
            line = self.line(company, rc)
            back = min(want - line.own_free, line.lent) - (incoming or {}).get((company, rc), 0)
            if back > 0:
                needs[company, rc] = back
        return needs

    def clear_earmarks(self) -> None:
        """Forget the earmarks (they hold for one cycle: the next cycle makes its own)."""
        self.earmarked.clear()

    def dominant_share(self, company: int) -> float:
        """Weighted dominant-resource share of what the company borrows (DRF): the largest
        fraction of any class's pool it holds by borrowing, divided by its weight."""
        share = 0.0
        for rc, line in self.lines.get(company, {}).items():
            pool = self.pool(rc)
            if pool and line.borrowed:
                share = max(share, line.borrowed / pool)
        return share / max(self.weights.get(company, 1.0), 1e-9)

    def _set(self, company: int, line: QuotaLine) -> None:
        self.lines.setdefault(company, {})[line.resource_class] = line

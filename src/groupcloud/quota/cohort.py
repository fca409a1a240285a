"""Borrowing arithmetic of the group's pool (the cohort): who may use whose idle nominal.

Every company has per resource class a ``nominal`` (guaranteed) share of the pool. What
it does not use, it lends (up to its ``lending_limit``); what it needs beyond its nominal,
it borrows (up to its ``borrowing_limit``) from the others' lendable idle nominal. The
database holds three counters per line (``used``, ``borrowed``, ``lent``) and CHECKs the
same rules this module states, so a plan made here on a stale snapshot can only fail its
conditional update, never break an invariant.

Three rules decide what a request needs (``plan``):

* A request takes its own free nominal first.
* **Idle pool first**: if part of the company's nominal is lent out and the request needs
  it, the loans are *moved* to other companies' lendable idle nominal (``transfers``; the
  borrowers keep running, only their lender changes), so the company gets its own nominal
  back without evicting anybody. The pool as a whole is what borrowers use (as in
  Kueue's cohort, where borrowing is usage above nominal, not a debt to one lender):
  evicting work while capacity the borrowers may use sits idle would only cost work.
* A request that fits in the company's nominal (own use + request <= nominal) is
  **guaranteed**: what the idle pool cannot give back is ``reclaim`` (taken back from
  borrowers), never borrowed elsewhere. A request beyond nominal **borrows** the rest from
  the lenders with the most lendable capacity first (fewest loans per allocation); its
  borrowing is then exactly its use above nominal, so the borrowing limit bites no
  earlier than usage says.

"Available" is what a company could get now; "potentially available" (``ceiling``) is
what it could get if every other company were idle: a request above that never fits.
This module does no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

__all__ = [
    "Admission",
    "Blocked",
    "Cohort",
    "Holding",
    "Move",
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
class Holding:
    """A running allocation that holds loans: whose nominal it uses (what a transfer may
    move to another lender)."""

    allocation_id: str
    company: int
    loans: Mapping[tuple[int, str], int]
    """(lender company id, resource class) -> amount."""


@dataclass(frozen=True, slots=True)
class Move:
    """Part of one allocation's loan moved from one lender to another (idle pool first)."""

    allocation_id: str
    borrower: int
    resource_class: str
    from_lender: int
    to_lender: int
    amount: int
    whole: bool
    """Whether it moves all the allocation held from ``from_lender`` in the class."""


@dataclass(frozen=True, slots=True)
class Admission:
    """How a request is admitted: from the company's own nominal (some of it moved back
    from the idle pool) and by loans."""

    own: dict[str, int]
    loans: dict[tuple[int, str], int] = field(default_factory=dict)
    """(lender company id, resource class) -> amount borrowed from that lender."""
    transfers: dict[tuple[int, str], int] = field(default_factory=dict)
    """(new lender, class) -> amount of this company's lent nominal whose loans move to
    that lender's idle nominal (part of ``own``)."""
    moves: tuple[Move, ...] = ()
    """The transfers, allocation by allocation (when the cohort knows the holdings)."""

    @property
    def borrowed(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, rc), n in self.loans.items():
            out[rc] = out.get(rc, 0) + n
        return out

    @property
    def needs_scheduler(self) -> bool:
        """Borrowing and moving loans are the scheduler's; a direct claim does neither."""
        return bool(self.loans or self.transfers)


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
        self.held: dict[str, Holding] | None = None
        """The running allocations holding loans (``hold``); None: not known, so loans
        cannot be moved allocation by allocation (plans still say what would move)."""
        self._pool: dict[str, int] = {}
        for by_rc in self.lines.values():
            for rc, line in by_rc.items():
                self._pool[rc] = self._pool.get(rc, 0) + line.nominal

    def hold(self, holdings: Iterable[Holding]) -> None:
        """Learn which running allocations hold which loans (in the order transfers take
        them); loans of allocations not given here (reclaims under way) are never moved."""
        self.held = {h.allocation_id: replace(h, loans=dict(h.loans)) for h in holdings}

    def movable(self, company: int, rc: str) -> int:
        """How much of the company's lent nominal transfers may move to other lenders."""
        if self.held is None:
            return self.line(company, rc).lent
        return sum(
            n for h in self.held.values() for (lender, r), n in h.loans.items() if
            (lender, r) == (company, rc)
        )  # fmt: skip

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
        """What the company could get now: its own free nominal, its lent nominal that the
        idle pool could take over, then what it may borrow."""
        line = self.line(company, rc)
        idle = self._borrowable(company, rc)
        moved = min(self.movable(company, rc), idle)
        borrowable = idle - moved
        headroom = line.borrow_headroom
        if headroom is not None:
            borrowable = min(borrowable, headroom)
        return line.own_free + moved + borrowable

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
        transfers: dict[tuple[int, str], int] = {}
        moves: list[Move] = []
        shortfalls: list[Shortfall] = []
        guaranteed = self.is_guaranteed(company, demand)
        for rc, n in sorted(demand.items()):
            part = self._plan_class(company, rc, n, guaranteed)
            if isinstance(part, Shortfall):
                shortfalls.append(part)
                continue
            own[rc] = part.own
            loans.update(((lender, rc), m) for lender, m in part.loans.items())
            transfers.update(((lender, rc), m) for lender, m in part.transfers.items())
            moves += part.moves
        if shortfalls:
            return Blocked(tuple(shortfalls))
        return Admission(own=own, loans=loans, transfers=transfers, moves=tuple(moves))

    def _plan_class(self, company: int, rc: str, n: int, guaranteed: bool) -> _Part | Shortfall:
        """One class of a plan: own free nominal, then loans moved to the idle pool, then
        (beyond nominal) borrowing; or what is missing."""
        line = self.line(company, rc)
        take = min(n, line.own_free)
        need = n - take
        if need == 0:
            return _Part(take)
        ceiling = self.ceiling(company, rc)
        if n > ceiling:
            return Shortfall(rc, ShortfallKind.NEVER, n, line.own_free, need, limit=ceiling)
        lenders = sorted(
            ((self.lendable(c, rc), c) for c in self.lines if c != company),
            key=lambda t: (-t[0], t[1]),
        )
        idle = sum(lendable for lendable, _ in lenders)
        moves = self._moves(company, rc, min(need, idle), lenders)
        moved = (
            min(need, self.movable(company, rc), idle)
            if moves is None
            else sum(m.amount for m in moves)
        )
        rest = need - moved
        borrowable = idle - moved
        headroom = line.borrow_headroom
        if guaranteed and rest > 0:
            return Shortfall(rc, ShortfallKind.LENT_OUT, n, line.own_free, rest, borrowable=moved)
        if headroom is not None and rest > headroom:
            return Shortfall(
                rc,
                ShortfallKind.BORROWING_LIMIT,
                n,
                line.own_free,
                rest,
                borrowable=borrowable,
                limit=line.borrowing_limit or 0,
            )
        if rest > borrowable:
            return Shortfall(
                rc, ShortfallKind.NO_LENDABLE, n, line.own_free, rest, borrowable=borrowable
            )
        # the idle pool, largest lendable first: first the loans moved to it, then what
        # the request borrows
        given: dict[int, int] = {}
        if moves is None:
            left = moved
            for lendable, lender in lenders:
                if min(left, lendable) > 0:
                    given[lender] = min(left, lendable)
                    left -= given[lender]
        else:
            for m in moves:
                given[m.to_lender] = given.get(m.to_lender, 0) + m.amount
        loans: dict[int, int] = {}
        for lendable, lender in lenders:
            if min(rest, lendable - given.get(lender, 0)) > 0:
                loans[lender] = min(rest, lendable - given.get(lender, 0))
                rest -= loans[lender]
        return _Part(take + moved, loans, given, tuple(moves or ()))

    def _moves(
        self, company: int, rc: str, most: int, lenders: Sequence[tuple[int, int]]
    ) -> list[Move] | None:
        """Up to ``most`` of the company's loans in ``rc`` moved to the idle lenders
        (largest lendable first), allocation by allocation in the holdings' order; never
        to the borrower itself (that is a repay, ``repays``). None: holdings not known."""
        if self.held is None:
            return None
        moves: list[Move] = []
        have = {
            h.allocation_id: h.loans.get((company, rc), 0)
            for h in self.held.values()
            if h.loans.get((company, rc), 0) > 0
        }
        for lendable, lender in lenders:
            room = min(lendable, most)
            for h in self.held.values():
                if room <= 0:
                    break
                n = have.get(h.allocation_id, 0)
                if n <= 0 or h.company == lender:
                    continue
                part = min(n, room)
                whole = part == n
                moves.append(Move(h.allocation_id, h.company, rc, company, lender, part, whole))
                have[h.allocation_id] = n - part
                room -= part
                most -= part
        return moves

    def repays(self) -> list[Move]:
        """Borrowing is usage above nominal: a company that holds loans while part of its
        own nominal is free (its own allocations ended since it borrowed) pays them back
        from that free nominal, so it borrows exactly what it uses above nominal and its
        lenders get their nominal back without a reclaim. Moves whose new lender is the
        borrower itself, loan by loan in the holdings' order (``hold`` first)."""
        if self.held is None:
            return []
        free = {
            (c, rc): line.own_free for c, by_rc in self.lines.items() for rc, line in by_rc.items()
        }
        borrowed = {
            (c, rc): line.borrowed for c, by_rc in self.lines.items() for rc, line in by_rc.items()
        }
        left = {
            (h.allocation_id, lender, rc): n
            for h in self.held.values()
            for (lender, rc), n in sorted(h.loans.items())
        }
        paid: dict[tuple[str, int, str], int] = {}
        # rounds until nothing changes: a repaid lender may itself hold loans it can now
        # repay from the nominal it got back (two companies lending to each other)
        progress = True
        while progress:
            progress = False
            for h in self.held.values():
                for (lender, rc), _ in sorted(h.loans.items()):
                    key = (h.allocation_id, lender, rc)
                    part = min(free.get((h.company, rc), 0), left[key])
                    if part <= 0 or borrowed.get((h.company, rc), 0) <= 0:
                        continue
                    paid[key] = paid.get(key, 0) + part
                    left[key] -= part
                    free[h.company, rc] -= part
                    borrowed[h.company, rc] -= part
                    free[lender, rc] = free.get((lender, rc), 0) + part
                    progress = True
        return [
            Move(alloc, self.held[alloc].company, rc, lender, self.held[alloc].company, n,
                 left[alloc, lender, rc] == 0)
            for (alloc, lender, rc), n in paid.items()
        ]  # fmt: skip

    def repay(self, moves: Iterable[Move], sign: int = 1) -> None:
        """Count repays in the snapshot (``sign=-1``: forget them, their commit failed)."""
        for m in moves:
            line = self.line(m.borrower, m.resource_class)
            self._set(m.borrower, replace(line, borrowed=line.borrowed - sign * m.amount))
            lender = self.line(m.from_lender, m.resource_class)
            self._set(m.from_lender, replace(lender, lent=lender.lent - sign * m.amount))
        self._shift(moves, sign)

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
        self._transfer(company, admission.transfers, admission.moves, 1)

    def untake(self, company: int, admission: Admission) -> None:
        """Forget an admission counted by ``take`` (its commit failed)."""
        self._transfer(company, admission.transfers, admission.moves, -1)
        self.give(company, _total(admission), admission.loans)

    def _transfer(
        self,
        company: int,
        transfers: Mapping[tuple[int, str], int],
        moves: Iterable[Move],
        sign: int,
    ) -> None:
        for (lender, rc), n in transfers.items():
            line = self.line(lender, rc)
            self._set(lender, replace(line, lent=line.lent + sign * n))
            mine = self.line(company, rc)
            self._set(company, replace(mine, lent=mine.lent - sign * n))
        self._shift(moves, sign)

    def _shift(self, moves: Iterable[Move], sign: int) -> None:
        """Moves in the holdings (a loan to the borrower itself is a repaid loan)."""
        if self.held is None:
            return
        for m in moves:
            h = self.held.get(m.allocation_id)
            if h is None:
                continue
            held = dict(h.loans)
            src, dst = (m.from_lender, m.resource_class), (m.to_lender, m.resource_class)
            held[src] = held.get(src, 0) - sign * m.amount
            if m.to_lender != m.borrower:  # else: repaid, no loan any more
                held[dst] = held.get(dst, 0) + sign * m.amount
            self.held[m.allocation_id] = replace(h, loans={k: v for k, v in held.items() if v > 0})

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
        self, reclaiming: Mapping[tuple[int, str], int] | None = None
    ) -> dict[tuple[int, str], int]:
        """Per (lender, class), the lent nominal to take back for what its owner still
        waits for (earmarked beyond its own free nominal), less what the idle pool could
        take over and what reclaims under way bring back to the pool (``reclaiming``:
        (company, class) -> what its allocations under notice hold; each gives back up to
        its company's borrowing), so a notice is sent once, not per cycle. Lenders share
        the idle pool and what comes back in company id order."""
        back_to_pool: dict[str, int] = {}
        for (company, rc), n in (reclaiming or {}).items():
            back_to_pool[rc] = back_to_pool.get(rc, 0) + min(n, self.line(company, rc).borrowed)
        needs: dict[tuple[int, str], int] = {}
        idle: dict[str, int] = {}
        for company, rc in sorted(self.earmarked):
            if rc not in idle:
                idle[rc] = sum(self.lendable(c, rc) for c in self.lines)
            line = self.line(company, rc)
            want = self.earmarked[company, rc]
            back = min(want - line.own_free, line.lent)
            # idle pool first: what the others could lend now is moved, not reclaimed
            pooled = min(max(back, 0), idle[rc], self.movable(company, rc))
            idle[rc] -= pooled
            back -= pooled
            coming = min(max(back, 0), back_to_pool.get(rc, 0))
            back_to_pool[rc] = back_to_pool.get(rc, 0) - coming
            back -= coming
            if back > 0:
                needs[company, rc] = back
        return needs

    def above_nominal(self) -> dict[tuple[int, str], int]:
        """(company, class) -> how far the company is above its nominal (what it borrows):
        the reclaim victims' companies and how much each may give back."""
        return {
            (c, rc): line.borrowed
            for c, by_rc in self.lines.items()
            for rc, line in by_rc.items()
            if line.borrowed > 0
        }

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


@dataclass(frozen=True, slots=True)
class _Part:
    """One class of an admission: own nominal (moved back included), loans and transfers
    by lender, and the moves."""

    own: int
    loans: dict[int, int] = field(default_factory=dict)
    transfers: dict[int, int] = field(default_factory=dict)
    moves: tuple[Move, ...] = ()


def _total(admission: Admission) -> dict[str, int]:
    """What an admission takes in all, per class (own nominal and borrowed)."""
    out = dict(admission.own)
    for rc, n in admission.borrowed.items():
        out[rc] = out.get(rc, 0) + n
    return out

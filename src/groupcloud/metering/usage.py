"""Usage records: who held how much of what, where, from when to when, on whose nominal.

A usage record is one constant amount of one resource class of one allocation over one
interval ``[start, end)`` (whole seconds, UTC), held either on the company's own nominal
or borrowed from one lender. Records are derived from the allocation's lifecycle events
(``AllocationEvent``, the pure mirror of what the audit trail writes: ``allocation.created``
or ``.admitted``, ``.borrowed``, ``.lender_changed``, ``.loan_repaid``, ``.released`` /
``.reclaimed`` / ``.expired``) by ``derive``, and nothing else: rebuilding from the same
events always gives the same records, whatever order the events are handed in, so metering
after a crash is recomputed from the trail instead of trusted from a counter.

Records are values and never change. When a rebuild differs from what was issued (a late
event, a fixed bug), ``corrections`` says what to add: a reversal (the issued record with
its amount negated) for every record that should not have been, and the new records. The
issued records plus their corrections then add up, in every sum a statement makes, to the
rebuilt ones.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

__all__ = [
    "AllocationEvent",
    "AllocationFacts",
    "EventKind",
    "Source",
    "UsageRecord",
    "corrections",
    "derive",
    "to_second",
]


class Source(enum.StrEnum):
    """Whose nominal an amount is held on: the company's own, or a lender's."""

    OWN = "own"
    BORROWED = "borrowed"


class EventKind(enum.StrEnum):
    """The lifecycle events that change what an allocation holds."""

    CLAIMED = "claimed"
    """Placed (``allocation.created`` / ``.admitted``): ``amounts`` are its totals."""
    RESIZED = "resized"
    """New totals for the classes in ``amounts`` (others unchanged; 0 drops a class)."""
    BORROW_STARTED = "borrow_started"
    """``amounts`` of the totals are now held on ``lender``'s nominal (``.borrowed``)."""
    BORROW_RETURNED = "borrow_returned"
    """``amounts`` go back to ``lender``; the allocation keeps them on its own nominal
    (``.loan_repaid``; ``.lender_changed`` is a return plus a start at the same instant)."""
    RELEASED = "released"
    """Everything held ends (``.released``, ``.reclaimed``, ``.expired``)."""


@dataclass(frozen=True, slots=True)
class AllocationFacts:
    """What a claim says about where and for whom an allocation runs (fixed for its life)."""

    company: str
    project: str
    zone: str
    zone_kind: str
    """``shared``, ``local`` or ``external`` (the rate card is keyed by it)."""
    provider: str | None = None
    """The public cloud of an external zone; None for private zones."""
    data_class: str = "D3"


@dataclass(frozen=True, slots=True)
class AllocationEvent:
    """One lifecycle event of one allocation, as the audit trail recorded it.

    ``seq`` is the event's position in the trail (its id): events are applied in ``seq``
    order, so two events at the same second still apply in the order they happened, and a
    duplicate delivery (same ``seq``, same content) is applied once.
    """

    seq: int
    at: datetime
    allocation_id: str
    kind: EventKind
    amounts: Mapping[str, int] = field(default_factory=dict)
    lender: str | None = None
    facts: AllocationFacts | None = None
    """Required on ``CLAIMED`` only."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """``amount`` units of ``resource_class`` held over ``[start, end)`` (UTC, whole seconds).

    A negative ``amount`` is a reversal: it cancels an issued record equal to it in
    every other field (see ``corrections``).
    """

    allocation_id: str
    resource_class: str
    start: datetime
    end: datetime
    source: Source
    lender: str | None
    amount: int
    company: str
    project: str
    zone: str
    zone_kind: str
    provider: str | None
    data_class: str

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    @property
    def unit_seconds(self) -> int:
        """Amount x seconds: what a rate per unit-hour is applied to (divided by 3600)."""
        return self.amount * self.seconds

    @property
    def is_reversal(self) -> bool:
        return self.amount < 0

    def order(self) -> tuple[str, str, datetime, datetime, str, str, int]:
        """The sort key of record lists: by allocation, class, then time (None as "")."""
        return (
            self.allocation_id,
            self.resource_class,
            self.start,
            self.end,
            self.source.value,
            self.lender or "",
            self.amount,
        )


def to_second(instant: datetime) -> datetime:
    """``instant`` in UTC, truncated to the whole second (metering's resolution).

    Truncating both ends of every interval (rather than rounding durations) keeps
    adjacent records adjacent: one ends exactly where the next starts.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"metering instants must be timezone-aware, not {instant!r}")
    return instant.astimezone(UTC).replace(microsecond=0)


Key = tuple[str, Source, str | None]
"""(resource class, source, lender) of one open interval of an allocation."""


@dataclass
class _Holding:
    """What one allocation holds right now, and since when each part has been open."""

    facts: AllocationFacts
    totals: dict[str, int]
    loans: dict[tuple[str, str], int] = field(default_factory=dict)
    """(lender, resource class) -> amount borrowed."""
    open: dict[Key, tuple[int, datetime]] = field(default_factory=dict)
    """(class, source, lender) -> (amount, since)."""
    released: bool = False

    def parts(self, allocation_id: str) -> dict[Key, int]:
        """The amounts held now per (class, source, lender); own = total - borrowed."""
        out: dict[Key, int] = {}
        borrowed: Counter[str] = Counter()
        for (lender, rc), amount in self.loans.items():
            if amount:
                out[(rc, Source.BORROWED, lender)] = amount
                borrowed[rc] += amount
        for rc, total in self.totals.items():
            own = total - borrowed[rc]
            if own < 0:
                raise ValueError(
                    f"allocation {allocation_id}: {rc} borrowed ({borrowed[rc]}) "
                    f"exceeds the total ({total})"
                )
            if own:
                out[(rc, Source.OWN, None)] = own
        return out


def derive(
    events: Iterable[AllocationEvent], *, until: datetime | None = None
) -> list[UsageRecord]:
    """The usage records of ``events`` (any order; applied by ``seq``), sorted.

    ``seq`` orders the trail; an allocation's own events must not go back in time in it.

    An interval still open after the last event is cut at ``until`` (the end of what is
    being metered, e.g. a month's close) or, without ``until``, left out: it is not
    billable yet. An allocation's events within one second are one change (a lender change,
    a claim with its loans), so no zero-length record is ever made.
    """
    cut = None if until is None else to_second(until)
    ordered = _unique(events)
    holdings: dict[str, _Holding] = {}
    records: list[UsageRecord] = []
    last: dict[str, datetime] = {}
    pending: dict[str, datetime] = {}
    for event in ordered:
        at = to_second(event.at)
        if at < last.get(event.allocation_id, at):
            raise ValueError(
                f"allocation {event.allocation_id}: event {event.seq} goes back in time"
            )
        last[event.allocation_id] = at
        if cut is not None and at > cut:
            continue  # after the horizon (so are this allocation's later events)
        name = event.allocation_id
        if name in pending and pending[name] != at:
            _advance(holdings[name], name, pending.pop(name), records)
        _apply(holdings, event)
        pending[name] = at  # events within one second apply together (one change)
    for name, at in pending.items():
        _advance(holdings[name], name, at, records)
    if cut is not None:
        for allocation_id, held in holdings.items():
            if not held.released:
                held.totals, held.loans = {}, {}
                _advance(held, allocation_id, cut, records)
    return sorted(records, key=UsageRecord.order)


def _unique(events: Iterable[AllocationEvent]) -> list[AllocationEvent]:
    """Events by ``seq``, a repeated delivery kept once; two different events claiming
    one ``seq`` are an error (the trail is corrupt, no record would be right)."""
    by_seq: dict[int, AllocationEvent] = {}
    for event in events:
        seen = by_seq.setdefault(event.seq, event)
        if seen != event:
            raise ValueError(f"two different events with seq {event.seq}")
    return [by_seq[seq] for seq in sorted(by_seq)]


def _apply(holdings: dict[str, _Holding], event: AllocationEvent) -> None:
    """Change the allocation's holding as ``event`` says (checked)."""
    name = event.allocation_id
    if event.kind is EventKind.CLAIMED:
        if name in holdings:
            raise ValueError(f"allocation {name} claimed twice")
        if event.facts is None:
            raise ValueError(f"allocation {name}: a claim needs its facts")
        holdings[name] = _Holding(event.facts, _amounts(event))
        return
    held = holdings.get(name)
    if held is None or held.released:
        raise ValueError(f"allocation {name}: {event.kind} without a live claim")
    if event.kind is EventKind.RESIZED:
        held.totals = {rc: n for rc, n in (held.totals | _amounts(event)).items() if n}
    elif event.kind is EventKind.RELEASED:
        held.totals, held.loans, held.released = {}, {}, True
    else:
        if event.lender is None:
            raise ValueError(f"allocation {name}: {event.kind} needs its lender")
        sign = 1 if event.kind is EventKind.BORROW_STARTED else -1
        for rc, amount in _amounts(event).items():
            loan = held.loans.get((event.lender, rc), 0) + sign * amount
            if loan < 0:
                raise ValueError(
                    f"allocation {name}: returns more {rc} to {event.lender} than borrowed"
                )
            held.loans[(event.lender, rc)] = loan


def _amounts(event: AllocationEvent) -> dict[str, int]:
    for rc, amount in event.amounts.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"allocation {event.allocation_id}: {rc} amount must be an int >= 0")
    return dict(event.amounts)


def _advance(held: _Holding, allocation_id: str, at: datetime, out: list[UsageRecord]) -> None:
    """Close the open intervals whose amount changes at ``at`` and open their successors;
    intervals whose amount stays the same run on (one record, not one per event)."""
    now = held.parts(allocation_id)
    for key in sorted(set(held.open) | set(now), key=_key_order):
        amount, since = held.open.get(key, (0, at))
        if amount == now.get(key, 0):
            continue
        if amount and since < at:
            rc, source, lender = key
            out.append(_record(held.facts, allocation_id, rc, source, lender, amount, since, at))
        if now.get(key):
            held.open[key] = (now[key], at)
        else:
            held.open.pop(key, None)


def _key_order(key: Key) -> tuple[str, str, str]:
    return key[0], key[1].value, key[2] or ""


def _record(
    facts: AllocationFacts,
    allocation_id: str,
    rc: str,
    source: Source,
    lender: str | None,
    amount: int,
    start: datetime,
    end: datetime,
) -> UsageRecord:
    return UsageRecord(
        allocation_id=allocation_id,
        resource_class=rc,
        start=start,
        end=end,
        source=source,
        lender=lender,
        amount=amount,
        company=facts.company,
        project=facts.project,
        zone=facts.zone,
        zone_kind=facts.zone_kind,
        provider=facts.provider,
        data_class=facts.data_class,
    )


def corrections(issued: Sequence[UsageRecord], rebuilt: Sequence[UsageRecord]) -> list[UsageRecord]:
    """What to append to ``issued`` (earlier corrections included) so that it nets to
    ``rebuilt``: reversals of what should not be there, then what is missing (sorted).

    Records are compared as values (a record equal in every field is the same usage), so
    correcting twice with the same rebuild adds nothing the second time.
    """
    net: Counter[UsageRecord] = Counter()
    for record in issued:
        base = replace(record, amount=abs(record.amount))
        net[base] += -1 if record.is_reversal else 1
    for record in rebuilt:
        if record.is_reversal:
            raise ValueError("a rebuild holds no reversals")
        net[record] -= 1
    out: list[UsageRecord] = []
    for base, surplus in sorted(net.items(), key=lambda item: item[0].order()):
        if surplus > 0:
            out.extend([replace(base, amount=-base.amount)] * surplus)
        elif surplus < 0:
            out.extend([base] * -surplus)
    return sorted(out, key=UsageRecord.order)

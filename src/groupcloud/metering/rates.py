"""Rate cards: the price of one unit-hour, per zone kind, provider and resource class, in KRW.

A rate is effective-dated: it applies from ``effective_from`` until the next rate of the
same key starts, so a price change never rewrites the past (a closed month recomputed
later gives the same numbers). Usage that spans a change is split at it (``RateCard.split``)
and each piece is priced at the rate in force over it.

External zones pass the provider's price through (``price``, e.g. from the provider price
catalog converted to KRW) plus the group's markup in percent; private zones carry their own
price and no markup. All money is ``Decimal``; ``unit_price`` is exact (a markup in percent
of a decimal price is a terminating decimal).

A usage key without a rate in force is an error (``MissingRate``), never a free lunch: there
is no fallback from a provider's rate to its zone kind's, so what a record costs never
depends on which rates happen to exist.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from groupcloud.metering.usage import to_second

__all__ = ["MissingRate", "Rate", "RateCard", "RateKey"]

RateKey = tuple[str, str | None, str]
"""(zone kind, provider or None, resource class)"""


class MissingRate(LookupError):
    """No rate is in force for a usage key at an instant it was used."""

    def __init__(self, key: RateKey, at: datetime) -> None:
        zone_kind, provider, rc = key
        where = zone_kind if provider is None else f"{zone_kind}/{provider}"
        super().__init__(f"no rate for {rc} in {where} at {at.isoformat()}")
        self.key = key
        self.at = at


@dataclass(frozen=True, slots=True)
class Rate:
    """KRW per unit-hour of ``resource_class`` in ``zone_kind`` (and ``provider``), from
    ``effective_from`` on; ``markup_pct`` is added on top of a passed-through price."""

    zone_kind: str
    provider: str | None
    resource_class: str
    effective_from: datetime
    price: Decimal
    markup_pct: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not isinstance(self.price, Decimal) or not self.price.is_finite() or self.price < 0:
            raise ValueError(f"price must be a finite Decimal >= 0, not {self.price!r}")
        if not isinstance(self.markup_pct, Decimal) or not self.markup_pct.is_finite():
            raise ValueError(f"markup_pct must be a finite Decimal, not {self.markup_pct!r}")
        if self.markup_pct < -100:
            raise ValueError("a markup below -100 % would pay the user")
        # Rates start on whole seconds, as usage does: a split never makes a fraction.
        object.__setattr__(self, "effective_from", to_second(self.effective_from))

    @property
    def key(self) -> RateKey:
        return (self.zone_kind, self.provider, self.resource_class)

    @property
    def unit_price(self) -> Decimal:
        """KRW per unit-hour, markup included (the division by 100 is a shift: exact)."""
        if not self.markup_pct:
            return self.price
        return (self.price * (100 + self.markup_pct)).scaleb(-2)


Piece = tuple[Rate, datetime, datetime]
"""A part ``[start, end)`` of an interval and the rate in force over all of it."""


class RateCard:
    """All rates, by key and start; answers which rate applies when."""

    def __init__(self, rates: Iterable[Rate]) -> None:
        by_key: dict[RateKey, list[Rate]] = defaultdict(list)
        for rate in rates:
            by_key[rate.key].append(rate)
        self._rates: dict[RateKey, list[Rate]] = {}
        self._starts: dict[RateKey, list[datetime]] = {}
        for key, found in by_key.items():
            found.sort(key=lambda r: r.effective_from)
            starts = [r.effective_from for r in found]
            if len(set(starts)) != len(starts):
                raise ValueError(f"two rates for {key} start at the same instant")
            self._rates[key], self._starts[key] = found, starts

    @property
    def rates(self) -> list[Rate]:
        """Every rate, by key then start (the order ``bulk`` numbers them in)."""
        return [r for key in sorted(self._rates, key=_key_order) for r in self._rates[key]]

    def history(self, key: RateKey) -> list[Rate]:
        """The rates of ``key`` in the order they took effect."""
        return list(self._rates.get(key, ()))

    def rate_at(self, key: RateKey, at: datetime) -> Rate:
        """The rate in force for ``key`` at ``at``: the latest that started at or before it."""
        starts = self._starts.get(key, [])
        index = bisect.bisect_right(starts, at) - 1
        if index < 0:
            raise MissingRate(key, at)
        return self._rates[key][index]

    def split(self, key: RateKey, start: datetime, end: datetime) -> list[Piece]:
        """``[start, end)`` cut at every rate change inside it, each piece with its rate."""
        first = self.rate_at(key, start)
        rates = self._rates[key]
        pieces: list[Piece] = []
        index = rates.index(first)
        at = start
        while at < end:
            rate = rates[index]
            upto = rates[index + 1].effective_from if index + 1 < len(rates) else end
            upto = min(upto, end)
            pieces.append((rate, at, upto))
            at, index = upto, index + 1
        return pieces


def _key_order(key: RateKey) -> tuple[str, str, str]:
    return key[0], key[1] or "", key[2]

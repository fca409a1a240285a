"""Seeded synthetic activity events, so that everything can be tried without customer data.

Calibration (public figures): the group's banking app had about 5.64M MAU at the end of
2021 and 7.19M at the end of October 2022. With ``persons`` = 10,000,000, the banking
app's expected MAU is exactly those figures in 2021-12 and 2022-10, on a straight line
between them (extended before and after). Everything else is an assumption, stated here:

- card app: 35% of persons active in 2021-12, +0.5 points a month; auto-finance app: 4%,
  +0.05 points; savings-bank app: 6%, +0.1 points. Shares stay within 1%..95%.
- Overlap: each person has a fixed engagement ``u`` (uniform 0..1). In a month, a person is
  active in an app with share ``f`` when ``x < f``, where ``x`` is ``u`` with probability
  0.6 (the same for every app and month: engaged persons use several apps, month after
  month) and a fresh uniform draw otherwise. Each app's expected MAU is still ``f·persons``.
- An active person is active on 1..2m-1 distinct days (uniform; mean m = 8 banking, 6 card,
  2 auto-finance, 3 savings) with one or two events a day at uniform times, written in
  Seoul time with an explicit +09:00 offset.

Events come out person by person (not in time order) from one generator: nothing is held,
so 100M events need no more memory than ten. The same seed gives the same events and ids,
so ingesting a regenerated file again loads nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from groupcloud.analytics.months import SEOUL, Month

__all__ = ["PROFILES", "AppProfile", "expected_share", "generate"]

CORRELATION = 0.6
KINDS = ("login", "view", "transfer", "payment")
KIND_WEIGHTS = (0.45, 0.35, 0.12, 0.08)
ANCHOR = Month(2021, 12)


@dataclass(frozen=True, slots=True)
class AppProfile:
    app: str
    share: float
    """Share of persons active in the anchor month (2021-12)."""
    monthly_gain: float
    """Added to the share every month after the anchor (subtracted before)."""
    mean_days: int


PROFILES = (
    AppProfile("won_banking", 0.564, (0.719 - 0.564) / 10, 8),
    AppProfile("won_card", 0.35, 0.005, 6),
    AppProfile("won_car", 0.04, 0.0005, 2),
    AppProfile("won_savings", 0.06, 0.001, 3),
)


def expected_share(profile: AppProfile, month: Month) -> float:
    """Expected MAU / persons of the app in the month."""
    offset = (month.year - ANCHOR.year) * 12 + month.month - ANCHOR.month
    return min(max(profile.share + profile.monthly_gain * offset, 0.01), 0.95)


def generate(persons: int, months: list[Month], seed: int) -> Iterator[dict[str, str]]:
    """Events as rows of the five ingestion columns."""
    rng = random.Random(seed)
    shares = [[expected_share(p, m) for p in PROFILES] for m in months]
    starts = [datetime(m.year, m.month, 1, tzinfo=SEOUL) for m in months]
    counter = 0
    for person in range(persons):
        person_id = f"CI{person:010d}"
        engagement = rng.random()
        for index, month in enumerate(months):
            for profile, share in zip(PROFILES, shares[index], strict=True):
                x = engagement if rng.random() < CORRELATION else rng.random()
                if x >= share:
                    continue
                active = rng.randint(1, 2 * profile.mean_days - 1)
                for day in rng.sample(range(month.days), min(active, month.days)):
                    for _ in range(rng.randint(1, 2)):
                        at = starts[index] + timedelta(days=day, seconds=rng.randrange(86_400))
                        counter += 1
                        yield {
                            "event_id": f"s{seed}-{counter}",
                            "app": profile.app,
                            "person_id": person_id,
                            "occurred_at": at.isoformat(),
                            "kind": rng.choices(KINDS, KIND_WEIGHTS)[0],
                        }

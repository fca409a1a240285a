"""Metering at volume: a year of usage of 1,000,000 allocations into monthly statements.

1. Usage records of ``--allocations`` allocations over 2026 (Seoul) are generated with
   numpy (seeded): 4 companies (40/30/15/15 %), 25 projects each; zones shared 75 %,
   local 17 %, external 8 % (aws or the simulated provider); start uniform over the year,
   duration log-normal (median 6 h, at most 60 days, cut at the year's end); 2-64 VCPU
   with 4 GiB each, a GPU class on 10 %; a fifth of shared allocations borrow half of
   their VCPU and memory from another company, half of those repay the loan part-way
   (the borrowed part goes on as own). Not timed (``generate_s``).
2. ``seconds``: ``groupcloud.metering.bulk.statements`` on those columns (a pyarrow table:
   dictionary-encoded text, second timestamps): every company's statement of every month,
   lines by project, class, zone kind, provider, own or borrowed, lender credits (share
   0.8), with rate changes mid-year (shared VCPU from July, GPU from 15 April).
3. ``agree`` (only when ``--verify`` or at most 20,000 allocations): the pure engine
   (``metering.statements``, one Python step per record) states the same, to the won.

    python benchmarks/metering.py [--allocations 1000000] [--seed 1] [--verify]

Progress goes to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from calibration import cpu_calibration_ms
from groupcloud import __version__
from groupcloud.analytics.months import Month
from groupcloud.metering import bulk
from groupcloud.metering import statements as pure
from groupcloud.metering.rates import Rate, RateCard
from groupcloud.metering.usage import Source, UsageRecord

COMPANIES = ("bank", "card", "capital", "savings")
SHARES = (0.40, 0.30, 0.15, 0.15)
PROJECTS = 25
PROJECT_NAMES = tuple(f"{c}-p{i:02d}" for c in COMPANIES for i in range(PROJECTS))
ZONES = (("shared", None, "pool"), ("local", None, "local"), ("external", "aws", "aws-seoul"),
         ("external", "simulated", "sim-seoul"))  # fmt: skip
ZONE_SHARES = (0.75, 0.17, 0.056, 0.024)
YEAR = Month(2026, 1)
LENDER_SHARE = Decimal("0.8")
VERIFY_UP_TO = 20_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rate_card() -> RateCard:
    """KRW per unit-hour; external zones pass a provider price through with 15 % markup."""
    start = pure.month_start(YEAR)
    base = {"VCPU": Decimal("42"), "MEMORY_MB": Decimal("0.0051"), "GPU": Decimal("2900")}
    rates = []
    for kind, provider, _ in ZONES:
        for rc, price in base.items():
            if kind == "external":
                rates.append(Rate(kind, provider, rc, start, price * Decimal("1.3"), Decimal(15)))
            else:
                factor = Decimal("1.1") if kind == "local" else Decimal(1)
                rates.append(Rate(kind, provider, rc, start, price * factor))
    rates.append(Rate("shared", None, "VCPU", pure.month_start(Month(2026, 7)), Decimal("39.5")))
    april_15 = datetime(2026, 4, 14, 15, tzinfo=UTC)  # 00:00 on 15 April in Seoul
    rates.append(Rate("shared", None, "GPU", april_15, Decimal("2750")))
    return RateCard(rates)


def _text(values: tuple[str, ...], index: np.ndarray[Any, Any], mask: Any = None) -> pa.Array[Any]:
    """A dictionary-encoded text column (what a Parquet export of records reads back as)."""
    indices = pa.array(index.astype(np.int32), pa.int32(), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string()))


def generate(allocations: int, seed: int) -> pa.Table:
    """The usage records of ``allocations`` allocations, as bulk's columns."""
    rng = np.random.default_rng(seed)
    year_start = int(pure.month_start(YEAR).timestamp())
    year_end = int(pure.month_start(YEAR.plus(12)).timestamp())
    n = allocations
    company = rng.choice(len(COMPANIES), n, p=SHARES)
    project = company * PROJECTS + rng.integers(0, PROJECTS, n)
    zone = rng.choice(len(ZONES), n, p=ZONE_SHARES)
    start = rng.integers(year_start, year_end - 60, n)
    duration = np.minimum(np.exp(rng.normal(np.log(6 * 3600), 1.6, n)), 60 * 86400)
    end = np.minimum(start + np.maximum(duration.astype(np.int64), 60), year_end)
    vcpu = rng.integers(2, 65, n)
    gpu = np.where(rng.random(n) < 0.10, rng.integers(1, 9, n), 0)
    borrows = (zone == 0) & (rng.random(n) < 0.20)
    lender = (company + rng.integers(1, len(COMPANIES), n)) % len(COMPANIES)
    repaid = borrows & (rng.random(n) < 0.5)
    repay_at = start + ((end - start) * rng.random(n)).astype(np.int64)
    loan_end = np.where(repaid, repay_at, end)

    parts: list[dict[str, np.ndarray[Any, Any]]] = []
    ids = np.arange(n)

    def add(mask: np.ndarray[Any, Any], rc: int, amount: np.ndarray[Any, Any],
            s: np.ndarray[Any, Any], e: np.ndarray[Any, Any], borrowed: bool) -> None:  # fmt: skip
        keep = mask & (amount > 0) & (e > s)
        parts.append({"id": ids[keep], "rc": np.full(int(keep.sum()), rc),
                      "amount": amount[keep], "start": s[keep], "end": e[keep],
                      "borrowed": np.full(int(keep.sum()), borrowed)})  # fmt: skip

    everyone = np.ones(n, dtype=bool)
    for rc, total in ((0, vcpu), (1, vcpu * 4096), (2, gpu)):
        lent = np.where(borrows & (rc < 2), total // 2, 0)
        add(everyone, rc, total - lent, start, end, False)
        add(borrows, rc, lent, start, loan_end, True)
        add(repaid, rc, lent, loan_end, end, False)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    who = cols["id"]
    borrowed = cols["borrowed"]
    kinds = tuple(k for k, _, _ in ZONES)
    providers = tuple(p or "" for _, p, _ in ZONES)
    stamp = pa.timestamp("s", tz="UTC")
    return pa.table(
        {
            "allocation_id": pa.array(who.astype(np.int64)),
            "company": _text(COMPANIES, company[who]),
            "project": _text(PROJECT_NAMES, project[who]),
            "resource_class": _text(("VCPU", "MEMORY_MB", "GPU"), cols["rc"]),
            "zone": _text(tuple(z for _, _, z in ZONES), zone[who]),
            "zone_kind": _text(kinds, zone[who]),
            "provider": _text(providers, zone[who], mask=zone[who] < 2),
            "source": _text(("own", "borrowed"), borrowed.astype(np.int64)),
            "lender": _text(COMPANIES, lender[who], mask=~borrowed),
            "amount": pa.array(cols["amount"].astype(np.int64)),
            "start": pa.array(cols["start"].astype(np.int64)).cast(stamp),
            "end": pa.array(cols["end"].astype(np.int64)).cast(stamp),
        }
    )


def records_of(table: pa.Table) -> list[UsageRecord]:
    """The table's rows as usage records (for the pure engine's check; small sizes only)."""
    return [
        UsageRecord(
            allocation_id=str(row["allocation_id"]),
            resource_class=row["resource_class"],
            start=row["start"],
            end=row["end"],
            source=Source(row["source"]),
            lender=row["lender"],
            amount=row["amount"],
            company=row["company"],
            project=row["project"],
            zone=row["zone"],
            zone_kind=row["zone_kind"],
            provider=row["provider"],
            data_class="D3",
        )
        for row in table.to_pylist()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verify", action="store_true", help="Compare with the pure engine.")
    args = parser.parse_args()

    started = time.perf_counter()
    table = generate(args.allocations, args.seed)
    generate_s = time.perf_counter() - started
    log(f"generated {table.num_rows:,} usage records of {args.allocations:,} allocations "
        f"in {generate_s:.1f} s")  # fmt: skip
    card = rate_card()

    started = time.perf_counter()
    found = bulk.statements(table, card, lender_share=LENDER_SHARE)
    seconds = time.perf_counter() - started
    lines = sum(len(s.lines) for s in found)
    credits = sum(len(s.credits) for s in found)
    log(f"{len(found)} statements, {lines:,} lines, {credits} credit lines in {seconds:.2f} s")

    agree = None
    if args.verify or args.allocations <= VERIFY_UP_TO:
        started = time.perf_counter()
        agree = pure.statements(records_of(table), card, lender_share=LENDER_SHARE) == found
        log(f"pure engine {'agrees' if agree else 'DISAGREES'} "
            f"({time.perf_counter() - started:.1f} s)")  # fmt: skip

    charges = sum((s.charges_total for s in found), Decimal(0))
    paid_to_lenders = sum((s.credits_total for s in found), Decimal(0))
    result = {
        "benchmark": "metering",
        "version": __version__,
        "allocations": args.allocations,
        "records": table.num_rows,
        "months": len({s.month for s in found}),
        "companies": len({s.company for s in found}),
        "statements": len(found),
        "lines": lines,
        "credit_lines": credits,
        "seconds": round(seconds, 3),
        "records_per_s": round(table.num_rows / seconds),
        "generate_s": round(generate_s, 2),
        "charges_krw": str(charges),
        "credits_krw": str(paid_to_lenders),
        "agree": agree,
        "lender_share": str(LENDER_SHARE),
        "seed": args.seed,
        "python": platform.python_version(),
        "cpu_calibration_ms": cpu_calibration_ms(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

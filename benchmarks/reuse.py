"""Reuse of idle capacity: a synthetic day where the companies' demand peaks at different hours.

Four companies share a pool whose size is the sum of their nominal quotas (hosts of
VCPU 32, MEMORY_MB 131072; nominal bank 40 %, card 30 %, capital 15 %, savings 15 %).
Each wants, as a fraction of its own nominal, at hour h of the day:

* bank: 0.3 + 1.3 x a bell around 11:30 (daytime peak, 1.6 x nominal at noon);
* card: 0.3 + 1.3 x a bell around 20:30 (evening peak);
* capital, savings: 0.35 + three bursts of 1.2 for 1-2 h at random hours (smaller, bursty);

times a +-10 % noise per step. The real engine runs on a virtual clock (no sleeping):
at every step (15 min by default) the requests whose work is done are released, those
that waited longer than the patience are cancelled (abandoned), each company sends new
requests (2-16 VCPU with 4 GiB per VCPU, 30 min to 4 h of work) with
``allocate(queue=True)`` until what it has live (running or waiting) reaches what it
wants, and ``worker.run_round(rt, now)`` ends due reclaims and runs the scheduler
cycle. A borrowed allocation that its lender needs back gets a reclaim notice (much
shorter than a step), goes back to the queue and later runs the rest of its work.

The day is run twice on fresh databases with the same seed (the k-th request of a
company is the same in both runs): without borrowing (borrowing_limit 0) and with
borrowing (borrowing_limit = nominal, all idle nominal lent). Reported per run, in VCPU:

* borrowed_share: capacity-hours served by borrowing / capacity-hours used;
* utilisation: capacity-hours used / (pool x 24 h);
* served_share: capacity-hours running / capacity-hours asked for (running + waiting);
* wait of requests until their first admission (mean, p95, p99 and the share that
  waited at all; at the resolution of one step; abandoned requests counted apart);
* reclaims (notices sent, reclaims done).

    python benchmarks/reuse.py [--hosts 48] [--step-min 15] [--seed 1] [--quick]

Progress goes to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from calibration import cpu_calibration_ms
from groupcloud import __version__
from groupcloud.config import Settings
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import (
    AllocationItemRow,
    AllocationRow,
    CompanyRow,
    InventoryRow,
    QuotaRow,
)
from groupcloud.domain.allocation import AllocationState
from groupcloud.schemas.compute import AllocationCreate, HostCreate, InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas, worker
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones

HOST = {"VCPU": 32, "MEMORY_MB": 131072}
MEMORY_PER_VCPU = 4096
SHARES = {"bank": 0.40, "card": 0.30, "capital": 0.15, "savings": 0.15}
SIZES = [2, 4, 8, 16]  # VCPU per request
WORK_MIN = (30, 240)  # minutes of work per request, uniform
NOISE = 0.10
BURSTS = 3
BURST = 1.2
PEAK = 1.3
RUNS = {"no_borrowing": False, "borrowing": True}
HOLDING = (AllocationState.ACTIVE.value, AllocationState.RECLAIMING.value)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bump(hour: float, centre: float, width: float) -> float:
    """A bell around ``centre`` on the 24 h circle."""
    d = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-((d / width) ** 2))


def profiles(seed: int) -> dict[str, Callable[[float], float]]:
    """Wanted fraction of nominal per company, as a function of the hour of the day."""
    rng = random.Random(f"{seed}/bursts")

    def bursty(base: float) -> Callable[[float], float]:
        bursts = [(rng.uniform(0, 23), rng.uniform(1, 2)) for _ in range(BURSTS)]
        return lambda h: (
            base + sum(BURST for start, length in bursts if start <= h < start + length)
        )

    return {
        "bank": lambda h: 0.3 + PEAK * bump(h, 11.5, 3.0),
        "card": lambda h: 0.3 + PEAK * bump(h, 20.5, 2.5),
        "capital": bursty(0.35),
        "savings": bursty(0.35),
    }


@dataclass
class Request:
    company: str
    vcpu: int
    work_steps: int
    submitted: int
    id: str = ""
    admitted: int | None = None  # step of the first admission
    ran_steps: int = 0
    state: str = AllocationState.PENDING.value


@dataclass
class RunResult:
    submitted: int = 0
    admitted_at_once: int = 0  # claimed by allocate() itself
    admitted_by_scheduler: int = 0
    borrowing_admissions: int = 0
    done: int = 0
    abandoned: int = 0
    waiting_at_end: int = 0
    reclaim_notices: int = 0
    reclaims: int = 0
    used_h: float = 0.0
    borrowed_h: float = 0.0
    asked_h: float = 0.0
    per_company: dict[str, dict[str, float]] = field(default_factory=dict)
    waits_min: list[float] = field(default_factory=list)


class Generator:
    """Each company's stream of requests, the same in every run for one seed."""

    def __init__(self, seed: int, step_min: int) -> None:
        self.rngs = {c: random.Random(f"{seed}/{c}/requests") for c in SHARES}
        self.step_min = step_min

    def next(self, company: str, step: int) -> Request:
        rng = self.rngs[company]
        vcpu = rng.choice(SIZES)
        work = rng.uniform(*WORK_MIN)
        return Request(company, vcpu, max(1, round(work / self.step_min)), step)


def setup(rt: Runtime, n_hosts: int, borrowing: bool) -> dict[str, int]:
    """Zone, hosts, the four companies and their quotas; returns VCPU nominal per company."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    hosts.add_hosts(
        rt,
        SYSTEM,
        [
            HostCreate(
                name=f"host-{i:04d}",
                inventories={rc: InventoryIn(total=n) for rc, n in HOST.items()},
            )
            for i in range(n_hosts)
        ],
    )
    host_counts = {c: int(n_hosts * share) for c, share in SHARES.items()}
    host_counts["bank"] += n_hosts - sum(host_counts.values())
    nominal_vcpu: dict[str, int] = {}
    for company, n in host_counts.items():
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=company, name=company.title()))
        companies.create_project(rt, SYSTEM, company, ProjectCreate(slug="apps"))
        for rc, per_host in HOST.items():
            nominal = n * per_host
            limit = nominal if borrowing else 0
            body = QuotaSet(nominal=nominal, borrowing_limit=limit, lending_limit=None)
            quotas.set_quota(rt, SYSTEM, company, rc, body)
        nominal_vcpu[company] = n * HOST["VCPU"]
    return nominal_vcpu


def run_day(args: argparse.Namespace, borrowing: bool, workdir: str) -> dict[str, Any]:
    settings = Settings(
        data_dir=Path(workdir),
        reclaim_notice_s=args.notice_s,
        reclaim_backoff_s=args.notice_s,
        reclaim_backoff_max_s=args.step_min * 60,
    )
    rt = Runtime.open(settings)
    try:
        upgrade(rt.db)
        nominal = setup(rt, args.hosts, borrowing)
        return simulate(rt, args, nominal)
    finally:
        rt.close()


def simulate(rt: Runtime, args: argparse.Namespace, nominal: dict[str, int]) -> dict[str, Any]:
    started = time.perf_counter()
    step_s = args.step_min * 60
    steps = 24 * 60 // args.step_min
    step_h = args.step_min / 60
    patience = max(1, round(args.patience_min / args.step_min))
    # The virtual day starts at the next UTC midnight, after every real timestamp the
    # services write (created_at), so the waits they log are never negative.
    day = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    want = profiles(args.seed)
    noise = random.Random(f"{args.seed}/noise")
    gen = Generator(args.seed, args.step_min)
    with rt.db.read() as s:
        slug_of = dict(s.execute(select(CompanyRow.id, CompanyRow.slug)).all())
    live: dict[str, Request] = {}
    out = RunResult()
    per_company = {c: {"used_h": 0.0, "borrowed_h": 0.0, "asked_h": 0.0} for c in SHARES}

    for step in range(steps):
        now = day + timedelta(seconds=step * step_s)
        hour = step * step_h
        # 1. The work of the last step is done; release what finished, cancel the impatient.
        for r in list(live.values()):
            if r.state in HOLDING:
                r.ran_steps += 1
            finished = r.ran_steps >= r.work_steps
            impatient = r.admitted is None and step - r.submitted >= patience
            if finished or impatient:
                allocations.release(rt, SYSTEM, r.id)
                out.done += finished
                out.abandoned += not finished
                del live[r.id]
        # 2. Every company asks for what it wants now beyond what it has live.
        for company, fraction in want.items():
            wanted = fraction(hour) * (1 + noise.uniform(-NOISE, NOISE)) * nominal[company]
            have = sum(r.vcpu for r in live.values() if r.company == company)
            while have < wanted:
                r = gen.next(company, step)
                body = AllocationCreate(
                    company=company,
                    project="apps",
                    resources={"VCPU": r.vcpu, "MEMORY_MB": r.vcpu * MEMORY_PER_VCPU},
                    queue=True,
                )
                made = allocations.allocate(rt, SYSTEM, body)
                r.id, r.state = made.id, made.state.value
                if r.state in HOLDING:
                    r.admitted = step
                    out.admitted_at_once += 1
                live[r.id] = r
                have += r.vcpu
                out.submitted += 1
        # 3. One worker round at the virtual time: due reclaims, then the scheduler cycle.
        done = worker.run_round(rt, now)
        out.reclaims += done.reclaimed
        out.reclaim_notices += done.reclaims_started
        out.admitted_by_scheduler += done.admitted
        out.borrowing_admissions += done.borrowed
        # 4. What holds what now, for the next step.
        with rt.db.read() as s:
            states = dict(
                s.execute(
                    select(AllocationRow.id, AllocationRow.state).where(
                        AllocationRow.state != AllocationState.RELEASED.value
                    )
                ).all()
            )
            lines = s.execute(
                select(QuotaRow.company_id, QuotaRow.used, QuotaRow.borrowed).where(
                    QuotaRow.resource_class == "VCPU"
                )
            ).all()
        for r in live.values():
            r.state = states[r.id]
            if r.admitted is None and r.state in HOLDING:
                r.admitted = step
                out.waits_min.append((step - r.submitted) * args.step_min)
        for company_id, used, borrowed in lines:
            slug = slug_of[company_id]
            asked = sum(r.vcpu for r in live.values() if r.company == slug)
            per_company[slug]["used_h"] += used * step_h
            per_company[slug]["borrowed_h"] += borrowed * step_h
            per_company[slug]["asked_h"] += asked * step_h
        if (step + 1) % (steps // 8 or 1) == 0:
            used_now = sum(used for _, used, _ in lines)
            log(
                f"  {hour + step_h:5.2f} h: {len(live)} live, {used_now} VCPU used, "
                f"{sum(b for _, _, b in lines)} borrowed"
            )
    out.waiting_at_end = sum(1 for r in live.values() if r.state not in HOLDING)
    out.waits_min += [0.0] * out.admitted_at_once
    _check(rt)
    pool = sum(nominal.values())
    used_h = sum(c["used_h"] for c in per_company.values())
    borrowed_h = sum(c["borrowed_h"] for c in per_company.values())
    asked_h = sum(c["asked_h"] for c in per_company.values())
    waits = sorted(out.waits_min)
    return {
        "borrowed_share": round(borrowed_h / used_h, 4) if used_h else 0.0,
        "utilisation": round(used_h / (pool * 24), 4),
        "served_share": round(used_h / asked_h, 4) if asked_h else 1.0,
        "used_vcpu_h": round(used_h, 1),
        "borrowed_vcpu_h": round(borrowed_h, 1),
        "asked_vcpu_h": round(asked_h, 1),
        "requests": out.submitted,
        "admitted_at_once": out.admitted_at_once,
        "admitted_by_scheduler": out.admitted_by_scheduler,
        "borrowing_admissions": out.borrowing_admissions,
        "done": out.done,
        "abandoned": out.abandoned,
        "waiting_at_end": out.waiting_at_end,
        "wait_mean_min": round(statistics.fmean(waits), 1) if waits else 0.0,
        "wait_p95_min": _pct(waits, 0.95),
        "wait_p99_min": _pct(waits, 0.99),
        "waited_share": round(sum(1 for w in waits if w > 0) / len(waits), 4) if waits else 0.0,
        "reclaim_notices": out.reclaim_notices,
        "reclaims": out.reclaims,
        "per_company": {
            c: {
                "nominal_vcpu": nominal[c],
                "served_share": round(v["used_h"] / v["asked_h"], 4) if v["asked_h"] else 1.0,
                "borrowed_vcpu_h": round(v["borrowed_h"], 1),
                "used_vcpu_h": round(v["used_h"], 1),
            }
            for c, v in per_company.items()
        },
        "seconds": round(time.perf_counter() - started, 2),
    }


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def _check(rt: Runtime) -> None:
    """Invariants at the end of the day: no host over capacity, no company over its quota,
    host and quota usage equal to what live allocations hold."""
    with rt.db.read() as s:
        over_hosts = s.scalar(
            select(func.count())
            .select_from(InventoryRow)
            .where(InventoryRow.used > InventoryRow.capacity)
        )
        over_quota = s.scalar(
            select(func.count())
            .select_from(QuotaRow)
            .where(
                QuotaRow.borrowing_limit.is_not(None),
                QuotaRow.used > QuotaRow.nominal + QuotaRow.borrowing_limit,
            )
        )
        held = s.scalar(
            select(func.coalesce(func.sum(AllocationItemRow.amount), 0))
            .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
            .where(AllocationRow.state.in_(HOLDING), AllocationItemRow.resource_class == "VCPU")
        )
        on_hosts = s.scalar(
            select(func.coalesce(func.sum(InventoryRow.used), 0)).where(
                InventoryRow.resource_class == "VCPU"
            )
        )
        in_quota = s.scalar(
            select(func.coalesce(func.sum(QuotaRow.used), 0)).where(
                QuotaRow.resource_class == "VCPU"
            )
        )
    if over_hosts or over_quota or not held == on_hosts == in_quota:
        raise SystemExit(
            f"inconsistent: {over_hosts} hosts over capacity, {over_quota} quotas over limit, "
            f"VCPU held {held} / on hosts {on_hosts} / in quotas {in_quota}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=None, help="default 48 (quick: 8)")
    parser.add_argument("--step-min", type=int, default=None, help="default 15 (quick: 60)")
    parser.add_argument("--patience-min", type=int, default=180, help="then a request is dropped")
    parser.add_argument("--notice-s", type=float, default=60.0, help="reclaim notice (and backoff)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 hosts, 1 h steps")
    args = parser.parse_args()
    if args.hosts is None:
        args.hosts = 8 if args.quick else 48
    if args.step_min is None:
        args.step_min = 60 if args.quick else 15
    if min(int(args.hosts * share) for share in SHARES.values()) < 1 or 24 * 60 % args.step_min:
        parser.error("need a host per company at least and a step that divides the day")
    started = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    for name, borrowing in RUNS.items():
        log(f"{name}: {args.hosts} hosts, {args.step_min} min steps")
        with tempfile.TemporaryDirectory(prefix="groupcloud-bench-") as workdir:
            runs[name] = run_day(args, borrowing, workdir)
    without, with_ = runs["no_borrowing"], runs["borrowing"]
    result = {
        "project": "groupcloud",
        "version": __version__,
        "benchmark": "reuse",
        "database": "sqlite",
        "python": platform.python_version(),
        "seed": args.seed,
        "hosts": args.hosts,
        "pool_vcpu": args.hosts * HOST["VCPU"],
        "step_min": args.step_min,
        "steps": 24 * 60 // args.step_min,
        "patience_min": args.patience_min,
        "reclaim_notice_s": args.notice_s,
        "shares": SHARES,
        "runs": runs,
        "utilisation_gain": round(with_["utilisation"] - without["utilisation"], 4),
        "served_share_gain": round(with_["served_share"] - without["served_share"], 4),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_calibration_ms": cpu_calibration_ms(),
    }
    print(
        f"reuse over 24 h: utilisation {without['utilisation']:.1%} without borrowing, "
        f"{with_['utilisation']:.1%} with ({with_['borrowed_share']:.1%} of the use borrowed); "
        f"served {without['served_share']:.1%} vs {with_['served_share']:.1%} of what was asked; "
        f"wait p95 {without['wait_p95_min']} vs {with_['wait_p95_min']} min; "
        f"{with_['reclaims']} reclaims"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

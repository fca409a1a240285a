"""Admission throughput of the scheduler cycle: how fast a full queue gets into the pool.

Set-up (not timed for the figure): N hosts (VCPU 64 x 4.0, MEMORY_MB 262144, DISK_GB
2000), C companies whose nominal quotas are whole numbers of hosts and add up to the
pool exactly (shares C, C-1, ..., 1), each allowed to borrow half its nominal and lending
all its idle nominal; then M requests queued through the real ``allocate(queue=True)``.

To queue M requests without them being claimed at once, the requests are sent while the
companies' nominal is 0 and an extra ``holding`` company holds the whole pool as nominal
(so the requests could be admitted by borrowing: they are stored ``pending`` with the
reason ``awaiting_scheduler``; nominal 0 everywhere would make them never fit, 422).
Then the holding company's nominal goes to 0 (it stays as an inert quota line) and the
companies get their real quotas. No host is touched during the set-up.

Timed: ``scheduler.run_cycle`` again and again until a cycle admits nothing (that last,
empty cycle is timed too). admissions_per_s = admitted / seconds spent in the cycles.
Afterwards the counters are checked against the allocation rows.

Demand: per request one shape of 8-256 VCPU (with 1 GiB memory and 4 GB disk per VCPU),
15 % gangs of 2-4 units, 20 % spread, about 1.1 times the pool in all; companies are
alternately busy and quiet (weights 1.6 and 0.6 times their share: about 1.5 and 0.6
times their nominal), so the busy ones borrow the quiet ones' idle nominal up to their
borrowing limit and the rest stays pending (each cycle also walks requests it cannot
admit, as a real queue makes it do). SQLite WAL checkpoints run in the background during
the cycles, as in a server (``Runtime.start_background``).

    python benchmarks/admission.py [--hosts 5000] [--pending 10000] [--companies 8]
                                   [--seed 1] [--database-url URL] [--quick]

Progress goes to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from calibration import cpu_calibration_ms
from groupcloud import __version__
from groupcloud.config import Settings
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import AllocationItemRow, AllocationRow, InventoryRow, LoanRow, QuotaRow
from groupcloud.domain.allocation import AllocationState, Strategy
from groupcloud.schemas.compute import AllocationCreate, HostCreate, InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas, scheduler
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones

HOST = {"VCPU": (64, 4.0), "MEMORY_MB": (262144, 1.0), "DISK_GB": (2000, 1.0)}
CAPACITY = {rc: int(total * ratio) for rc, (total, ratio) in HOST.items()}
NAMES = ["bank", "card", "securities", "insurance", "capital", "savings", "asset", "life"]
HOLDING = "holding"
SHAPES = [(8, 1.0), (16, 1.0), (32, 1.0), (64, 2.0), (128, 2.0), (256, 2.0)]  # VCPU, weight
GANG_SHARE = 0.15
SPREAD_SHARE = 0.2
BATCH = 1000
MAX_CYCLES = 1000
TARGET_PER_S = 1000.0
REFERENCE = {
    "kueue_workloads_per_s": 43,
    "kube_scheduler_pods_per_s_at_5000_nodes": 100,
    "note": "published figures as given to this benchmark, not measured here; other "
    "systems, other machines, other work per admission",
}
SETUP = (
    "requests queued with allocate(queue=True) while the companies' nominal was 0 and an "
    "extra 'holding' company held the whole pool as nominal (pending, awaiting_scheduler); "
    "then holding -> nominal 0 (inert line) and the companies got their real quotas; "
    "no host was used during set-up; quotas: nominal = whole hosts in shares C:C-1:..:1 "
    "adding up to the pool, borrowing_limit = nominal / 2, lending_limit none (all)"
)


@dataclass(frozen=True)
class Request:
    company: str
    vcpu: int
    count: int
    strategy: Strategy

    @property
    def resources(self) -> dict[str, int]:
        return {"VCPU": self.vcpu, "MEMORY_MB": self.vcpu * 1024, "DISK_GB": self.vcpu * 4}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def company_names(n: int) -> list[str]:
    return [NAMES[i] if i < len(NAMES) else f"company{i + 1}" for i in range(n)]


def host_shares(n_hosts: int, n_companies: int) -> list[int]:
    """Hosts' worth of nominal per company, shares n, n-1, ..., 1, adding up to n_hosts."""
    weights = list(range(n_companies, 0, -1))
    shares = [n_hosts * w // sum(weights) for w in weights]
    shares[0] += n_hosts - sum(shares)
    return shares


def make_requests(
    rng: random.Random, companies: list[str], shares: list[int], n: int
) -> list[Request]:
    """Companies alternately busy and quiet: weights 1.6 and 0.6 times their share."""
    pull = [s * (1.6 if i % 2 == 0 else 0.6) for i, s in enumerate(shares)]
    vcpus = [v for v, _ in SHAPES]
    weights = [w for _, w in SHAPES]
    out = []
    for _ in range(n):
        company = rng.choices(companies, weights=pull)[0]
        vcpu = rng.choices(vcpus, weights=weights)[0]
        count = rng.randint(2, 4) if rng.random() < GANG_SHARE else 1
        strategy = Strategy.SPREAD if rng.random() < SPREAD_SHARE else Strategy.PACK
        out.append(Request(company, vcpu, count, strategy))
    return out


def host_body(i: int) -> HostCreate:
    return HostCreate(
        name=f"host-{i:05d}",
        inventories={
            rc: InventoryIn(total=total, allocation_ratio=ratio)
            for rc, (total, ratio) in HOST.items()
        },
    )


def prepare(rt: Runtime, args: argparse.Namespace, requests: list[Request]) -> dict[str, float]:
    """Hosts, companies, the queue; then the real quotas. Returns the set-up timings."""
    started = time.perf_counter()
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    for start in range(0, args.hosts, BATCH):
        hosts.add_hosts(
            rt, SYSTEM, [host_body(i) for i in range(start, min(args.hosts, start + BATCH))]
        )
    slugs = company_names(args.companies)
    for slug in [HOLDING, *slugs]:
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=slug, name=slug.title()))
        companies.create_project(rt, SYSTEM, slug, ProjectCreate(slug="batch"))
    for rc, cap in CAPACITY.items():
        quotas.set_quota(rt, SYSTEM, HOLDING, rc, QuotaSet(nominal=cap * args.hosts))
        for slug in slugs:  # an explicit limit: None on a new quota line is stored as 0
            quota = QuotaSet(nominal=0, borrowing_limit=cap * args.hosts)
            quotas.set_quota(rt, SYSTEM, slug, rc, quota)
    hosts_s = time.perf_counter() - started
    log(f"{args.hosts} hosts and {len(slugs)} companies in {hosts_s:.1f} s; queueing")

    started = time.perf_counter()
    for i, r in enumerate(requests, 1):
        body = AllocationCreate(
            company=r.company,
            project="batch",
            resources=r.resources,
            count=r.count,
            strategy=r.strategy,
            queue=True,
        )
        out = allocations.allocate(rt, SYSTEM, body)
        if out.state is not AllocationState.PENDING:
            raise SystemExit(f"request {i} was {out.state.value}, not pending: set-up is wrong")
        if i % BATCH == 0:
            log(f"  queued {i}/{len(requests)} ({time.perf_counter() - started:.1f} s)")
    enqueue_s = time.perf_counter() - started

    for rc, cap in CAPACITY.items():
        quotas.set_quota(rt, SYSTEM, HOLDING, rc, QuotaSet(nominal=0, borrowing_limit=0))
        for slug, share in zip(slugs, host_shares(args.hosts, args.companies), strict=True):
            nominal = share * cap
            quotas.set_quota(
                rt,
                SYSTEM,
                slug,
                rc,
                QuotaSet(nominal=nominal, borrowing_limit=nominal // 2, lending_limit=None),
            )
    return {"hosts_s": round(hosts_s, 2), "enqueue_s": round(enqueue_s, 2)}


def check(rt: Runtime, admitted: int) -> dict[str, int]:
    """The counters agree with the rows: live allocations, host and quota usage, loans."""
    live = AllocationRow.state == AllocationState.ACTIVE.value
    with rt.db.read() as s:
        active = s.scalar(select(func.count()).select_from(AllocationRow).where(live)) or 0
        pending = (
            s.scalar(
                select(func.count())
                .select_from(AllocationRow)
                .where(AllocationRow.state == AllocationState.PENDING.value)
            )
            or 0
        )
        items = dict(
            s.execute(
                select(AllocationItemRow.resource_class, func.sum(AllocationItemRow.amount))
                .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
                .where(live)
                .group_by(AllocationItemRow.resource_class)
            ).all()
        )
        on_hosts = dict(
            s.execute(
                select(InventoryRow.resource_class, func.sum(InventoryRow.used)).group_by(
                    InventoryRow.resource_class
                )
            ).all()
        )
        over = (
            s.scalar(
                select(func.count())
                .select_from(InventoryRow)
                .where(InventoryRow.used > InventoryRow.capacity)
            )
            or 0
        )
        in_quota = dict(
            s.execute(
                select(QuotaRow.resource_class, func.sum(QuotaRow.used)).group_by(
                    QuotaRow.resource_class
                )
            ).all()
        )
        borrowed = s.scalar(select(func.sum(QuotaRow.borrowed))) or 0
        lent = s.scalar(select(func.sum(QuotaRow.lent))) or 0
        loans = (
            s.scalar(
                select(func.sum(LoanRow.amount))
                .join(AllocationRow, AllocationRow.id == LoanRow.allocation_id)
                .where(live)
            )
            or 0
        )
    problems = []
    if active != admitted:
        problems.append(f"{active} active allocations after {admitted} admissions")
    if over:
        problems.append(f"{over} inventories over capacity")
    if {k: int(v) for k, v in items.items()} != {k: int(v) for k, v in on_hosts.items() if v}:
        problems.append(f"host usage {on_hosts} != allocation items {items}")
    if {k: int(v) for k, v in items.items()} != {k: int(v) for k, v in in_quota.items() if v}:
        problems.append(f"quota usage {in_quota} != allocation items {items}")
    if not borrowed == lent == loans:
        problems.append(f"borrowed {borrowed}, lent {lent}, loans {loans} differ")
    if problems:
        raise SystemExit("inconsistent after the cycles: " + "; ".join(problems))
    return {"active": int(active), "pending": int(pending)}


def run(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    rng = random.Random(args.seed)
    companies = company_names(args.companies)
    shares = host_shares(args.hosts, args.companies)
    requests = make_requests(rng, companies, shares, args.pending)
    demand = sum(r.vcpu * r.count for r in requests)
    pool = CAPACITY["VCPU"] * args.hosts
    rt = Runtime.open(Settings(data_dir=Path(workdir), database_url=args.database_url))
    try:
        upgrade(rt.db)
        setup = prepare(rt, args, requests)
        rt.index.get()  # built outside the timed phase, as in a running server
        rt.start_background()  # SQLite WAL checkpoints off the write path, as in a server
        calibration = cpu_calibration_ms()
        log(f"queue of {len(requests)} ready; running cycles")
        cycles: list[dict[str, Any]] = []
        admitted = borrowed = 0
        seconds = 0.0
        while len(cycles) < MAX_CYCLES:
            t0 = time.perf_counter()
            report = scheduler.run_cycle(rt)
            elapsed = time.perf_counter() - t0
            seconds += elapsed
            admitted += report.admitted
            borrowed += report.borrowed
            cycles.append(
                {"admitted": report.admitted, "borrowed": report.borrowed, "s": round(elapsed, 3)}
            )
            log(
                f"  cycle {len(cycles)}: {report.pending} pending, {report.admitted} admitted "
                f"({report.borrowed} borrowing) in {elapsed:.2f} s"
            )
            if report.admitted == 0:
                break
        counts = check(rt, admitted)
        database = rt.db.url.get_backend_name()
    finally:
        rt.close()
    return {
        "project": "groupcloud",
        "version": __version__,
        "benchmark": "admission",
        "database": database,
        "python": platform.python_version(),
        "hosts": args.hosts,
        "companies": args.companies,
        "pending": args.pending,
        "seed": args.seed,
        "setup": SETUP,
        "demand_vcpu_over_pool": round(demand / pool, 3),
        "demand_over_nominal": {
            c: round(
                sum(r.vcpu * r.count for r in requests if r.company == c) / (h * CAPACITY["VCPU"]),
                2,
            )
            for c, h in zip(companies, shares, strict=True)
        },
        **setup,
        "cycles": len(cycles),
        "cycle_detail": cycles,
        "cycles_s": round(seconds, 3),
        "admitted": admitted,
        "borrowed": borrowed,
        "pending_left": counts["pending"],
        "admissions_per_s": round(admitted / seconds, 1) if seconds else 0.0,
        "target_per_s": TARGET_PER_S,
        "meets_target": seconds > 0 and admitted / seconds >= TARGET_PER_S,
        "reference": REFERENCE,
        "cpu_calibration_ms": calibration,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=None, help="default 5000 (quick: 300)")
    parser.add_argument("--pending", type=int, default=None, help="default 10000 (quick: 600)")
    parser.add_argument("--companies", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="default: a new embedded SQLite file")
    parser.add_argument("--quick", action="store_true", help="smoke test: 300 hosts, 600 pending")
    args = parser.parse_args()
    if args.hosts is None:
        args.hosts = 300 if args.quick else 5000
    if args.pending is None:
        args.pending = 600 if args.quick else 10_000
    if args.companies < 1 or args.hosts < args.companies:
        parser.error("need at least one company and one host per company")
    with tempfile.TemporaryDirectory(prefix="groupcloud-bench-") as workdir:
        result = run(args, workdir)
    print(
        f"admission ({result['database']}): {result['admitted']} of {result['pending']} pending "
        f"admitted ({result['borrowed']} borrowing) in {result['cycles']} cycles, "
        f"{result['cycles_s']} s = {result['admissions_per_s']} admissions/s; "
        f"{result['pending_left']} left pending"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""IP address management throughput: addresses handed out across many subnets, and
prefixes carved from a /8, through the service layer on one database.

* ``prefixes``: ``--prefixes`` VPCs of random sizes (/20 to /28, seeded) carved one by one
  from 10.0.0.0/8, each in its own transaction (best fit, with the company's network
  quota counted).
* ``ips``: ``--subnets`` /24 subnets, then ``--ips`` addresses handed out one per
  transaction, next free address each time, in two orders on two equal sets of subnets:
  ``sequential`` (each subnet gets its share in turn, as a deployment fills a subnet:
  this is ``ip_allocations_per_s``) and ``round_robin`` (every claim hits another
  subnet, so every commit writes other database pages: the worst case).
* ``scan``: the way NetBox finds "the first available IP" (``Prefix.get_available_ips``:
  load every child address of the prefix, ``netaddr.IPSet(prefix) - IPSet(children)``,
  take the first), run on the same database and transaction shape, into one large
  subnet, against groupcloud's own path on an equal subnet. NetBox itself is not run
  here; this reproduces its documented algorithm, so the ratio shows what scanning costs
  as a prefix fills.

Afterwards every address and prefix is checked to be stored exactly once.

    python benchmarks/ipam.py [--subnets 1000] [--ips 100000] [--prefixes 10000]
                              [--scan 3000] [--database-url URL] [--quick]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netaddr
from sqlalchemy import func, insert, select, update

from calibration import cpu_calibration_ms
from groupcloud import __version__
from groupcloud.config import Settings
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import IpAddressRow, NetPrefixRow
from groupcloud.domain.clock import utcnow
from groupcloud.schemas.network import IpCreate, SubnetCreate, SupernetCreate, VpcCreate
from groupcloud.schemas.tenancy import CompanyCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network import ips, prefixes
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones

COMPANY = "bench"


def timed(n: int, step: Callable[[int], object]) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        step(i)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "n": n,
        "seconds": round(elapsed, 3),
        "per_s": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3),
    }


def netbox_style_allocate(rt: Runtime, subnet_id: int, cidr: str) -> str:
    """NetBox's first available IP: every child address loaded, an IPSet difference,
    the first address of the rest (network and broadcast omitted, as NetBox does for
    ordinary IPv4 prefixes), then the insert, in one transaction under the prefix lock."""
    with rt.db.write() as s:
        conn = s.connection()
        conn.execute(
            update(NetPrefixRow)
            .where(NetPrefixRow.id == subnet_id)
            .values(generation=NetPrefixRow.generation + 1)
        )
        children = conn.scalars(
            select(IpAddressRow.address).where(
                IpAddressRow.subnet_id == subnet_id, IpAddressRow.freed_at.is_(None)
            )
        ).all()
        prefix = netaddr.IPNetwork(cidr)
        available = netaddr.IPSet([prefix]) - netaddr.IPSet(children)
        available -= netaddr.IPSet(
            [netaddr.IPAddress(prefix.first), netaddr.IPAddress(prefix.last)]
        )
        first = str(next(iter(available)))
        conn.execute(
            insert(IpAddressRow).values(
                subnet_id=subnet_id,
                company_id=1,
                address=first,
                description="",
                created_at=utcnow(),
                created_by="bench",
                kind="fixed",
            )
        )
        return first


def run(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    rt = Runtime.open(Settings(data_dir=Path(workdir), database_url=args.database_url))
    try:
        upgrade(rt.db)
        rt.start_background()
        zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
        companies.create_company(rt, SYSTEM, CompanyCreate(slug=COMPANY, name="Benchmark"))
        prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
        prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="lab", cidr="172.16.0.0/12"))
        calibration = cpu_calibration_ms()

        sizes = random.Random(args.seed)
        lengths = [sizes.randint(20, 28) for _ in range(args.prefixes)]

        def carve(i: int) -> object:
            body = VpcCreate(name=f"v{i}", supernet="corp", company=COMPANY, prefixlen=lengths[i])
            return prefixes.create_vpc(rt, SYSTEM, body)

        carved = timed(args.prefixes, carve)

        started = time.perf_counter()
        prefixes.create_vpc(
            rt, SYSTEM, VpcCreate(name="lab", supernet="lab", company=COMPANY, prefixlen=12)
        )
        for order in ("q", "r"):
            for i in range(args.subnets):
                body = SubnetCreate(name=f"{order}{i}", prefixlen=24)
                prefixes.create_subnet(rt, SYSTEM, COMPANY, "lab", body)
        subnets_s = time.perf_counter() - started

        empty = IpCreate()
        share = args.ips // args.subnets

        def sequential(i: int) -> object:
            return ips.allocate_ip(rt, SYSTEM, COMPANY, f"q{i // share}", empty)

        def round_robin(i: int) -> object:
            return ips.allocate_ip(rt, SYSTEM, COMPANY, f"r{i % args.subnets}", empty)

        addresses = timed(args.ips, sequential)
        interleaved = timed(args.ips, round_robin)

        # dense: one large subnet each, groupcloud's path against the scanning one
        for name in ("dense", "scan"):
            prefixes.create_subnet(
                rt, SYSTEM, COMPANY, "lab", SubnetCreate(name=name, prefixlen=18)
            )
        dense = timed(args.scan, lambda _: ips.allocate_ip(rt, SYSTEM, COMPANY, "dense", empty))
        with rt.db.read() as s:
            scan_id, scan_cidr = s.execute(
                select(NetPrefixRow.id, NetPrefixRow.cidr).where(NetPrefixRow.name == "scan")
            ).one()
        scan = timed(args.scan, lambda _: netbox_style_allocate(rt, scan_id, scan_cidr))

        verified = verify(rt, args)
    finally:
        rt.close()
    return {
        "benchmark": "ipam",
        "project": "groupcloud",
        "version": __version__,
        "database": rt.db.url.get_backend_name(),
        "subnets": args.subnets,
        "ips": args.ips,
        "prefixes": args.prefixes,
        "ip_allocations_per_s": addresses["per_s"],
        "ip_allocations_round_robin_per_s": interleaved["per_s"],
        "prefixes_per_s": carved["per_s"],
        "ip_allocation": addresses,
        "ip_allocation_round_robin": interleaved,
        "prefix_carving": carved,
        "subnets_setup_s": round(subnets_s, 2),
        "dense_subnet": {
            "prefix": "/18",
            "allocations": args.scan,
            "groupcloud": dense,
            "netbox_style_scan": scan,
            "ratio": round(dense["per_s"] / scan["per_s"], 1),
        },
        "verified": verified,
        "cpu_calibration_ms": calibration,
        "reference": "NetBox Prefix.get_available_ips: IPSet(prefix) - IPSet(all child IPs) "
        "per request (netbox/ipam/models/ip.py); reproduced here on the same database",
    }


def verify(rt: Runtime, args: argparse.Namespace) -> dict[str, int]:
    """Every address held once, every VPC disjoint from the others."""
    with rt.db.read() as s:
        held = s.scalar(select(func.count()).select_from(IpAddressRow)) or 0
        distinct = (
            s.scalar(
                select(func.count()).select_from(
                    select(IpAddressRow.subnet_id, IpAddressRow.address).distinct().subquery()
                )
            )
            or 0
        )
        cidrs = s.scalars(
            select(NetPrefixRow.cidr).where(NetPrefixRow.kind == "vpc", NetPrefixRow.name != "lab")
        ).all()
    blocks = sorted(ipaddress.ip_network(c) for c in cidrs)
    overlapping = sum(1 for a, b in itertools.pairwise(blocks) if a.overlaps(b))
    expected = 2 * (args.ips // args.subnets * args.subnets) + 2 * args.scan
    if held != expected or distinct != expected or len(blocks) != args.prefixes or overlapping:
        raise SystemExit(
            f"stored {held} addresses ({distinct} distinct, {expected} expected), "
            f"{len(blocks)} prefixes ({overlapping} overlapping)"
        )
    return {"addresses": held, "distinct_addresses": distinct, "prefixes": len(blocks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subnets", type=int, default=1000)
    parser.add_argument("--ips", type=int, default=100_000)
    parser.add_argument("--prefixes", type=int, default=10_000)
    parser.add_argument("--scan", type=int, default=3000, help="allocations in the dense test")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="default: a new embedded SQLite file")
    parser.add_argument("--quick", action="store_true", help="a small run (for the test suite)")
    args = parser.parse_args()
    if args.quick:
        args.subnets, args.ips, args.prefixes, args.scan = 20, 400, 200, 100
    with tempfile.TemporaryDirectory(prefix="groupcloud-ipam-") as workdir:
        result = run(args, workdir)
    d = result["dense_subnet"]
    print(
        f"groupcloud ipam ({result['database']}): {args.ips} addresses over {args.subnets} "
        f"subnets = {result['ip_allocations_per_s']} /s in turn, "
        f"{result['ip_allocations_round_robin_per_s']} /s round-robin; "
        f"{args.prefixes} prefixes from a /8 = "
        f"{result['prefixes_per_s']} /s; dense /18: {d['groupcloud']['per_s']} /s vs "
        f"NetBox-style scan {d['netbox_style_scan']['per_s']} /s ({d['ratio']}x)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

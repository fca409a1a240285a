"""Claim throughput of groupcloud, the same shape as ../shared/bench/placement_peer.py.

Registers N hosts (VCPU 64 x 4.0, MEMORY_MB 262144, DISK_GB 2000), then runs M sequential
allocate(VCPU 2, MEMORY_MB 4096, DISK_GB 20) calls, either straight through the service
layer (``--mode service``) or through the HTTP API served by uvicorn on 127.0.0.1
(``--mode http``). Only the claim phase is timed for claims/s; registration is timed apart.
Afterwards the usage recomputed from allocation rows must equal the committed claims.

    python benchmarks/claims.py --hosts 1000 --claims 200 [--mode service|http] [--database-url URL]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from groupcloud import __version__
from groupcloud.client import Client
from groupcloud.config import Settings
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import Allocation, AllocationItem
from groupcloud.domain.tenancy import Role
from groupcloud.schemas import (
    AllocationCreate,
    CompanyCreate,
    HostCreate,
    InventoryIn,
    ProjectCreate,
    QuotaSet,
    TokenCreate,
    ZoneCreate,
)
from groupcloud.services import allocations, hosts, quotas, tenancy, tokens
from groupcloud.services.runtime import Runtime
from groupcloud.services.tokens import SYSTEM

REQUEST = {"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}
BATCH = 1000


def host_shape(i: int) -> HostCreate:
    return HostCreate(
        name=f"host-{i:05d}",
        inventories={
            "VCPU": InventoryIn(total=64, allocation_ratio=4.0),
            "MEMORY_MB": InventoryIn(total=262144),
            "DISK_GB": InventoryIn(total=2000),
        },
    )


def prepare(rt: Runtime, n_hosts: int) -> float:
    """Tenancy, quota big enough for the whole pool, and N hosts; returns registration seconds."""
    tenancy.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    tenancy.create_company(rt, SYSTEM, CompanyCreate(slug="bench", name="Benchmark"))
    tenancy.create_project(rt, SYSTEM, "bench", ProjectCreate(slug="load"))
    for rc, per_host in {"VCPU": 256, "MEMORY_MB": 262144, "DISK_GB": 2000}.items():
        quotas.set_quota(rt, SYSTEM, "bench", rc, QuotaSet(nominal=per_host * n_hosts))
    started = time.perf_counter()
    for start in range(0, n_hosts, BATCH):
        hosts.add_hosts(
            rt, SYSTEM, [host_shape(i) for i in range(start, min(n_hosts, start + BATCH))]
        )
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="groupcloud-bench-") as workdir:
        return run_in(args, workdir)


def run_in(args: argparse.Namespace, workdir: str) -> dict[str, object]:
    settings = Settings(data_dir=Path(workdir), database_url=args.database_url)
    rt = Runtime.open(settings)
    upgrade(rt.db)
    register_s = prepare(rt, args.hosts)
    body = AllocationCreate(company="bench", project="load", resources=REQUEST)
    server: subprocess.Popen[bytes] | None = None
    claim: Callable[[], object]
    if args.mode == "service":
        # As in a running server: the index is built and WAL checkpoints run in the background.
        rt.index.get()
        rt.start_background()

        def claim() -> object:
            return allocations.allocate(rt, SYSTEM, body)
    else:
        secret = tokens.issue_token(
            rt, SYSTEM, TokenCreate(name="bench", role=Role.GROUP_ADMIN)
        ).secret
        port = free_port()
        env = {**os.environ, "GROUPCLOUD_DATA_DIR": workdir}
        if args.database_url:
            env["GROUPCLOUD_DATABASE_URL"] = args.database_url
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "groupcloud",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        client = Client(f"http://127.0.0.1:{port}", secret)
        client.wait_ready(timeout=60)
        client.allocations(limit=1)  # warm the server's index outside the timed phase

        def claim() -> object:
            return client.allocate(body)

    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(args.claims):
        t0 = time.perf_counter()
        claim()
        latencies.append(time.perf_counter() - t0)
    claim_s = time.perf_counter() - started
    if server is not None:
        server.terminate()
        server.wait(timeout=30)

    with rt.db.read() as s:
        stored = s.scalar(select(func.count()).select_from(Allocation)) or 0
        vcpu = s.scalar(
            select(func.sum(AllocationItem.amount)).where(AllocationItem.resource_class == "VCPU")
        )
    rt.close()
    if stored != args.claims or vcpu != args.claims * REQUEST["VCPU"]:
        raise SystemExit(f"{stored} allocations / {vcpu} VCPU stored after {args.claims} claims")
    latencies.sort()
    return {
        "project": "groupcloud",
        "version": __version__,
        "mode": args.mode,
        "database": rt.db.url.get_backend_name(),
        "hosts": args.hosts,
        "claims": args.claims,
        "register_s": round(register_s, 2),
        "claim_s": round(claim_s, 3),
        "claims_per_s": round(args.claims / claim_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        "failed": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--mode", choices=["service", "http"], default="service")
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh embedded SQLite file"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run N times on fresh databases; report the median run",
    )
    args = parser.parse_args()
    runs = [run(args) for _ in range(args.repeat)]
    rates = [float(r["claims_per_s"]) for r in runs]  # type: ignore[arg-type]
    result = sorted(runs, key=lambda r: float(r["claims_per_s"]))[len(runs) // 2]  # type: ignore[arg-type]
    result = {**result, "runs": len(runs), "claims_per_s_all": rates}
    print(
        f"groupcloud {result['mode']}: {result['hosts']} hosts registered in "
        f"{result['register_s']} s; {result['claims']} claims = {result['claims_per_s']} claims/s "
        f"(p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

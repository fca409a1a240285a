"""Claim throughput of groupcloud, in the shape of ../shared/bench/placement_peer.py.

Registers N hosts (VCPU 64 x 4.0, MEMORY_MB 262144, DISK_GB 2000), then runs M sequential
allocate(VCPU 2, MEMORY_MB 4096, DISK_GB 20) calls, either straight through the service
layer (``--mode service``) or through the HTTP API of a ``groupcloud serve`` process on
127.0.0.1 (``--mode http``). Only the claim phase is timed for claims/s; registration is
timed apart. A claim fails when it is refused (an error) or not active at once (it
would wait in the queue); failures are counted, as the peer counts its own, and claims/s
is claims attempted over the claim phase (the peer's definition). Afterwards the active
allocations stored must be exactly the claims that succeeded.

The service mode runs as a server would: the capacity index is built and SQLite WAL
checkpoints run in the background before the timed phase.

    python benchmarks/claims.py --hosts 1000 --claims 200 [--mode service|http]
                                [--database-url URL] [--repeat N]

The last line printed is one JSON object (the median run when --repeat > 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, select

from calibration import cpu_calibration_ms
from groupcloud import __version__
from groupcloud.client import ApiError, Client, ConnectionFailed
from groupcloud.config import Settings
from groupcloud.db.migrate import upgrade
from groupcloud.db.models import AllocationItemRow, AllocationRow
from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.tenancy import Role
from groupcloud.errors import GroupcloudError
from groupcloud.schemas.compute import AllocationCreate, HostCreate, InventoryIn, QuotaSet
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate, TokenCreate
from groupcloud.schemas.zones import ZoneCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones

REQUEST = {"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}
HOST = {"VCPU": (64, 4.0), "MEMORY_MB": (262144, 1.0), "DISK_GB": (2000, 1.0)}
BATCH = 1000


@dataclass
class Result:
    benchmark: str
    project: str
    version: str
    mode: str
    database: str
    hosts: int
    claims: int
    register_s: float
    claim_s: float
    claims_per_s: float
    p50_ms: float
    p99_ms: float
    failed: int
    cpu_calibration_ms: float


def host_shape(i: int) -> HostCreate:
    return HostCreate(
        name=f"host-{i:05d}",
        inventories={
            rc: InventoryIn(total=total, allocation_ratio=ratio)
            for rc, (total, ratio) in HOST.items()
        },
    )


def prepare(rt: Runtime, n_hosts: int) -> float:
    """A company with quota for the whole pool and N hosts; returns registration seconds."""
    zones.create_zone(rt, SYSTEM, ZoneCreate(name="shared"))
    companies.create_company(rt, SYSTEM, CompanyCreate(slug="bench", name="Benchmark"))
    companies.create_project(rt, SYSTEM, "bench", ProjectCreate(slug="load"))
    for rc, (total, ratio) in HOST.items():
        nominal = int(total * ratio) * n_hosts
        quotas.set_quota(rt, SYSTEM, "bench", rc, QuotaSet(nominal=nominal))
    started = time.perf_counter()
    for start in range(0, n_hosts, BATCH):
        batch = [host_shape(i) for i in range(start, min(n_hosts, start + BATCH))]
        hosts.add_hosts(rt, SYSTEM, batch)
    return time.perf_counter() - started


def start_server(workdir: str, database_url: str | None, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GROUPCLOUD_DATA_DIR": workdir}
    if database_url:
        env["GROUPCLOUD_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "groupcloud", "serve", "--port", str(port)]
    return subprocess.Popen([*command, "--log-level", "warning"], env=env)


def run_once(args: argparse.Namespace, workdir: str) -> Result:
    rt = Runtime.open(Settings(data_dir=Path(workdir), database_url=args.database_url))
    server: subprocess.Popen[bytes] | None = None
    try:
        upgrade(rt.db)
        register_s = prepare(rt, args.hosts)
        body = AllocationCreate(company="bench", project="load", resources=REQUEST)
        claim: Callable[[], AllocationState]
        if args.mode == "service":
            rt.index.get()
            rt.start_background()

            def claim() -> AllocationState:
                return allocations.allocate(rt, SYSTEM, body).state

        else:
            token = TokenCreate(name="bench", role=Role.GROUP_ADMIN)
            secret = tokens.issue_token(rt, SYSTEM, token).secret
            port = _free_port()
            server = start_server(workdir, args.database_url, port)
            client = Client(f"http://127.0.0.1:{port}", secret)
            client.wait_ready(timeout=120)
            client.allocations(limit=1)  # a first request outside the timed phase

            def claim() -> AllocationState:
                return client.allocate(body).state

        calibration = cpu_calibration_ms()
        latencies: list[float] = []
        failed = 0
        started = time.perf_counter()
        for _ in range(args.claims):
            t0 = time.perf_counter()
            try:
                failed += claim() is not AllocationState.ACTIVE
            except (GroupcloudError, ApiError, ConnectionFailed):
                failed += 1
            latencies.append(time.perf_counter() - t0)
        claim_s = time.perf_counter() - started
        _check_stored(rt, args.claims - failed)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        rt.close()
    latencies.sort()
    return Result(
        benchmark="claims",
        project="groupcloud",
        version=__version__,
        mode=args.mode,
        database=rt.db.url.get_backend_name(),
        hosts=args.hosts,
        claims=args.claims,
        register_s=round(register_s, 2),
        claim_s=round(claim_s, 3),
        claims_per_s=round(args.claims / claim_s, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        failed=failed,
        cpu_calibration_ms=calibration,
    )


def _check_stored(rt: Runtime, claimed: int) -> None:
    """Every successful claim committed exactly once (one active allocation, its VCPU on
    some host), and nothing else holds capacity."""
    active = AllocationRow.state == AllocationState.ACTIVE.value
    with rt.db.read() as s:
        stored = s.scalar(select(func.count()).select_from(AllocationRow).where(active)) or 0
        vcpu = s.scalar(
            select(func.coalesce(func.sum(AllocationItemRow.amount), 0))
            .join(AllocationRow, AllocationRow.id == AllocationItemRow.allocation_id)
            .where(active, AllocationItemRow.resource_class == "VCPU")
        )
    if stored != claimed or vcpu != claimed * REQUEST["VCPU"]:
        raise SystemExit(f"{stored} allocations / {vcpu} VCPU active after {claimed} claims")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="groupcloud-bench-") as workdir:
        return run_once(args, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--mode", choices=["service", "http"], default="service")
    parser.add_argument("--database-url", default=None, help="default: a new embedded SQLite file")
    parser.add_argument("--repeat", type=int, default=1, help="runs on fresh databases (median)")
    args = parser.parse_args()
    runs = sorted((run(args) for _ in range(args.repeat)), key=lambda r: r.claims_per_s)
    median = runs[len(runs) // 2]
    print(
        f"groupcloud {median.mode} ({median.database}): {median.hosts} hosts registered in "
        f"{median.register_s} s; {median.claims} claims ({median.failed} failed) = "
        f"{median.claims_per_s} claims/s "
        f"(p50 {median.p50_ms} ms, p99 {median.p99_ms} ms; runs {[r.claims_per_s for r in runs]}, "
        f"cpu calibration {[r.cpu_calibration_ms for r in runs]} ms)"
    )
    print(
        json.dumps(
            {
                **asdict(median),
                "runs_claims_per_s": [r.claims_per_s for r in runs],
                "runs_failed": [r.failed for r in runs],
                "runs_cpu_calibration_ms": [r.cpu_calibration_ms for r in runs],
            }
        )
    )


if __name__ == "__main__":
    main()

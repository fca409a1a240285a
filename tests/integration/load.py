"""A bounded, seeded load of allocate/release requests, used by the race and crash tests.

Each worker owns its allocations and randomly claims (sizes that sometimes exceed what is
left, so the pool and the quotas run out) or releases one of them, against one of the
given API servers. Everything that happened is counted so the tests can check it against
the database afterwards.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

# Amounts per unit: small ones fit often, big ones make the pool and quotas run out.
SHAPES = [
    {"VCPU": 1, "MEMORY_MB": 1024},
    {"VCPU": 2, "MEMORY_MB": 4096},
    {"VCPU": 4, "MEMORY_MB": 8192},
    {"VCPU": 8, "MEMORY_MB": 16384},
]


@dataclass
class LoadResult:
    """What the clients saw."""

    statuses: Counter[str] = field(default_factory=Counter)
    created: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)  # release sent, connection lost: either state
    servers_used: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def merge(self, other: LoadResult) -> None:
        with self.lock:
            self.statuses.update(other.statuses)
            self.created |= other.created
            self.released |= other.released
            self.unknown |= other.unknown
            self.servers_used.update(other.servers_used)
            self.transport_errors += other.transport_errors
            self.unexpected.extend(other.unexpected)


def worker(
    seed: int,
    urls: Sequence[str],
    tokens: Sequence[tuple[str, str]],
    operations: int,
    result: LoadResult,
    stop: threading.Event | None = None,
    on_transport_error: Callable[[], bool] = lambda: False,
) -> None:
    """Run ``operations`` requests; ``tokens`` are (company token, project) pairs.

    On a transport error (server killed) the worker calls ``on_transport_error``: True
    means keep going (against the next URL), False means stop.
    """
    rng = random.Random(seed)
    mine = LoadResult()
    clients = [httpx.Client(base_url=u, timeout=60) for u in urls]
    token, project = tokens[seed % len(tokens)]
    headers = {"Authorization": f"Bearer {token}"}
    held: list[str] = []
    try:
        for i in range(operations):
            if stop is not None and stop.is_set():
                break
            client = clients[(seed + i) % len(clients)]
            releasing: str | None = None
            try:
                if held and rng.random() < 0.45:
                    alloc_id = releasing = held.pop(rng.randrange(len(held)))
                    response = client.post(f"/v1/allocations/{alloc_id}/release", headers=headers)
                    mine.servers_used[str(client.base_url)] += 1
                    if response.status_code == 200:
                        mine.released.add(alloc_id)
                        mine.statuses["released"] += 1
                    else:
                        mine.unexpected.append(f"release {response.status_code} {response.text}")
                    continue
                body: dict[str, object] = {
                    "project": project,
                    "resources": rng.choice(SHAPES),
                    "count": rng.choice([1, 1, 1, 2, 3]),
                    "strategy": rng.choice(["pack", "spread"]),
                    "queue": False,  # the direct claim path: claimed now or refused
                }
                if rng.random() < 0.15:
                    body["anti_affinity_group"] = f"g{rng.randrange(3)}"
                post_headers = dict(headers)
                if rng.random() < 0.2:  # retried request: the same key must claim once
                    post_headers["Idempotency-Key"] = f"w{seed}-op{i}"
                response = client.post("/v1/allocations", json=body, headers=post_headers)
                if "Idempotency-Key" in post_headers and response.status_code == 201:
                    again = client.post("/v1/allocations", json=body, headers=post_headers)
                    if again.status_code != 201 or again.json()["id"] != response.json()["id"]:
                        mine.unexpected.append(f"idempotent replay {again.status_code}")
                mine.servers_used[str(client.base_url)] += 1
            except httpx.TransportError:
                mine.transport_errors += 1
                if releasing is not None:
                    mine.unknown.add(releasing)
                if on_transport_error():
                    continue
                break
            if response.status_code == 201:
                alloc_id = response.json()["id"]
                held.append(alloc_id)
                mine.created.add(alloc_id)
                mine.statuses["created"] += 1
            elif response.status_code in (409, 422):
                mine.statuses[response.json()["code"]] += 1
            else:
                mine.unexpected.append(f"allocate {response.status_code} {response.text[:300]}")
    finally:
        for c in clients:
            c.close()
        result.merge(mine)


def run_load(
    urls: Sequence[str],
    tokens: Sequence[tuple[str, str]],
    *,
    clients: int,
    operations: int,
    seed: int = 7,
    stop: threading.Event | None = None,
    on_transport_error: Callable[[], bool] = lambda: False,
) -> LoadResult:
    """``clients`` threads, each running ``operations`` requests; waits for all."""
    result = LoadResult()
    threads = [
        threading.Thread(
            target=worker,
            args=(seed * 1000 + n, urls, tokens, operations, result, stop, on_transport_error),
        )
        for n in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "load threads did not finish"
    return result

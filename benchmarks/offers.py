"""Offer decisions per second: the placement rules for regulated data plus the cheapest
fitting instance type, for many requests over a large synthetic price catalog.

``--providers`` x ``--regions`` external zones (one per provider region; about a third
in Korea, the rest abroad; certifications, approvals and D3 approvals mixed, seeded),
``--types`` instance types per region (vCPU 1-192, memory 1-16 GiB per vCPU, some with
1-8 GPUs of four models, prices from the size and a region factor), and ``--requests``
requests (company, data class D1/D2/D3, system type, vCPU, memory, sometimes GPUs).

A decision is what groupcloud does for one burst: the rules' verdict on every zone
(``placement.zone_rules.decide``, memoised per (company, data class, system type) as the
service does), the allowed regions, and the cheapest offer that fits
(``OfferBook.choose_many``). The same decisions are made by a plain Python loop over the
offers (the obvious implementation, no arrays) on the first ``--baseline`` requests; both
must agree, and the ratio is reported.

    python benchmarks/offers.py [--requests 10000] [--providers 5] [--regions 20]
                                [--types 500] [--baseline 300] [--seed 0]

The last line printed is one JSON object (``decisions_per_s``).
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal

import numpy as np

from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.offers import Offer
from groupcloud.domain.regulation import RequestFacts, Sensitivity, SystemType, ZoneFacts
from groupcloud.placement.offers import OfferBook, OfferRequest
from groupcloud.placement.zone_rules import ZoneDecision, decide

MODELS = ("T4", "A10G", "V100", "A100")
COMPANIES = ("bank", "card", "capital", "savings")


def catalog(
    rng: np.random.Generator, providers: int, regions: int, types: int
) -> tuple[list[ZoneFacts], dict[str, tuple[str, str]], list[Offer]]:
    zones: list[ZoneFacts] = []
    where: dict[str, tuple[str, str]] = {}
    offers: list[Offer] = []
    vcpu = rng.integers(1, 193, size=types)
    per_cpu = rng.integers(1, 17, size=types)
    gpus = np.where(rng.random(types) < 0.15, rng.integers(1, 9, size=types), 0)
    model = rng.integers(0, len(MODELS), size=types)
    for p in range(providers):
        for r in range(regions):
            name = f"p{p}-r{r}"
            korean = r % 3 == 0
            approved = bool(rng.random() < 0.8)
            zones.append(
                ZoneFacts(
                    name=name,
                    kind=ZoneKind.EXTERNAL,
                    country="KR" if korean else "US",
                    internet_separated=bool(rng.random() < 0.2),
                    certifications=frozenset(
                        {"cloud_security_assessment"} if rng.random() < 0.6 else set()
                    ),
                    approved=approved,
                    approved_for_d3=approved and bool(rng.random() < 0.5),
                )
            )
            where[name] = (f"p{p}", f"r{r}")
            factor = 1.15 if korean else 1.0
            noise = rng.uniform(0.9, 1.1, size=types)
            for t in range(types):
                base = 40 * vcpu[t] + 6 * vcpu[t] * per_cpu[t] + 900 * gpus[t]
                offers.append(
                    Offer(
                        provider=f"p{p}",
                        region=f"r{r}",
                        instance_type=f"type-{t}",
                        vcpu=int(vcpu[t]),
                        memory_mb=int(vcpu[t] * per_cpu[t] * 1024),
                        price_per_hour=Decimal(round(float(base * factor * noise[t]), 2)).quantize(
                            Decimal("0.01")
                        ),
                        gpu=int(gpus[t]),
                        gpu_model=MODELS[int(model[t])] if gpus[t] else None,
                    )
                )
    return zones, where, offers


def requests(rng: np.random.Generator, n: int) -> list[tuple[RequestFacts, OfferRequest]]:
    out = []
    for _ in range(n):
        facts = RequestFacts(
            str(rng.choice(COMPANIES)),
            Sensitivity(str(rng.choice(["D1", "D2", "D3"]))),
            SystemType("internal_business" if rng.random() < 0.2 else "external_service"),
        )
        vcpu = int(rng.integers(1, 65))
        gpu = int(rng.integers(1, 5)) if rng.random() < 0.1 else 0
        need = OfferRequest(
            vcpu=vcpu,
            memory_mb=int(vcpu * rng.integers(1, 9) * 1024),
            gpu=gpu,
            gpu_model=str(rng.choice(MODELS)) if gpu and rng.random() < 0.5 else None,
        )
        out.append((facts, need))
    return out


def allowed_of(
    asked: list[tuple[RequestFacts, OfferRequest]],
    zones: list[ZoneFacts],
    where: dict[str, tuple[str, str]],
) -> list[frozenset[tuple[str, str]]]:
    """Each request's allowed regions by the rules, one decision per distinct facts."""
    memo: dict[RequestFacts, ZoneDecision] = {}
    out = []
    for facts, _ in asked:
        decision = memo.get(facts)
        if decision is None:
            decision = memo[facts] = decide(facts, zones)
        out.append(frozenset(where[z] for z in decision.allowed))
    return out


def naive(
    offers: list[Offer], need: OfferRequest, allowed: frozenset[tuple[str, str]]
) -> Offer | None:
    best: Offer | None = None
    for o in offers:
        if (o.provider, o.region) not in allowed or o.vcpu < need.vcpu:
            continue
        if o.memory_mb < need.memory_mb or o.gpu < need.gpu:
            continue
        if need.gpu_model is not None and o.gpu_model != need.gpu_model:
            continue
        key = (o.price_per_hour, o.provider, o.region, o.instance_type)
        if best is None or key < (best.price_per_hour, best.provider, best.region,
                                  best.instance_type):  # fmt: skip
            best = o
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--providers", type=int, default=5)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--types", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=300, help="requests the loop decides")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    zones, where, offers = catalog(rng, args.providers, args.regions, args.types)
    started = time.perf_counter()
    book = OfferBook(offers)
    build_s = time.perf_counter() - started
    asked = requests(rng, args.requests)

    started = time.perf_counter()
    allowed = allowed_of(asked, zones, where)
    chosen = book.choose_many([need for _, need in asked], allowed)
    seconds = time.perf_counter() - started

    subset = asked[: args.baseline]
    started = time.perf_counter()
    loop_allowed = allowed_of(subset, zones, where)
    looped = [naive(offers, need, a) for (_, need), a in zip(subset, loop_allowed, strict=True)]
    loop_s = time.perf_counter() - started
    if looped != chosen[: len(subset)]:
        raise SystemExit("the engine and the loop disagree")
    rate = args.requests / seconds
    loop_rate = len(subset) / loop_s
    print(
        json.dumps(
            {
                "benchmark": "offers",
                "offers": len(offers),
                "zones": len(zones),
                "requests": args.requests,
                "placed": sum(c is not None for c in chosen),
                "book_build_s": round(build_s, 3),
                "seconds": round(seconds, 3),
                "decisions_per_s": round(rate, 1),
                "baseline": "plain Python loop over the offers",
                "baseline_requests": len(subset),
                "baseline_decisions_per_s": round(loop_rate, 1),
                "ratio": round(rate / loop_rate, 1),
                "agree": True,
                "target_decisions_per_s": 2000,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Placement policies: which scorers rank the hosts that fit, and how they weigh.

A policy is a list of tiers, most important first. Within a tier, scorers add up with
their weights; a tier outweighs everything below it, so lower tiers only break its ties.

``fgd-fluid`` is the default for packing requests, on the server and in the simulator:

1. keep GPU hosts for GPU work (CPU-only requests go to GPU hosts only when nothing else
   fits);
2. waste the fewest GPUs: the growth of fragmentation (FGD) plus the growth of GPUs
   stranded by too little CPU or memory, plus GPUs taken from models other requests can
   use exclusively, all in GPUs, with equal weights;
3. pack: the fullest host.

The others are the baselines of the ATC'23 paper (``random``, ``best-fit``,
``dot-product``, ``gpu-packing``, ``fgd``) and the server's earlier ``pack`` and
``spread`` (keep GPU hosts free, then utilisation).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from groupcloud.domain.allocation import PlacementSpec, Strategy
from groupcloud.placement.candidates import Candidates
from groupcloud.placement.index import CapacityIndex, Floats
from groupcloud.placement.scorers import (
    BestFit,
    DotProduct,
    Fragmentation,
    GpuPacking,
    KeepsScarceFree,
    ModelReserve,
    RandomFit,
    Scorer,
    Stranding,
    Utilisation,
)

__all__ = ["DEFAULT_POLICY", "POLICIES", "SERVER_POLICIES", "Policy", "for_request", "policy"]

DEFAULT_POLICY = "fgd-fluid"
POLICIES = (
    "fgd-fluid",
    "fgd",
    "best-fit",
    "dot-product",
    "gpu-packing",
    "random",
    "pack",
    "spread",
)
"""Every policy name, the default first."""
SERVER_POLICIES = tuple(p for p in POLICIES if p not in ("random", "spread"))
"""The policies a server may give packing requests (spreading requests always spread;
random placement is for simulations)."""

TIER_GAP = 1e3
"""How much more a tier weighs than the whole range of the tiers below it."""

Tier = tuple[tuple[float, Scorer], ...]


@dataclass(frozen=True)
class Policy:
    name: str
    tiers: tuple[Tier, ...]
    cacheable: bool = True
    """False when scores change from one request to the next (random): never cached."""
    scales: tuple[float, ...] = field(init=False, repr=False)
    dynamic: tuple[Scorer, ...] = field(init=False, repr=False)
    """The scorers whose ``key`` is part of the ranking cache key."""

    def __post_init__(self) -> None:
        scales: list[float] = []
        below = 0.0  # the range of the scaled scores of the tiers below
        for tier in reversed(self.tiers):
            scale = TIER_GAP * below if below else 1.0
            scales.append(scale)
            below += scale * 100.0 * sum(w for w, _ in tier)
        object.__setattr__(self, "scales", tuple(reversed(scales)))
        dynamic = tuple(s for tier in self.tiers for _, s in tier if s.dynamic)
        object.__setattr__(self, "dynamic", dynamic)

    def rank(self, c: Candidates) -> Floats:
        """The weighted score of every candidate (0 up to the policy's whole range)."""
        index, spec = c.index, c.spec
        total: Floats | None = None
        for scale, tier in zip(self.scales, self.tiers, strict=True):
            for weight, scorer in tier:
                if not scorer.active(index, spec):  # it would add the same to every host
                    continue
                part = scorer.score(c)
                if scale * weight != 1.0:
                    part *= scale * weight
                if total is None:
                    total = part
                else:
                    total += part
        return np.zeros(len(c)) if total is None else total

    def key(self, index: CapacityIndex, spec: PlacementSpec) -> Hashable:
        """What the ranking depends on besides hosts' state: part of the cache key."""
        if not self.dynamic:
            return self.name
        return (self.name, *(s.key(index, spec) for s in self.dynamic))

    @property
    def bottom_scale(self) -> float:
        """The weight of the last tier, whose units a gang's re-scoring step is in."""
        return self.scales[-1]


def _build(name: str, seed: int) -> Policy:
    scarce: Tier = ((1.0, KeepsScarceFree()),)
    if name in ("pack", "spread"):
        return Policy(name, (scarce, ((1.0, Utilisation(Strategy(name))),)))
    if name == "fgd-fluid":
        waste: Tier = ((1.0, Fragmentation()), (1.0, Stranding()), (1.0, ModelReserve()))
        return Policy(name, (scarce, waste, ((1.0, Utilisation(Strategy.PACK)),)))
    single: dict[str, Scorer] = {
        "fgd": Fragmentation(),
        "best-fit": BestFit(),
        "dot-product": DotProduct(),
        "gpu-packing": GpuPacking(),
        "random": RandomFit(seed),
    }
    if name not in single:
        raise ValueError(f"unknown placement policy {name!r}; one of {', '.join(POLICIES)}")
    return Policy(name, (((1.0, single[name]),),), cacheable=name != "random")


_SHARED: dict[str, Policy] = {}


def policy(name: str = DEFAULT_POLICY, seed: int = 0) -> Policy:
    """The policy called ``name``. Deterministic policies are shared; ``random`` draws a
    new seeded sequence per call (one per simulation run)."""
    if name == "random":
        return _build(name, seed)
    if name not in _SHARED:
        _SHARED[name] = _build(name, seed)
    return _SHARED[name]


def for_request(index: CapacityIndex, spec: PlacementSpec) -> Policy:
    """The policy a request gets by default: spreading requests spread; packing ones get
    the index's packing policy (the server's setting), else ``DEFAULT_POLICY``."""
    if spec.strategy is Strategy.SPREAD:
        return policy("spread")
    return policy(index.pack_policy or DEFAULT_POLICY)

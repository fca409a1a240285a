"""Choosing offers: the cheapest instance types that take one unit, among the regions a
request may use.

An external unit is one instance, so a request's unit (vCPU, memory, GPUs of a model)
must fit one instance type; among the (provider, region) pairs the placement rules and
failover leave, the cheapest price wins. Ties go to (provider, region, type) in name
order, so every API process and the benchmark choose the same.

The book keeps the offers as numpy arrays sorted by that order once; a choice is a few
vectorised comparisons over them and a first-true lookup, and a batch of requests with
the same allowed regions shares one region mask (``choose_many``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from groupcloud.domain.offers import Offer

__all__ = ["OfferBook", "OfferRequest"]

Regions = Collection[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class OfferRequest:
    """What one unit needs of an instance type (``gpu_model``: that model only)."""

    vcpu: int
    memory_mb: int
    gpu: int = 0
    gpu_model: str | None = None


class OfferBook:
    """Offers sorted cheapest first, as arrays for vectorised choices."""

    def __init__(self, offers: Iterable[Offer]) -> None:
        self.offers: tuple[Offer, ...] = tuple(
            sorted(offers, key=lambda o: (o.price_per_hour, o.provider, o.region, o.instance_type))
        )
        pairs = sorted({(o.provider, o.region) for o in self.offers})
        self._region_of = {pair: i for i, pair in enumerate(pairs)}
        models = sorted({o.gpu_model for o in self.offers if o.gpu_model})
        self._model_of = {m: i + 1 for i, m in enumerate(models)}  # 0: no GPU model
        self._vcpu = np.array([o.vcpu for o in self.offers], dtype=np.int64)
        self._memory = np.array([o.memory_mb for o in self.offers], dtype=np.int64)
        self._gpu = np.array([o.gpu for o in self.offers], dtype=np.int64)
        self._model = np.array(
            [self._model_of.get(o.gpu_model or "", 0) for o in self.offers], dtype=np.int64
        )
        self._region = np.array(
            [self._region_of[o.provider, o.region] for o in self.offers], dtype=np.int64
        )

    def regions(self) -> list[tuple[str, str]]:
        """Every (provider, region) the book offers something in, in name order."""
        return list(self._region_of)

    def _region_mask(self, allowed: Regions | None) -> npt.NDArray[np.bool_]:
        if allowed is None:
            return np.ones(len(self.offers), dtype=np.bool_)
        wanted = [self._region_of[p] for p in allowed if p in self._region_of]
        return np.isin(self._region, np.array(wanted, dtype=np.int64))

    def _fits(self, request: OfferRequest, regions: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        mask = (
            regions
            & (self._vcpu >= request.vcpu)
            & (self._memory >= request.memory_mb)
            & (self._gpu >= request.gpu)
        )
        if request.gpu_model is not None:
            model = self._model_of.get(request.gpu_model, -1)
            mask &= self._model == model
        return mask

    def cheapest(
        self, request: OfferRequest, allowed: Regions | None = None, *, limit: int = 5
    ) -> list[Offer]:
        """The ``limit`` cheapest offers that fit ``request`` in ``allowed`` regions
        (None: all), cheapest first."""
        if not self.offers or limit < 1:
            return []
        hits = np.flatnonzero(self._fits(request, self._region_mask(allowed)))[:limit]
        return [self.offers[int(i)] for i in hits]

    def choose_many(
        self, requests: Sequence[OfferRequest], allowed: Sequence[Regions | None]
    ) -> list[Offer | None]:
        """The cheapest fitting offer of each request among its allowed regions (None:
        nothing fits); one region mask per distinct allowed set."""
        if len(requests) != len(allowed):
            raise ValueError("one allowed set per request")
        masks: dict[frozenset[tuple[str, str]] | None, npt.NDArray[np.bool_]] = {}
        out: list[Offer | None] = []
        for request, regions in zip(requests, allowed, strict=True):
            key = None if regions is None else frozenset(regions)
            mask = masks.get(key)
            if mask is None:
                mask = masks[key] = self._region_mask(regions)
            if not self.offers:
                out.append(None)
                continue
            fits = self._fits(request, mask)
            first = int(np.argmax(fits))
            out.append(self.offers[first] if fits[first] else None)
        return out

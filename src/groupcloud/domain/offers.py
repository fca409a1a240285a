"""An offer: one instance type of one provider in one region, at its price.

A value of the domain (not of the provider adapters) because the pure engine that chooses
offers for requests (``placement.offers``) and the adapters that list them both speak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Offer"]


@dataclass(frozen=True, slots=True)
class Offer:
    """One instance type a provider offers in a region, with its price.

    ``price_per_hour`` is in KRW per instance-hour (Decimal: money never floats);
    ``memory_mb`` in MiB, ``gpu`` whole devices of ``gpu_model``."""

    provider: str
    region: str
    instance_type: str
    vcpu: int
    memory_mb: int
    price_per_hour: Decimal
    gpu: int = 0
    gpu_model: str | None = None

"""The price catalog: what each provider offers in each region, at which price.

One CSV file, one row per (provider, region, instance type):
``provider,region,instance_type,vcpu,memory_mb,gpu,gpu_model,price_per_hour_krw``. The
file shipped in the package (``data/prices.csv``) holds on-demand Linux prices of the
demo's simulated provider ``sim`` and of AWS (``ap-northeast-2`` Seoul, ``us-east-1``),
converted to KRW per instance-hour at about 1,350 KRW/USD and rounded to the won; an
operator replaces it with their own (``GROUPCLOUD_PRICES``), e.g. with negotiated
prices. Money is ``Decimal`` (no float rounding), memory in MiB, GPUs whole devices.
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from groupcloud.domain.offers import Offer

__all__ = ["COLUMNS", "PriceCatalogError", "load_prices", "parse_prices"]

COLUMNS = (
    "provider", "region", "instance_type", "vcpu", "memory_mb", "gpu", "gpu_model",
    "price_per_hour_krw",
)  # fmt: skip


class PriceCatalogError(ValueError):
    """The price catalog cannot be used; the message names the file, line and column."""


def load_prices(path: Path | None = None) -> list[Offer]:
    """The offers of the catalog at ``path`` (None: the shipped one)."""
    if path is None:
        text = resources.files("groupcloud.providers").joinpath("data/prices.csv").read_text()
        return parse_prices(text, "groupcloud/providers/data/prices.csv")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceCatalogError(f"{path}: cannot read the price catalog: {exc}") from exc
    return parse_prices(text, str(path))


def _int(value: str, where: str, column: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise PriceCatalogError(
            f"{where}: column {column}: not a whole number: {value!r}"
        ) from None
    if number < 0:
        raise PriceCatalogError(f"{where}: column {column}: negative: {value!r}")
    return number


def parse_prices(text: str, source: str = "prices") -> list[Offer]:
    """The offers of one catalog's text (``source`` names it in errors)."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PriceCatalogError(f"{source}:1: missing column(s): {', '.join(missing)}")
    out: list[Offer] = []
    seen: set[tuple[str, str, str]] = set()
    for line, row in enumerate(reader, start=2):
        where = f"{source}:{line}"
        if None in row or any(row[c] is None for c in COLUMNS):
            raise PriceCatalogError(f"{where}: expected {len(COLUMNS)} columns")
        key = (row["provider"].strip(), row["region"].strip(), row["instance_type"].strip())
        if not all(key):
            raise PriceCatalogError(f"{where}: provider, region and instance_type are required")
        if key in seen:
            raise PriceCatalogError(f"{where}: {'/'.join(key)} is listed twice")
        seen.add(key)
        try:
            price = Decimal(row["price_per_hour_krw"].strip())
        except InvalidOperation:
            raise PriceCatalogError(
                f"{where}: column price_per_hour_krw: not a number: {row['price_per_hour_krw']!r}"
            ) from None
        if not price.is_finite() or price <= 0:
            raise PriceCatalogError(f"{where}: column price_per_hour_krw: must be > 0")
        vcpu = _int(row["vcpu"], where, "vcpu")
        if vcpu == 0:
            raise PriceCatalogError(f"{where}: column vcpu: must be > 0")
        gpu = _int(row["gpu"], where, "gpu")
        model = row["gpu_model"].strip() or None
        if gpu and model is None:
            raise PriceCatalogError(f"{where}: column gpu_model: required when gpu > 0")
        out.append(
            Offer(
                provider=key[0],
                region=key[1],
                instance_type=key[2],
                vcpu=vcpu,
                memory_mb=_int(row["memory_mb"], where, "memory_mb"),
                price_per_hour=price,
                gpu=gpu,
                gpu_model=model if gpu else None,
            )
        )
    return out

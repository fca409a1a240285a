"""Parsing of compact command-line arguments such as ``VCPU=2`` and ``VCPU=64,ratio=4``."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from groupcloud.domain.allocation import GPU_MILLI
from groupcloud.schemas.compute import InventoryIn

__all__ = ["build", "parse_amounts", "parse_duration", "parse_gpu_share", "parse_inventories"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_amounts(values: list[str]) -> dict[str, int]:
    """``["VCPU=2", "MEMORY_MB=4096"]`` -> ``{"VCPU": 2, "MEMORY_MB": 4096}``."""
    out: dict[str, int] = {}
    for value in values:
        rc, sep, amount = value.partition("=")
        if not sep or not amount.strip().isdigit():
            raise typer.BadParameter(f"{value!r}: expected CLASS=AMOUNT, e.g. VCPU=2")
        out[rc.strip()] = int(amount)
    return out


def parse_inventories(values: list[str]) -> dict[str, InventoryIn]:
    """``["VCPU=64,ratio=4", "MEMORY_MB=262144,reserved=8192"]`` -> inventories."""
    out: dict[str, InventoryIn] = {}
    for value in values:
        head, *options = value.split(",")
        rc, sep, total = head.partition("=")
        if not sep or not total.strip().isdigit():
            raise typer.BadParameter(
                f"{value!r}: expected CLASS=TOTAL[,reserved=N][,ratio=F], e.g. VCPU=64,ratio=4"
            )
        fields: dict[str, float | int] = {"total": int(total)}
        for option in options:
            key, sep, raw = option.partition("=")
            key = {"ratio": "allocation_ratio"}.get(key.strip(), key.strip())
            if not sep or key not in ("reserved", "allocation_ratio"):
                raise typer.BadParameter(f"{option!r}: options are reserved=N and ratio=F")
            try:
                fields[key] = int(raw) if key == "reserved" else float(raw)
            except ValueError:
                raise typer.BadParameter(f"{option!r}: not a number") from None
        try:
            out[rc.strip()] = InventoryIn.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise typer.BadParameter(f"{value!r}: {problems}") from None
    return out


def parse_duration(value: str, option: str) -> int:
    """``"90m"`` -> 5400 seconds; units s, m, h, d (a bare number is seconds)."""
    text = value.strip().lower()
    unit = text[-1:] if text[-1:] in _UNITS else "s"
    number = text[:-1] if text[-1:] in _UNITS else text
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected a duration such as 30s, 90m, 8h or 2d", param_hint=option
        ) from None
    if seconds < 1:
        raise typer.BadParameter(f"{value!r}: must be at least 1s", param_hint=option)
    return int(seconds)


def parse_gpu_share(value: str) -> int:
    """``"0.25"`` or ``"25%"`` (a part of one GPU device) -> 250 thousandths."""
    text = value.strip()
    try:
        fraction = Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        fraction = Decimal(-1)
    milli = fraction * GPU_MILLI
    if not (0 < milli < GPU_MILLI) or milli != milli.to_integral_value():
        raise typer.BadParameter(
            f"{value!r}: a part of one GPU between 0.001 and 0.999 (or 0.1% to 99.9%), e.g. "
            "0.25 or 25%; whole GPUs are -r GPU=N",
            param_hint="--gpu-share",
        )
    return int(milli)


M = TypeVar("M", bound=BaseModel)


def build(model: type[M], **fields: Any) -> M:
    """A request body from command-line values; what the API would refuse as
    validation_error is a usage error here (exit code 2), with the field named."""
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise typer.BadParameter(problems) from None


def parse_key_values(values: list[str] | None, option: str) -> dict[str, Any]:
    """``OPTION key=value`` (repeated): the value as JSON when it parses (numbers, true,
    lists), else as a string; a value without ``=`` is a usage error naming the option."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{option} wants key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out

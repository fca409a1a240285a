"""A request trace: what the companies ask for, when, for how long.

One record per request: arrival and duration in seconds from the start of the
simulation, the company, its queue priority, the amounts of one unit and the number of
units (a gang), and how long it waits before it gives up (``patience_s``; none: it
waits as long as it takes). A trace is generated (``workload.generate``) or read from a
file: CSV with a header or NDJSON (one JSON object per line), chosen by the suffix.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Request", "TraceFileError", "hourly_requests", "read_requests", "write_requests"]

RESOURCE_COLUMNS = ("VCPU", "MEMORY_MB", "GPU")
"""The resource classes a CSV trace has one column each for (0 or empty: none)."""


class Request(BaseModel):
    """One request of the trace (frozen: runs share one trace and must not change it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arrival_s: float = Field(ge=0, description="Seconds from the start of the simulation.")
    duration_s: float = Field(gt=0, description="Seconds of work once running.")
    company: str = Field(min_length=1)
    priority: int = Field(500, ge=0, le=1000)
    resources: dict[str, int] = Field(min_length=1, description="Amounts per unit.")
    count: int = Field(1, ge=1, le=1000)
    patience_s: float | None = Field(None, gt=0, description="Give up when still waiting then.")
    kind: str = Field("", description="Workload class that made it (oltp, batch, gpu, ...).")

    def demand(self) -> dict[str, int]:
        return {rc: n * self.count for rc, n in self.resources.items()}


class TraceFileError(ValueError):
    """A trace file that cannot be read (named with its line)."""


def read_requests(path: Path) -> list[Request]:
    """The requests of a CSV or NDJSON file, in arrival order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceFileError(f"{path}: {exc.strerror or exc}") from None
    is_csv = path.suffix.lower() == ".csv"
    lines: Iterable[tuple[int, Any]]
    if is_csv:
        lines = ((i + 2, r) for i, r in enumerate(csv.DictReader(text.splitlines())))
    else:
        lines = ((i + 1, line) for i, line in enumerate(text.splitlines()))
    out: list[Request] = []
    for line_no, raw in lines:
        try:
            row = _from_csv(raw) if is_csv else _json_line(path, line_no, raw)
            if row:
                out.append(Request.model_validate(row))
        except TraceFileError:
            raise
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise TraceFileError(f"{path}:{line_no}: {where}: {first['msg']}") from None
        except ValueError as exc:  # a resource column that is not a number
            raise TraceFileError(f"{path}:{line_no}: {exc}") from None
    return sorted(out, key=lambda r: r.arrival_s)


def hourly_requests(
    hourly: Mapping[str, Sequence[Mapping[str, float]]], unit: Mapping[str, int]
) -> list[Request]:
    """A day of requests that runs, hour by hour, at least the amounts of ``hourly``
    (per company, per hour from the start: resource class -> amount), in units of ``unit``.

    Why units: the capacity plan speaks of amounts, the simulator of requests that hosts
    hold. Each hour a company sends ``n`` one-hour requests of ``unit``, ``n`` the fewest
    that cover every class of that hour's amount (so a unit's mix is the host's, and a
    memory-heavy hour takes more units). Online services (``kind`` ``oltp``) that arrive on
    the hour and end on the next, when the next hour's arrive.
    """
    out: list[Request] = []
    for company, hours in sorted(hourly.items()):
        for h, need in enumerate(hours):
            # the fewest units covering every class, but a float's last bits (a need of
            # 2.0000000001 units) do not cost a unit
            n = max(
                (math.ceil(need.get(rc, 0.0) * (1 - 1e-9) / per) for rc, per in unit.items()),
                default=0,
            )
            request = Request(
                arrival_s=h * 3600.0,
                duration_s=3600.0,
                company=company,
                resources=dict(unit),
                kind="oltp",
            )
            out.extend([request] * n)  # frozen: one instance for the hour's n requests
    return sorted(out, key=lambda r: r.arrival_s)


def write_requests(path: Path, requests: Iterable[Request]) -> int:
    """Write ``requests`` as CSV or NDJSON (by the suffix); the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            fields = ["arrival_s", "duration_s", "company", "priority", "count", "patience_s"]
            writer = csv.DictWriter(f, [*fields, *RESOURCE_COLUMNS, "kind"])
            writer.writeheader()
            for r in requests:
                row = r.model_dump(include={*fields, "kind"})
                row.update({rc: r.resources.get(rc, 0) for rc in RESOURCE_COLUMNS})
                row["patience_s"] = "" if r.patience_s is None else r.patience_s
                writer.writerow(row)
                n += 1
        else:
            for r in requests:
                f.write(r.model_dump_json(exclude_defaults=True) + "\n")
                n += 1
    return n


def _from_csv(row: Mapping[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: v for k, v in row.items() if k not in RESOURCE_COLUMNS and v not in (None, "")
    }
    out["resources"] = {rc: int(v) for rc in RESOURCE_COLUMNS if (v := row.get(rc)) and int(v)}
    return out


def _json_line(path: Path, line_no: int, line: str) -> dict[str, Any]:
    if not line.strip():
        return {}
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceFileError(f"{path}:{line_no}: not JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise TraceFileError(f"{path}:{line_no}: not a JSON object")
    return row

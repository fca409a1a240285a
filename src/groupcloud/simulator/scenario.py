"""The scenario file of ``groupcloud sim run``: what to simulate and what to aim for.

A YAML document (see ``examples/scenarios/financial-group.yaml`` and
``docs/simulator.md``): the start (with the group's UTC offset) and length of the
simulated time, the seed, the host kinds (their counts are searched, not given), the
workload (the financial-group generator, or a trace file), the waiting-time target and
the reclaim settings. Errors name the field: ``hosts.1.resources.GPU: ...``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from groupcloud.simulator.demand import Request, read_requests
from groupcloud.simulator.workload import COMPANIES, generate

__all__ = ["HostKind", "Reclaim", "Scenario", "ScenarioError", "Target", "Workload", "load"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostKind(_Model):
    """One kind of host; the search finds how many of it each setting needs."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    resources: dict[str, int] = Field(min_length=1)
    traits: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _positive(self) -> HostKind:
        if any(n <= 0 for n in self.resources.values()):
            raise ValueError("every resource amount of a host must be positive")
        return self


class Workload(_Model):
    """The generator's knobs, or a trace file (CSV or NDJSON, relative to the scenario)."""

    companies: list[str] = Field(default_factory=lambda: list(COMPANIES), min_length=1)
    scale: float = Field(1.0, gt=0, le=100, description="Multiplies every arrival rate.")
    patience_h: float | None = Field(
        None, gt=0, description="Replaces every stream's patience (hours)."
    )
    trace: Path | None = None

    @model_validator(mode="after")
    def _known(self) -> Workload:
        unknown = sorted(set(self.companies) - set(COMPANIES))
        if unknown and self.trace is None:
            raise ValueError(
                f"the generator has no profile for {', '.join(unknown)} "
                f"(known: {', '.join(COMPANIES)})"
            )
        return self


class Target(_Model):
    """What "serving the demand" means when the search sizes a pool."""

    p95_wait_min: float = Field(30.0, ge=0)
    admitted_share: float = Field(
        1.0, gt=0, le=1, description="Share of the requests that must run (not give up)."
    )
    p95_wait_min_by_kind: dict[str, float] = Field(
        default_factory=dict,
        description="p95 wait (minutes) of a workload kind (batch, gpu, ...) instead of "
        "p95_wait_min: queued work may wait longer than online services.",
    )

    @model_validator(mode="after")
    def _non_negative(self) -> Target:
        if any(v < 0 for v in self.p95_wait_min_by_kind.values()):
            raise ValueError("a p95 wait cannot be negative")
        return self

    def p95_wait_min_for(self, kind: str) -> float:
        return self.p95_wait_min_by_kind.get(kind, self.p95_wait_min)


class Reclaim(_Model):
    notice_s: float = Field(300.0, ge=0)
    backoff_s: float = Field(300.0, ge=0)
    backoff_max_s: float = Field(3600.0, ge=0)


class Scenario(_Model):
    name: str = Field(min_length=1)
    seed: int = 0
    start: AwareDatetime = Field(description="Local start, with its UTC offset.")
    days: float = Field(gt=0, le=62)
    hosts: list[HostKind] = Field(min_length=1)
    workload: Workload = Field(default_factory=Workload)
    target: Target = Field(default_factory=Target)
    reclaim: Reclaim = Field(default_factory=Reclaim)
    base_dir: Path = Field(Path("."), exclude=True)
    """Where relative trace paths start (the scenario file's folder; set by ``load``)."""

    @model_validator(mode="after")
    def _distinct(self) -> Scenario:
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError("host kinds need distinct names")
        return self

    @property
    def horizon_s(self) -> float:
        return self.days * 86400

    def requests(self, seed: int | None = None) -> list[Request]:
        """The trace: read from the file, or generated with ``seed`` (default: the
        scenario's)."""
        w = self.workload
        if w.trace is not None:
            path = w.trace if w.trace.is_absolute() else self.base_dir / w.trace
            return [r for r in read_requests(path) if r.company in w.companies]
        return generate(
            self.start,
            self.days,
            self.seed if seed is None else seed,
            companies=w.companies,
            scale=w.scale,
            patience_h=w.patience_h,
        )


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


def load(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping (name, start, days, hosts, ...)")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{path}: {problems}") from None
    return scenario.model_copy(update={"base_dir": path.parent})

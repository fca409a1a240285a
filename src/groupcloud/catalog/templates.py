"""Service templates: what a service of the catalog is, which parameters it takes and
what each plan asks of the group cloud.

A template is YAML (shipped in the package, or added by operators) with a name, a
version, a description, a JSON Schema of its parameters (draft 2020-12, an object),
and plans. A plan is a bundle of **parts**, each one allocation request (``count``
units of ``resources``, optionally GPU shares and placement hints), admitted together as
one gang against the company's quota. An amount may name an integer parameter
(``"{storage_gb}"``) so a plan scales with what the tenant asked; a part whose count
binds to 0 is left out (no replicas asked).

``parse_template`` refuses a broken template listing every problem with its field;
``resolve`` validates parameters (every error, with its path), fills the schema's
defaults, and returns the plan's parts with amounts bound.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from groupcloud.domain.resources import RESOURCE_CLASS

__all__ = [
    "ParameterError",
    "Part",
    "Plan",
    "Resolution",
    "ResolvedPart",
    "Template",
    "TemplateError",
    "parse_template",
    "resolve",
]

NAME = r"^[a-z][a-z0-9-]{0,62}$"
VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$"
_PARAMETER_REF = re.compile(r"^\{([a-z_][a-z0-9_]{0,62})\}$")
MAX_PARTS = 16
MAX_UNITS = 100


class TemplateError(ValueError):
    """A template that cannot be used; ``errors`` lists every problem (field, message)."""

    def __init__(self, source: str, errors: list[dict[str, str]]) -> None:
        listed = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"{source}: {listed}")
        self.errors = errors


class ParameterError(ValueError):
    """Parameters that fail the template's schema, or an unknown plan; ``errors`` lists
    every problem (field: the parameter's path)."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


Amount = int | str
"""A whole amount, or ``"{parameter}"``: the value of an integer parameter."""


class Part(BaseModel):
    """One allocation of a plan's bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    resources: dict[str, Amount] = Field(min_length=1)
    count: Amount = 1
    gpu_share: int = Field(0, ge=0, le=999)
    gpu_models: list[str] = Field(default_factory=list, max_length=16)
    anti_affinity: bool = Field(
        False,
        description="Its units on different hosts, from each other and from the units of "
        "the instance's other anti-affine parts (a primary and its replicas).",
    )

    @field_validator("resources")
    @classmethod
    def _classes(cls, value: dict[str, Amount]) -> dict[str, Amount]:
        for rc, amount in value.items():
            if not RESOURCE_CLASS.match(rc):
                raise ValueError(f"unknown resource class {rc!r}")
            _check_amount(amount, f"resources.{rc}")
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: Amount) -> Amount:
        _check_amount(value, "count")
        return value


def _check_amount(amount: Amount, where: str) -> None:
    if isinstance(amount, str):
        if not _PARAMETER_REF.match(amount):
            raise ValueError(f"{where}: a whole number or '{{parameter}}', not {amount!r}")
    elif amount < 0:
        raise ValueError(f"{where}: negative")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=2000)
    parts: list[Part] = Field(min_length=1, max_length=MAX_PARTS)

    @model_validator(mode="after")
    def _unique_parts(self) -> Plan:
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"plan {self.name}: part names repeat")
        return self


class Template(BaseModel):
    """A service template (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    version: str = Field(pattern=VERSION)
    description: str = Field(max_length=4000)
    kind: str = Field("paas", pattern=r"^(paas|saas)$")
    backend: str | None = Field(
        None,
        pattern=NAME,
        description="A real service behind the allocations (postgresql: a database and a "
        "role per instance on the operator's server).",
    )
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    plans: list[Plan] = Field(min_length=1, max_length=32)

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a JSON Schema: {exc.message}") from None
        if value.get("type") != "object":
            raise ValueError('the parameters schema must be {"type": "object", ...}')
        return value

    @model_validator(mode="after")
    def _plans(self) -> Template:
        names = [p.name for p in self.plans]
        if len(set(names)) != len(names):
            raise ValueError("plan names repeat")
        integers = {
            k for k, v in self.parameters.get("properties", {}).items()
            if isinstance(v, dict) and v.get("type") == "integer"
        }  # fmt: skip
        for plan in self.plans:
            for part in plan.parts:
                for ref in _refs(part):
                    if ref not in integers:
                        raise ValueError(
                            f"plan {plan.name} part {part.name}: {{{ref}}} is not an integer "
                            "parameter of the schema"
                        )
        return self

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)


def _refs(part: Part) -> list[str]:
    amounts = [*part.resources.values(), part.count]
    return [m[1] for a in amounts if isinstance(a, str) and (m := _PARAMETER_REF.match(a))]


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: a template never needs them, and aliases let a
    few bytes expand into a structure too large to validate (the "billion laughs")."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in templates", event.start_mark
            )
        return super().compose_node(parent, index)


def parse_template(text: str | Mapping[str, Any], source: str = "template") -> Template:
    """A template from YAML text (or an already parsed mapping); every problem listed."""
    data: object = text
    if isinstance(text, str):
        try:
            data = yaml.load(text, Loader=_NoAliases)  # a SafeLoader: no object tags
        except yaml.YAMLError as exc:
            raise TemplateError(source, [{"field": "yaml", "message": str(exc)}]) from None
    if not isinstance(data, Mapping):
        raise TemplateError(source, [{"field": "template", "message": "expected a mapping"}])
    try:
        return Template.model_validate(dict(data))
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "template",
                "message": e["msg"].removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        raise TemplateError(source, errors) from None


def _with_defaults(cls: type[Draft202012Validator]) -> type[Draft202012Validator]:
    """A validator that also fills ``default`` values of object properties (the
    jsonschema FAQ's recipe), so what is stored is what the plan used."""
    validate_properties = cls.VALIDATORS["properties"]

    def fill(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(prop, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    extended: type[Draft202012Validator] = validators.extend(  # type: ignore[no-untyped-call]
        cls, {"properties": fill}
    )
    return extended


_FILLING = _with_defaults(Draft202012Validator)


@dataclass(frozen=True, slots=True)
class ResolvedPart:
    """A part with its amounts bound: one allocation request of the gang."""

    name: str
    resources: dict[str, int]
    count: int
    gpu_share: int = 0
    gpu_models: tuple[str, ...] = ()
    anti_affinity: bool = False


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an instance of ``template`` with ``plan`` and ``parameters`` asks."""

    template: Template
    plan: str
    parameters: dict[str, Any]
    parts: tuple[ResolvedPart, ...]

    @property
    def demand(self) -> dict[str, int]:
        """The gang's total per class (whole GPUs only; shares are charged on admission)."""
        out: dict[str, int] = {}
        for p in self.parts:
            for rc, n in p.resources.items():
                out[rc] = out.get(rc, 0) + n * p.count
        return dict(sorted(out.items()))


def resolve(template: Template, plan: str, parameters: Mapping[str, Any]) -> Resolution:
    """Validate ``parameters`` against the schema (every error), fill its defaults, bind
    the plan's amounts. Raises ``ParameterError``."""
    chosen = template.plan(plan)
    if chosen is None:
        known = ", ".join(p.name for p in template.plans)
        raise ParameterError(
            f"template {template.name} has no plan {plan!r} (plans: {known})",
            [{"field": "plan", "message": f"one of {known}"}],
        )
    values = dict(parameters)
    validator = _FILLING(template.parameters)
    errors = sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.path])
    if errors:
        listed = [
            {"field": ".".join(str(p) for p in e.path) or "parameters", "message": e.message}
            for e in errors
        ]
        raise ParameterError(
            "parameters: " + "; ".join(f"{e['field']}: {e['message']}" for e in listed), listed
        )

    def bind(amount: Amount) -> int:
        if isinstance(amount, int):
            return amount
        match = _PARAMETER_REF.match(amount)
        assert match is not None  # checked when the template was parsed
        return int(values[match[1]])

    parts = []
    for part in chosen.parts:
        count = bind(part.count)
        if count == 0:
            continue  # e.g. no read replicas asked: the part is left out
        if count > MAX_UNITS:
            raise ParameterError(
                f"part {part.name}: {count} units (at most {MAX_UNITS})",
                [{"field": f"parts.{part.name}.count", "message": f"at most {MAX_UNITS}"}],
            )
        parts.append(
            ResolvedPart(
                name=part.name,
                resources={rc: bind(a) for rc, a in part.resources.items()},
                count=count,
                gpu_share=part.gpu_share,
                gpu_models=tuple(part.gpu_models),
                anti_affinity=part.anti_affinity,
            )
        )
    if not parts:
        raise ParameterError(
            f"plan {plan} with these parameters asks for nothing",
            [{"field": "parameters", "message": "every part has 0 units"}],
        )
    return Resolution(template, plan, values, tuple(parts))

"""What every body of the contract shares: input/output conventions, pages, validated
names and amounts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    model_validator,
)

from groupcloud.domain.inventory import (
    GPU_MODEL,
    HOST_NAME,
    TRAIT,
    check_gpu_models,
    check_host_name,
    check_traits,
)
from groupcloud.domain.limits import MAX_AMOUNT, MAX_KEY, MAX_SECONDS
from groupcloud.domain.resources import RESOURCE_CLASS, check_amounts, check_resource_class
from groupcloud.domain.tenancy import SLUG, check_slug

__all__ = [
    "Amount",
    "Amounts",
    "Flag",
    "GpuModels",
    "HostName",
    "Input",
    "Instant",
    "Int",
    "Key",
    "Number",
    "Output",
    "Page",
    "ResourceClass",
    "Seconds",
    "Slug",
    "Traits",
    "refuse_nul",
]

T = TypeVar("T")


# Names are checked by the domain's rules (with messages that say what is allowed); the
# same rules are published as patterns, so clients and generated tests know them.
Slug = Annotated[
    str, AfterValidator(check_slug), WithJsonSchema({"type": "string", "pattern": SLUG.pattern})
]
HostName = Annotated[
    str,
    AfterValidator(check_host_name),
    WithJsonSchema({"type": "string", "pattern": HOST_NAME.pattern}),
]
Traits = Annotated[
    list[str],
    Field(max_length=64),
    AfterValidator(check_traits),
    WithJsonSchema(
        {"type": "array", "maxItems": 64, "items": {"type": "string", "pattern": TRAIT.pattern}}
    ),
]
GpuModels = Annotated[
    list[str],
    Field(max_length=16),
    AfterValidator(check_gpu_models),
    WithJsonSchema(
        {"type": "array", "maxItems": 16, "items": {"type": "string", "pattern": GPU_MODEL.pattern}}
    ),
]
ResourceClass = Annotated[
    str,
    AfterValidator(check_resource_class),
    WithJsonSchema({"type": "string", "pattern": RESOURCE_CLASS.pattern}),
]


MAX_CLASSES = 64
"""Resource classes one request may name (a body of thousands is refused at once)."""


Int = StrictInt
"""An integer, without coercions: 2 is one, "2", 2.5 and true are not."""
Amounts = Annotated[
    dict[str, StrictInt],
    Field(max_length=MAX_CLASSES),
    AfterValidator(check_amounts),  # non-empty, known classes, 1..MAX_AMOUNT: its own words
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": MAX_CLASSES,
            "propertyNames": {"pattern": RESOURCE_CLASS.pattern},
            "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
        }
    ),
]

# Numbers as the storage holds them, without coercions (no true -> 1, no "5" -> 5, no
# 0 -> 1970-01-01): JSON that means something else is refused, not reinterpreted.
Amount = Annotated[Int, Field(ge=0, le=MAX_AMOUNT)]
"""An amount of a resource class (0 allowed: a reserved part, a quota)."""
Key = Annotated[Int, Field(ge=1, le=MAX_KEY)]
"""The id of a stored row."""
Seconds = Annotated[Int, Field(ge=0, le=MAX_SECONDS)]
Flag = StrictBool
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
"""A finite number (an integer is accepted)."""


def _instant_text(value: object) -> object:
    if isinstance(value, bool | int | float):
        raise ValueError("give an ISO 8601 instant with a UTC offset, not a number")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-12-01T09:00:00+09:00")
    return value


Instant = Annotated[datetime, BeforeValidator(_instant_text), AfterValidator(_aware)]
"""An ISO 8601 instant with a UTC offset (a local time without one is ambiguous)."""


def refuse_nul(value: object, where: str = "body") -> None:
    """Raise on a NUL character in any string of a parsed body, keys included: no column
    holds one (PostgreSQL refuses it), so it is refused as input, naming where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: NUL characters (\\u0000) are not allowed")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            refuse_nul(key, where)
            refuse_nul(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            refuse_nul(item, f"{where}[{i}]")


class Input(BaseModel):
    """A request body: unknown fields and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        refuse_nul(data)
        return data


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` as ``cursor`` to get the next page."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Opaque cursor of the next page; null at the end."
    )

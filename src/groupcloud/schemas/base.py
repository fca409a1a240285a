"""What every body of the contract shares: input/output conventions, pages, validated
names and amounts."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from groupcloud.domain.inventory import check_host_name, check_traits
from groupcloud.domain.resources import check_amounts, check_resource_class
from groupcloud.domain.tenancy import check_slug

__all__ = ["Amounts", "HostName", "Input", "Output", "Page", "ResourceClass", "Slug", "Traits"]

T = TypeVar("T")


Slug = Annotated[str, AfterValidator(check_slug)]


HostName = Annotated[str, AfterValidator(check_host_name)]


Traits = Annotated[list[str], AfterValidator(check_traits)]


ResourceClass = Annotated[str, AfterValidator(check_resource_class)]


Amounts = Annotated[dict[str, StrictInt], AfterValidator(check_amounts)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` as ``cursor`` to get the next page."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Opaque cursor of the next page; null at the end."
    )

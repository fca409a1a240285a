"""Dependencies shared by the routes: the runtime and the authenticated caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from groupcloud.analytics.months import Month
from groupcloud.domain.limits import MAX_KEY
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput
from groupcloud.services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.tokens import authenticate

__all__ = [
    "Caller",
    "Cursor",
    "IdPath",
    "IdempotencyKey",
    "Limit",
    "Rt",
    "Scale",
    "month_of",
    "month_query",
]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer gc_...`")


# Both dependencies are async on purpose: FastAPI runs a sync dependency in the thread
# pool, and each hop there costs more than the work itself. Neither blocks: the token
# check is answered from the process's cache, and on a miss it is one indexed lookup.


async def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    rt: Runtime = request.app.state.runtime
    return authenticate(rt, credentials.credentials if credentials else None)


Rt = Annotated[Runtime, Depends(_runtime)]
Caller = Annotated[Principal, Depends(_caller)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe key: the same key with the same body returns the first result.",
    ),
]
Limit = Annotated[
    int | None, Query(ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT})")
]
IdPath = Annotated[int, Path(ge=1, le=MAX_KEY, description="The object's numeric id.")]
"""A row id in a path: beyond what the column holds it is refused (422), not queried."""
Scale = Annotated[
    float,
    Query(
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="Multiply every stored MAU (a sampled store): a finite number, at most 1e6.",
    ),
]
MONTH_PATTERN = "^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"


def month_query(description: str) -> Any:
    """A Seoul month in a query string: YYYY-MM, published as a pattern."""
    return Query(pattern=MONTH_PATTERN, description=description, examples=["2022-10"])


def month_of(text: str) -> Month:
    """The month a query names (the pattern was checked; this is the second line)."""
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), errors=[{"field": "month", "message": str(exc)}]) from None

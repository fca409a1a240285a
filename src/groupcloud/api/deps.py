"""Dependencies shared by the routes: the runtime and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from groupcloud.domain.tenancy import Principal
from groupcloud.services.runtime import Runtime
from groupcloud.services.tokens import authenticate

__all__ = ["Caller", "Limit", "Rt"]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer gc_...`")


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return authenticate(_runtime(request), credentials.credentials if credentials else None)


Rt = Annotated[Runtime, Depends(_runtime)]
Caller = Annotated[Principal, Depends(_caller)]
Limit = int | None

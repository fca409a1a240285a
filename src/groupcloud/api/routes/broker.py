"""The Open Service Broker API v2 (``/v2``): the catalog for platforms that consume
service brokers (docs/broker.md). Errors here are the specification's
``{"error", "description"}`` bodies, not problem documents, and bodies are read as
sent (a malformed one is a 400, as the specification asks, not a 422)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from groupcloud.domain.tenancy import Principal
from groupcloud.errors import Unauthenticated
from groupcloud.services.catalog import broker, lifecycle
from groupcloud.services.catalog.broker import BrokerError, Reply
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.tokens import authenticate

__all__ = ["install", "router"]


async def _checked(
    request: Request,
    version: Annotated[str | None, Header(alias="X-Broker-API-Version")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller of a broker request: ``X-Broker-API-Version`` checked first, then the
    groupcloud token, sent as a bearer token or as the password of basic auth (what
    platforms send; the user name is not read)."""
    broker.check_version(version)
    rt: Runtime = request.app.state.runtime
    scheme, _, value = (authorization or "").partition(" ")
    secret: str | None = value.strip() or None
    if scheme.lower() == "basic" and secret is not None:
        try:
            secret = base64.b64decode(secret, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            secret = None
    elif scheme.lower() != "bearer":
        secret = None
    try:
        return authenticate(rt, secret)
    except Unauthenticated as exc:
        raise BrokerError(401, exc.detail) from None


Caller = Annotated[Principal, Depends(_checked)]
_ERROR = {
    "description": "The specification's error body",
    "content": {"application/json": {"schema": {"type": "object", "properties": {
        "error": {"type": "string"}, "description": {"type": "string"}}}}},
}  # fmt: skip
router = APIRouter(
    prefix="/v2",
    tags=["service broker"],
    responses={
        **{code: {"description": "As the specification says"} for code in (200, 201, 202)},
        **dict.fromkeys((400, 401, 403, 404, 409, 410, 412, 422, 500, 502, 503), _ERROR),
    },
)


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BrokerError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BrokerError(400, "the body must be a JSON object")
    return body


Body = Annotated[dict[str, Any], Depends(_body)]


def _incomplete(request: Request) -> bool:
    return request.query_params.get("accepts_incomplete", "").lower() == "true"


def _answer(rt: Runtime, actor: Principal, reply: Reply, tasks: BackgroundTasks) -> JSONResponse:
    if reply.pending is not None:  # carried on after answering (and by the worker)
        tasks.add_task(lifecycle.advance, rt, reply.pending, actor.actor)
    return JSONResponse(reply.body, status_code=reply.status, background=tasks)


@router.get("/catalog", summary="The services and plans on offer")
def get_catalog(request: Request, caller: Caller) -> JSONResponse:
    return JSONResponse(broker.catalog(_rt(request)))


@router.put("/service_instances/{instance_id}", summary="Provision a service instance")
def put_instance(
    request: Request, caller: Caller, instance_id: str, body: Body, tasks: BackgroundTasks
) -> JSONResponse:
    rt = _rt(request)
    reply = broker.provision(rt, caller, instance_id, body, _incomplete(request))
    return _answer(rt, caller, reply, tasks)


@router.get("/service_instances/{instance_id}", summary="Fetch a service instance")
def get_instance(request: Request, caller: Caller, instance_id: str) -> JSONResponse:
    reply = broker.fetch_instance(_rt(request), caller, instance_id)
    return JSONResponse(reply.body, status_code=reply.status)


@router.patch("/service_instances/{instance_id}", summary="Update a service instance")
def patch_instance(
    request: Request, caller: Caller, instance_id: str, body: Body, tasks: BackgroundTasks
) -> JSONResponse:
    rt = _rt(request)
    reply = broker.update(rt, caller, instance_id, body, _incomplete(request))
    return _answer(rt, caller, reply, tasks)


@router.delete("/service_instances/{instance_id}", summary="Deprovision a service instance")
def delete_instance(
    request: Request, caller: Caller, instance_id: str, tasks: BackgroundTasks
) -> JSONResponse:
    rt, query = _rt(request), request.query_params
    reply = broker.deprovision(rt, caller, instance_id, query.get("service_id"),
                               query.get("plan_id"), _incomplete(request))  # fmt: skip
    return _answer(rt, caller, reply, tasks)


@router.get(
    "/service_instances/{instance_id}/last_operation",
    summary="Poll the state of an instance's asynchronous operation",
)
def get_last_operation(request: Request, caller: Caller, instance_id: str) -> JSONResponse:
    reply = broker.last_operation(_rt(request), caller, instance_id)
    return JSONResponse(reply.body, status_code=reply.status)


@router.put(
    "/service_instances/{instance_id}/service_bindings/{binding_id}", summary="Bind (credentials)"
)
def put_binding(
    request: Request, caller: Caller, instance_id: str, binding_id: str, body: Body
) -> JSONResponse:
    reply = broker.bind(_rt(request), caller, instance_id, binding_id, body)
    return JSONResponse(reply.body, status_code=reply.status)


@router.get(
    "/service_instances/{instance_id}/service_bindings/{binding_id}", summary="Fetch a binding"
)
def get_binding(
    request: Request, caller: Caller, instance_id: str, binding_id: str
) -> JSONResponse:
    reply = broker.fetch_binding(_rt(request), caller, instance_id, binding_id)
    return JSONResponse(reply.body, status_code=reply.status)


@router.delete("/service_instances/{instance_id}/service_bindings/{binding_id}", summary="Unbind")
def delete_binding(
    request: Request, caller: Caller, instance_id: str, binding_id: str
) -> JSONResponse:
    query = request.query_params
    reply = broker.unbind(_rt(request), caller, instance_id, binding_id,
                          query.get("service_id"), query.get("plan_id"))  # fmt: skip
    return JSONResponse(reply.body, status_code=reply.status)


def install(app: FastAPI) -> None:
    """Serve ``/v2`` and answer its errors in the specification's form."""

    @app.exception_handler(BrokerError)
    async def _refused(request: Request, exc: BrokerError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="groupcloud"'} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    app.include_router(router)

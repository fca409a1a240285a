"""The catalog as an Open Service Broker (API v2.x), so that platforms that consume service
brokers (Cloud Foundry, the Kubernetes service catalog, ...) provision and bind
groupcloud services (docs/broker.md).

It is a translation, not a second implementation: every request becomes the use case the
``/v1`` API runs (``instances``, ``bindings``), under the caller's token, so quotas, gang
admission, tenancy and the life cycle are the same, and an instance made through either
API is seen through the other (the platform's instance and binding ids are used as
groupcloud's ids). What the broker adds is the protocol: stable ids for services and
plans, the platform's ``context`` mapped to a company and a project, the status codes
and error bodies of the specification, and asynchronous operations
(``accepts_incomplete``) polled through ``last_operation``.

Mapping: a service is a template (its newest version), a plan is a plan of it; their ids
are name-based UUIDs (v5), the same on every server. The company is the token's (group
admins name it: ``context.company`` or ``organization_guid``); the project is
``context.project``, else ``space_guid`` / ``context.space_guid`` /
``context.namespace``, naming one of the company's projects.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from groupcloud.catalog.templates import Template
from groupcloud.domain.service import Operation, ServiceState
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    AlreadyExists,
    BackendUnavailable,
    Forbidden,
    GroupcloudError,
    InvalidInput,
    NeverFits,
    NoCapacity,
    NotBindable,
    NotFound,
    QuotaExceeded,
    ServiceBusy,
)
from groupcloud.schemas.catalog import BindingCreate, ServiceCreate, ServiceInstance, ServiceUpdate
from groupcloud.services.catalog import bindings, instances
from groupcloud.services.catalog.templates import newest_templates
from groupcloud.services.common.runtime import Runtime

__all__ = [
    "BrokerError",
    "Reply",
    "bind",
    "catalog",
    "check_version",
    "deprovision",
    "fetch_binding",
    "fetch_instance",
    "last_operation",
    "plan_id",
    "provision",
    "service_id",
    "unbind",
    "update",
]

_NAMESPACE = uuid.UUID("6f1d0d2c-5b8e-4c4e-9a57-1d0c7f3b9e21")
"""Of the services' and plans' name-based ids (never change it: platforms store them)."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")
"""Instance and binding ids a platform may choose: they become groupcloud's ids (at most
36 characters, a GUID's length)."""

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""What the templates' parameter schemas are written in (the catalog must say)."""

MIN_VERSION = (2, 13)
"""The oldest API version served (2.13 introduced ``context`` and the fetch endpoints
came in 2.14; both are answered)."""


class BrokerError(Exception):
    """An answer in the specification's error form: ``{"error": ..., "description": ...}``
    (``error`` only for the codes the specification defines)."""

    def __init__(self, status: int, description: str, error: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.error = error

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Reply:
    """A status and body; ``pending``: an instance whose operation the caller carries on
    after answering (the API's background task)."""

    status: int
    body: dict[str, Any]
    pending: str | None = None


def service_id(template: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"service:{template}"))


def plan_id(template: str, plan: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"plan:{template}:{plan}"))


def check_version(header: str | None) -> None:
    """``X-Broker-API-Version`` is required; versions older than ``MIN_VERSION`` or of
    another major version are refused with 412."""
    match = re.fullmatch(r"(\d+)\.(\d+)", (header or "").strip())
    if match is None:
        raise BrokerError(412, "send X-Broker-API-Version (2.13 or later)")
    version = (int(match[1]), int(match[2]))
    if version[0] != MIN_VERSION[0] or version < MIN_VERSION:
        raise BrokerError(
            412, f"API version {header} is not supported: use 2.{MIN_VERSION[1]} to 2.17"
        )


# -- the catalog ---------------------------------------------------------------------


def catalog(rt: Runtime) -> dict[str, Any]:
    with rt.db.read() as s:
        found = newest_templates(s)
    return {"services": [_service(t) for t in found]}


def _service(t: Template) -> dict[str, Any]:
    schema = {"parameters": {"$schema": _SCHEMA_DIALECT, **t.parameters}}
    return {
        "id": service_id(t.name),
        "name": t.name,
        "description": t.description,
        "bindable": t.backend is not None,
        "instances_retrievable": True,
        "bindings_retrievable": True,
        "plan_updateable": len(t.plans) > 1,
        "tags": [t.kind] + ([t.backend] if t.backend else []),
        "metadata": {"version": t.version, "kind": t.kind},
        "plans": [
            {
                "id": plan_id(t.name, p.name),
                "name": p.name,
                "description": p.description or f"{t.name} {p.name}",
                "free": False,
                "bindable": t.backend is not None,
                "schemas": {"service_instance": {"create": schema, "update": schema}},
            }
            for p in t.plans
        ],
    }


def _find(rt: Runtime, wanted_service: Any, wanted_plan: Any) -> tuple[Template, str | None]:
    """The template and plan the platform's ids name (400 if they name none)."""
    if not isinstance(wanted_service, str):
        raise BrokerError(400, "service_id is required")
    with rt.db.read() as s:
        found = [t for t in newest_templates(s) if service_id(t.name) == wanted_service]
    if not found:
        raise BrokerError(400, f"service_id {wanted_service!r} is not in the catalog")
    template = found[0]
    if wanted_plan is None:
        return template, None
    plans = [p.name for p in template.plans if plan_id(template.name, p.name) == wanted_plan]
    if not plans:
        raise BrokerError(400, f"plan_id {wanted_plan!r} is not a plan of {template.name}")
    return template, plans[0]


# -- service instances ---------------------------------------------------------------


def provision(
    rt: Runtime, actor: Principal, instance_id: str, body: dict[str, Any], accepts_incomplete: bool
) -> Reply:
    """201 made, 200 the same instance exists, 202 provisioning asynchronously, 409 an
    instance of that id exists with other attributes."""
    _check_id(instance_id, "instance_id")
    template, plan = _find(rt, body.get("service_id"), body.get("plan_id"))
    if plan is None:
        raise BrokerError(400, "plan_id is required")
    parameters = _parameters(body)
    context = body.get("context") if isinstance(body.get("context"), dict) else {}
    assert isinstance(context, dict)
    existing = _existing(rt, actor, instance_id)
    if existing is not None:
        same = (existing.template, existing.plan) == (template.name, plan) and all(
            existing.parameters.get(k) == v for k, v in parameters.items()
        )
        if not same or existing.state in (ServiceState.GONE, ServiceState.DEPROVISIONING):
            raise BrokerError(409, f"instance {instance_id} exists with other attributes")
        if existing.state is ServiceState.PROVISIONING:
            return Reply(202, {"operation": Operation.PROVISION.value})
        return Reply(200, {})
    company = _company(actor, context, body)
    project = _project(context, body)
    ask = ServiceCreate(company=company, project=project, template=template.name, plan=plan,
                        parameters=parameters, version=template.version)  # fmt: skip
    wait = not accepts_incomplete
    made = _call(lambda: instances.create_service(rt, actor, ask, instance_id=instance_id,
                                                  wait=wait))  # fmt: skip
    if made.state is ServiceState.PROVISIONING:
        if wait:  # the backend could not be reached: nothing may stay half-made
            _call(lambda: instances.delete_service(rt, actor, instance_id))
            raise BrokerError(503, f"provisioning did not finish: {made.failure}")
        return Reply(202, {"operation": Operation.PROVISION.value}, pending=instance_id)
    if made.state is ServiceState.FAILED:
        raise BrokerError(502, f"provisioning failed, every part released: {made.failure}")
    return Reply(201, {})


def fetch_instance(rt: Runtime, actor: Principal, instance_id: str) -> Reply:
    """200 with the instance's service, plan and parameters; 404 if there is none (or it
    is still being provisioned); 422 ConcurrencyError while it is updated."""
    found = _existing(rt, actor, instance_id)
    if found is None or found.state in (ServiceState.GONE, ServiceState.PROVISIONING,
                                        ServiceState.FAILED):  # fmt: skip
        raise BrokerError(404, f"instance {instance_id} not found")
    if found.state is ServiceState.UPDATING:
        raise BrokerError(422, "the instance is being updated", "ConcurrencyError")
    return Reply(200, _described(found))


def update(
    rt: Runtime, actor: Principal, instance_id: str, body: dict[str, Any], accepts_incomplete: bool
) -> Reply:
    """200 updated (a plan upgrade claims the new plan's parts as a gang, then releases
    the old ones); 422 ConcurrencyError if an operation is under way; 400 for what the
    catalog or the schema refuses."""
    found = _existing(rt, actor, instance_id)
    if found is None or found.state is ServiceState.GONE:
        raise BrokerError(404, f"instance {instance_id} not found")
    template, plan = _find(rt, body.get("service_id"), body.get("plan_id"))
    if template.name != found.template:
        raise BrokerError(400, f"instance {instance_id} is a {found.template}, not {template.name}")
    change = ServiceUpdate(plan=plan, parameters=_parameters(body))
    _call(lambda: instances.update_service(rt, actor, instance_id, change))
    return Reply(200, {})


def deprovision(
    rt: Runtime,
    actor: Principal,
    instance_id: str,
    wanted_service: str | None,
    wanted_plan: str | None,
    accepts_incomplete: bool,
) -> Reply:
    """200 removed, 202 removing asynchronously, 410 there was no such instance."""
    if not wanted_service or not wanted_plan:
        raise BrokerError(400, "service_id and plan_id are required query parameters")
    found = _existing(rt, actor, instance_id)
    if found is None or found.state is ServiceState.GONE:
        raise BrokerError(410, f"instance {instance_id} does not exist")
    wait = not accepts_incomplete
    gone = _call(lambda: instances.delete_service(rt, actor, instance_id, wait=wait))
    if gone.state is ServiceState.GONE:
        return Reply(200, {})
    if wait:
        raise BrokerError(503, f"deprovisioning did not finish yet: {gone.failure}")
    return Reply(202, {"operation": Operation.DEPROVISION.value}, pending=instance_id)


def last_operation(rt: Runtime, actor: Principal, instance_id: str) -> Reply:
    """The state of the operation under way or last done: ``in progress``,
    ``succeeded`` or ``failed`` (with why); 410 once a deprovisioned instance is gone."""
    found = _existing(rt, actor, instance_id)
    if found is None:
        raise BrokerError(404, f"instance {instance_id} not found")
    if found.state is ServiceState.GONE:
        raise BrokerError(410, f"instance {instance_id} is gone")
    if found.state.busy:
        state, description = "in progress", found.failure or f"{found.state.value}"
    elif found.state is ServiceState.FAILED:
        state, description = "failed", found.failure or "failed"
    else:
        state, description = "succeeded", f"{found.operation or 'provision'} done"
    return Reply(200, {"state": state, "description": description})


# -- bindings ------------------------------------------------------------------------


def bind(
    rt: Runtime, actor: Principal, instance_id: str, binding_id: str, body: dict[str, Any]
) -> Reply:
    """201 with credentials, 200 the same binding exists, 409 it exists otherwise, 422
    ConcurrencyError while the instance is not ready."""
    _check_id(binding_id, "binding_id")
    _find(rt, body.get("service_id"), body.get("plan_id"))
    parameters = _parameters(body)
    found = _existing(rt, actor, instance_id)
    if found is None or found.state is ServiceState.GONE:
        raise BrokerError(400, f"instance {instance_id} does not exist")
    try:
        existing = bindings.get_binding(rt, actor, instance_id, binding_id)
    except NotFound:
        existing = None
    if existing is not None:
        if existing.state != "ready" or existing.parameters != parameters:
            raise BrokerError(409, f"binding {binding_id} exists with other attributes")
        return Reply(200, {"credentials": existing.credentials or {}})
    made = _call(lambda: bindings.bind(rt, actor, instance_id, BindingCreate(
        parameters=parameters), binding_id=binding_id))  # fmt: skip
    return Reply(201, {"credentials": made.credentials or {}})


def fetch_binding(rt: Runtime, actor: Principal, instance_id: str, binding_id: str) -> Reply:
    try:
        found = bindings.get_binding(rt, actor, instance_id, binding_id)
    except NotFound:
        raise BrokerError(404, f"binding {binding_id} not found") from None
    if found.state != "ready":
        raise BrokerError(404, f"binding {binding_id} not found")
    return Reply(200, {"credentials": found.credentials or {}, "parameters": found.parameters})


def unbind(
    rt: Runtime,
    actor: Principal,
    instance_id: str,
    binding_id: str,
    wanted_service: str | None,
    wanted_plan: str | None,
) -> Reply:
    """200 removed, 410 there was no such binding."""
    if not wanted_service or not wanted_plan:
        raise BrokerError(400, "service_id and plan_id are required query parameters")
    try:
        found = bindings.get_binding(rt, actor, instance_id, binding_id, reveal=False)
    except NotFound:
        raise BrokerError(410, f"binding {binding_id} does not exist") from None
    if found.state != "ready":
        raise BrokerError(410, f"binding {binding_id} does not exist")
    _call(lambda: bindings.unbind(rt, actor, instance_id, binding_id))
    return Reply(200, {})


# -- helpers -------------------------------------------------------------------------


def _check_id(value: str, what: str) -> None:
    if not _ID.fullmatch(value):
        raise BrokerError(
            400, f"{what} must be 1-36 letters, digits and ._- starting with a letter or digit"
        )


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BrokerError(400, "parameters must be an object")
    return parameters


def _existing(rt: Runtime, actor: Principal, instance_id: str) -> ServiceInstance | None:
    try:
        return instances.get_service(rt, actor, instance_id)
    except NotFound:
        return None


def _company(actor: Principal, context: dict[str, Any], body: dict[str, Any]) -> str | None:
    if actor.company is not None:
        return None  # implied by the token (another one named is not this token's)
    named = context.get("company") or body.get("organization_guid")
    if not isinstance(named, str) or not named:
        raise BrokerError(400, "a group token names the company: context.company or "
                          "organization_guid (a company slug)")  # fmt: skip
    return named


def _project(context: dict[str, Any], body: dict[str, Any]) -> str:
    for named in (
        context.get("project"),
        body.get("space_guid"),
        context.get("space_guid"),
        context.get("namespace"),
    ):
        if isinstance(named, str) and named:
            return named
    raise BrokerError(400, "name the project: context.project, space_guid or context.namespace "
                      "(a project slug of the company)")  # fmt: skip


def _described(found: ServiceInstance) -> dict[str, Any]:
    return {
        "service_id": service_id(found.template),
        "plan_id": plan_id(found.template, found.plan),
        "parameters": found.parameters,
    }


def _call(use_case: Any) -> Any:
    """Run a use case, its refusal as the broker's error: what the platform sent (or
    the capacity and quota it asks) is a 400/422, a busy instance 422 ConcurrencyError,
    an unreachable backend 503."""
    try:
        return use_case()
    except ServiceBusy as exc:
        raise BrokerError(422, exc.detail, "ConcurrencyError") from None
    except AlreadyExists as exc:
        raise BrokerError(409, exc.detail) from None
    except (QuotaExceeded, NoCapacity, NeverFits) as exc:
        raise BrokerError(422, exc.detail) from None
    except (InvalidInput, NotFound, NotBindable) as exc:
        raise BrokerError(400, exc.detail) from None
    except Forbidden as exc:
        raise BrokerError(403, exc.detail) from None
    except BackendUnavailable as exc:
        raise BrokerError(503, exc.detail) from None
    except GroupcloudError as exc:
        raise BrokerError(exc.status if exc.status >= 400 else 500, exc.detail) from None

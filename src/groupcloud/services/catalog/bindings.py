"""Bindings: an app's credentials for a ready service, made by the service's backend (a
login role of its own on the managed PostgreSQL), stored sealed (``SecretBox``), rotated
and removed one by one.

The row comes first (``binding``), then the backend's login, then the sealed secret
(``ready``): a deletion of the service that runs meanwhile marks the row gone, and the
backend's deprovision drops every login of the instance, so no login outlives its
service, and a binding whose service went away meanwhile is refused, not half-made.
Credentials are never logged or put in events; the API shows them only to callers who
may use the company's services.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import delete, select, update

from groupcloud.db.models import ServiceBindingRow, ServiceInstanceRow
from groupcloud.dbaas import DbaasError, DbaasNotFound
from groupcloud.domain.policy import Action
from groupcloud.domain.service import ServiceState
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    AlreadyExists,
    BackendUnavailable,
    NotBindable,
    NotFound,
    ServiceBusy,
)
from groupcloud.schemas.catalog import Binding, BindingCreate
from groupcloud.services.audit import events
from groupcloud.services.catalog.backends import backend_of, credentials_of, secret_box
from groupcloud.services.catalog.instances import visible_instance
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import require

__all__ = ["bind", "get_binding", "list_bindings", "rotate", "unbind"]

_READY, _BINDING, _GONE = "ready", "binding", "gone"


def bind(
    rt: Runtime,
    actor: Principal,
    instance_id: str,
    body: BindingCreate,
    *,
    binding_id: str | None = None,
) -> Binding:
    """New credentials for an app; ``binding_id``: the id a platform chose (Open Service
    Broker), a new one if None. The service must be ready and have a backend."""
    row = _usable(rt, actor, instance_id, "binding services")
    if row.backend is None:
        raise NotBindable(
            f"service {instance_id} ({row.template}) has no backend issuing credentials",
            template=row.template,
        )
    if row.state != ServiceState.READY:
        raise ServiceBusy(
            f"service {instance_id} is {row.state}; only a ready service can be bound",
            state=row.state,
        )
    backend, box = backend_of(rt, row.backend), secret_box(rt)
    binding_id = binding_id or str(uuid.uuid4())
    now = rt.clock()
    with rt.db.write() as s:
        if s.get(ServiceBindingRow, binding_id) is not None:
            raise AlreadyExists(
                f"binding {binding_id!r} already exists", resource="binding", name=binding_id
            )
        s.add(
            ServiceBindingRow(
                id=binding_id,
                instance_id=instance_id,
                company_id=row.company_id,
                state=_BINDING,
                secret=None,
                parameters=body.parameters,
                created_at=now,
                created_by=actor.actor,
            )
        )
    try:
        creds = backend.bind(instance_id, binding_id)
    except DbaasError as exc:
        with rt.db.write() as s:
            s.execute(delete(ServiceBindingRow).where(ServiceBindingRow.id == binding_id))
        if isinstance(exc, DbaasNotFound):  # deprovisioned meanwhile
            raise ServiceBusy(f"service {instance_id} is being deleted") from None
        raise BackendUnavailable(
            f"binding failed: {exc.message}", retryable=exc.retryable
        ) from None
    secret = box.seal(json.dumps(credentials_of(creds)))
    with rt.db.write() as s:
        done = s.execute(
            update(ServiceBindingRow)
            .where(ServiceBindingRow.id == binding_id, ServiceBindingRow.state == _BINDING)
            .values(state=_READY, secret=secret)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise ServiceBusy(f"service {instance_id} is being deleted")
        events.record(s, actor.actor, "service.bound", f"service/{instance_id}",
                      row.company_id, {"binding": binding_id}, at=now)  # fmt: skip
    return get_binding(rt, actor, instance_id, binding_id)


def rotate(rt: Runtime, actor: Principal, instance_id: str, binding_id: str) -> Binding:
    """A new password for the binding (the old one stops working at once)."""
    row = _usable(rt, actor, instance_id, "rotating credentials")
    binding = _live(rt, row, binding_id)
    assert row.backend is not None  # bindings exist only where a backend made them
    try:
        creds = backend_of(rt, row.backend).rotate_binding(instance_id, binding.id)
    except DbaasError as exc:
        raise BackendUnavailable(
            f"rotation failed: {exc.message}", retryable=exc.retryable
        ) from None
    now = rt.clock()
    with rt.db.write() as s:
        s.execute(
            update(ServiceBindingRow)
            .where(ServiceBindingRow.id == binding.id)
            .values(secret=secret_box(rt).seal(json.dumps(credentials_of(creds))), rotated_at=now)
        )
        events.record(s, actor.actor, "service.binding_rotated", f"service/{instance_id}",
                      row.company_id, {"binding": binding.id}, at=now)  # fmt: skip
    return get_binding(rt, actor, instance_id, binding_id)


def unbind(rt: Runtime, actor: Principal, instance_id: str, binding_id: str) -> Binding:
    """Remove the binding's login (its sessions end); idempotent."""
    row = _usable(rt, actor, instance_id, "unbinding services")
    binding = _found(rt, row, binding_id)
    if binding.deleted_at is None:
        assert row.backend is not None
        try:
            backend_of(rt, row.backend).unbind(instance_id, binding.id)
        except DbaasError as exc:
            raise _unavailable("unbinding", exc) from None
        now = rt.clock()
        with rt.db.write() as s:
            done = s.execute(
                update(ServiceBindingRow)
                .where(ServiceBindingRow.id == binding.id, ServiceBindingRow.deleted_at.is_(None))
                .values(state=_GONE, secret=None, deleted_at=now)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                events.record(s, actor.actor, "service.unbound", f"service/{instance_id}",
                              row.company_id, {"binding": binding.id}, at=now)  # fmt: skip
    return get_binding(rt, actor, instance_id, binding_id, reveal=False)


def get_binding(
    rt: Runtime, actor: Principal, instance_id: str, binding_id: str, *, reveal: bool = True
) -> Binding:
    """A binding; its credentials if ``reveal`` and the caller may use the company's
    services (a viewer or auditor sees the binding without them)."""
    row = visible_instance(rt, actor, instance_id)
    binding = _found(rt, row, binding_id)
    show = reveal and actor.may(Action.USE, row.company_id)
    return _out(rt, binding, show)


def list_bindings(rt: Runtime, actor: Principal, instance_id: str) -> list[Binding]:
    """The service's bindings, oldest first, without credentials."""
    row = visible_instance(rt, actor, instance_id)
    with rt.db.read() as s:
        found = list(
            s.scalars(
                select(ServiceBindingRow)
                .where(ServiceBindingRow.instance_id == row.id)
                .order_by(ServiceBindingRow.created_at, ServiceBindingRow.id)
            )
        )
    return [_out(rt, b, False) for b in found]


def _unavailable(what: str, exc: DbaasError) -> BackendUnavailable:
    """The backend's refusal or absence, as the caller's error (nothing was changed)."""
    return BackendUnavailable(f"{what} failed: {exc.message}", retryable=exc.retryable)


def _usable(rt: Runtime, actor: Principal, instance_id: str, what: str) -> ServiceInstanceRow:
    row = visible_instance(rt, actor, instance_id)
    require(actor, Action.USE, row.company_id, what, lambda: _no_service(instance_id))
    return row


def _no_service(instance_id: str) -> NotFound:
    return NotFound(f"service {instance_id!r} not found", resource="service", name=instance_id)


def _found(rt: Runtime, row: ServiceInstanceRow, binding_id: str) -> ServiceBindingRow:
    with rt.db.read() as s:
        binding = s.get(ServiceBindingRow, binding_id)
    if binding is None or binding.instance_id != row.id or binding.state == _BINDING:
        raise NotFound(
            f"binding {binding_id!r} of service {row.id} not found",
            resource="binding",
            name=binding_id,
        )
    return binding


def _live(rt: Runtime, row: ServiceInstanceRow, binding_id: str) -> ServiceBindingRow:
    binding = _found(rt, row, binding_id)
    if binding.deleted_at is not None:
        raise ServiceBusy(f"binding {binding_id} is gone", state=binding.state)
    return binding


def _out(rt: Runtime, b: ServiceBindingRow, reveal: bool) -> Binding:
    credentials: dict[str, Any] | None = None
    if reveal and b.secret is not None:
        credentials = json.loads(secret_box(rt).open(b.secret))
    return Binding(
        id=b.id,
        service=b.instance_id,
        state=b.state,
        parameters=b.parameters,
        credentials=credentials,
        created_at=b.created_at,
        created_by=b.created_by,
        rotated_at=b.rotated_at,
        deleted_at=b.deleted_at,
    )

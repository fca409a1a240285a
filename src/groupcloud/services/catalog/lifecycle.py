"""Carrying a service instance through its life cycle: the backend made after the parts
are claimed, the old parts released after a plan upgrade, bindings, backend and parts
removed on deletion (``domain.service.ServiceState``).

Why it is built this way:

* **The state in the database is the plan.** Every step reads the instance's state and
  does what that state still needs; every step is idempotent (the backend's operations
  converge, releasing a released part changes nothing), so the request that started an
  operation, the API's background task and the worker's ``sweep`` may all run it, in any
  order, after any crash, and the outcome is the same.
* **Transitions are compare-and-set** (``UPDATE ... WHERE state = <expected>``): of two
  runners one moves the state, the other sees it moved. A provisioning that finishes after
  a deletion started (``provisioning -> deprovisioning`` meanwhile) deprovisions the
  backend again itself, because the deletion may have run before the database existed.
* **Failure rolls back everything**: a backend that refuses, or stays unreachable past
  ``service_timeout_s``, fails the instance with the reason, and every part is released
  (capacity and quota back) and the backend removed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from groupcloud.db import claims
from groupcloud.db.models import AllocationRow, ServiceBindingRow, ServiceInstanceRow
from groupcloud.dbaas import DbaasError
from groupcloud.domain.allocation import AllocationState, EndReason
from groupcloud.domain.service import ServiceState
from groupcloud.errors import BackendUnavailable
from groupcloud.services.audit import events
from groupcloud.services.catalog.backends import Backend, backend_of
from groupcloud.services.common.runtime import Runtime

__all__ = ["ACTOR", "advance", "release_parts", "sweep"]

ACTOR = "service-lifecycle"
"""Who the worker's steps are recorded as."""

log = logging.getLogger("groupcloud.services")

_LIVE = [s.value for s in AllocationState if not s.finished]
_BUSY = [s.value for s in ServiceState if s.busy]


def advance(rt: Runtime, instance_id: str, actor: str = ACTOR) -> ServiceState | None:
    """Carry the instance's operation as far as it goes now; its state afterwards (None:
    no such instance). An unreachable backend leaves it where it is, with the error in
    ``failure``, for the next attempt."""
    row = _load(rt, instance_id)
    if row is None:
        return None
    state = ServiceState(row.state)
    if state is ServiceState.PROVISIONING:
        _provision(rt, row, actor)
    elif state is ServiceState.UPDATING:
        _finish_update(rt, row, actor)
    elif state is ServiceState.DEPROVISIONING:
        _deprovision(rt, row, actor)
    after = _load(rt, instance_id)
    return None if after is None else ServiceState(after.state)


def sweep(rt: Runtime, now: datetime, *, limit: int = 100) -> int:
    """Advance the busy instances no one has moved for ``service_retry_s`` (their process
    died, or their backend was unreachable); how many changed state. The worker's round
    calls it, so an operation always finishes."""
    cutoff = now - timedelta(seconds=rt.settings.service_retry_s)
    with rt.db.read() as s:
        due = list(
            s.execute(
                select(ServiceInstanceRow.id, ServiceInstanceRow.state)
                .where(
                    ServiceInstanceRow.state.in_(_BUSY),
                    or_(
                        ServiceInstanceRow.updated_at.is_(None),
                        ServiceInstanceRow.updated_at <= cutoff,
                    ),
                )
                .order_by(ServiceInstanceRow.updated_at)
                .limit(limit)
            ).all()
        )
    changed = 0
    for instance_id, state in due:
        try:
            after = advance(rt, instance_id)
        except Exception:  # one instance's trouble must not stop the others
            log.exception("service %s: advancing failed", instance_id)
            continue
        changed += after is not None and after.value != state
    return changed


def release_parts(rt: Runtime, instance_id: str, actor: str, *, below: int | None = None) -> int:
    """End the instance's live parts (of generations below ``below``, or all); how many
    gave capacity back. Idempotent: a part already ended is left alone."""
    query = select(AllocationRow.id).where(
        AllocationRow.service_instance_id == instance_id, AllocationRow.state.in_(_LIVE)
    )
    if below is not None:
        query = query.where(func.coalesce(AllocationRow.service_generation, 0) < below)
    with rt.db.read() as s:
        ids = list(s.scalars(query.order_by(AllocationRow.seq)))
    ended = 0
    for allocation_id in ids:

        def attempt(allocation_id: str = allocation_id) -> claims.HostChanges | None:
            with rt.db.write() as s:
                return claims.end(
                    s.connection(),
                    actor,
                    allocation_id,
                    EndReason.RELEASED,
                    quarantine_s=rt.settings.ip_quarantine_s,
                    now=rt.clock(),
                )

        deltas = rt.db.retrying(attempt)
        if deltas is not None:
            rt.index.apply(deltas)
            ended += 1
    if ended:
        rt.wakeup.set()  # queued requests may fit now
    return ended


# -- the steps ---------------------------------------------------------------------


def _provision(rt: Runtime, row: ServiceInstanceRow, actor: str) -> None:
    if row.backend is None:
        _move(rt, row, ServiceState.PROVISIONING, ServiceState.READY, actor, "service.ready")
        return
    try:
        backend = backend_of(rt, row.backend)
    except (BackendUnavailable, DbaasError) as exc:  # the configuration changed
        _not_provisioned(rt, row, actor, _message(exc), retryable=True, backend=None)
        return
    try:
        backend.provision(row.id)
    except DbaasError as exc:
        _not_provisioned(rt, row, actor, exc.message, exc.retryable, backend)
        return
    if not _move(rt, row, ServiceState.PROVISIONING, ServiceState.READY, actor, "service.ready"):
        again = _load(rt, row.id)
        if again is not None and again.state != ServiceState.READY:
            # Deleted or failed meanwhile: that deprovision may have run before this
            # provision made the database, so remove it here as well.
            _quietly(backend, row.id)


def _not_provisioned(
    rt: Runtime,
    row: ServiceInstanceRow,
    actor: str,
    error: str,
    retryable: bool,
    backend: Backend | None,
) -> None:
    """Retry later while the backend may come back before the deadline; otherwise fail
    the instance and roll back every part (and whatever the backend made)."""
    deadline = row.created_at + timedelta(seconds=rt.settings.service_timeout_s)
    if retryable and rt.clock() < deadline:
        _note(rt, row.id, ServiceState.PROVISIONING, f"provision: {error} (retrying)")
        return
    if _move(rt, row, ServiceState.PROVISIONING, ServiceState.FAILED, actor, "service.failed",
             {"reason": error}, failure=error):  # fmt: skip
        parts = release_parts(rt, row.id, actor)
        log.warning("service %s failed (%s); %d parts released", row.id, error, parts)
        if backend is not None:
            _quietly(backend, row.id)


def _finish_update(rt: Runtime, row: ServiceInstanceRow, actor: str) -> None:
    """The new generation's parts are claimed (with the new plan, in one transaction):
    release the older ones, then the instance is ready on its new plan."""
    released = release_parts(rt, row.id, actor, below=row.generation)
    _move(rt, row, ServiceState.UPDATING, ServiceState.READY, actor, "service.updated",
          {"plan": row.plan, "parameters": row.parameters, "released_parts": released})  # fmt: skip


def _deprovision(rt: Runtime, row: ServiceInstanceRow, actor: str) -> None:
    """Bindings' logins, then the backend, then the parts; the instance is gone last, so a
    step that cannot run now (backend unreachable) is retried with nothing lost track of."""
    if row.backend is not None:
        try:
            backend = backend_of(rt, row.backend)
            for binding_id in _live_bindings(rt, row.id):
                backend.unbind(row.id, binding_id)
            backend.deprovision(row.id)
        except (BackendUnavailable, DbaasError) as exc:
            _note(
                rt, row.id, ServiceState.DEPROVISIONING, f"deprovision: {_message(exc)} (retrying)"
            )
            return
    now = rt.clock()
    with rt.db.write() as s:
        s.execute(
            update(ServiceBindingRow)
            .where(ServiceBindingRow.instance_id == row.id, ServiceBindingRow.deleted_at.is_(None))
            .values(state="gone", secret=None, deleted_at=now)
        )
    parts = release_parts(rt, row.id, actor)
    _move(rt, row, ServiceState.DEPROVISIONING, ServiceState.GONE, actor, "service.deleted",
          {"parts_released": parts}, deleted_at=now)  # fmt: skip


# -- helpers -----------------------------------------------------------------------


def _load(rt: Runtime, instance_id: str) -> ServiceInstanceRow | None:
    with rt.db.read() as s:
        return s.get(ServiceInstanceRow, instance_id)


def _live_bindings(rt: Runtime, instance_id: str) -> list[str]:
    with rt.db.read() as s:
        return list(
            s.scalars(
                select(ServiceBindingRow.id).where(
                    ServiceBindingRow.instance_id == instance_id,
                    ServiceBindingRow.deleted_at.is_(None),
                )
            )
        )


def _move(
    rt: Runtime,
    row: ServiceInstanceRow,
    was: ServiceState,
    to: ServiceState,
    actor: str,
    kind: str,
    data: dict[str, object] | None = None,
    **values: object,
) -> bool:
    """Compare-and-set ``was -> to`` with an event; False if another runner moved it."""
    now = rt.clock()
    with rt.db.write() as s:
        done = s.execute(
            update(ServiceInstanceRow)
            .where(ServiceInstanceRow.id == row.id, ServiceInstanceRow.state == was.value)
            .values(state=to.value, updated_at=now, **values)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return False
        events.record(s, actor, kind, f"service/{row.id}", row.company_id, data or {}, at=now)
    return True


def _note(rt: Runtime, instance_id: str, state: ServiceState, error: str) -> None:
    """Keep the state, say why it has not moved, and start the retry clock again."""
    with rt.db.write() as s:
        s.execute(
            update(ServiceInstanceRow)
            .where(ServiceInstanceRow.id == instance_id, ServiceInstanceRow.state == state.value)
            .values(failure=error, updated_at=rt.clock())
        )


def _message(exc: BackendUnavailable | DbaasError) -> str:
    return exc.detail if isinstance(exc, BackendUnavailable) else exc.message


def _quietly(backend: Backend, instance_id: str) -> None:
    """Remove the backend's objects where a failure has already been recorded; if the
    server is unreachable they stay until the instance is deleted (which retries)."""
    try:
        backend.deprovision(instance_id)
    except DbaasError as exc:
        log.warning("service %s: backend not removed yet: %s", instance_id, exc.message)

"""Service instances: a template's plan with parameters, claimed on the group cloud as
one gang (every part an allocation, all claimed in one transaction or none), upgraded to
another plan (the new plan's parts claimed as a gang, then the old ones released), shown
and deleted (bindings, backend and every part removed: capacity and quota back).

The instance row is written in the gang's transaction, before its parts (they point to
it), so an instance never exists without its parts nor parts without their instance.
What happens after the claim (the backend's database, releasing old parts, deletion) is
``lifecycle``'s: these use cases start it and, with ``wait``, carry it through.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from groupcloud.catalog.templates import ParameterError, Resolution, Template, resolve
from groupcloud.db import audit
from groupcloud.db.engine import Database
from groupcloud.db.models import (
    AllocationRow,
    CompanyRow,
    ProjectRow,
    ServiceBindingRow,
    ServiceInstanceRow,
    table_of,
)
from groupcloud.db.prepared import Cursor
from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.policy import Action
from groupcloud.domain.service import Operation, ServiceState
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    AlreadyExists,
    InvalidInput,
    NeverFits,
    NoCapacity,
    NotFound,
    QuotaExceeded,
    ServiceBusy,
)
from groupcloud.schemas.catalog import ServiceCreate, ServiceInstance, ServicePart, ServiceUpdate
from groupcloud.schemas.compute import AllocationCreate
from groupcloud.services.audit import events
from groupcloud.services.catalog import lifecycle
from groupcloud.services.catalog.backends import backend_of, secret_box
from groupcloud.services.catalog.templates import find_template
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations
from groupcloud.services.tenancy.access import (
    company_by_slug,
    owner_slug,
    require,
    usable_company,
)

__all__ = [
    "create_service",
    "delete_service",
    "get_service",
    "list_services",
    "update_service",
    "visible_instance",
]

_INSTANCES = table_of(ServiceInstanceRow)
_INSERT = insert(_INSTANCES).inline()
_COLUMNS = (
    "id",
    "company_id",
    "project_id",
    "template",
    "version",
    "plan",
    "parameters",
    "state",
    "created_at",
    "created_by",
    "deleted_at",
    "generation",
    "backend",
    "operation",
    "failure",
    "updated_at",
)

_LIVE = frozenset(s.value for s in AllocationState if not s.finished)

_SWITCH = update(_INSTANCES).where(
    _INSTANCES.c.id == bindparam("b_id"),
    _INSTANCES.c.state == bindparam("b_state"),
    _INSTANCES.c.generation == bindparam("b_generation"),
)
"""A plan upgrade's compare-and-set, in the new parts' transaction."""
_SWITCH_COLUMNS = ("state", "operation", "plan", "parameters", "generation", "failure",
                   "updated_at")  # fmt: skip


def create_service(
    rt: Runtime,
    actor: Principal,
    body: ServiceCreate,
    *,
    instance_id: str | None = None,
    wait: bool = True,
) -> ServiceInstance:
    """Resolve the plan (parameters validated, defaults filled) and claim its parts as
    one gang; refused as a whole with what was short. A template with a backend is
    ``provisioning`` until its database exists: with ``wait`` that happens here,
    otherwise the caller runs ``lifecycle.advance`` (the API: after answering).
    ``instance_id``: the id a platform chose (Open Service Broker); a new one if None."""
    company = owner_slug(actor, body.company)
    company_id = usable_company(rt, actor, company, what="creating services")
    project_id = rt.names.project(company_id, body.project)
    if project_id is None:
        raise NotFound(
            f"project {body.project!r} not found in company {company!r}",
            resource="project",
            name=body.project,
        )
    with rt.db.read() as s:
        template, _ = find_template(s, body.template, body.version)
    resolved = _resolved(template, body.plan, body.parameters)
    if template.backend is not None:  # refused before anything is claimed
        backend_of(rt, template.backend)
        secret_box(rt)
    instance_id = instance_id or str(uuid.uuid4())
    now = rt.clock()
    state = ServiceState.PROVISIONING if template.backend else ServiceState.READY

    def instance_row(cur: Cursor, db: Database) -> None:
        cur.run(
            db.prepare(_INSERT, _COLUMNS),
            {
                "id": instance_id,
                "company_id": company_id,
                "project_id": project_id,
                "template": template.name,
                "version": template.version,
                "plan": resolved.plan,
                "parameters": resolved.parameters,
                "state": state.value,
                "created_at": now,
                "created_by": actor.actor,
                "deleted_at": None,
                "generation": 0,
                "backend": template.backend,
                "operation": Operation.PROVISION.value,
                "failure": None,
                "updated_at": now,
            },
        )
        _audit(cur, db, actor, "service.created", instance_id, company_id, template, resolved, now)

    parts = _parts(company, body, resolved, instance_id, generation=0)
    try:
        allocations.claim_gang(rt, actor, parts, before=instance_row)
    except IntegrityError:  # a concurrent create with the same chosen id won
        raise AlreadyExists(
            f"service {instance_id!r} already exists", resource="service", name=instance_id
        ) from None
    if wait and state.busy:
        lifecycle.advance(rt, instance_id, actor.actor)
    return get_service(rt, actor, instance_id)


def update_service(
    rt: Runtime, actor: Principal, instance_id: str, body: ServiceUpdate, *, wait: bool = True
) -> ServiceInstance:
    """Move a ready instance to another plan or parameters (merged over the current
    ones), re-admitted against quota: the new parts are claimed as one gang while the old
    ones still run (make before break: the company's free quota and the hosts must take
    the new plan beside the old), then the old ones are released. Refused as a whole,
    the instance stays as it was."""
    row = _usable(rt, actor, instance_id, "updating services")
    if row.state != ServiceState.READY:
        raise ServiceBusy(
            f"service {instance_id} is {row.state}; only a ready service can be updated",
            state=row.state,
        )
    with rt.db.read() as s:
        template, _ = find_template(s, row.template, row.version)
    plan = body.plan or row.plan
    resolved = _resolved(template, plan, {**row.parameters, **body.parameters})
    if (resolved.plan, resolved.parameters) == (row.plan, row.parameters):
        return get_service(rt, actor, instance_id)  # nothing to change
    generation, company = row.generation + 1, _company_slug(rt, row.company_id)
    project = _project_slug(rt, row.project_id)
    now = rt.clock()

    def switch(cur: Cursor, db: Database) -> None:
        moved = cur.run(
            db.prepare(_SWITCH, _SWITCH_COLUMNS),
            {
                "b_id": instance_id,
                "b_state": ServiceState.READY.value,
                "b_generation": row.generation,
                "state": ServiceState.UPDATING.value,
                "operation": Operation.UPDATE.value,
                "plan": resolved.plan,
                "parameters": resolved.parameters,
                "generation": generation,
                "failure": None,
                "updated_at": now,
            },
        )
        if moved != 1:  # a concurrent update or deletion got there first
            raise ServiceBusy(f"service {instance_id} changed meanwhile; try again")
        _audit(cur, db, actor, "service.updating", instance_id, row.company_id, template,
               resolved, now)  # fmt: skip

    ask = ServiceCreate(
        company=company,
        project=project,
        template=row.template,
        plan=resolved.plan,
        parameters=resolved.parameters,
        data_class=body.data_class,
        system_type=body.system_type,
    )
    try:
        allocations.claim_gang(
            rt, actor, _parts(company, ask, resolved, instance_id, generation), before=switch
        )
    except (QuotaExceeded, NoCapacity, NeverFits):
        now_row = visible_instance(rt, actor, instance_id)
        if (now_row.state, now_row.generation) != (row.state, row.generation):
            # A concurrent update or deletion moved it: that, not room, refused this one
            # (its parts took the hosts this gang's anti-affinity would have used).
            raise ServiceBusy(f"service {instance_id} changed meanwhile; try again",
                              state=now_row.state) from None  # fmt: skip
        raise
    if wait:
        lifecycle.advance(rt, instance_id, actor.actor)
    return get_service(rt, actor, instance_id)


def visible_instance(rt: Runtime, actor: Principal, instance_id: str) -> ServiceInstanceRow:
    """The instance if the caller may see it; NotFound otherwise (another company's
    instance is not found, never forbidden)."""
    with rt.db.read() as s:
        row = s.get(ServiceInstanceRow, instance_id)
    if row is None or not actor.can_see(row.company_id):
        raise _not_found(instance_id)
    return row


def _usable(rt: Runtime, actor: Principal, instance_id: str, what: str) -> ServiceInstanceRow:
    row = visible_instance(rt, actor, instance_id)
    require(actor, Action.USE, row.company_id, what, lambda: _not_found(instance_id))
    return row


def _not_found(instance_id: str) -> NotFound:
    return NotFound(f"service {instance_id!r} not found", resource="service", name=instance_id)


def get_service(rt: Runtime, actor: Principal, instance_id: str) -> ServiceInstance:
    row = visible_instance(rt, actor, instance_id)
    return _outs(rt, [row])[0]


def list_services(
    rt: Runtime, actor: Principal, *, company: str | None = None, limit: int = 100
) -> list[ServiceInstance]:
    """A company's live services, newest first (company roles: their own company's)."""
    query = select(ServiceInstanceRow).where(ServiceInstanceRow.deleted_at.is_(None))
    with rt.db.read() as s:
        if company:  # another company's is not found for company roles
            query = query.where(
                ServiceInstanceRow.company_id == company_by_slug(s, actor, company).id
            )
        elif not actor.sees_all:
            query = query.where(ServiceInstanceRow.company_id == actor.company_id)
        rows = list(s.scalars(query.order_by(ServiceInstanceRow.created_at.desc()).limit(limit)))
    return _outs(rt, [r for r in rows if actor.can_see(r.company_id)])


def delete_service(
    rt: Runtime, actor: Principal, instance_id: str, *, wait: bool = True
) -> ServiceInstance:
    """Start deprovisioning (bindings, backend, every part: capacity and quota back); with
    ``wait``, carry it through here. Idempotent: a gone instance is returned as it is, a
    deprovisioning one is carried on."""
    row = _usable(rt, actor, instance_id, "deleting services")
    if row.state not in (ServiceState.GONE, ServiceState.DEPROVISIONING):
        now = rt.clock()
        with rt.db.write() as s:
            moved = s.execute(
                update(ServiceInstanceRow)
                .where(
                    ServiceInstanceRow.id == instance_id,
                    ServiceInstanceRow.state.not_in(
                        [ServiceState.GONE.value, ServiceState.DEPROVISIONING.value]
                    ),
                )
                .values(
                    state=ServiceState.DEPROVISIONING.value,
                    operation=Operation.DEPROVISION.value,
                    updated_at=now,
                )
            )
            if moved.rowcount:  # type: ignore[attr-defined]
                events.record(s, actor.actor, "service.deprovisioning", f"service/{instance_id}",
                              row.company_id, {"was": row.state}, at=now)  # fmt: skip
    if wait:
        lifecycle.advance(rt, instance_id, actor.actor)
    return get_service(rt, actor, instance_id)


def _resolved(template: Template, plan: str, parameters: dict[str, Any]) -> Resolution:
    try:
        return resolve(template, plan, parameters)
    except ParameterError as exc:
        raise InvalidInput(str(exc), errors=exc.errors) from None


def _parts(
    company: str,
    body: ServiceCreate,
    resolved: Resolution,
    instance_id: str,
    generation: int,
) -> list[allocations.GangPart]:
    # Apart from each other, not from the parts of the plan they replace (those go).
    group = f"svc-{instance_id}" + (f"-g{generation}" if generation else "")
    return [
        allocations.GangPart(
            AllocationCreate(
                company=company,
                project=body.project,
                resources=p.resources,
                count=p.count,
                gpu_share=p.gpu_share,
                gpu_models=list(p.gpu_models),
                anti_affinity_group=group if p.anti_affinity else None,
                data_class=body.data_class,
                system_type=body.system_type,
                queue=False,
            ),
            {
                "service_instance_id": instance_id,
                "service_part": p.name,
                "service_generation": generation,
            },
        )
        for p in resolved.parts
    ]


def _audit(
    cur: Cursor,
    db: Database,
    actor: Principal,
    kind: str,
    instance_id: str,
    company_id: int,
    template: Template,
    resolved: Resolution,
    now: Any,
) -> None:
    cur.run(
        db.prepare(audit.INSERT, audit.COLUMNS),
        audit.row(
            actor.actor,
            kind,
            f"service/{instance_id}",
            company_id,
            {
                "template": template.name,
                "version": template.version,
                "plan": resolved.plan,
                "parameters": resolved.parameters,
                "demand": resolved.demand,
            },
            at=now,
        ),
    )


def _company_slug(rt: Runtime, company_id: int) -> str:
    with rt.db.read() as s:
        return str(s.scalar(select(CompanyRow.slug).where(CompanyRow.id == company_id)))


def _project_slug(rt: Runtime, project_id: int) -> str:
    with rt.db.read() as s:
        return str(s.scalar(select(ProjectRow.slug).where(ProjectRow.id == project_id)))


def _outs(rt: Runtime, rows: list[ServiceInstanceRow]) -> list[ServiceInstance]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    with rt.db.read() as s:
        names = dict(
            s.execute(
                select(CompanyRow.id, CompanyRow.slug).where(
                    CompanyRow.id.in_({r.company_id for r in rows})
                )
            ).all()
        )
        projects = dict(
            s.execute(
                select(ProjectRow.id, ProjectRow.slug).where(
                    ProjectRow.id.in_({r.project_id for r in rows})
                )
            ).all()
        )
        current = {r.id: r.generation for r in rows}
        alloc_rows = [
            a
            for a in s.execute(
                select(
                    AllocationRow.id,
                    AllocationRow.service_instance_id,
                    AllocationRow.service_part,
                    func.coalesce(AllocationRow.service_generation, 0),
                    AllocationRow.state,
                )
                .where(AllocationRow.service_instance_id.in_(ids))
                .order_by(AllocationRow.seq)
            ).all()
            # the current plan's parts, and an earlier plan's while they are released
            if a[3] == current[str(a[1])] or a[4] in _LIVE
        ]
        views = {a.id: a for a in allocations.views_of(s, [r[0] for r in alloc_rows])}
        bound = dict(
            s.execute(
                select(ServiceBindingRow.instance_id, func.count())
                .where(
                    ServiceBindingRow.instance_id.in_(ids), ServiceBindingRow.deleted_at.is_(None)
                )
                .group_by(ServiceBindingRow.instance_id)
            ).all()
        )
    by_instance: dict[str, list[ServicePart]] = {}
    for alloc_id, inst, part, generation, _ in alloc_rows:
        a = views[alloc_id]
        by_instance.setdefault(str(inst), []).append(
            ServicePart(
                name=str(part),
                allocation=alloc_id,
                generation=int(generation),
                state=a.state,
                count=a.count,
                resources=a.resources,
                hosts=sorted({u.host for u in a.units}),
            )
        )
    return [
        ServiceInstance(
            id=r.id,
            company=names[r.company_id],
            project=projects[r.project_id],
            template=r.template,
            version=r.version,
            plan=r.plan,
            parameters=r.parameters,
            state=ServiceState(r.state),
            operation=r.operation,
            failure=r.failure,
            backend=r.backend,
            generation=r.generation,
            bindings=int(bound.get(r.id, 0)),
            parts=by_instance.get(r.id, []),
            created_at=r.created_at,
            created_by=r.created_by,
            updated_at=r.updated_at,
            deleted_at=r.deleted_at,
        )
        for r in rows
    ]

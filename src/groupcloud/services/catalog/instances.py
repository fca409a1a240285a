"""Service instances: a template's plan with parameters, claimed on the group cloud as
one gang (every part an allocation, all claimed in one transaction or none), listed,
shown and deleted (every part released: capacity and quota back).

The instance row is written in the gang's transaction, before its parts (they point to
it), so an instance never exists without its parts nor parts without their instance.
Compute-only services are ``ready`` when created; the real services behind templates
(``backend: postgresql``) are wired in a later step of issue #16.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select, update

from groupcloud.catalog.templates import ParameterError, resolve
from groupcloud.db import audit
from groupcloud.db.engine import Database
from groupcloud.db.models import (
    AllocationRow,
    CompanyRow,
    ProjectRow,
    ServiceInstanceRow,
    table_of,
)
from groupcloud.db.prepared import Cursor
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput, NotFound
from groupcloud.schemas.catalog import ServiceCreate, ServiceInstance, ServicePart
from groupcloud.schemas.compute import AllocationCreate
from groupcloud.services.audit import events
from groupcloud.services.catalog.templates import find_template
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations
from groupcloud.services.tenancy.access import (
    company_by_slug,
    owner_slug,
    require,
    usable_company,
)

__all__ = ["create_service", "delete_service", "get_service", "list_services"]

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
)


def create_service(rt: Runtime, actor: Principal, body: ServiceCreate) -> ServiceInstance:
    """Resolve the plan (parameters validated, defaults filled) and claim its parts as
    one gang; refused as a whole with what was short."""
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
    try:
        resolved = resolve(template, body.plan, body.parameters)
    except ParameterError as exc:
        raise InvalidInput(str(exc), errors=exc.errors) from None
    instance_id = str(uuid.uuid4())
    parts = [
        allocations.GangPart(
            AllocationCreate(
                company=company,
                project=body.project,
                resources=p.resources,
                count=p.count,
                gpu_share=p.gpu_share,
                gpu_models=list(p.gpu_models),
                anti_affinity_group=f"svc-{instance_id}" if p.anti_affinity else None,
                data_class=body.data_class,
                system_type=body.system_type,
                queue=False,
            ),
            {"service_instance_id": instance_id, "service_part": p.name},
        )
        for p in resolved.parts
    ]
    now = rt.clock()

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
                "state": "ready",
                "created_at": now,
                "created_by": actor.actor,
                "deleted_at": None,
            },
        )
        cur.run(
            db.prepare(audit.INSERT, audit.COLUMNS),
            audit.row(
                actor.actor,
                "service.created",
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

    allocations.claim_gang(rt, actor, parts, before=instance_row)
    return get_service(rt, actor, instance_id)


def _visible(rt: Runtime, actor: Principal, instance_id: str) -> ServiceInstanceRow:
    with rt.db.read() as s:
        row = s.get(ServiceInstanceRow, instance_id)
    if row is None or not actor.can_see(row.company_id):
        raise NotFound(f"service {instance_id!r} not found", resource="service", name=instance_id)
    return row


def get_service(rt: Runtime, actor: Principal, instance_id: str) -> ServiceInstance:
    row = _visible(rt, actor, instance_id)
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


def delete_service(rt: Runtime, actor: Principal, instance_id: str) -> ServiceInstance:
    """Release every part (capacity and quota back) and mark the instance gone;
    idempotent (a gone instance is returned as it is)."""
    row = _visible(rt, actor, instance_id)
    require(
        actor,
        Action.USE,
        row.company_id,
        "deleting services",
        lambda: NotFound(
            f"service {instance_id!r} not found", resource="service", name=instance_id
        ),
    )
    if row.deleted_at is None:
        with rt.db.read() as s:
            parts = list(
                s.scalars(
                    select(AllocationRow.id).where(AllocationRow.service_instance_id == instance_id)
                )
            )
        for allocation_id in parts:
            allocations.end(rt, actor, allocation_id)
        now = rt.clock()
        with rt.db.write() as s:
            done = s.execute(
                update(ServiceInstanceRow)
                .where(
                    ServiceInstanceRow.id == instance_id, ServiceInstanceRow.deleted_at.is_(None)
                )
                .values(state="gone", deleted_at=now)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                events.record(
                    s,
                    actor.actor,
                    "service.deleted",
                    f"service/{instance_id}",
                    row.company_id,
                    {"parts": len(parts)},
                    at=now,
                )
    return get_service(rt, actor, instance_id)


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
        alloc_rows = s.execute(
            select(AllocationRow.id, AllocationRow.service_instance_id, AllocationRow.service_part)
            .where(AllocationRow.service_instance_id.in_(ids))
            .order_by(AllocationRow.seq)
        ).all()
        views = {a.id: a for a in allocations.views_of(s, [r[0] for r in alloc_rows])}
    by_instance: dict[str, list[ServicePart]] = {}
    for alloc_id, inst, part in alloc_rows:
        a = views[alloc_id]
        by_instance.setdefault(str(inst), []).append(
            ServicePart(
                name=str(part),
                allocation=alloc_id,
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
            state=r.state,
            parts=by_instance.get(r.id, []),
            created_at=r.created_at,
            created_by=r.created_by,
            deleted_at=r.deleted_at,
        )
        for r in rows
    ]

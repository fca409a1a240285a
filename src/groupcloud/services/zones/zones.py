"""Zones: create and list the placement domains (shared pool, a company's local zone,
an external region)."""

from __future__ import annotations

from sqlalchemy import select

from groupcloud.db.models import CompanyRow, ZoneRow
from groupcloud.db.unique import add_unique
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput
from groupcloud.schemas.zones import Zone, ZoneCreate
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require_group_admin

__all__ = ["create_zone", "list_zones"]


def create_zone(rt: Runtime, actor: Principal, body: ZoneCreate) -> Zone:
    require_group_admin(actor, "creating a zone")
    if (body.kind is ZoneKind.LOCAL) != (body.owner_company is not None):
        raise InvalidInput(
            "a local zone needs owner_company; shared and external zones have none",
            errors=[{"field": "owner_company", "message": "required exactly for kind=local"}],
        )
    now = rt.clock()
    with rt.db.write() as s:
        owner_id = company_by_slug(s, actor, body.owner_company).id if body.owner_company else None
        zone = ZoneRow(
            name=body.name,
            kind=body.kind.value,
            owner_company_id=owner_id,
            description=body.description,
            created_at=now,
        )
        add_unique(s, zone, f"zone {body.name!r}", name=body.name)
        events.record(
            s,
            actor.actor,
            "zone.created",
            f"zone/{body.name}",
            data={"kind": body.kind.value},
            at=now,
        )
    return Zone(
        name=zone.name,
        kind=ZoneKind(zone.kind),
        owner_company=body.owner_company,
        description=zone.description,
        created_at=zone.created_at,
    )


def list_zones(rt: Runtime, actor: Principal) -> list[Zone]:
    """Zones are few; listed whole (every role may read them to place allocations)."""
    with rt.db.read() as s:
        rows = s.execute(
            select(ZoneRow, CompanyRow.slug)
            .outerjoin(CompanyRow, CompanyRow.id == ZoneRow.owner_company_id)
            .order_by(ZoneRow.name)
        ).all()
    return [
        Zone(
            name=z.name,
            kind=ZoneKind(z.kind),
            owner_company=owner,
            description=z.description,
            created_at=z.created_at,
        )
        for z, owner in rows
    ]

"""Zones: create, change, show and list the placement domains (shared pool, a company's
local zone, an external region) with the attributes the placement rules for regulated
data read (country, network separation, certifications, data classes, approvals).

A change bumps the pool generation in its transaction, so every process's capacity
index, which carries the zones' facts, reloads them (within ``GENERATION_CHECK_S``);
allocations already placed stay where they are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from groupcloud.db.models import CompanyRow, PoolStateRow, ZoneRow
from groupcloud.db.unique import add_unique
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import Sensitivity
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput, NotFound
from groupcloud.schemas.zones import Zone, ZoneCreate, ZoneUpdate
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require_group_admin

__all__ = ["create_zone", "get_zone", "list_zones", "update_zone"]

_ATTRIBUTES = (
    "country",
    "internet_separated",
    "certifications",
    "data_classes",
    "approved",
    "approved_for_d3",
)


def create_zone(rt: Runtime, actor: Principal, body: ZoneCreate) -> Zone:
    require_group_admin(actor, "creating a zone")
    if (body.kind is ZoneKind.LOCAL) != (body.owner_company is not None):
        raise InvalidInput(
            "a local zone needs owner_company; shared and external zones have none",
            errors=[{"field": "owner_company", "message": "required exactly for kind=local"}],
        )
    _check_approvals(body.kind, body.approved, body.approved_for_d3)
    now = rt.clock()
    with rt.db.write() as s:
        owner_id = company_by_slug(s, actor, body.owner_company).id if body.owner_company else None
        zone = ZoneRow(
            name=body.name,
            kind=body.kind.value,
            owner_company_id=owner_id,
            description=body.description,
            created_at=now,
            country=body.country,
            internet_separated=body.internet_separated,
            certifications=body.certifications,
            data_classes=[c.value for c in body.data_classes],
            approved=body.approved,
            approved_for_d3=body.approved_for_d3,
        )
        add_unique(s, zone, f"zone {body.name!r}", name=body.name)
        _bump_generation(s)
        events.record(
            s,
            actor.actor,
            "zone.created",
            f"zone/{body.name}",
            data={"kind": body.kind.value, **_attributes(zone)},
            at=now,
        )
    rt.index.invalidate()
    return _out(zone, body.owner_company)


def update_zone(rt: Runtime, actor: Principal, name: str, body: ZoneUpdate) -> Zone:
    """Change a zone's attributes (group admins). New placements follow them at once in
    this process, within ``GENERATION_CHECK_S`` in the others."""
    require_group_admin(actor, "changing a zone")
    changes = body.model_dump(exclude_unset=True, mode="json")
    for key in ("description", *_ATTRIBUTES):
        if key != "country" and key in changes and changes[key] is None:
            raise InvalidInput(
                f"{key} cannot be null (leave it out to keep it)",
                errors=[{"field": key, "message": "null"}],
            )
    with rt.db.write() as s:
        zone = s.scalar(select(ZoneRow).where(ZoneRow.name == name).with_for_update())
        if zone is None:
            raise _not_found(name)
        for key, value in changes.items():
            setattr(zone, key, value)
        _check_approvals(ZoneKind(zone.kind), zone.approved, zone.approved_for_d3)
        _bump_generation(s)
        events.record(s, actor.actor, "zone.updated", f"zone/{name}", data=changes, at=rt.clock())
        s.flush()
        owner = _owner(s, zone)
    rt.index.invalidate()
    return _out(zone, owner)


def get_zone(rt: Runtime, actor: Principal, name: str) -> Zone:
    """Every role may read zones (to choose where to place)."""
    with rt.db.read() as s:
        zone = s.scalar(select(ZoneRow).where(ZoneRow.name == name))
        if zone is None:
            raise _not_found(name)
        return _out(zone, _owner(s, zone))


def list_zones(rt: Runtime, actor: Principal) -> list[Zone]:
    """Zones are few; listed whole (every role may read them to place allocations)."""
    with rt.db.read() as s:
        rows = s.execute(
            select(ZoneRow, CompanyRow.slug)
            .outerjoin(CompanyRow, CompanyRow.id == ZoneRow.owner_company_id)
            .order_by(ZoneRow.name)
        ).all()
    return [_out(z, owner) for z, owner in rows]


def _check_approvals(kind: ZoneKind, approved: bool, approved_for_d3: bool) -> None:
    """Approvals are the group's decisions on external zones; private zones count as
    approved, so a flag on them would only mislead."""
    if kind is not ZoneKind.EXTERNAL and (approved or approved_for_d3):
        field = "approved" if approved else "approved_for_d3"
        raise InvalidInput(
            f"{field} applies to external zones only (a {kind.value} zone counts as approved)",
            errors=[{"field": field, "message": "external zones only"}],
        )
    if approved_for_d3 and not approved:
        raise InvalidInput(
            "approved_for_d3 needs approved (a zone approved for D3 is approved)",
            errors=[{"field": "approved_for_d3", "message": "needs approved=true"}],
        )


def _bump_generation(s: Session) -> None:
    """Other processes' indexes carry the zones' facts: make them reload."""
    s.execute(
        update(PoolStateRow)
        .where(PoolStateRow.id == 1)
        .values(generation=PoolStateRow.generation + 1)
        .execution_options(synchronize_session=False)
    )


def _owner(s: Session, zone: ZoneRow) -> str | None:
    if zone.owner_company_id is None:
        return None
    return s.scalar(select(CompanyRow.slug).where(CompanyRow.id == zone.owner_company_id))


def _attributes(zone: ZoneRow) -> dict[str, Any]:
    return {key: getattr(zone, key) for key in _ATTRIBUTES}


def _not_found(name: str) -> NotFound:
    return NotFound(f"zone {name!r} not found", resource="zone", name=name)


def _out(zone: ZoneRow, owner: str | None) -> Zone:
    return Zone(
        name=zone.name,
        kind=ZoneKind(zone.kind),
        owner_company=owner,
        description=zone.description,
        country=zone.country,
        internet_separated=zone.internet_separated,
        certifications=list(zone.certifications),
        data_classes=[Sensitivity(c) for c in zone.data_classes],
        approved=zone.approved,
        approved_for_d3=zone.approved_for_d3,
        created_at=zone.created_at,
    )

"""Zones: create, change, show and list the placement domains (shared pool, a company's
local zone, an external region) with the attributes the placement rules for regulated
data read (country, network separation, certifications, data classes, approvals).

A change bumps the pool generation in its transaction, so every process's capacity
index, which carries the zones' facts, reloads them (within ``GENERATION_CHECK_S``);
allocations already placed stay where they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from groupcloud.db.models import CompanyRow, PoolStateRow, ProviderRow, ZoneBlockRow, ZoneRow
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
    "provider",
    "region",
    "lent_to",
)
_NULLABLE = frozenset({"country", "provider", "region"})
"""Attributes a PATCH may clear with null."""


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
        provider_id = _provider_id(s, body.provider)
        _check_region(body.kind, provider_id, body.region)
        _check_lending(s, actor, body.kind, body.owner_company, body.lent_to)
        zone = ZoneRow(
            lent_to=body.lent_to,
            provider_id=provider_id,
            region=body.region,
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
            data={"kind": body.kind.value, **_attributes(zone), "provider": body.provider},
            at=now,
        )
    rt.index.invalidate()
    return _out(zone, body.owner_company, body.provider)


def update_zone(rt: Runtime, actor: Principal, name: str, body: ZoneUpdate) -> Zone:
    """Change a zone's attributes (group admins). New placements follow them at once in
    this process, within ``GENERATION_CHECK_S`` in the others."""
    require_group_admin(actor, "changing a zone")
    changes = body.model_dump(exclude_unset=True, mode="json")
    for key in ("description", *_ATTRIBUTES):
        if key not in _NULLABLE and key in changes and changes[key] is None:
            raise InvalidInput(
                f"{key} cannot be null (leave it out to keep it)",
                errors=[{"field": key, "message": "null"}],
            )
    with rt.db.write() as s:
        zone = s.scalar(select(ZoneRow).where(ZoneRow.name == name).with_for_update())
        if zone is None:
            raise _not_found(name)
        for key, value in changes.items():
            if key == "provider":
                zone.provider_id = _provider_id(s, value)
            else:
                setattr(zone, key, value)
        _check_approvals(ZoneKind(zone.kind), zone.approved, zone.approved_for_d3)
        _check_region(ZoneKind(zone.kind), zone.provider_id, zone.region)
        if "lent_to" in changes:
            _check_lending(s, actor, ZoneKind(zone.kind), _owner(s, zone), zone.lent_to)
        _bump_generation(s)
        events.record(s, actor.actor, "zone.updated", f"zone/{name}", data=changes, at=rt.clock())
        s.flush()
        out = _out_of(s, zone)
    rt.index.invalidate()
    return out


def get_zone(rt: Runtime, actor: Principal, name: str) -> Zone:
    """Every role may read zones (to choose where to place)."""
    with rt.db.read() as s:
        zone = s.scalar(select(ZoneRow).where(ZoneRow.name == name))
        if zone is None:
            raise _not_found(name)
        return _out_of(s, zone)


def list_zones(rt: Runtime, actor: Principal) -> list[Zone]:
    """Zones are few; listed whole (every role may read them to place allocations)."""
    with rt.db.read() as s:
        rows = s.execute(
            select(ZoneRow, CompanyRow.slug, ProviderRow.name, ZoneBlockRow.until)
            .outerjoin(CompanyRow, CompanyRow.id == ZoneRow.owner_company_id)
            .outerjoin(ProviderRow, ProviderRow.id == ZoneRow.provider_id)
            .outerjoin(ZoneBlockRow, ZoneBlockRow.zone_id == ZoneRow.id)
            .order_by(ZoneRow.name)
        ).all()
    now = rt.clock()
    return [
        _out(z, owner, provider, until if until and until > now else None)
        for z, owner, provider, until in rows
    ]


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


def _provider_id(s: Session, name: str | None) -> int | None:
    if name is None:
        return None
    found = s.scalar(select(ProviderRow.id).where(ProviderRow.name == name))
    if found is None:
        raise NotFound(f"provider {name!r} not found", resource="provider", name=name)
    return found


def _check_lending(
    s: Session, actor: Principal, kind: ZoneKind, owner: str | None, lent_to: list[str]
) -> None:
    """Only a local zone is lent, never to its owner, and only to companies that exist."""
    if not lent_to:
        return
    if kind is not ZoneKind.LOCAL:
        raise InvalidInput(
            f"lent_to applies to local zones only (this zone is {kind.value})",
            errors=[{"field": "lent_to", "message": "local zones only"}],
        )
    if owner in lent_to:
        raise InvalidInput(
            f"{owner} owns the zone; it cannot be lent to it",
            errors=[{"field": "lent_to", "message": "the owner"}],
        )
    for slug in lent_to:
        company_by_slug(s, actor, slug)  # not_found for a company that does not exist


def _check_region(kind: ZoneKind, provider_id: int | None, region: str | None) -> None:
    """An external zone reaches instances through a provider's region: both or neither
    (an external zone without them only takes part in the rules); private zones none."""
    if kind is not ZoneKind.EXTERNAL and (provider_id is not None or region is not None):
        raise InvalidInput(
            f"provider and region apply to external zones only (this zone is {kind.value})",
            errors=[{"field": "provider", "message": "external zones only"}],
        )
    if (provider_id is None) != (region is None):
        raise InvalidInput(
            "an external zone names its provider and region together",
            errors=[{"field": "region" if region is None else "provider", "message": "missing"}],
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
    return {key: getattr(zone, key) for key in _ATTRIBUTES if key != "provider"}


def _not_found(name: str) -> NotFound:
    return NotFound(f"zone {name!r} not found", resource="zone", name=name)


def _out_of(s: Session, zone: ZoneRow) -> Zone:
    provider = (
        None
        if zone.provider_id is None
        else s.scalar(select(ProviderRow.name).where(ProviderRow.id == zone.provider_id))
    )
    block = s.get(ZoneBlockRow, zone.id)
    return _out(zone, _owner(s, zone), provider, block.until if block else None)


def _out(
    zone: ZoneRow, owner: str | None, provider: str | None, blocked_until: datetime | None = None
) -> Zone:
    return Zone(
        provider=provider,
        region=zone.region,
        lent_to=list(zone.lent_to),
        blocked_until=blocked_until,
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

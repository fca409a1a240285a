"""Offers: the cheapest instance types that would take a workload in the external zones
the placement rules allow for its data class and system type, as a tenant asks before
bursting (``GET /v1/offers``). The same rules, price book and blocks as external
placement (``external.choose``), so what is offered is what a burst would get."""

from __future__ import annotations

from sqlalchemy import select

from groupcloud.db.models import CompanyRow
from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput
from groupcloud.placement.offers import OfferRequest
from groupcloud.schemas.providers import OfferOut, Offers
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.providers import external
from groupcloud.services.providers.catalog import price_book
from groupcloud.services.zones.rules import zone_decision

__all__ = ["MAX_OFFERS", "find_offers"]

MAX_OFFERS = 100


def find_offers(
    rt: Runtime,
    actor: Principal,
    *,
    data_class: Sensitivity,
    system_type: SystemType,
    vcpu: int,
    memory_mb: int,
    gpu: int = 0,
    gpu_model: str | None = None,
    company: str | None = None,
    limit: int = 10,
) -> Offers:
    """Offers for one unit, cheapest first (``limit`` at most ``MAX_OFFERS``), and every
    external zone's verdict. ``company``: whose request (a company token's own; group
    admins may name one, else the rules see no owner)."""
    if not 1 <= limit <= MAX_OFFERS:
        raise InvalidInput(
            f"limit must be 1..{MAX_OFFERS}", errors=[{"field": "limit", "message": "range"}]
        )
    who = actor.company or company or ""
    if company and actor.company and company != actor.company:
        who = actor.company  # a company asks for itself only
    now = rt.clock()
    with rt.db.read() as s:
        zones = external.external_zones(s)
        if who and s.scalar(select(CompanyRow.id).where(CompanyRow.slug == who)) is None:
            who = ""
    decision = zone_decision(rt, who, data_class.value, system_type.value)
    kinds = {z.name: z.kind for z in rt.index.zones()}
    blocked = {z.name: z.blocked_until for z in zones if z.blocked_until and z.blocked_until > now}
    open_zones = {
        (z.provider, z.region): z
        for z in zones
        if z.name in decision.allowed and z.name not in blocked
    }
    need = OfferRequest(vcpu=vcpu, memory_mb=memory_mb, gpu=gpu, gpu_model=gpu_model)
    found = price_book(rt).cheapest(need, open_zones.keys(), limit=limit)
    verdicts = []
    for v in decision.as_data():
        if kinds.get(v["zone"]) is not ZoneKind.EXTERNAL:
            continue
        until = blocked.get(v["zone"])
        verdicts.append({**v, "blocked_until": until.isoformat() if until else None})
    return Offers(
        data_class=data_class,
        system_type=system_type,
        offers=[
            OfferOut(
                zone=open_zones[o.provider, o.region].name,
                provider=o.provider,
                region=o.region,
                instance_type=o.instance_type,
                vcpu=o.vcpu,
                memory_mb=o.memory_mb,
                gpu=o.gpu,
                gpu_model=o.gpu_model,
                price_per_hour=o.price_per_hour,
            )
            for o in found
        ],
        zones=verdicts,
    )

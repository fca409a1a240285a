"""Providers: register, change, show and remove the public clouds (or simulations of
them) that external zones reach, and the process's adapters and price book.

A provider row holds the adapter's kind and settings, never credentials (the AWS adapter
takes them from the process's environment, as boto3 does). Settings are validated by
building the adapter, so a row that is stored can always be built. Each process keeps
one adapter per provider (clients, connections) in ``Runtime.adapters``, rebuilt when
the settings it was built from change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from groupcloud.db.models import ProviderRow, ZoneRow
from groupcloud.db.unique import add_unique
from groupcloud.domain.offers import Offer
from groupcloud.domain.policy import Action
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import InvalidInput, NotFound, ProviderInUse
from groupcloud.placement.offers import OfferBook
from groupcloud.providers.base import Provider
from groupcloud.providers.prices import load_prices
from groupcloud.providers.registry import build_provider
from groupcloud.schemas.providers import (
    ProviderCreate,
    ProviderOut,
    ProviderUpdate,
)
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import require_group_admin

__all__ = [
    "adapter",
    "create_provider",
    "delete_provider",
    "get_provider",
    "list_providers",
    "offers",
    "price_book",
    "update_provider",
]

_BOOK = "prices"


def offers(rt: Runtime) -> list[Offer]:
    """Every offer of the price catalog (the operator's file, else the shipped one)."""
    return list(price_book(rt).offers)


def price_book(rt: Runtime) -> OfferBook:
    """The price catalog as the offer engine reads it, loaded once per process."""
    book = rt.adapters.get(_BOOK)
    if book is None:
        book = rt.adapters[_BOOK] = OfferBook(load_prices(rt.settings.prices))
    return cast(OfferBook, book)


def adapter(rt: Runtime, name: str, kind: str, settings: Mapping[str, Any]) -> Provider:
    """The process's adapter of provider ``name`` (built again if its settings changed)."""
    key = f"provider:{name}"
    cached = rt.adapters.get(key)
    if cached is not None:
        built_from, provider = cast(tuple[tuple[str, dict[str, Any]], Provider], cached)
        if built_from == (kind, dict(settings)):
            return provider
    provider = _build(rt, name, kind, settings)
    rt.adapters[key] = ((kind, dict(settings)), provider)
    return provider


def _build(rt: Runtime, name: str, kind: str, settings: Mapping[str, Any]) -> Provider:
    values = dict(settings)
    if kind == "simulated" and "state_path" not in values:  # shared by this host's processes
        values["state_path"] = str(_state_dir(rt) / f"{name}.sqlite")
    mine = [o for o in price_book(rt).offers if o.provider == name]
    try:
        return build_provider(kind, name, values, mine)
    except ValueError as exc:
        raise InvalidInput(
            f"provider {name!r}: {exc}", errors=[{"field": "settings", "message": str(exc)}]
        ) from exc


def _state_dir(rt: Runtime) -> Path:
    folder = rt.settings.data_dir / "providers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_settings(settings: Mapping[str, Any]) -> None:
    """Where a simulated provider keeps its state is groupcloud's choice, never a path
    sent over the API (it would write a file anywhere the server may)."""
    if "state_path" in settings:
        raise InvalidInput(
            "state_path is set by groupcloud (<data_dir>/providers/<name>.sqlite)",
            errors=[{"field": "settings.state_path", "message": "not settable"}],
        )


def create_provider(rt: Runtime, actor: Principal, body: ProviderCreate) -> ProviderOut:
    require_group_admin(actor, "adding a provider")
    _check_settings(body.settings)
    _build(rt, body.name, body.kind.value, body.settings)  # refuses bad settings
    now = rt.clock()
    with rt.db.write() as s:
        row = ProviderRow(
            name=body.name,
            kind=body.kind.value,
            settings=body.settings,
            description=body.description,
            created_at=now,
            created_by=actor.actor,
        )
        add_unique(s, row, f"provider {body.name!r}", name=body.name)
        events.record(
            s,
            actor.actor,
            "provider.created",
            f"provider/{body.name}",
            data={"kind": body.kind.value, "settings": body.settings},
            at=now,
        )
        return _out(s, row, actor)


def update_provider(rt: Runtime, actor: Principal, name: str, body: ProviderUpdate) -> ProviderOut:
    require_group_admin(actor, "changing a provider")
    changes = body.model_dump(exclude_unset=True)
    with rt.db.write() as s:
        row = _row(s, name, lock=True)
        if "settings" in changes and changes["settings"] is not None:
            _check_settings(changes["settings"])
            _build(rt, name, row.kind, changes["settings"])
            row.settings = changes["settings"]
        if changes.get("description") is not None:
            row.description = changes["description"]
        events.record(s, actor.actor, "provider.updated", f"provider/{name}", data=changes,
                      at=rt.clock())  # fmt: skip
        s.flush()
        return _out(s, row, actor)


def delete_provider(rt: Runtime, actor: Principal, name: str) -> None:
    """Remove a provider no zone uses any more (its instances are the zones' business)."""
    require_group_admin(actor, "removing a provider")
    with rt.db.write() as s:
        row = _row(s, name, lock=True)
        using = list(s.scalars(select(ZoneRow.name).where(ZoneRow.provider_id == row.id)))
        if using:
            raise ProviderInUse(
                f"provider {name!r} serves zone(s) {', '.join(sorted(using))}; "
                "give them another provider (PATCH /v1/zones/{name}) or remove them first",
                zones=sorted(using),
            )
        s.delete(row)
        events.record(s, actor.actor, "provider.deleted", f"provider/{name}", at=rt.clock())
    rt.adapters.pop(f"provider:{name}", None)


def get_provider(rt: Runtime, actor: Principal, name: str) -> ProviderOut:
    with rt.db.read() as s:
        return _out(s, _row(s, name), actor)


def list_providers(rt: Runtime, actor: Principal) -> list[ProviderOut]:
    """Providers are few; listed whole. Every role may see them and their zones (to
    choose where to burst); only group admins see their settings."""
    with rt.db.read() as s:
        rows = s.scalars(select(ProviderRow).order_by(ProviderRow.name)).all()
        return [_out(s, r, actor) for r in rows]


def _row(s: Session, name: str, *, lock: bool = False) -> ProviderRow:
    query = select(ProviderRow).where(ProviderRow.name == name)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"provider {name!r} not found", resource="provider", name=name)
    return row


def _out(s: Session, row: ProviderRow, actor: Principal) -> ProviderOut:
    zones = s.execute(
        select(ZoneRow.name, ZoneRow.region)
        .where(ZoneRow.provider_id == row.id)
        .order_by(ZoneRow.name)
    ).all()
    admin = actor.may(Action.OPERATE, None)
    return ProviderOut(
        name=row.name,
        kind=row.kind,
        description=row.description,
        settings=dict(row.settings) if admin else None,
        zones=[z for z, _ in zones],
        regions=sorted({r for _, r in zones if r}),
        created_at=row.created_at,
    )

"""Peerings between VPCs (request -> accept or reject -> delete) and the operator's peering
bans.

Two VPCs exchange traffic only through an active peering, and a peering between two
companies needs both: an admin of the requesting VPC's company asks, an admin of the other
VPC's company accepts (between two VPCs of one company it is active at once). Either side
may delete it. A peering is visible to the two companies only; every change is an event
in the audit trail of each.

Refused: a VPC with itself (``validation_error``), IPv4 with IPv6
(``peering_address_families_differ``), overlapping prefixes (``peering_prefixes_overlap``),
pairs a ban forbids (``peering_forbidden``), and a second live peering of one pair
(``already_exists``, naming it). Between two companies the checks that depend on the
other VPC (families, overlap, bans) run when the other side accepts, not when one asks:
a request must not tell the requester the other VPC's prefix, zone or data class, which
the other company has not agreed to share.

Concurrency: a request locks both VPC rows in id order before it looks for a live
peering of the pair and inserts one, so concurrent requests of a pair (from either side)
queue and the later ones see the first; the partial unique index on the live pair is the
backstop. Accept, reject and delete lock the peering row and change it only from the
state they expect.

Bans: adding one never breaks a peering silently. New peerings and acceptances it forbids
are refused; the live peerings it forbids are listed in its answer, stay as they are
(``banned_by`` marks them in every listing) and end when a side or the operator deletes
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from groupcloud.db.models import NetPrefixRow, PeeringBanRow, PeeringRow, ZoneRow
from groupcloud.db.unique import add_unique
from groupcloud.domain.isolation import BanKind, PeeringState
from groupcloud.domain.tenancy import Principal, shown_actor
from groupcloud.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    NotFound,
    PeeringAddressFamiliesDiffer,
    PeeringForbidden,
    PeeringNotPending,
    PeeringPrefixesOverlap,
)
from groupcloud.ipam.isolation import Ban, Refusal, peering_refusal
from groupcloud.schemas.base import Page
from groupcloud.schemas.isolation import (
    Peering,
    PeeringBan,
    PeeringBanCreate,
    PeeringBanCreated,
    PeeringCreate,
)
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network.vpc_refs import (
    VpcView,
    lock_vpcs,
    owned_vpc,
    split_ref,
    vpc_by_name,
    vpc_views,
)
from groupcloud.services.tenancy.access import company_by_slug, require_group_admin

__all__ = [
    "accept_peering",
    "add_ban",
    "delete_ban",
    "delete_peering",
    "get_peering",
    "list_bans",
    "list_peerings",
    "live_peering",
    "reject_peering",
    "request_peering",
]


def request_peering(rt: Runtime, actor: Principal, body: PeeringCreate) -> Peering:
    """Ask to peer a VPC of the caller's company with another VPC: pending until the other
    company accepts, active at once within one company."""
    own_company, own_name = split_ref(actor, body.vpc)
    peer_company, peer_name = split_ref(actor, body.peer, default_company=own_company)
    now = rt.clock()
    with rt.db.write() as s:
        own = owned_vpc(s, actor, own_company, own_name, manage=True)
        peer = vpc_by_name(s, peer_company, peer_name)
        lock_vpcs(s, [own.id, peer.id])
        views = vpc_views(s, [own.id, peer.id])
        low, high = sorted((own.id, peer.id))
        existing = live_peering(s, low, high)
        if existing is not None:
            raise _already(existing, views)
        same_company = own.company_id == peer.company_id
        if same_company:  # between companies: at acceptance (nothing of the peer leaks)
            _check_policy(views[own.id], views[peer.id], _bans(s))
        row = PeeringRow(
            vpc_a_id=low,
            vpc_b_id=high,
            requester_vpc_id=own.id,
            state=(PeeringState.ACTIVE if same_company else PeeringState.PENDING).value,
            requested_at=now,
            requested_by=actor.actor,
            decided_at=now if same_company else None,
            decided_by=actor.actor if same_company else None,
        )
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except IntegrityError:  # a live peering committed meanwhile (the index's backstop)
            raced = live_peering(s, low, high)
            if raced is None:
                raise
            raise _already(raced, views) from None
        _record(s, actor, "network.peering_requested", row, views, now=now)
        if same_company:
            _record(s, actor, "network.peering_accepted", row, views, {"automatic": True}, now=now)
        return _out(row, views, actor)


def accept_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    """Accept a pending peering (an admin of the other VPC's company). Accepting an active
    one again changes nothing; a ban added since the request forbids it."""
    now = rt.clock()
    with rt.db.write() as s:
        row, views = _locked(s, actor, peering_id)
        _require_accepter(actor, row, views, "accepting")
        bans = _bans(s)
        if row.state == PeeringState.ACTIVE:
            return _out(row, views, actor, bans)
        _require_pending(row)
        _check_policy(views[row.vpc_a_id], views[row.vpc_b_id], bans)
        row.state = PeeringState.ACTIVE.value
        row.decided_at, row.decided_by = now, actor.actor
        _record(s, actor, "network.peering_accepted", row, views, now=now)
        return _out(row, views, actor)


def reject_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    """Refuse a pending peering (an admin of the other VPC's company); the pair may be
    requested again. Rejecting a rejected one again changes nothing."""
    now = rt.clock()
    with rt.db.write() as s:
        row, views = _locked(s, actor, peering_id)
        _require_accepter(actor, row, views, "rejecting")
        if row.state == PeeringState.REJECTED:
            return _out(row, views, actor)
        _require_pending(row)
        row.state = PeeringState.REJECTED.value
        row.decided_at, row.decided_by = now, actor.actor
        row.ended_at = row.decided_at
        _record(s, actor, "network.peering_rejected", row, views, now=now)
        return _out(row, views, actor)


def delete_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    """End a peering, pending (withdrawn) or active (traffic stops), by an admin of either
    side or a group admin. Deleting an ended peering again changes nothing."""
    now = rt.clock()
    with rt.db.write() as s:
        row, views = _locked(s, actor, peering_id)
        companies = {v.row.company_id for v in views.values()}
        if not any(c is not None and actor.can_administer(c) for c in companies):
            raise Forbidden("deleting a peering needs a company-admin token of one of its sides")
        if row.ended_at is None:
            row.state = PeeringState.DELETED.value
            row.ended_at = now
            _record(s, actor, "network.peering_deleted", row, views, now=now)
        return _out(row, views, actor)


def get_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    with rt.db.read() as s:
        row = s.get(PeeringRow, peering_id)
        return _out(*_visible(actor, row, peering_id, s), actor, _bans(s))


def list_peerings(
    rt: Runtime,
    actor: Principal,
    *,
    company: str | None = None,
    state: PeeringState | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Peering]:
    """Peerings the caller's company is a side of (a group admin: all, or one company's),
    oldest first."""
    size = page_limit(limit)
    side_a, side_b = aliased(NetPrefixRow), aliased(NetPrefixRow)
    query = (
        select(PeeringRow)
        .join(side_a, side_a.id == PeeringRow.vpc_a_id)
        .join(side_b, side_b.id == PeeringRow.vpc_b_id)
        .order_by(PeeringRow.id)
        .limit(size + 1)
    )

    def either(company_id: int | None) -> ColumnElement[bool]:
        return or_(side_a.company_id == company_id, side_b.company_id == company_id)

    if not actor.sees_all:
        query = query.where(either(actor.company_id))
    if state is not None:
        query = query.where(PeeringRow.state == state.value)
    if cursor:
        query = query.where(PeeringRow.id > cursor_key(cursor))
    with rt.db.read() as s:
        if company:
            query = query.where(either(company_by_slug(s, actor, company).id))
        rows = s.scalars(query).all()
        page, next_cursor = split_page(rows, size, lambda r: r.id)
        views = vpc_views(s, [i for r in page for i in (r.vpc_a_id, r.vpc_b_id)])
        bans = _bans(s)
        return Page(items=[_out(r, views, actor, bans) for r in page], next_cursor=next_cursor)


def live_peering(s: Session, low: int, high: int) -> PeeringRow | None:
    """The pending or active peering of a pair of VPCs (``low < high``), if any."""
    return s.scalar(
        select(PeeringRow).where(
            PeeringRow.vpc_a_id == low, PeeringRow.vpc_b_id == high, PeeringRow.ended_at.is_(None)
        )
    )


# --- bans ------------------------------------------------------------------------------


def add_ban(rt: Runtime, actor: Principal, body: PeeringBanCreate) -> PeeringBanCreated:
    """Forbid peering between two zones or two data classes (group admins). The answer
    lists the live peerings the ban forbids; they are not ended (see the module's notes)."""
    require_group_admin(actor, "banning peerings")
    side_a, side_b = sorted((body.side_a, body.side_b))
    now = rt.clock()
    with rt.db.write() as s:
        if body.kind is BanKind.ZONE:
            for zone in {side_a, side_b}:
                if s.scalar(select(ZoneRow.id).where(ZoneRow.name == zone)) is None:
                    raise NotFound(f"zone {zone!r} not found", resource="zone", name=zone)
        row = PeeringBanRow(
            kind=body.kind.value,
            side_a=side_a,
            side_b=side_b,
            created_by=actor.actor,
            created_at=now,
        )
        add_unique(
            s,
            row,
            f"a ban of peering between {body.kind.value} {side_a} and {side_b}",
            name=f"{side_a}/{side_b}",
        )
        ban = _ban(row)
        live = s.scalars(
            select(PeeringRow).where(PeeringRow.ended_at.is_(None)).order_by(PeeringRow.id)
        ).all()
        views = vpc_views(s, [i for p in live for i in (p.vpc_a_id, p.vpc_b_id)])
        violating = [
            p.id
            for p in live
            if ban.forbids(views[p.vpc_a_id].endpoint(), views[p.vpc_b_id].endpoint())
        ]
        out = PeeringBanCreated(**_ban_out(row).model_dump(), violating_peerings=violating)
        events.record(
            s,
            actor.actor,
            "network.peering_ban_added",
            f"peering-ban/{row.id}",
            data=out.model_dump(
                mode="json", include={"kind", "side_a", "side_b", "violating_peerings"}
            ),
            at=now,
        )
        return out


def list_bans(rt: Runtime, actor: Principal) -> list[PeeringBan]:
    """Bans are few and group-wide: every role may read them (to know why a peering is
    refused)."""
    with rt.db.read() as s:
        return [_ban_out(r) for r in s.scalars(select(PeeringBanRow).order_by(PeeringBanRow.id))]


def delete_ban(rt: Runtime, actor: Principal, ban_id: int) -> PeeringBan:
    """Lift a ban (group admins); peerings it forbade may be requested again."""
    require_group_admin(actor, "lifting a peering ban")
    now = rt.clock()
    with rt.db.write() as s:
        row = s.get(PeeringBanRow, ban_id, with_for_update=True)
        if row is None:
            raise NotFound(
                f"peering ban {ban_id} not found", resource="peering_ban", name=str(ban_id)
            )
        out = _ban_out(row)
        s.delete(row)
        events.record(
            s,
            actor.actor,
            "network.peering_ban_deleted",
            f"peering-ban/{ban_id}",
            data=out.model_dump(mode="json", include={"kind", "side_a", "side_b"}),
            at=now,
        )
        return out


# --- helpers ---------------------------------------------------------------------------


def _bans(s: Session) -> list[Ban]:
    return [_ban(r) for r in s.scalars(select(PeeringBanRow).order_by(PeeringBanRow.id))]


def _ban(row: PeeringBanRow) -> Ban:
    return Ban(row.id, BanKind(row.kind), row.side_a, row.side_b)


def _ban_out(row: PeeringBanRow) -> PeeringBan:
    return PeeringBan(
        id=row.id,
        kind=BanKind(row.kind),
        side_a=row.side_a,
        side_b=row.side_b,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _check_policy(a: VpcView, b: VpcView, bans: Sequence[Ban]) -> None:
    """The engine's answer on whether ``a`` and ``b`` may peer, as a problem if not."""
    refused = peering_refusal(a.endpoint(), b.endpoint(), bans)
    if refused is None:
        return
    reason, ban = refused
    if reason is Refusal.SAME_VPC:
        raise InvalidInput(
            f"VPC {a.ref} cannot peer with itself",
            errors=[{"field": "peer", "message": "must be another VPC"}],
        )
    if reason is Refusal.ADDRESS_FAMILIES_DIFFER:
        raise PeeringAddressFamiliesDiffer(
            f"{a.ref} ({a.row.cidr}) is IPv{a.network.version} and {b.ref} ({b.row.cidr}) is "
            f"IPv{b.network.version}: no traffic could cross a peering between them",
            cidrs=[a.row.cidr, b.row.cidr],
        )
    if reason is Refusal.PREFIXES_OVERLAP:
        raise PeeringPrefixesOverlap(
            f"{a.ref} ({a.row.cidr}) and {b.ref} ({b.row.cidr}) overlap: an address in both "
            "would be ambiguous, so they cannot be peered (re-address one of them)",
            cidrs=[a.row.cidr, b.row.cidr],
        )
    assert ban is not None
    what = "zones" if ban.kind is BanKind.ZONE else "data classes"
    raise PeeringForbidden(
        f"the operator forbids peering between {what} {ban.side_a} and {ban.side_b} "
        f"(ban {ban.id}): {a.ref} is {a.endpoint().side(ban.kind)}, {b.ref} is "
        f"{b.endpoint().side(ban.kind)}",
        ban={"id": ban.id, "kind": ban.kind.value, "side_a": ban.side_a, "side_b": ban.side_b},
    )


def _already(row: PeeringRow, views: dict[int, VpcView]) -> AlreadyExists:
    a, b = views[row.vpc_a_id], views[row.vpc_b_id]
    hint = "; its other side accepts it" if row.state == PeeringState.PENDING else ""
    return AlreadyExists(
        f"{a.ref} and {b.ref} have a {row.state} peering already (peering {row.id}){hint}",
        peering=row.id,
        state=row.state,
    )


def _visible(
    actor: Principal, row: PeeringRow | None, peering_id: int, s: Session
) -> tuple[PeeringRow, dict[int, VpcView]]:
    """The peering and its two VPCs, if the caller's company is one of its sides."""
    views = vpc_views(s, [row.vpc_a_id, row.vpc_b_id]) if row is not None else {}
    if row is None or not any(actor.can_see(c) for c in _companies(views)):
        raise NotFound(f"peering {peering_id} not found", resource="peering", name=str(peering_id))
    return row, views


def _companies(views: dict[int, VpcView]) -> list[int]:
    return [v.row.company_id for v in views.values() if v.row.company_id is not None]


def _locked(s: Session, actor: Principal, peering_id: int) -> tuple[PeeringRow, dict[int, VpcView]]:
    return _visible(actor, s.get(PeeringRow, peering_id, with_for_update=True), peering_id, s)


def _require_accepter(
    actor: Principal, row: PeeringRow, views: dict[int, VpcView], action: str
) -> None:
    accepter = views[_accepter_id(row)]
    company_id = accepter.row.company_id
    if company_id is None or not actor.can_administer(company_id):
        raise Forbidden(
            f"{action} peering {row.id} needs a company-admin token of {accepter.company} "
            "(the side that did not ask) or a group-admin token"
        )


def _require_pending(row: PeeringRow) -> None:
    if row.state != PeeringState.PENDING:
        raise PeeringNotPending(
            f"peering {row.id} is {row.state}, no longer pending", state=row.state
        )


def _out(
    row: PeeringRow, views: dict[int, VpcView], viewer: Principal, bans: Sequence[Ban] = ()
) -> Peering:
    """The peering as ``viewer`` may see it. Until the other side accepts, the requesting
    company learns nothing of the VPC it asked for but its name: not its prefix, zone or
    data class, nor a ban those would trip (the accepter, asked to open its VPC, sees
    both sides in full)."""
    requester, accepter = views[row.requester_vpc_id], views[_accepter_id(row)]
    disclosed = (
        row.state == PeeringState.ACTIVE
        or viewer.sees_all
        or accepter.row.company_id == viewer.company_id
    )
    banned_by = None
    if row.ended_at is None and disclosed:
        banned_by = next(
            (b.id for b in bans if b.forbids(requester.endpoint(), accepter.endpoint())), None
        )
    return Peering(
        id=row.id,
        state=PeeringState(row.state),
        requester=requester.side(),
        accepter=accepter.side(disclose=disclosed),
        requested_at=row.requested_at,
        requested_by=shown_actor(row.requested_by, viewer),
        decided_at=row.decided_at,
        decided_by=shown_actor(row.decided_by, viewer) if row.decided_by else None,
        ended_at=row.ended_at,
        banned_by=banned_by,
    )


def _record(
    s: Session,
    actor: Principal,
    kind: str,
    row: PeeringRow,
    views: dict[int, VpcView],
    extra: dict[str, Any] | None = None,
    *,
    now: datetime,
) -> None:
    """One event per company involved, so each sees the change in its own audit trail."""
    requester, accepter = views[row.requester_vpc_id], views[_accepter_id(row)]
    data = {
        "requester": requester.ref,
        "accepter": accepter.ref,
        "state": row.state,
        **(extra or {}),
    }
    for company_id in dict.fromkeys(v.row.company_id for v in (requester, accepter)):
        events.record(s, actor.actor, kind, f"peering/{row.id}", company_id, data, at=now)


def _accepter_id(row: PeeringRow) -> int:
    """The VPC of the side that did not ask (the one that accepts or rejects)."""
    return row.vpc_b_id if row.requester_vpc_id == row.vpc_a_id else row.vpc_a_id

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
(``already_exists``, naming it).

Between two companies a request is addressed to a company and a VPC name and resolved
to that VPC only when the other company accepts: it is stored and answered the same
whether the company or the VPC exists or not, and the checks that depend on the other
VPC (families, overlap, bans) run at acceptance. A request must not tell the requester
whether the name exists, nor the other VPC's prefix, zone or data class, which the other
company has not agreed to share. An acceptance of a name the company has no VPC of is
``not_found`` (to the accepter, who may know its own VPCs); the request stays pending.

Concurrency: a request locks its VPC rows in id order before it looks for a live
peering or request of the pair and inserts one, so concurrent requests queue and the
later ones see the first; partial unique indexes on the live pair and on the live
request (VPC, company, name) are the backstop. Accept, reject and delete lock the
peering row and change it only from the state they expect.

Bans: adding one never breaks a peering silently. New peerings and acceptances it forbids
are refused; the live peerings it forbids are listed in its answer, stay as they are
(``banned_by`` marks them in every listing) and end when a side or the operator deletes
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from groupcloud.db.models import CompanyRow, NetPrefixRow, PeeringBanRow, PeeringRow, ZoneRow
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
    PeeringSide,
)
from groupcloud.services.audit import events
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network.vpc_refs import (
    VPC,
    VpcView,
    lock_vpcs,
    owned_vpc,
    split_ref,
    vpc_by_name,
    vpc_named,
    vpc_views,
)
from groupcloud.services.tenancy.access import company_by_slug, require_group_admin

__all__ = [
    "accept_peering",
    "add_ban",
    "asked_between",
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
    company accepts (resolved to its VPC then), active at once within one company."""
    own_company, own_name = split_ref(actor, body.vpc)
    peer_company, peer_name = split_ref(actor, body.peer, default_company=own_company)
    now = rt.clock()
    with rt.db.write() as s:
        own = owned_vpc(s, actor, own_company, own_name, manage=True)
        same_company = peer_company == own_company
        row = PeeringRow(
            vpc_a_id=own.id,
            vpc_b_id=None,
            requester_vpc_id=own.id,
            peer_company=peer_company,
            peer_name=peer_name,
            state=PeeringState.PENDING.value,
            requested_at=now,
            requested_by=actor.actor,
        )
        if same_company:  # nothing to hide within a company: resolved and checked at once
            peer = vpc_by_name(s, peer_company, peer_name)
            lock_vpcs(s, [own.id, peer.id])
            row.vpc_a_id, row.vpc_b_id = sorted((own.id, peer.id))
            sides = _sides(s, row)
            existing = live_peering(s, row.vpc_a_id, row.vpc_b_id)
            if existing is not None:
                raise _already(existing, _sides(s, existing))
            _check_policy(*sides.pair(), _bans(s))
            row.state = PeeringState.ACTIVE.value
            row.decided_at, row.decided_by = now, actor.actor
        else:  # the VPC asked for is locked too, if it exists, so that its own request to
            # ours queues behind this one (and is found below); nothing of it is read
            named = vpc_named(s, peer_company, peer_name)
            lock_vpcs(s, [own.id] if named is None else [own.id, named.id])
            sides = _sides(s, row)
        existing = _asked(s, own, own_company, peer_company, peer_name)
        if existing is not None:
            raise _already(existing, _sides(s, existing))
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except IntegrityError:  # a live peering committed meanwhile (the indexes' backstop)
            raced = _asked(s, own, own_company, peer_company, peer_name)
            if raced is None:
                raise
            raise _already(raced, _sides(s, raced)) from None
        _record(s, actor, "network.peering_requested", row, sides, now=now)
        if same_company:
            _record(s, actor, "network.peering_accepted", row, sides, {"automatic": True}, now=now)
        return _out(row, sides, actor)


def accept_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    """Accept a pending peering (an admin of the company it was asked of), which resolves
    it to that company's VPC of the name asked. Accepting an active one again changes
    nothing; a ban added since the request forbids it."""
    now = rt.clock()
    with rt.db.write() as s:
        row, sides = _locked(s, actor, peering_id)
        _require_accepter(actor, row, sides, "accepting")
        bans = _bans(s)
        if row.state == PeeringState.ACTIVE:
            return _out(row, sides, actor, bans)
        _require_pending(row)
        if row.vpc_b_id is None:
            peer = vpc_by_name(s, row.peer_company, row.peer_name)
            lock_vpcs(s, [row.requester_vpc_id, peer.id])
            low, high = sorted((row.requester_vpc_id, peer.id))
            existing = live_peering(s, low, high)
            if existing is not None:
                raise _already(existing, _sides(s, existing))
            row.vpc_a_id, row.vpc_b_id = low, high
            sides = _sides(s, row)
        _check_policy(*sides.pair(), bans)
        pair = (row.vpc_a_id, row.vpc_b_id or 0)
        row.state = PeeringState.ACTIVE.value
        row.decided_at, row.decided_by = now, actor.actor
        try:
            with s.begin_nested():
                s.flush()
        except IntegrityError:  # the pair became live meanwhile (the other side's request)
            raced = live_peering(s, *pair)
            if raced is None:
                raise
            raise _already(raced, _sides(s, raced)) from None
        _record(s, actor, "network.peering_accepted", row, sides, now=now)
        return _out(row, sides, actor)


def reject_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    """Refuse a pending peering (an admin of the other VPC's company); the pair may be
    requested again. Rejecting a rejected one again changes nothing."""
    now = rt.clock()
    with rt.db.write() as s:
        row, sides = _locked(s, actor, peering_id)
        _require_accepter(actor, row, sides, "rejecting")
        if row.state == PeeringState.REJECTED:
            return _out(row, sides, actor)
        _require_pending(row)
        row.state = PeeringState.REJECTED.value
        row.decided_at, row.decided_by = now, actor.actor
        row.ended_at = row.decided_at
        _record(s, actor, "network.peering_rejected", row, sides, now=now)
        return _out(row, sides, actor)


def delete_peering(rt: Runtime, actor: Principal, peering_id: int) -> Peering:
    """End a peering, pending (withdrawn) or active (traffic stops), by an admin of either
    side or a group admin. Deleting an ended peering again changes nothing."""
    now = rt.clock()
    with rt.db.write() as s:
        row, sides = _locked(s, actor, peering_id)
        if not any(actor.can_administer(c) for c in sides.companies):
            raise Forbidden("deleting a peering needs a company-admin token of one of its sides")
        if row.ended_at is None:
            row.state = PeeringState.DELETED.value
            row.ended_at = now
            _record(s, actor, "network.peering_deleted", row, sides, now=now)
        return _out(row, sides, actor)


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
    requester = aliased(NetPrefixRow)
    query = (
        select(PeeringRow)
        .join(requester, requester.id == PeeringRow.requester_vpc_id)
        .order_by(PeeringRow.id)
        .limit(size + 1)
    )

    def either(company: CompanyRow) -> ColumnElement[bool]:
        """The company asked, or was asked (by slug: resolved or not)."""
        return or_(requester.company_id == company.id, PeeringRow.peer_company == company.slug)

    if state is not None:
        query = query.where(PeeringRow.state == state.value)
    if cursor:
        query = query.where(PeeringRow.id > cursor_key(cursor))
    with rt.db.read() as s:
        if not actor.sees_all:
            own = s.get(CompanyRow, actor.company_id)
            if own is None:
                return Page(items=[], next_cursor=None)
            query = query.where(either(own))
        if company:
            query = query.where(either(company_by_slug(s, actor, company)))
        rows = s.scalars(query).all()
        page, next_cursor = split_page(rows, size, lambda r: r.id)
        sides = _sides_of(s, page)
        bans = _bans(s)
        return Page(
            items=[_out(r, sides[r.id], actor, bans) for r in page], next_cursor=next_cursor
        )


def live_peering(s: Session, low: int, high: int) -> PeeringRow | None:
    """The pending or active peering of a pair of VPCs (``low < high``), if any."""
    return s.scalar(
        select(PeeringRow).where(
            PeeringRow.vpc_a_id == low, PeeringRow.vpc_b_id == high, PeeringRow.ended_at.is_(None)
        )
    )


def asked_between(s: Session, a: VpcView, b: VpcView) -> PeeringRow | None:
    """The live request of one of two VPCs to the other's company and name, not resolved
    yet (between companies, until accepted)."""

    def to(requester: VpcView, peer: VpcView) -> ColumnElement[bool]:
        return (
            (PeeringRow.requester_vpc_id == requester.row.id)
            & (PeeringRow.peer_company == peer.company)
            & (PeeringRow.peer_name == peer.row.name)
        )

    return s.scalar(
        select(PeeringRow)
        .where(
            PeeringRow.ended_at.is_(None), PeeringRow.vpc_b_id.is_(None), or_(to(a, b), to(b, a))
        )
        .order_by(PeeringRow.id)
        .limit(1)
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
        sides = _sides_of(s, live)
        violating = []
        for p in live:  # a request not resolved yet: the VPC its name stands for now
            side = sides[p.id]
            other = side.accepter or side.named
            if other is not None and ban.forbids(side.requester.endpoint(), other.endpoint()):
                violating.append(p.id)
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


@dataclass(frozen=True, slots=True)
class _Sides:
    """The two sides of a peering: the requester's VPC, and the company and VPC name it
    asked for, with that VPC once the peering is resolved (None before)."""

    requester: VpcView
    accepter: VpcView | None
    peer_company: str
    peer_name: str
    peer_company_id: int | None
    """The company asked (None: there is no such company; nobody can accept)."""
    named: VpcView | None = None
    """Before resolution, the VPC the name stands for now, if any: shown only to those
    who may see the company asked (it is theirs to accept)."""

    @property
    def accepter_ref(self) -> str:
        return f"{self.peer_company}/{self.peer_name}"

    @property
    def companies(self) -> list[int]:
        """The companies involved that exist: each sees the peering."""
        ids = [self.requester.row.company_id, self.peer_company_id]
        return list(dict.fromkeys(c for c in ids if c is not None))

    def pair(self) -> tuple[VpcView, VpcView]:
        """The two VPCs of a resolved peering, in id order (how refusals name them)."""
        first, second = sorted((self.requester, self.peer()), key=lambda v: v.row.id)
        return first, second

    def peer(self) -> VpcView:
        """The accepter's VPC (resolved peerings only)."""
        assert self.accepter is not None, "an unresolved peering has no peer VPC yet"
        return self.accepter

    def accepter_side(self, *, disclose: bool) -> PeeringSide:
        vpc = self.accepter or self.named
        if vpc is None or not disclose:
            return PeeringSide(company=self.peer_company, vpc=self.peer_name)
        return vpc.side()


def _sides(s: Session, row: PeeringRow) -> _Sides:
    return _sides_of(s, [row])[row.id]


def _sides_of(s: Session, rows: Sequence[PeeringRow]) -> dict[int | None, _Sides]:
    """The sides of each peering (by id), in two queries whatever the number."""
    views = vpc_views(
        s, [i for r in rows for i in (r.requester_vpc_id, r.vpc_a_id, r.vpc_b_id) if i]
    )
    slugs = {r.peer_company for r in rows}
    found = s.execute(select(CompanyRow.slug, CompanyRow.id).where(CompanyRow.slug.in_(slugs)))
    ids = {str(slug): int(company_id) for slug, company_id in found}
    asked = [r for r in rows if r.vpc_b_id is None]
    named: dict[tuple[str, str], int] = {}
    if asked:
        named = {
            (slug, name): vpc_id
            for slug, name, vpc_id in s.execute(
                select(CompanyRow.slug, NetPrefixRow.name, NetPrefixRow.id)
                .join(CompanyRow, CompanyRow.id == NetPrefixRow.company_id)
                .where(
                    NetPrefixRow.kind == VPC,
                    or_(
                        *(
                            (CompanyRow.slug == r.peer_company) & (NetPrefixRow.name == r.peer_name)
                            for r in asked
                        )
                    ),
                )
            )
        }
        views |= vpc_views(s, named.values())
    out: dict[int | None, _Sides] = {}
    for r in rows:
        other = None
        if r.vpc_b_id is not None:
            other = views[r.vpc_b_id if r.requester_vpc_id == r.vpc_a_id else r.vpc_a_id]
        now_named = named.get((r.peer_company, r.peer_name)) if other is None else None
        out[r.id] = _Sides(
            views[r.requester_vpc_id],
            other,
            r.peer_company,
            r.peer_name,
            ids.get(r.peer_company),
            views.get(now_named) if now_named is not None else None,
        )
    return out


def _asked(
    s: Session, own: NetPrefixRow, own_company: str, peer_company: str, peer_name: str
) -> PeeringRow | None:
    """The live peering or request between ``own`` and the VPC ``peer_company/peer_name``,
    in either direction, found without resolving that name: own's request to it, or its
    request to own (which own's company sees anyway)."""
    requester = aliased(NetPrefixRow)
    theirs = (
        select(PeeringRow.id)
        .join(requester, requester.id == PeeringRow.requester_vpc_id)
        .join(CompanyRow, CompanyRow.id == requester.company_id)
        .where(
            CompanyRow.slug == peer_company,
            requester.name == peer_name,
            PeeringRow.peer_company == own_company,
            PeeringRow.peer_name == own.name,
        )
    )
    return s.scalar(
        select(PeeringRow)
        .where(
            PeeringRow.ended_at.is_(None),
            or_(
                (PeeringRow.requester_vpc_id == own.id)
                & (PeeringRow.peer_company == peer_company)
                & (PeeringRow.peer_name == peer_name),
                PeeringRow.id.in_(theirs),
            ),
        )
        .order_by(PeeringRow.id)
        .limit(1)
    )


def _already(row: PeeringRow, sides: _Sides) -> AlreadyExists:
    hint = "; its other side accepts it" if row.state == PeeringState.PENDING else ""
    return AlreadyExists(
        f"{sides.requester.ref} and {sides.accepter_ref} have a {row.state} peering already "
        f"(peering {row.id}){hint}",
        peering=row.id,
        state=row.state,
    )


def _visible(
    actor: Principal, row: PeeringRow | None, peering_id: int, s: Session
) -> tuple[PeeringRow, _Sides]:
    """The peering and its sides, if the caller's company is one of them."""
    sides = _sides(s, row) if row is not None else None
    if row is None or sides is None or not any(actor.can_see(c) for c in sides.companies):
        raise NotFound(f"peering {peering_id} not found", resource="peering", name=str(peering_id))
    return row, sides


def _locked(s: Session, actor: Principal, peering_id: int) -> tuple[PeeringRow, _Sides]:
    return _visible(actor, s.get(PeeringRow, peering_id, with_for_update=True), peering_id, s)


def _require_accepter(actor: Principal, row: PeeringRow, sides: _Sides, action: str) -> None:
    company_id = sides.peer_company_id
    if company_id is None or not actor.can_administer(company_id):
        raise Forbidden(
            f"{action} peering {row.id} needs a company-admin token of {sides.peer_company} "
            "(the side that did not ask) or a group-admin token"
        )


def _require_pending(row: PeeringRow) -> None:
    if row.state != PeeringState.PENDING:
        raise PeeringNotPending(
            f"peering {row.id} is {row.state}, no longer pending", state=row.state
        )


def _out(row: PeeringRow, sides: _Sides, viewer: Principal, bans: Sequence[Ban] = ()) -> Peering:
    """The peering as ``viewer`` may see it. Until the other side accepts, the requesting
    company learns nothing of the VPC it asked for but the company and name it asked:
    not whether it exists, its prefix, zone or data class, nor a ban those would trip
    (the peering is resolved to that VPC at acceptance)."""
    disclosed = (
        row.state == PeeringState.ACTIVE
        or viewer.sees_all
        or (sides.peer_company_id is not None and sides.peer_company_id == viewer.company_id)
    )
    banned_by = None
    other = sides.accepter or sides.named
    if row.ended_at is None and disclosed and other is not None:
        banned_by = next(
            (b.id for b in bans if b.forbids(sides.requester.endpoint(), other.endpoint())), None
        )
    return Peering(
        id=row.id,
        state=PeeringState(row.state),
        requester=sides.requester.side(),
        accepter=sides.accepter_side(disclose=disclosed),
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
    sides: _Sides,
    extra: dict[str, Any] | None = None,
    *,
    now: datetime,
) -> None:
    """One event per company involved, so each sees the change in its own audit trail."""
    data = {
        "requester": sides.requester.ref,
        "accepter": sides.accepter_ref,
        "state": row.state,
        **(extra or {}),
    }
    for company_id in sides.companies:
        events.record(s, actor.actor, kind, f"peering/{row.id}", company_id, data, at=now)

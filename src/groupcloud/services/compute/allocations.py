"""Allocate, queue, release and change allocations.

``allocate`` claims at once what fits in the company's own free nominal and on hosts
with room: one short transaction of conditional updates (see ``claims``). Anything else
that could fit later -- it needs borrowing, its nominal is lent out, or no hosts have
room now -- is stored as ``pending`` with a machine-readable reason and admitted by the
scheduler (``services.compute.scheduler``); only what can never fit is refused (422). Borrowing
is decided by the scheduler alone, so the group's idle capacity is shared in one
fair-share order and a lender waiting for its own nominal is never overtaken.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groupcloud.db import audit, claims
from groupcloud.db.engine import Database
from groupcloud.db.models import (
    AffinityMemberRow,
    AllocationDeviceRow,
    AllocationItemRow,
    AllocationRow,
    CompanyRow,
    HostRow,
    IpAddressRow,
    LoanRow,
    NetPrefixRow,
    ProjectRow,
    table_of,
)
from groupcloud.db.prepared import Cursor, on_connection, prepared
from groupcloud.domain.allocation import (
    AllocationState,
    EndReason,
    OnExpiry,
    OnReclaim,
    PendingReason,
    PlacementSpec,
    Strategy,
    demand_of,
    spec_of,
)
from groupcloud.domain.inventory import ZoneChoice
from groupcloud.domain.policy import Action
from groupcloud.domain.regulation import Sensitivity, SystemType
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    AllocationReleased,
    IdempotencyKeyReused,
    InvalidInput,
    NeverFits,
    NoCapacity,
    NoOffer,
    NotFound,
    ProvidersUnavailable,
    QuotaExceeded,
)
from groupcloud.placement.index import CapacityIndex
from groupcloud.placement.pipeline import Placement, Rejection, place
from groupcloud.placement.zone_rules import ZoneDecision
from groupcloud.quota.cohort import Admission, Blocked, Shortfall, ShortfallKind
from groupcloud.quota.cycle import pending_reason, shortfall_data
from groupcloud.schemas.base import Page
from groupcloud.schemas.compute import (
    Allocation,
    AllocationCreate,
    AllocationUnit,
    AllocationUpdate,
    UnitAddress,
)
from groupcloud.services.audit import events
from groupcloud.services.common.idempotency import request_hash
from groupcloud.services.common.pagination import cursor_key, page_limit, split_page
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.quotas import load_cohort
from groupcloud.services.network import addresses
from groupcloud.services.providers import external
from groupcloud.services.providers.views import cost_per_hour, external_units
from groupcloud.services.tenancy.access import (
    company_by_slug,
    owner_slug,
    require,
    usable_company,
)
from groupcloud.services.zones.rules import (
    check_named_zone,
    zone_decision,
    zone_kinds,
    zones_of_kind,
    zones_words,
)

__all__ = [
    "GangPart",
    "allocate",
    "allocation_not_found",
    "claim_gang",
    "describe_shortfalls",
    "end",
    "get_allocation",
    "group_hosts",
    "list_allocations",
    "pending_reason",
    "release",
    "shortfall_data",
    "update_allocation",
    "views_of",
]

_ALLOC = table_of(AllocationRow)
_INSERT_ALLOC = insert(_ALLOC).inline()
_OWNER = (
    select(_ALLOC.c.company_id, _ALLOC.c.state)
    .where(_ALLOC.c.id == bindparam("b_id"))
    .with_for_update()
)
_ALLOC_COLUMNS = tuple(c.name for c in _ALLOC.columns if c.name != "seq")
"""Every column a new allocation sets (``seq`` is the database's): ``_Request.row``
gives each a value, so the prepared insert never leaves one to a default."""


def allocate(
    rt: Runtime,
    actor: Principal,
    body: AllocationCreate,
    idempotency_key: str | None = None,
) -> Allocation:
    """Claim now what fits in the company's own free nominal, queue what could fit later
    (or refuse it, with ``queue=false``), refuse what never fits.

    With an ``idempotency_key``, a repeated request with the same body returns the
    allocation made the first time instead of claiming again.
    """
    request = _resolve(rt, actor, body, idempotency_key)
    replay = _replay_of(rt, request)
    if replay is not None:  # before the lease check: a retry may come after the lease's end
        return replay
    if request.expires_at is not None and request.expires_at <= rt.clock():
        raise InvalidInput(
            "expires_at is in the past", errors=[{"field": "expires_at", "message": "past"}]
        )
    return _claim_or_queue(rt, actor, request)


def _resolve(
    rt: Runtime, actor: Principal, body: AllocationCreate, idempotency_key: str | None
) -> _Request:
    """Names to ids (not_found for what the caller may not use), the lease's end and the
    priority."""
    company = owner_slug(actor, body.company)
    company_id = usable_company(rt, actor, company, what="requesting allocations")
    project_id = rt.names.project(company_id, body.project)
    if project_id is None:
        raise NotFound(
            f"project {body.project!r} not found in company {company!r}",
            resource="project",
            name=body.project,
        )
    if body.zone and rt.names.zone(body.zone) is None:
        raise NotFound(f"zone {body.zone!r} not found", resource="zone", name=body.zone)
    priority, data_class, system_type = rt.names.project_defaults(project_id)
    data_class = body.data_class.value if body.data_class else data_class
    system_type = body.system_type.value if body.system_type else system_type
    decision = zone_decision(rt, company, data_class, system_type)
    check_named_zone(decision, body.zone)
    # Zones' kinds matter only to a request that names a zone or a zone kind.
    kinds = zone_kinds(rt) if body.zone or body.zone_kind else {}
    zone_kind = body.zone_kind.value if body.zone_kind else None
    named_kind = kinds.get(body.zone) if body.zone else None
    if body.zone_kind and named_kind and not body.zone_kind.admits(named_kind):
        raise InvalidInput(
            f"zone {body.zone!r} is {named_kind.value}, not {body.zone_kind.value}",
            errors=[{"field": "zone_kind", "message": "does not admit the zone named"}],
        )
    if body.interfaces:
        _check_subnets(rt, company_id, company, {i.subnet for i in body.interfaces})
    expires_at = body.expires_at
    if body.lease_s is not None:
        expires_at = rt.clock() + timedelta(seconds=body.lease_s)
    out = _Request(
        company_id,
        company,
        project_id,
        body,
        expires_at,
        idempotency_key,
        request_hash(body, company=company) if idempotency_key else None,
        priority if body.priority is None else body.priority,
        decision,
        data_class,
        system_type,
    )
    out.zones = zones_of_kind(decision, kinds, zone_kind)
    out.external_only = external.wants_external(rt, body.zone, zone_kind, named_kind)
    out.may_burst = body.burst and zone_kind is None and named_kind is None
    return out


def _replay_of(rt: Runtime, request: _Request) -> Allocation | None:
    """The allocation an earlier request with the same Idempotency-Key made, if any."""
    if not (request.idempotency_key and request.request_hash):
        return None
    with rt.db.read() as s:
        return _replay(s, request.company_id, request.idempotency_key, request.request_hash)


def _claim_or_queue(rt: Runtime, actor: Principal, request: _Request) -> Allocation:
    """Place and claim, retrying what concurrency spoils: a stale index (re-read those
    hosts), a quota freed meanwhile (claim again), an anti-affinity host taken by a
    sibling (place again without it). What does not fit now is queued or refused."""
    body = request.body
    exclude = group_hosts(rt, request.company_id, body.anti_affinity_group)
    demand = demand_of(body)
    if request.external_only:
        return _external_or_refuse(rt, actor, request, demand)
    synced = False
    for _ in range(rt.settings.claim_retries):
        outcome = place(rt.index.get(), spec_of(body, exclude, request.zones))
        if isinstance(outcome, Rejection):
            if not synced:  # other processes may have freed capacity or added hosts
                rt.index.sync()
                synced = True
                continue
            return _burst_or_wait(rt, actor, request, demand, outcome)
        claim = functools.partial(_claim, rt, actor, request, outcome, demand)
        try:
            out, deltas = rt.db.retrying(claim)
        except claims.QuotaRefused:
            with rt.db.read_conn() as conn:
                plan = load_cohort(conn).plan(request.company_id, demand)
            if isinstance(plan, Admission) and not plan.needs_scheduler:
                continue  # a concurrent release freed the quota since: claim again
            return _wait_or_refuse(rt, actor, request, demand, None, plan)
        except claims.StaleHosts as stale:
            rt.index.sync(stale.host_ids)
            continue
        except IntegrityError:
            replay = _replay_of(rt, request)  # a concurrent request with the same key won
            if replay is not None:
                return replay
            if body.anti_affinity_group is None:
                raise
            # A concurrent member of the group took one of the hosts.
            exclude = group_hosts(rt, request.company_id, body.anti_affinity_group)
            continue
        rt.index.apply(deltas)
        return out
    raise NoCapacity(
        f"the hosts chosen for this request were taken by concurrent claims "
        f"{rt.settings.claim_retries} times in a row; try again",
        retryable=True,
    )


@dataclass(frozen=True, slots=True)
class GangPart:
    """One allocation of a gang: its request and the row values that link it (a catalog
    service instance and part)."""

    body: AllocationCreate
    link: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Miss:
    """The gang's part that did not fit, and why."""

    part: int
    rejection: Rejection


def claim_gang(
    rt: Runtime,
    actor: Principal,
    parts: Sequence[GangPart],
    *,
    before: Callable[[Cursor, Database], None] | None = None,
) -> list[Allocation]:
    """Claim every part now, in ONE transaction, or none: the parts are placed one after
    the other on the process's index (each seeing the ones before), then their quota and
    host capacity are taken together (``claims.take`` of the batch: the company's own
    nominal, no borrowing), so a part that does not fit, a quota that does not take the
    sum, or a concurrent claim that took a host leaves nothing held. ``before(cur, db)``
    runs first inside the transaction (the instance row the parts point to). Gangs do not
    queue: ``no_capacity``, ``never_fits`` or ``quota_exceeded`` name what was short."""
    requests = [_resolve(rt, actor, p.body, None) for p in parts]
    if any(r.external_only or r.body.interfaces for r in requests):
        raise InvalidInput(
            "a gang is placed in private zones without interfaces",
            errors=[{"field": "parts", "message": "external zones or interfaces"}],
        )
    synced = False
    for _ in range(rt.settings.claim_retries):
        placed = _place_gang(rt, requests)
        if isinstance(placed, _Miss):
            if not synced:
                rt.index.sync()
                synced = True
                continue
            part, rejection = parts[placed.part], placed.rejection
            name = part.link.get("service_part", placed.part)
            if rejection.never_fits:
                raise NeverFits(f"part {name} can never fit: {rejection.message}",
                                explain=rejection.detail(part.body.count))  # fmt: skip
            raise NoCapacity(f"part {name} does not fit now: {rejection.message}; nothing "
                             "was claimed", explain=rejection.detail(part.body.count),
                             retryable=True)  # fmt: skip
        claim = functools.partial(_claim_gang, rt, actor, requests, parts, placed, before)
        try:
            ids, changes = rt.db.retrying(claim)
        except claims.QuotaRefused:
            raise QuotaExceeded(
                f"{requests[0].company}'s own free quota does not take the whole gang "
                f"({_words(_gang_demand(requests))}); nothing was claimed",
                exceeded=[],
            ) from None
        except claims.StaleHosts as stale:
            rt.index.sync(stale.host_ids)
            continue
        rt.index.apply(changes)
        with rt.db.read() as s:
            return _views(s, ids)
    raise NoCapacity(
        f"the hosts chosen for this gang were taken by concurrent claims "
        f"{rt.settings.claim_retries} times in a row; try again",
        retryable=True,
    )


_GANG_PLACING = threading.Lock()
"""Gangs of this process place one at a time: each part is put on the shared index
while the next is placed, and taken off again before the lock is released, so no
other gang ever plans around a part that may never be claimed."""


def _place_gang(rt: Runtime, requests: Sequence[_Request]) -> list[Placement] | _Miss:
    """Where each part goes, each seeing the ones before (and an anti-affine part
    avoiding the hosts of the earlier parts of its group); nothing stays on the index."""
    index = rt.index.get()
    placed: list[tuple[PlacementSpec, Placement]] = []
    with _GANG_PLACING:
        try:
            for i, r in enumerate(requests):
                group = r.body.anti_affinity_group
                taken = frozenset(
                    h
                    for (_, p), earlier in zip(placed, requests, strict=False)
                    if group and earlier.body.anti_affinity_group == group
                    for h in p.host_ids
                )
                spec = spec_of(r.body, group_hosts(rt, r.company_id, group) | taken, r.zones)
                outcome = place(index, spec)
                if isinstance(outcome, Rejection):
                    return _Miss(i, outcome)
                index.apply_placement(spec, outcome)  # the next part sees this one
                placed.append((spec, outcome))
        finally:
            _unplace(index, placed)
    return [p for _, p in placed]


def _unplace(index: CapacityIndex, placed: Sequence[tuple[PlacementSpec, Placement]]) -> None:
    for spec, placement in reversed(placed):
        index.apply_placement(spec, placement, release=True)


def _gang_demand(requests: Sequence[_Request]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for r in requests:
        for rc, n in demand_of(r.body).items():
            total[rc] += n
    return dict(sorted(total.items()))


def _words(amounts: Mapping[str, int]) -> str:
    return ", ".join(f"{rc} {n}" for rc, n in amounts.items())


def _claim_gang(
    rt: Runtime,
    actor: Principal,
    requests: Sequence[_Request],
    parts: Sequence[GangPart],
    placements: Sequence[Placement],
    before: Callable[[Cursor, Database], None] | None,
) -> tuple[list[str], claims.HostChanges]:
    """The gang's transaction (retried whole on a transient error: nothing is read or
    done after its commit); the new allocations' ids and what the hosts gave."""
    now = rt.clock()
    db = rt.db
    ids = [str(uuid.uuid4()) for _ in requests]
    batch = [
        claims.Claim(
            allocation_id,
            r.company_id,
            r.body.resources,
            placement,
            demand_of(r.body),
            affinity_group=r.body.anti_affinity_group,
            gpu_share=r.body.gpu_share,
        )
        for allocation_id, r, placement in zip(ids, requests, placements, strict=True)
    ]
    with db.fast_write() as cur:
        if before is not None:
            before(cur, db)
        changes = claims.take(cur, db, batch)
        rows = []
        for allocation_id, r, part in zip(ids, requests, parts, strict=True):
            row = r.row(allocation_id, actor.actor, now, AllocationState.ACTIVE, None, None)
            row.update(dict(part.link))
            rows.append(row)
        cur.run(db.prepare(_INSERT_ALLOC, _ALLOC_COLUMNS), rows)
        claims.record(cur, db, batch)
        cur.run(
            db.prepare(audit.INSERT, audit.COLUMNS),
            [
                _created(actor, r, allocation_id, demand_of(r.body), now,
                         {"hosts": list(placement.host_names), **dict(part.link)})
                for allocation_id, r, placement, part in zip(ids, requests, placements, parts,
                                                             strict=True)
            ],
        )  # fmt: skip
    return ids, changes


def _burst_or_wait(
    rt: Runtime, actor: Principal, request: _Request, demand: dict[str, int], outcome: Rejection
) -> Allocation:
    """A request no private zone takes now. With ``burst``: external, if an allowed
    zone's offer fits and the company's own quota takes it; otherwise (and without
    ``burst``) it waits or is refused as a private request."""
    if request.may_burst:
        try:
            return _claim_external(rt, actor, request, demand)
        except (NoOffer, ProvidersUnavailable, claims.QuotaRefused):
            pass
    return _wait_or_refuse(rt, actor, request, demand, outcome)


def _external_or_refuse(
    rt: Runtime, actor: Principal, request: _Request, demand: dict[str, int]
) -> Allocation:
    """A request for external zones only: placed there now, or refused (it never queues:
    the scheduler places in private zones)."""
    try:
        return _claim_external(rt, actor, request, demand)
    except claims.QuotaRefused:
        with rt.db.read_conn() as conn:
            plan = load_cohort(conn).plan(request.company_id, demand)
        words = (
            describe_shortfalls(plan.shortfalls) if isinstance(plan, Blocked) else "it would borrow"
        )
        raise QuotaExceeded(
            f"{request.company} has no free own quota for this external placement ({words}); "
            "external placements use the company's own nominal (no borrowing)",
            exceeded=[shortfall_data(f) for f in plan.shortfalls]
            if isinstance(plan, Blocked)
            else [],
        ) from None


def _claim_external(
    rt: Runtime, actor: Principal, request: _Request, demand: dict[str, int]
) -> Allocation:
    """Hold the quota and record one instance row per unit in the cheapest allowed
    external zone, in one transaction; the provisioner creates the instances (woken
    here). Raises ``NoOffer``/``ProvidersUnavailable`` (nothing fits or all is blocked),
    ``claims.QuotaRefused``."""
    body = request.body
    now = rt.clock()
    plan = external.choose(
        rt,
        request.decision,
        resources=body.resources,
        gpu_share=body.gpu_share,
        gpu_models=body.gpu_models,
        zone=body.zone,
        now=now,
    )
    allocation_id = str(uuid.uuid4())
    db = rt.db
    row = request.row(allocation_id, actor.actor, now, AllocationState.PROVISIONING, None, None)
    row.update(external=True, started_at=None)

    def attempt() -> None:
        with db.fast_write() as cur:
            claims.take_quota(cur, db, request.company_id, demand)
            cur.run(db.prepare(_INSERT_ALLOC, _ALLOC_COLUMNS), row)
            cur.run(
                db.prepare(external.INSERT, external.COLUMNS),
                external.instance_rows(allocation_id, plan, range(body.count), 0, now),
            )
            cur.run(
                db.prepare(audit.INSERT, audit.COLUMNS),
                _created(actor, request, allocation_id, demand, now,
                         {"external": external.event_data(plan, body.count)}),
            )  # fmt: skip

    try:
        db.retrying(attempt)  # a busy database or a serialisation failure: once more
    except IntegrityError:
        replay = _replay_of(rt, request)  # a concurrent request with the same key won
        if replay is not None:
            return replay
        raise
    rt.wakeup.set()  # the provisioner creates the instances
    with rt.db.read() as s:
        return _views(s, [allocation_id])[0]


class _Request:
    """A validated request with everything resolved (ids, lease end, priority)."""

    __slots__ = (
        "body", "company", "company_id", "data_class", "decision", "expires_at",
        "external_only", "idempotency_key", "may_burst", "priority", "project_id",
        "request_hash", "system_type", "zones",
    )  # fmt: skip

    def __init__(
        self,
        company_id: int,
        company: str,
        project_id: int,
        body: AllocationCreate,
        expires_at: datetime | None,
        idempotency_key: str | None,
        request_hash: str | None,
        priority: int,
        decision: ZoneDecision,
        data_class: str,
        system_type: str,
    ) -> None:
        self.data_class = data_class
        self.system_type = system_type
        self.decision = decision
        """The placement rules' verdict on each zone for this request."""
        self.zones: frozenset[str] | None = None
        """The zones private placement may use (rules and zone kind; None: any)."""
        self.external_only = False
        """Only external zones (a named external zone, or zone_kind external)."""
        self.may_burst = False
        """``burst`` asked, and neither a zone nor a zone kind keeps it private."""
        self.company_id = company_id
        self.company = company
        self.project_id = project_id
        self.body = body
        self.expires_at = expires_at
        self.idempotency_key = idempotency_key
        self.request_hash = request_hash
        self.priority = priority

    def row(
        self,
        allocation_id: str,
        actor: str,
        now: datetime,
        state: AllocationState,
        reason: PendingReason | None,
        detail: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body = self.body
        return {
            "id": allocation_id,
            "company_id": self.company_id,
            "project_id": self.project_id,
            "state": state.value,
            "count": body.count,
            "resources": body.resources,
            "zone": body.zone,
            "required_traits": body.required_traits,
            "anti_affinity_group": body.anti_affinity_group,
            "strategy": body.strategy.value,
            "created_at": now,
            "created_by": actor,
            "released_at": None,
            "released_by": None,
            "idempotency_key": self.idempotency_key,
            "request_hash": self.request_hash,
            "priority": self.priority,
            "pending_reason": reason.value if reason else None,
            "pending_detail": detail,
            "not_before": None,
            "started_at": now if state is AllocationState.ACTIVE else None,
            "minimum_runtime_s": body.minimum_runtime_s,
            "on_reclaim": body.on_reclaim.value,
            "reclaim_count": 0,
            "reclaim_at": None,
            "reclaim_for": None,
            "expires_at": self.expires_at,
            "on_expiry": body.on_expiry.value,
            "lease_warned_s": None,
            "utilisation": None,
            "reported_at": None,
            "idle_since": None,
            "idle_flagged_at": None,
            "keep": False,
            "end_reason": None,
            "interfaces": [i.model_dump() for i in body.interfaces] or None,
            "gpu_share": body.gpu_share,
            "gpu_models": body.gpu_models or None,
            "data_class": self.data_class,
            "system_type": self.system_type,
            "zone_kind": body.zone_kind.value if body.zone_kind else None,
            "burst": body.burst,
            "external": False,
            "repatriate": body.repatriate,
            "repatriable_at": None,
            "service_instance_id": None,
            "service_part": None,
            "service_generation": None,
        }

    def view(
        self,
        allocation_id: str,
        actor: str,
        now: datetime,
        state: AllocationState,
        reason: PendingReason | None,
        placement: Placement | None,
        taken: Mapping[int, Sequence[addresses.Taken]] | None = None,
    ) -> Allocation:
        """The representation of what ``row`` stores, without reading it back."""
        hosts = placement.host_names if placement else ()
        devices = placement.devices if placement and self.body.gpu_share else ()
        units = [
            AllocationUnit.model_construct(
                unit=i,
                host=h,
                addresses=[
                    UnitAddress.model_construct(id=t.id, subnet=t.prefix.name, address=t.address)
                    for t in (taken or {}).get(i, ())
                ],
                gpu_device=devices[i][0] if devices else None,
                zone=None,
                instance_type=None,
                instance_id=None,
                instance_state=None,
                price_per_hour=None,
            )
            for i, h in enumerate(hosts)
        ]
        values = self.row(allocation_id, actor, now, state, reason, None)
        return _view(values, self.company, self.body.project, units, {})


def release(rt: Runtime, actor: Principal, allocation_id: str) -> Allocation:
    """Return an allocation's capacity and quota to the pool, or cancel it while pending.
    Idempotent: releasing a released allocation changes nothing and returns it as it is."""
    end(rt, actor, allocation_id)
    with rt.db.read() as s:  # released: nothing changes it any more
        return _views(s, [allocation_id])[0]


def end(rt: Runtime, actor: Principal, allocation_id: str) -> bool:
    """``release`` without the representation (what the simulator calls, thousands of
    times a run); whether it gave capacity back."""

    def attempt() -> claims.HostChanges:
        with rt.db.write_conn() as conn:
            with on_connection(conn) as cur:  # the worker may admit or reclaim it meanwhile
                found = cur.rows(prepared(_OWNER, conn.dialect), {"b_id": allocation_id})
            if not found:
                raise allocation_not_found(allocation_id)
            require(
                actor,
                Action.USE,
                int(found[0][0]),
                "releasing allocations",
                functools.partial(allocation_not_found, allocation_id),
            )
            reason = (
                EndReason.CANCELLED
                if found[0][1] == AllocationState.PENDING
                else EndReason.RELEASED
            )
            return (
                claims.end(
                    conn,
                    actor.actor,
                    allocation_id,
                    reason,
                    quarantine_s=rt.settings.ip_quarantine_s,
                    now=rt.clock(),
                )
                or claims.HostChanges()
            )

    returned = rt.db.retrying(attempt)
    rt.index.apply(returned)
    if returned:
        rt.wakeup.set()  # queued requests may fit now
    return bool(returned)


def update_allocation(
    rt: Runtime, actor: Principal, allocation_id: str, body: AllocationUpdate
) -> Allocation:
    """Mark an allocation keep (never released for being idle) or change its lease.

    Extending a lease is subject to quota: a borrowed allocation holds its lenders'
    nominal only while they do not need it, so the extension is refused while the
    allocation is being reclaimed or while one of its lenders waits for its own nominal."""
    fields = body.model_fields_set

    def attempt() -> Allocation:
        now = rt.clock()
        with rt.db.write() as s:
            row = s.get(AllocationRow, _seq_of(s, allocation_id), with_for_update=True)
            if row is None:
                raise allocation_not_found(allocation_id)
            require(
                actor,
                Action.USE,
                row.company_id,
                "changing allocations",
                functools.partial(allocation_not_found, allocation_id),
            )
            state = AllocationState(row.state)
            if state.finished:
                raise AllocationReleased(
                    f"allocation {allocation_id} is {state.value}; nothing to change"
                )
            changes: dict[str, Any] = {}
            if "keep" in fields and body.keep is not None and body.keep != row.keep:
                changes["keep"] = body.keep
                if body.keep:  # a kept allocation starts a fresh idle window when un-kept
                    changes["idle_since"] = None
                    changes["idle_flagged_at"] = None
            if "on_expiry" in fields and body.on_expiry is not None:
                changes["on_expiry"] = body.on_expiry.value
                if body.on_expiry.value != row.on_expiry:
                    changes["lease_warned_s"] = None  # re-arm: the end now means something else
            if "expires_at" in fields and body.expires_at != row.expires_at:
                _check_extension(s, row, state, body.expires_at, now)
                changes["expires_at"] = body.expires_at
                changes["lease_warned_s"] = None
            if changes:
                for key, value in changes.items():
                    setattr(row, key, value)
                events.record(
                    s,
                    actor.actor,
                    "allocation.updated",
                    f"allocation/{allocation_id}",
                    row.company_id,
                    {
                        k: v.isoformat() if isinstance(v, datetime) else v
                        for k, v in changes.items()
                    },
                    at=now,
                )
                s.flush()
            return _views(s, [allocation_id])[0]

    return rt.db.retrying(attempt)


def _check_extension(
    s: Session,
    row: AllocationRow,
    state: AllocationState,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(
            "expires_at is in the past; release the allocation to end it now",
            errors=[{"field": "expires_at", "message": "in the past"}],
        )
    shorter = expires_at is not None and (row.expires_at is None or expires_at < row.expires_at)
    if shorter:
        return  # shortening a lease never needs quota
    if state is AllocationState.RECLAIMING:
        raise QuotaExceeded(
            f"allocation {row.id} is being reclaimed by its lender; its lease cannot be extended",
            reason="reclaiming",
        )
    lenders = set(s.scalars(select(LoanRow.lender_id).where(LoanRow.allocation_id == row.id)))
    if lenders:
        waiting = s.scalars(
            select(CompanyRow.slug)
            .join(AllocationRow, AllocationRow.company_id == CompanyRow.id)
            .where(
                AllocationRow.state == AllocationState.PENDING.value,
                AllocationRow.pending_reason == PendingReason.AWAITING_RECLAIM.value,
                AllocationRow.company_id.in_(lenders),
            )
            .distinct()
        ).all()
        if waiting:
            raise QuotaExceeded(
                f"allocation {row.id} runs on capacity borrowed from {', '.join(waiting)}, "
                "which wait(s) for their own nominal: the lease cannot be extended",
                reason="lender_needs_capacity",
                lenders=list(waiting),
            )


def get_allocation(rt: Runtime, actor: Principal, allocation_id: str) -> Allocation:
    with rt.db.read() as s:
        company_id = s.scalar(
            select(AllocationRow.company_id).where(AllocationRow.id == allocation_id)
        )
        if company_id is None or not actor.can_see(company_id):
            raise allocation_not_found(allocation_id)
        return _views(s, [allocation_id])[0]


def list_allocations(
    rt: Runtime,
    actor: Principal,
    *,
    company: str | None = None,
    project: str | None = None,
    state: AllocationState | None = None,
    host: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Allocation]:
    """Allocations visible to ``actor``, oldest first, filtered as asked."""
    size = page_limit(limit)
    query = select(AllocationRow.seq, AllocationRow.id).order_by(AllocationRow.seq).limit(size + 1)
    with rt.db.read() as s:
        if company:
            query = query.where(AllocationRow.company_id == company_by_slug(s, actor, company).id)
        elif not actor.sees_all:
            query = query.where(AllocationRow.company_id == actor.company_id)
        if project:
            query = query.join(ProjectRow, ProjectRow.id == AllocationRow.project_id).where(
                ProjectRow.slug == project
            )
        if state:
            query = query.where(AllocationRow.state == state.value)
        if host:
            query = query.where(
                AllocationRow.id.in_(
                    select(AllocationItemRow.allocation_id)
                    .join(HostRow, HostRow.id == AllocationItemRow.host_id)
                    .where(HostRow.name == host)
                )
            )
        if cursor:
            query = query.where(AllocationRow.seq > cursor_key(cursor))
        rows = s.execute(query).all()
        page, next_cursor = split_page(rows, size, lambda r: r.seq)
        return Page(items=_views(s, [r.id for r in page]), next_cursor=next_cursor)


# --- the claim transaction and the queue ----------------------------------------------


def _claim(
    rt: Runtime, actor: Principal, request: _Request, placement: Placement, demand: dict[str, int]
) -> tuple[Allocation, claims.HostChanges]:
    """Claim from the company's own free nominal only (borrowing is the scheduler's)."""
    allocation_id = str(uuid.uuid4())
    now = rt.clock()
    body = request.body
    db = rt.db
    with db.fast_write() as cur:
        claim = claims.Claim(
            allocation_id, request.company_id, body.resources, placement, demand,
            affinity_group=body.anti_affinity_group, gpu_share=body.gpu_share,
        )  # fmt: skip
        deltas = claims.take(cur, db, [claim])
        cur.run(
            db.prepare(_INSERT_ALLOC, _ALLOC_COLUMNS),
            request.row(allocation_id, actor.actor, now, AllocationState.ACTIVE, None, None),
        )
        claims.record(cur, db, [claim])
        tx = addresses.Transaction.begin(rt, cur, now)
        taken = (
            tx.take_interfaces(
                company_id=request.company_id,
                company=request.company,
                allocation_id=allocation_id,
                units=body.count,
                interfaces=[i.model_dump() for i in body.interfaces],
                actor=actor.actor,
            )
            if body.interfaces
            else {}
        )
        cur.run(
            db.prepare(audit.INSERT, audit.COLUMNS),
            _created(actor, request, allocation_id, demand, now,
                     {"hosts": list(placement.host_names), **addresses.event_data(taken)}),
        )  # fmt: skip
    tx.keep()
    out = request.view(
        allocation_id, actor.actor, now, AllocationState.ACTIVE, None, placement, taken
    )
    return out, deltas


def _created(
    actor: Principal,
    request: _Request,
    allocation_id: str,
    demand: Mapping[str, int],
    now: datetime,
    where: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``allocation.created`` event of a claim: what was asked and charged, and
    ``where`` it went (hosts and addresses, or the external zone and instance type)."""
    body = request.body
    return audit.row(
        actor.actor,
        "allocation.created",
        f"allocation/{allocation_id}",
        request.company_id,
        {"project": body.project, "count": body.count, "resources": body.resources,
         "claimed": dict(demand), **where},
        at=now,
    )  # fmt: skip


def _check_subnets(rt: Runtime, company_id: int, company: str, names: set[str]) -> None:
    """Interfaces may only be asked on the company's own subnets (not_found otherwise)."""
    with rt.db.read() as s:
        found = set(
            s.scalars(
                select(NetPrefixRow.name).where(
                    NetPrefixRow.kind == "subnet",
                    NetPrefixRow.company_id == company_id,
                    NetPrefixRow.name.in_(sorted(names)),
                )
            )
        )
    for name in sorted(names - found):
        raise NotFound(f"subnet {name!r} not found in {company!r}", resource="subnet", name=name)


def _wait_or_refuse(
    rt: Runtime,
    actor: Principal,
    request: _Request,
    demand: dict[str, int],
    rejection: Rejection | None,
    plan: Admission | Blocked | None = None,
) -> Allocation:
    """Queue the request (or refuse it with ``queue=false``); refuse what never fits.

    Quota comes first (a request is admitted before it is placed), then placement."""
    if plan is None:
        with rt.db.read_conn() as conn:
            plan = load_cohort(conn).plan(request.company_id, demand)
    if isinstance(plan, Blocked) and plan.never:
        never = [f for f in plan.shortfalls if f.kind is ShortfallKind.NEVER]
        raise NeverFits(
            f"the request exceeds {request.company}'s whole quota, borrowing included: "
            f"{describe_shortfalls(never)}; ask the platform team for a higher quota or "
            "request less",
            exceeded=[shortfall_data(f) for f in never],
        )
    placement = rejection.detail(request.body.count) if rejection else None
    if rejection is not None and rejection.never_fits:
        removed = zones_words(request.decision)
        raise NeverFits(
            f"no host can ever take this request: {rejection.message}"
            + (f"; {removed}" if removed else ""),
            explain=placement,
            zones=request.decision.as_data(),
        )
    reason = pending_reason(plan, rejection)
    detail: dict[str, Any] = {}
    if isinstance(plan, Blocked):
        detail["quota"] = [shortfall_data(f) for f in plan.shortfalls]
    if placement is not None:
        detail["placement"] = placement
    if not request.body.queue:
        if isinstance(plan, Blocked):
            raise QuotaExceeded(
                f"{request.company} would exceed its quota: {describe_shortfalls(plan.shortfalls)}",
                exceeded=detail["quota"],
            )
        if isinstance(plan, Admission) and plan.needs_scheduler:
            moved = ", ".join(f"{n} {rc}" for (_, rc), n in sorted(plan.transfers.items()))
            raise QuotaExceeded(
                f"{request.company} would need to "
                + (
                    "borrow "
                    + ", ".join(f"{n} {rc}" for rc, n in sorted(plan.borrowed.items()))
                    + " from other companies"
                    if plan.loans
                    else f"move {moved} of its lent nominal to other companies' idle capacity"
                )
                + "; borrowing and moving loans are done by the scheduler: send the "
                "request with queue=true (the default)",
                exceeded=[],
                needs_borrowing=plan.borrowed,
            )
        assert rejection is not None
        raise NoCapacity(f"not enough free capacity now: {rejection.message}", explain=placement)
    return _enqueue(rt, actor, request, reason, detail)


def _enqueue(
    rt: Runtime,
    actor: Principal,
    request: _Request,
    reason: PendingReason,
    detail: dict[str, Any],
) -> Allocation:
    allocation_id = str(uuid.uuid4())
    now = rt.clock()
    db = rt.db
    subject = f"allocation/{allocation_id}"
    body = request.body
    try:
        with db.fast_write() as cur:
            cur.run(
                db.prepare(_INSERT_ALLOC, _ALLOC_COLUMNS),
                request.row(
                    allocation_id, actor.actor, now, AllocationState.PENDING, reason, detail
                ),
            )
            cur.run(
                db.prepare(audit.INSERT, audit.COLUMNS),
                [
                    audit.row(
                        actor.actor,
                        "allocation.requested",
                        subject,
                        request.company_id,
                        {
                            "project": body.project,
                            "count": body.count,
                            "resources": body.resources,
                            "priority": request.priority,
                        },
                        at=now,
                    ),
                    audit.row(
                        actor.actor,
                        "allocation.pending",
                        subject,
                        request.company_id,
                        {"reason": reason.value, **detail},
                        at=now,
                    ),
                ],
            )
    except IntegrityError:
        replay = _replay_of(rt, request)  # a concurrent request with the same key won
        if replay is not None:
            return replay
        raise
    rt.wakeup.set()
    return request.view(allocation_id, actor.actor, now, AllocationState.PENDING, reason, None)


def describe_shortfalls(shortfalls: Sequence[Shortfall]) -> str:
    """The shortfalls in words, one clause per resource class."""
    parts = []
    for f in shortfalls:
        head = f"{f.resource_class} requested {f.requested}, own free nominal {f.own_free}"
        if f.kind is ShortfallKind.NEVER:
            parts.append(
                f"{head}, at most {f.limit} even with all borrowing ({f.requested - f.limit} over)"
            )
        elif f.kind is ShortfallKind.LENT_OUT:
            parts.append(f"{head}: {f.missing} of its nominal is lent and must be reclaimed")
        elif f.kind is ShortfallKind.BORROWING_LIMIT:
            parts.append(f"{head}: needs to borrow {f.missing}, borrowing limit leaves {f.limit}")
        else:
            parts.append(f"{head}: needs to borrow {f.missing}, others can lend {f.borrowable}")
    return "; ".join(parts)


# --- replays and views -------------------------------------------------------------------


def allocation_not_found(allocation_id: str) -> NotFound:
    return NotFound(
        f"allocation {allocation_id!r} not found", resource="allocation", name=allocation_id
    )


def _seq_of(s: Session, allocation_id: str) -> int:
    return s.scalar(select(AllocationRow.seq).where(AllocationRow.id == allocation_id)) or -1


def _replay(s: Session, company_id: int, key: str, request_hash: str) -> Allocation | None:
    found = s.execute(
        select(AllocationRow.id, AllocationRow.request_hash).where(
            AllocationRow.company_id == company_id, AllocationRow.idempotency_key == key
        )
    ).first()
    if found is None:
        return None
    if found.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for a different request (allocation {found.id})",
            allocation=found.id,
        )
    return _views(s, [found.id])[0]


def group_hosts(rt: Runtime, company_id: int, group: str | None) -> frozenset[int]:
    """Hosts already holding a unit of the anti-affinity group."""
    if group is None:
        return frozenset()
    with rt.db.read_conn() as conn:
        return frozenset(
            conn.scalars(
                select(AffinityMemberRow.host_id).where(
                    AffinityMemberRow.company_id == company_id,
                    AffinityMemberRow.group_name == group,
                )
            )
        )


def views_of(s: Session, ids: Sequence[str]) -> list[Allocation]:
    """The representations of the allocations ``ids`` (other capabilities' read side)."""
    return _views(s, ids)


def _views(s: Session, ids: Sequence[str]) -> list[Allocation]:
    """Full representations of allocations, in the order of ``ids``."""
    if not ids:
        return []
    rows = s.execute(
        select(_ALLOC, CompanyRow.slug.label("company"), ProjectRow.slug.label("project"))
        .join(CompanyRow, CompanyRow.id == AllocationRow.company_id)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(AllocationRow.id.in_(ids))
    ).all()
    units: dict[str, dict[int, str]] = defaultdict(dict)
    for alloc_id, unit, host in s.execute(
        select(AllocationItemRow.allocation_id, AllocationItemRow.unit, HostRow.name)
        .join(HostRow, HostRow.id == AllocationItemRow.host_id)
        .where(AllocationItemRow.allocation_id.in_(ids))
    ):
        units[alloc_id][unit] = host
    on_device = {
        (alloc_id, unit): device
        for alloc_id, unit, device in s.execute(
            select(
                AllocationDeviceRow.allocation_id,
                AllocationDeviceRow.unit,
                AllocationDeviceRow.device,
            ).where(AllocationDeviceRow.allocation_id.in_(ids))
        )
    }
    held: dict[tuple[str | None, int | None], list[UnitAddress]] = defaultdict(list)
    for holder, unit_of, ip_id, subnet, address in s.execute(
        select(
            IpAddressRow.allocation_id,
            IpAddressRow.unit,
            IpAddressRow.id,
            NetPrefixRow.name,
            IpAddressRow.address,
        )
        .join(NetPrefixRow, NetPrefixRow.id == IpAddressRow.subnet_id)
        .where(IpAddressRow.allocation_id.in_(ids), IpAddressRow.released_at.is_(None))
        .order_by(IpAddressRow.id)
    ):
        held[holder, unit_of].append(UnitAddress(id=ip_id, subnet=subnet, address=address))
    borrowed: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for alloc_id, lender, rc, amount in s.execute(
        select(LoanRow.allocation_id, CompanyRow.slug, LoanRow.resource_class, LoanRow.amount)
        .join(CompanyRow, CompanyRow.id == LoanRow.lender_id)
        .where(LoanRow.allocation_id.in_(ids))
    ):
        borrowed[alloc_id][lender][rc] = amount
    outside = external_units(s, ids)
    by_id = {
        a["id"]: _view(
            a,
            company,
            project,
            [
                AllocationUnit(
                    unit=u,
                    host=h,
                    addresses=held.get((a["id"], u), []),
                    gpu_device=on_device.get((a["id"], u)),
                )
                for u, h in sorted(units[a["id"]].items())
            ]
            + outside.get(a["id"], []),
            {k: dict(v) for k, v in borrowed[a["id"]].items()},
        )
        for a, company, project in ((r._mapping, r.company, r.project) for r in rows)
    }
    return [by_id[i] for i in ids]


def _view(
    a: Mapping[Any, Any],
    company: str,
    project: str,
    units: list[AllocationUnit],
    borrowed: dict[str, dict[str, int]],
) -> Allocation:
    """An allocation's representation from its column values (a stored row, or the values
    a claim is about to insert): the one mapping of columns to the API's fields. Stored
    values were validated on the way in, so they are not validated again."""
    pending = a["pending_reason"]
    ended = a["end_reason"]
    return Allocation.model_construct(
        id=a["id"],
        company=company,
        project=project,
        state=AllocationState(a["state"]),
        count=a["count"],
        resources=a["resources"],
        zone=a["zone"],
        required_traits=a["required_traits"],
        anti_affinity_group=a["anti_affinity_group"],
        strategy=Strategy(a["strategy"]),
        units=units,
        created_at=a["created_at"],
        created_by=a["created_by"],
        released_at=a["released_at"],
        released_by=a["released_by"],
        priority=a["priority"],
        pending_reason=None if pending is None else PendingReason(pending),
        not_before=a["not_before"],
        borrowed=borrowed,
        started_at=a["started_at"],
        expires_at=a["expires_at"],
        on_expiry=OnExpiry(a["on_expiry"]),
        minimum_runtime_s=a["minimum_runtime_s"],
        on_reclaim=OnReclaim(a["on_reclaim"]),
        reclaim_at=a["reclaim_at"],
        reclaim_count=a["reclaim_count"],
        keep=a["keep"],
        utilisation=a["utilisation"],
        idle_since=a["idle_since"],
        idle_flagged_at=a["idle_flagged_at"],
        end_reason=None if ended is None else EndReason(ended),
        gpu_share=a["gpu_share"],
        gpu_models=a["gpu_models"] or [],
        data_class=Sensitivity(a["data_class"]),
        system_type=SystemType(a["system_type"]),
        zone_kind=None if a["zone_kind"] is None else ZoneChoice(a["zone_kind"]),
        burst=a["burst"],
        external=a["external"],
        repatriate=a["repatriate"],
        repatriable_at=a["repatriable_at"],
        cost_per_hour=cost_per_hour(units) if a["external"] else None,
    )

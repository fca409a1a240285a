"""Allocate and release: the claim path.

A claim is one short transaction of conditional updates, in a fixed lock order (quota
rows by class, then inventory rows by host and class) so that concurrent claims on
PostgreSQL never deadlock each other:

1. ``UPDATE quotas SET used = used + n WHERE ... AND used + n <= nominal`` per class;
2. ``UPDATE inventories SET used = used + n WHERE ... AND used + n <= capacity AND the
   host is active`` per host and class;
3. insert the allocation, its items, anti-affinity members and the audit event.

If a row count comes back short, the transaction rolls back: a quota refusal is reported,
a host refusal means the in-memory index was stale, so those hosts are re-read and the
placement is tried again (bounded by ``claim_retries``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groupcloud.db.models import (
    AffinityMember,
    Allocation,
    AllocationItem,
    Company,
    Host,
    Inventory,
    Project,
    Quota,
    table_of,
    utcnow,
)
from groupcloud.domain.allocation import AllocationState, PlacementSpec, Strategy
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import scale
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import (
    GroupcloudError,
    IdempotencyKeyReused,
    InvalidInput,
    NeverFits,
    NoCapacity,
    NotFound,
    QuotaExceeded,
)
from groupcloud.placement.pipeline import Placement, Rejection, place
from groupcloud.quota.admission import Excess, QuotaLine, admit, ceiling
from groupcloud.schemas import Allocation as AllocationOut
from groupcloud.schemas import AllocationCreate, AllocationUnit, Page
from groupcloud.services import events
from groupcloud.services.access import company_by_slug
from groupcloud.services.pagination import cursor_key, page_limit, split_page
from groupcloud.services.runtime import Runtime

__all__ = ["allocate", "get_allocation", "list_allocations", "release"]

Delta = tuple[int, str, int]

_ALLOC = table_of(Allocation)
_ITEMS = table_of(AllocationItem)
_INV = table_of(Inventory)
_QUOTA = table_of(Quota)
_HOSTS = table_of(Host)
_AFFINITY = table_of(AffinityMember)

_TAKE_QUOTA = (
    update(_QUOTA)
    .where(
        _QUOTA.c.company_id == bindparam("b_company"),
        _QUOTA.c.resource_class == bindparam("b_rc"),
        _QUOTA.c.used + bindparam("b_amount") <= _QUOTA.c.nominal,
    )
    .values(used=_QUOTA.c.used + bindparam("b_amount"))
)
_TAKE_INVENTORY = (
    update(_INV)
    .where(
        _INV.c.host_id == bindparam("b_host"),
        _INV.c.resource_class == bindparam("b_rc"),
        _INV.c.used + bindparam("b_amount") <= _INV.c.capacity,
        exists().where(
            _HOSTS.c.id == bindparam("b_host"), _HOSTS.c.state == HostState.ACTIVE.value
        ),
    )
    .values(used=_INV.c.used + bindparam("b_amount"))
)
_INSERT_ALLOC = insert(_ALLOC).inline()
_ALLOC_COLUMNS = (
    "id", "company_id", "project_id", "state", "count", "resources", "zone", "required_traits",
    "anti_affinity_group", "strategy", "created_at", "created_by", "released_at", "released_by",
    "idempotency_key", "request_hash",
)  # fmt: skip
_INSERT_ITEMS = insert(_ITEMS).inline()
_ITEM_COLUMNS = ("allocation_id", "unit", "host_id", "resource_class", "amount")
_INSERT_AFFINITY = insert(_AFFINITY).inline()
_AFFINITY_COLUMNS = ("company_id", "group_name", "host_id", "allocation_id")
_GIVE_QUOTA = (
    update(_QUOTA)
    .where(
        _QUOTA.c.company_id == bindparam("b_company"), _QUOTA.c.resource_class == bindparam("b_rc")
    )
    .values(used=_QUOTA.c.used - bindparam("b_amount"))
)
_GIVE_INVENTORY = (
    update(_INV)
    .where(_INV.c.host_id == bindparam("b_host"), _INV.c.resource_class == bindparam("b_rc"))
    .values(used=_INV.c.used - bindparam("b_amount"))
)


class _QuotaRefused(Exception):
    """A quota row did not take the demand: report which line and by how much."""


class _StaleHosts(Exception):
    """An inventory row did not take its share: the index was stale for these hosts."""

    def __init__(self, host_ids: Sequence[int]) -> None:
        super().__init__(host_ids)
        self.host_ids = tuple(host_ids)


def allocate(
    rt: Runtime,
    actor: Principal,
    body: AllocationCreate,
    idempotency_key: str | None = None,
) -> AllocationOut:
    """Admit against quota, place with the pipeline and claim atomically (all units or none).

    With an ``idempotency_key``, a repeated request with the same body returns the
    allocation made the first time instead of claiming again.
    """
    company = body.company or actor.company
    if company is None:
        raise InvalidInput(
            "company is required with a group-admin token",
            errors=[{"field": "company", "message": "required for group-admin tokens"}],
        )
    request_hash = _request_hash(company, body) if idempotency_key else None
    company_id = rt.names.company(company)
    if company_id is None or not actor.can_use(company_id):
        raise NotFound(f"company {company!r} not found", resource="company", name=company)
    project_id = rt.names.project(company_id, body.project)
    if project_id is None:
        raise NotFound(
            f"project {body.project!r} not found in company {company!r}",
            resource="project",
            name=body.project,
        )
    if body.zone and rt.names.zone(body.zone) is None:
        raise NotFound(f"zone {body.zone!r} not found", resource="zone", name=body.zone)
    if idempotency_key and request_hash:
        with rt.db.read() as s:
            replay = _replay(s, company_id, idempotency_key, request_hash)
        if replay is not None:
            return replay
    exclude = _group_hosts(rt, company_id, body.anti_affinity_group)

    demand = scale(body.resources, body.count)
    synced = False
    for _ in range(rt.settings.claim_retries):
        spec = PlacementSpec(
            per_unit=body.resources,
            count=body.count,
            zone=body.zone,
            required_traits=tuple(body.required_traits),
            distinct_hosts=body.anti_affinity_group is not None,
            exclude_hosts=exclude,
            strategy=body.strategy,
        )
        outcome = place(rt.index.get(), spec)
        if isinstance(outcome, Rejection):
            if not synced:  # other processes may have freed capacity or added hosts
                rt.index.sync()
                synced = True
                continue
            raise _refusal(rt, company_id, company, demand, outcome, body.count)
        claim = functools.partial(
            _claim, rt, actor, company_id, company, project_id, body, outcome, demand,
            idempotency_key, request_hash,
        )  # fmt: skip
        try:
            out, deltas = rt.db.retrying(claim)
        except _QuotaRefused:
            refusal = _quota_refusal(rt, company_id, company, demand)
            if refusal is None:  # a concurrent release freed the quota since: claim again
                continue
            raise refusal from None
        except _StaleHosts as stale:
            rt.index.sync(stale.host_ids)
            continue
        except IntegrityError:
            if idempotency_key and request_hash:  # a concurrent request with the same key won
                with rt.db.read() as s:
                    replay = _replay(s, company_id, idempotency_key, request_hash)
                if replay is not None:
                    return replay
            if body.anti_affinity_group is None:
                raise
            # A concurrent member of the group took one of the hosts.
            exclude = _group_hosts(rt, company_id, body.anti_affinity_group)
            continue
        rt.index.apply(deltas)
        return out
    raise NoCapacity(
        f"the hosts chosen for this request were taken by concurrent claims "
        f"{rt.settings.claim_retries} times in a row; try again",
        retryable=True,
    )


def release(rt: Runtime, actor: Principal, allocation_id: str) -> AllocationOut:
    """Return an allocation's capacity and quota to the pool. Idempotent: releasing a
    released allocation changes nothing and returns it as it is."""

    def attempt() -> tuple[AllocationOut, list[Delta]]:
        with rt.db.write() as s:
            conn = s.connection()
            row = conn.execute(
                select(_ALLOC.c.company_id, _ALLOC.c.state).where(_ALLOC.c.id == allocation_id)
            ).first()
            if row is None or not actor.can_use(row.company_id):
                raise NotFound(
                    f"allocation {allocation_id!r} not found",
                    resource="allocation",
                    name=allocation_id,
                )
            deltas: list[Delta] = []
            taken = conn.execute(
                update(_ALLOC)
                .where(_ALLOC.c.id == allocation_id, _ALLOC.c.state == AllocationState.ACTIVE.value)
                .values(
                    state=AllocationState.RELEASED.value,
                    released_at=utcnow(),
                    released_by=actor.actor,
                )
            )
            if taken.rowcount == 1:
                deltas = _give_back(conn, row.company_id, allocation_id)
                events.record(
                    conn,
                    actor.actor,
                    "allocation.released",
                    f"allocation/{allocation_id}",
                    row.company_id,
                    {"returned": _by_class(deltas)},
                )
            return _views(s, [allocation_id])[0], deltas

    out, deltas = rt.db.retrying(attempt)
    rt.index.apply((h, rc, -n) for h, rc, n in deltas)
    return out


def get_allocation(rt: Runtime, actor: Principal, allocation_id: str) -> AllocationOut:
    with rt.db.read() as s:
        company_id = s.scalar(select(Allocation.company_id).where(Allocation.id == allocation_id))
        if company_id is None or not actor.can_see(company_id):
            raise NotFound(
                f"allocation {allocation_id!r} not found", resource="allocation", name=allocation_id
            )
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
) -> Page[AllocationOut]:
    """Allocations visible to ``actor``, oldest first, filtered as asked."""
    size = page_limit(limit)
    query = select(Allocation.seq, Allocation.id).order_by(Allocation.seq).limit(size + 1)
    with rt.db.read() as s:
        if company:
            query = query.where(Allocation.company_id == company_by_slug(s, actor, company).id)
        elif not actor.is_group_admin:
            query = query.where(Allocation.company_id == actor.company_id)
        if project:
            query = query.join(Project, Project.id == Allocation.project_id).where(
                Project.slug == project
            )
        if state:
            query = query.where(Allocation.state == state.value)
        if host:
            query = query.where(
                Allocation.id.in_(
                    select(AllocationItem.allocation_id)
                    .join(Host, Host.id == AllocationItem.host_id)
                    .where(Host.name == host)
                )
            )
        if cursor:
            query = query.where(Allocation.seq > cursor_key(cursor))
        rows = s.execute(query).all()
        page, next_cursor = split_page(rows, size, lambda r: r.seq)
        return Page(items=_views(s, [r.id for r in page]), next_cursor=next_cursor)


# --- the claim transaction -------------------------------------------------------------


def _claim(
    rt: Runtime,
    actor: Principal,
    company_id: int,
    company: str,
    project_id: int,
    body: AllocationCreate,
    placement: Placement,
    demand: dict[str, int],
    idempotency_key: str | None,
    request_hash: str | None,
) -> tuple[AllocationOut, list[Delta]]:
    per_host: dict[tuple[int, str], int] = defaultdict(int)
    for host_id in placement.host_ids:
        for rc, amount in body.resources.items():
            per_host[host_id, rc] += amount
    deltas = [(h, rc, n) for (h, rc), n in sorted(per_host.items())]
    allocation_id = str(uuid.uuid4())
    now = utcnow()
    db = rt.db
    with db.fast_write() as cur:
        taken = cur.run(
            db.prepare(_TAKE_QUOTA),
            [
                {"b_company": company_id, "b_rc": rc, "b_amount": n}
                for rc, n in sorted(demand.items())
            ],
        )
        if taken != len(demand):
            raise _QuotaRefused()
        taken = cur.run(
            db.prepare(_TAKE_INVENTORY),
            [{"b_host": h, "b_rc": rc, "b_amount": n} for h, rc, n in deltas],
        )
        if taken != len(deltas):
            raise _StaleHosts(placement.host_ids)
        cur.run(
            db.prepare(_INSERT_ALLOC, _ALLOC_COLUMNS),
            {
                "id": allocation_id,
                "company_id": company_id,
                "project_id": project_id,
                "state": AllocationState.ACTIVE.value,
                "count": body.count,
                "resources": body.resources,
                "zone": body.zone,
                "required_traits": body.required_traits,
                "anti_affinity_group": body.anti_affinity_group,
                "strategy": body.strategy.value,
                "created_at": now,
                "created_by": actor.actor,
                "released_at": None,
                "released_by": None,
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
            },
        )
        cur.run(
            db.prepare(_INSERT_ITEMS, _ITEM_COLUMNS),
            [
                {
                    "allocation_id": allocation_id,
                    "unit": unit,
                    "host_id": host_id,
                    "resource_class": rc,
                    "amount": amount,
                }
                for unit, host_id in enumerate(placement.host_ids)
                for rc, amount in body.resources.items()
            ],
        )
        if body.anti_affinity_group:
            cur.run(
                db.prepare(_INSERT_AFFINITY, _AFFINITY_COLUMNS),
                [
                    {
                        "company_id": company_id,
                        "group_name": body.anti_affinity_group,
                        "host_id": host_id,
                        "allocation_id": allocation_id,
                    }
                    for host_id in placement.host_ids
                ],
            )
        cur.run(
            db.prepare(events.INSERT, events.COLUMNS),
            events.row(
                actor.actor,
                "allocation.created",
                f"allocation/{allocation_id}",
                company_id,
                {
                    "project": body.project,
                    "count": body.count,
                    "resources": body.resources,
                    "claimed": demand,
                    "hosts": list(placement.host_names),
                },
            ),
        )
    # Every value was validated on the way in (the request) or made here: no re-validation.
    out = AllocationOut.model_construct(
        id=allocation_id,
        company=company,
        project=body.project,
        state=AllocationState.ACTIVE,
        count=body.count,
        resources=body.resources,
        zone=body.zone,
        required_traits=body.required_traits,
        anti_affinity_group=body.anti_affinity_group,
        strategy=body.strategy,
        units=[
            AllocationUnit.model_construct(unit=i, host=h)
            for i, h in enumerate(placement.host_names)
        ],
        created_at=now,
        created_by=actor.actor,
        released_at=None,
        released_by=None,
    )
    return out, deltas


def _give_back(conn: Connection, company_id: int, allocation_id: str) -> list[Delta]:
    """Return exactly what the allocation's items hold, to the quota and to each host."""
    per_host: dict[tuple[int, str], int] = defaultdict(int)
    for host_id, rc, amount in conn.execute(
        select(_ITEMS.c.host_id, _ITEMS.c.resource_class, _ITEMS.c.amount).where(
            _ITEMS.c.allocation_id == allocation_id
        )
    ):
        per_host[host_id, rc] += amount
    deltas = [(h, rc, n) for (h, rc), n in sorted(per_host.items())]
    by_class = _by_class(deltas)
    given = conn.execute(
        _GIVE_QUOTA,
        [
            {"b_company": company_id, "b_rc": rc, "b_amount": n}
            for rc, n in sorted(by_class.items())
        ],
    )
    returned = conn.execute(
        _GIVE_INVENTORY, [{"b_host": h, "b_rc": rc, "b_amount": n} for h, rc, n in deltas]
    )
    if given.rowcount != len(by_class) or returned.rowcount != len(deltas):
        raise GroupcloudError(
            f"allocation {allocation_id}: counters to return to are missing; nothing was changed"
        )
    conn.execute(delete(_AFFINITY).where(_AFFINITY.c.allocation_id == allocation_id))
    return deltas


# --- refusals, replays and views -----------------------------------------------------


def _refusal(
    rt: Runtime,
    company_id: int,
    company: str,
    demand: dict[str, int],
    rejection: Rejection,
    units: int,
) -> GroupcloudError:
    """Quota first (the request is admitted before it is placed), then placement."""
    quota = _quota_refusal(rt, company_id, company, demand)
    if quota is not None:
        return quota
    explain = {
        "hosts_total": rejection.explanation.hosts_total,
        "hosts_fitting": rejection.explanation.hosts_fitting,
        "units_requested": units,
        "units_placeable": rejection.units_placeable,
        "filters": [
            {"filter": c.filter, "reason": c.reason, "hosts_removed": c.hosts_removed}
            for c in rejection.explanation.filters
        ],
    }
    if rejection.never_fits:
        return NeverFits(
            f"no host can ever take this request: {rejection.message}", explain=explain
        )
    return NoCapacity(f"not enough free capacity now: {rejection.message}", explain=explain)


def _quota_refusal(
    rt: Runtime, company_id: int, company: str, demand: dict[str, int]
) -> GroupcloudError | None:
    """never_fits or quota_exceeded when the company's quota refuses ``demand`` now; None
    when it admits it (a concurrent release may have freed quota since a claim was refused)."""
    with rt.db.read() as s:
        quotas = {
            q.resource_class: QuotaLine(q.resource_class, q.nominal, q.used)
            for q in s.scalars(select(Quota).where(Quota.company_id == company_id))
        }
    never = ceiling(quotas, demand)
    if never:
        return NeverFits(
            f"the request exceeds {company}'s whole quota: {_describe(never)}; "
            "ask the platform team for a higher quota or request less",
            exceeded=[_excess(e) for e in never],
        )
    over = admit(quotas, demand)
    if over:
        return QuotaExceeded(
            f"{company} would exceed its quota: {_describe(over)}",
            exceeded=[_excess(e) for e in over],
        )
    return None


def _describe(excesses: list[Excess]) -> str:
    return "; ".join(
        f"{e.resource_class} requested {e.requested}, in use {e.used}, limit {e.limit} "
        f"({e.excess} over)"
        for e in excesses
    )


def _excess(e: Excess) -> dict[str, int | str]:
    return {
        "resource_class": e.resource_class,
        "requested": e.requested,
        "used": e.used,
        "limit": e.limit,
        "excess": e.excess,
    }


def _request_hash(company: str, body: AllocationCreate) -> str:
    canonical = json.dumps(
        {**body.model_dump(mode="json"), "company": company}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(s: Session, company_id: int, key: str, request_hash: str) -> AllocationOut | None:
    found = s.execute(
        select(Allocation.id, Allocation.request_hash).where(
            Allocation.company_id == company_id, Allocation.idempotency_key == key
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


def _group_hosts(rt: Runtime, company_id: int, group: str | None) -> frozenset[int]:
    """Hosts already holding a unit of the anti-affinity group."""
    if group is None:
        return frozenset()
    with rt.db.read_conn() as conn:
        return frozenset(
            conn.scalars(
                select(AffinityMember.host_id).where(
                    AffinityMember.company_id == company_id, AffinityMember.group_name == group
                )
            )
        )


def _by_class(deltas: Sequence[Delta]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for _, rc, n in deltas:
        out[rc] += n
    return dict(sorted(out.items()))


def _views(s: Session, ids: Sequence[str]) -> list[AllocationOut]:
    """Full representations of allocations, in the order of ``ids``."""
    if not ids:
        return []
    rows = s.execute(
        select(Allocation, Company.slug, Project.slug)
        .join(Company, Company.id == Allocation.company_id)
        .join(Project, Project.id == Allocation.project_id)
        .where(Allocation.id.in_(ids))
    ).all()
    units: dict[str, dict[int, str]] = defaultdict(dict)
    for alloc_id, unit, host in s.execute(
        select(AllocationItem.allocation_id, AllocationItem.unit, Host.name)
        .join(Host, Host.id == AllocationItem.host_id)
        .where(AllocationItem.allocation_id.in_(ids))
    ):
        units[alloc_id][unit] = host
    by_id = {
        a.id: AllocationOut(
            id=a.id,
            company=company,
            project=project,
            state=AllocationState(a.state),
            count=a.count,
            resources=a.resources,
            zone=a.zone,
            required_traits=a.required_traits,
            anti_affinity_group=a.anti_affinity_group,
            strategy=Strategy(a.strategy),
            units=[AllocationUnit(unit=u, host=h) for u, h in sorted(units[a.id].items())],
            created_at=a.created_at,
            created_by=a.created_by,
            released_at=a.released_at,
            released_by=a.released_by,
        )
        for a, company, project in rows
    }
    return [by_id[i] for i in ids]

"""The statements that take and give back capacity and quota, shared by every use case
that does (allocate, the scheduler's admissions, release, reclaim, lease expiry, idle
reclaim), so there is one place for the rules and one lock order.

Lock order, everywhere: the allocation row, then quota rows by (company id, class), then
shared GPU device rows by (host id, device), then inventory rows by (host id, class).
Concurrent transactions on PostgreSQL then wait for each other instead of deadlocking.

GPU shares (thousandths of one device per unit) are claimed device by device: a unit
joins a device that holds shares (conditional update of its free thousandths) or opens
an entirely free one (insert; counted in the host's ``GPU`` inventory like a whole GPU).
The release that frees a device's last share deletes its row and gives the GPU back.

External allocations (a public cloud's instances) hold quota and no hosts: ``take_quota``
claims it, and ``end`` first moves them to ``releasing`` (their instances must be deleted
at the provider before the quota comes back), then, called again from ``releasing`` by the
provisioner, gives the quota back like any release.

Quota rows are changed by one conditional statement: ``used``, ``borrowed`` and ``lent``
move together and the WHERE clause repeats the sharing invariants (the CHECK constraints
say the same), so a plan made on a stale snapshot fails with a short row count and is
retried, never committed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from groupcloud.db import audit
from groupcloud.db.addresses import release_rows
from groupcloud.db.engine import Database
from groupcloud.db.models import (
    AffinityMemberRow,
    AllocationDeviceRow,
    AllocationItemRow,
    AllocationRow,
    ExternalInstanceRow,
    GpuDeviceRow,
    HostRow,
    InventoryRow,
    IpAddressRow,
    LoanRow,
    QuotaRow,
    table_of,
)
from groupcloud.db.prepared import Cursor, on_connection, prepared
from groupcloud.domain.allocation import (
    GPU_MILLI,
    AllocationState,
    EndReason,
    PendingReason,
    gpu_quota,
)
from groupcloud.domain.inventory import HostState
from groupcloud.domain.resources import scale
from groupcloud.errors import GroupcloudError
from groupcloud.placement.pipeline import Placement
from groupcloud.quota.cohort import Move

__all__ = [
    "Claim",
    "Delta",
    "HostChanges",
    "QuotaRefused",
    "StaleHosts",
    "by_class",
    "end",
    "move_loans",
    "quota_changes",
    "record",
    "repay",
    "take",
    "take_quota",
]

Delta = tuple[int, str, int]
"""(host id, resource class, amount)"""
LoanKey = tuple[int, str]
"""(lender company id, resource class)"""
DeviceChange = tuple[int, int, int]
"""(host id, device, change of its free thousandths)"""

ALLOC = table_of(AllocationRow)
_ITEMS = table_of(AllocationItemRow)
_INV = table_of(InventoryRow)
_QUOTA = table_of(QuotaRow)
_HOSTS = table_of(HostRow)
_AFFINITY = table_of(AffinityMemberRow)
_LOANS = table_of(LoanRow)
_IPS = table_of(IpAddressRow)
_GPUS = table_of(GpuDeviceRow)
_UNIT_GPUS = table_of(AllocationDeviceRow)
_EXTERNAL = table_of(ExternalInstanceRow)

_TAKE_QUOTA = (
    update(_QUOTA)
    .where(
        _QUOTA.c.company_id == bindparam("b_company"),
        _QUOTA.c.resource_class == bindparam("b_rc"),
        (_QUOTA.c.used + bindparam("b_used"))
        - (_QUOTA.c.borrowed + bindparam("b_borrowed"))
        + (_QUOTA.c.lent + bindparam("b_lent"))
        <= _QUOTA.c.nominal,
        (_QUOTA.c.borrowing_limit.is_(None))
        | (_QUOTA.c.borrowed + bindparam("b_borrowed") <= _QUOTA.c.borrowing_limit),
        (_QUOTA.c.lending_limit.is_(None))
        | (_QUOTA.c.lent + bindparam("b_lent") <= _QUOTA.c.lending_limit),
    )
    .values(
        used=_QUOTA.c.used + bindparam("b_used"),
        borrowed=_QUOTA.c.borrowed + bindparam("b_borrowed"),
        lent=_QUOTA.c.lent + bindparam("b_lent"),
    )
)
_GIVE_QUOTA = (
    update(_QUOTA)
    .where(
        _QUOTA.c.company_id == bindparam("b_company"), _QUOTA.c.resource_class == bindparam("b_rc")
    )
    .values(
        used=_QUOTA.c.used - bindparam("b_used"),
        borrowed=_QUOTA.c.borrowed - bindparam("b_borrowed"),
        lent=_QUOTA.c.lent - bindparam("b_lent"),
    )
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
_GIVE_INVENTORY = (
    update(_INV)
    .where(_INV.c.host_id == bindparam("b_host"), _INV.c.resource_class == bindparam("b_rc"))
    .values(used=_INV.c.used - bindparam("b_amount"))
)
_JOIN_DEVICE = (
    update(_GPUS)
    .where(
        _GPUS.c.host_id == bindparam("b_host"),
        _GPUS.c.device == bindparam("b_device"),
        _GPUS.c.free_milli >= bindparam("b_milli"),
    )
    .values(free_milli=_GPUS.c.free_milli - bindparam("b_milli"))
)
_OPEN_DEVICE = insert(_GPUS).inline()
_OPEN_COLUMNS = ("host_id", "device", "free_milli")
_FREE_DEVICE = delete(_GPUS).where(
    _GPUS.c.host_id == bindparam("b_host"),
    _GPUS.c.device == bindparam("b_device"),
    _GPUS.c.free_milli + bindparam("b_milli") >= GPU_MILLI,
)
_LEAVE_DEVICE = (
    update(_GPUS)
    .where(_GPUS.c.host_id == bindparam("b_host"), _GPUS.c.device == bindparam("b_device"))
    .values(free_milli=_GPUS.c.free_milli + bindparam("b_milli"))
)
_INSERT_UNIT_GPUS = insert(_UNIT_GPUS).inline()
_UNIT_GPU_COLUMNS = ("allocation_id", "unit", "host_id", "device", "milli")
_INSERT_ITEMS = insert(_ITEMS).inline()
_ITEM_COLUMNS = ("allocation_id", "unit", "host_id", "resource_class", "amount")
_INSERT_AFFINITY = insert(_AFFINITY).inline()
_AFFINITY_COLUMNS = ("company_id", "group_name", "host_id", "allocation_id")
_INSERT_LOANS = insert(_LOANS).inline()
_LOAN_COLUMNS = ("allocation_id", "lender_id", "resource_class", "amount")
_LOCK_LIVE = (
    select(ALLOC.c.id)
    .where(ALLOC.c.id == bindparam("b_id"), ALLOC.c.state == AllocationState.ACTIVE.value)
    .with_for_update()  # a release of it reads its loans after locking this row
)
_LOAN_KEY = (
    (_LOANS.c.allocation_id == bindparam("b_id"))
    & (_LOANS.c.lender_id == bindparam("b_lender"))
    & (_LOANS.c.resource_class == bindparam("b_rc"))
)
_DROP_LOAN = delete(_LOANS).where(_LOAN_KEY, _LOANS.c.amount == bindparam("b_amount"))
_CUT_LOAN = (
    update(_LOANS)
    .where(_LOAN_KEY, _LOANS.c.amount > bindparam("b_amount"))
    .values(amount=_LOANS.c.amount - bindparam("b_amount"))
)
_GROW_LOAN = update(_LOANS).where(_LOAN_KEY).values(amount=_LOANS.c.amount + bindparam("b_amount"))


class QuotaRefused(Exception):
    """A quota row did not take its share: the quota snapshot was stale (or full)."""


class StaleHosts(Exception):
    """An inventory row did not take its share: the index was stale for these hosts."""

    def __init__(self, host_ids: Sequence[int]) -> None:
        super().__init__(host_ids)
        self.host_ids = tuple(host_ids)


@dataclass(frozen=True, slots=True)
class HostChanges:
    """What a claim (+) or a release (-) changed on the hosts, signed as the capacity
    index applies it: used amounts per (host, class), and the free thousandths of shared
    GPU devices (- taken, + given back)."""

    deltas: list[Delta] = field(default_factory=list)
    devices: list[DeviceChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.deltas or self.devices)


@dataclass(frozen=True, slots=True)
class Claim:
    """One allocation's part of a claim transaction: what it takes and where.
    ``gpu_share``: thousandths of the device ``placement.devices`` names, per unit."""

    allocation_id: str
    company_id: int
    per_unit: Mapping[str, int]
    placement: Placement
    demand: Mapping[str, int]
    loans: Mapping[LoanKey, int] = field(default_factory=dict)
    affinity_group: str | None = None
    gpu_share: int = 0
    transfers: Mapping[LoanKey, int] = field(default_factory=dict)
    """(new lender, class) -> this company's lent nominal moved to that lender (the
    rows are rewritten by ``move_loans``; ``take`` moves the lenders' ``lent``)."""

    @property
    def deltas(self) -> list[Delta]:
        """What it takes from each host, per class, in lock order (shares aside)."""
        return self.placement.deltas(self.per_unit)

    @property
    def units_on_devices(self) -> list[tuple[int, int, int]]:
        """(unit, host id, device) of each GPU-sharing unit."""
        if not self.gpu_share:
            return []
        return [
            (unit, host_id, self.placement.devices[unit][0])
            for unit, host_id in enumerate(self.placement.host_ids)
        ]


def quota_changes(
    company_id: int, demand: Mapping[str, int], loans: Mapping[LoanKey, int]
) -> list[dict[str, Any]]:
    """Parameters of the quota updates of a claim (or, negated, a release), in lock order:
    the borrower's ``used`` and ``borrowed``, and each lender's ``lent``."""
    return _quota_params(_add_changes({}, company_id, demand, loans))


def _add_changes(
    changes: dict[tuple[int, str], list[int]],
    company_id: int,
    demand: Mapping[str, int],
    loans: Mapping[LoanKey, int],
) -> dict[tuple[int, str], list[int]]:
    for rc, n in demand.items():
        changes.setdefault((company_id, rc), [0, 0, 0])[0] += n
    for (lender, rc), n in loans.items():
        changes[company_id, rc][1] += n
        changes.setdefault((lender, rc), [0, 0, 0])[2] += n
    return changes


def _quota_params(changes: dict[tuple[int, str], list[int]]) -> list[dict[str, Any]]:
    return [
        {"b_company": c, "b_rc": rc, "b_used": u, "b_borrowed": b, "b_lent": lent}
        for (c, rc), (u, b, lent) in sorted(changes.items())
    ]


def take(cur: Cursor, db: Database, batch: Sequence[Claim]) -> HostChanges:
    """Claim quota (with loans), GPU shares and host capacity for every claim of
    ``batch``; raises ``QuotaRefused``/``StaleHosts`` (the caller's transaction rolls
    back). ``record`` then writes what is held.

    The changes are summed per quota line and per host first: claims only add, so if the
    sums pass the conditions every intermediate state did too, and a batch of admissions
    costs one statement per table (which is what makes the scheduler fast on PostgreSQL,
    where each statement is a round trip)."""
    changes: dict[tuple[int, str], list[int]] = {}
    per_host: dict[tuple[int, str], int] = defaultdict(int)
    shares: dict[tuple[int, int], int] = defaultdict(int)
    for claim in batch:
        _add_changes(changes, claim.company_id, claim.demand, claim.loans)
        for (lender, rc), n in claim.transfers.items():
            changes[claim.company_id, rc][2] -= n
            changes.setdefault((lender, rc), [0, 0, 0])[2] += n
        for h, rc, n in claim.deltas:
            per_host[h, rc] += n
        for _, h, device in claim.units_on_devices:
            shares[h, device] += claim.gpu_share
    params = _quota_params(changes)
    if cur.run(db.prepare(_TAKE_QUOTA), params) != len(params):
        raise QuotaRefused()
    devices = _take_shares(cur, db, shares, per_host)
    deltas = [(h, rc, n) for (h, rc), n in sorted(per_host.items())]
    taken = cur.run(
        db.prepare(_TAKE_INVENTORY),
        [{"b_host": h, "b_rc": rc, "b_amount": n} for h, rc, n in deltas],
    )
    if taken != len(deltas):
        raise StaleHosts(sorted({h for h, _, _ in deltas}))
    return HostChanges(deltas, devices)


def take_quota(cur: Cursor, db: Database, company_id: int, demand: Mapping[str, int]) -> None:
    """Claim ``demand`` from the company's own free nominal (no loans, no hosts): what an
    external allocation holds while its instances live. Raises ``QuotaRefused``."""
    params = quota_changes(company_id, demand, {})
    if cur.run(db.prepare(_TAKE_QUOTA), params) != len(params):
        raise QuotaRefused()


def _take_shares(
    cur: Cursor,
    db: Database,
    shares: Mapping[tuple[int, int], int],
    per_host: dict[tuple[int, str], int],
) -> list[DeviceChange]:
    """Take ``shares`` (thousandths per (host, device)): join the device if it holds
    shares with room, else open it (an insert that collides when another claim opened or
    filled it meanwhile: the plan was stale). Each device opened counts as one GPU used
    on its host (added to ``per_host``)."""
    for (h, device), milli in sorted(shares.items()):
        key = {"b_host": h, "b_device": device, "b_milli": milli}
        if cur.run(db.prepare(_JOIN_DEVICE), [key]) == 1:
            continue
        try:
            cur.run(
                db.prepare(_OPEN_DEVICE, _OPEN_COLUMNS),
                [{"host_id": h, "device": device, "free_milli": GPU_MILLI - milli}],
            )
        except IntegrityError as exc:  # opened, or too full, since the plan was made
            raise StaleHosts([h]) from exc
        per_host[h, "GPU"] += 1
    return [(h, device, -milli) for (h, device), milli in sorted(shares.items())]


def repay(cur: Cursor, db: Database, moves: Sequence[Move]) -> None:
    """Pay loans back from the borrowers' free own nominal (moves to the borrower itself):
    the rows, the borrowers' ``borrowed`` and the lenders' ``lent``. The borrower's
    conditional update is its own-nominal check, so a repay planned on a stale snapshot
    (the borrower claimed its free nominal meanwhile) raises ``QuotaRefused``."""
    move_loans(cur, db, moves)
    changes: dict[tuple[int, str], list[int]] = {}
    for m in moves:
        changes.setdefault((m.borrower, m.resource_class), [0, 0, 0])[1] -= m.amount
        changes.setdefault((m.from_lender, m.resource_class), [0, 0, 0])[2] -= m.amount
    params = _quota_params(changes)
    if cur.run(db.prepare(_TAKE_QUOTA), params) != len(params):
        raise QuotaRefused()


def move_loans(cur: Cursor, db: Database, moves: Sequence[Move]) -> None:
    """Rewrite the loans rows of ``moves``; raises ``QuotaRefused`` when one no longer
    holds what the plan moves (released, reclaimed or moved since the snapshot). Run in
    the claim transaction before ``take``: the allocation rows are locked first (in id
    order), as a release locks them before it reads their loans, so a release either
    returns the loans as they were before the move or waits and returns them moved."""
    for alloc_id in sorted({m.allocation_id for m in moves}):
        if not cur.rows(db.prepare(_LOCK_LIVE), {"b_id": alloc_id}):
            raise QuotaRefused()
    for m in moves:
        old = {"b_id": m.allocation_id, "b_lender": m.from_lender, "b_rc": m.resource_class}
        cut = _DROP_LOAN if m.whole else _CUT_LOAN
        if cur.run(db.prepare(cut), {**old, "b_amount": m.amount}) != 1:
            raise QuotaRefused()
        if m.to_lender == m.borrower:
            continue  # repaid
        new = {**old, "b_lender": m.to_lender, "b_amount": m.amount}
        if cur.run(db.prepare(_GROW_LOAN), new) != 1:
            cur.run(
                db.prepare(_INSERT_LOANS, _LOAN_COLUMNS),
                [
                    {
                        "allocation_id": m.allocation_id,
                        "lender_id": m.to_lender,
                        "resource_class": m.resource_class,
                        "amount": m.amount,
                    }
                ],
            )


def record(cur: Cursor, db: Database, batch: Sequence[Claim]) -> None:
    """Write what the allocations hold: their items, anti-affinity members and loans."""
    cur.run(
        db.prepare(_INSERT_ITEMS, _ITEM_COLUMNS),
        [
            {
                "allocation_id": c.allocation_id,
                "unit": unit,
                "host_id": host_id,
                "resource_class": rc,
                "amount": amount,
            }
            for c in batch
            for unit, host_id in enumerate(c.placement.host_ids)
            for rc, amount in c.per_unit.items()
        ],
    )
    on_devices = [
        {
            "allocation_id": c.allocation_id,
            "unit": unit,
            "host_id": host_id,
            "device": device,
            "milli": c.gpu_share,
        }
        for c in batch
        for unit, host_id, device in c.units_on_devices
    ]
    if on_devices:
        cur.run(db.prepare(_INSERT_UNIT_GPUS, _UNIT_GPU_COLUMNS), on_devices)
    members = [
        {
            "company_id": c.company_id,
            "group_name": c.affinity_group,
            "host_id": host_id,
            "allocation_id": c.allocation_id,
        }
        for c in batch
        if c.affinity_group
        for host_id in c.placement.host_ids
    ]
    if members:
        cur.run(db.prepare(_INSERT_AFFINITY, _AFFINITY_COLUMNS), members)
    loans = [
        {"allocation_id": c.allocation_id, "lender_id": lender, "resource_class": rc, "amount": n}
        for c in batch
        for (lender, rc), n in sorted(c.loans.items())
    ]
    if loans:
        cur.run(db.prepare(_INSERT_LOANS, _LOAN_COLUMNS), loans)


_STATE = (
    select(ALLOC.c.company_id, ALLOC.c.state, ALLOC.c.external)
    .where(ALLOC.c.id == bindparam("b_id"))
    .with_for_update()  # the state read decides what to give back: hold it
)
_ENDED = {
    "reclaim_at": None,
    "reclaim_for": None,
    "idle_since": None,
    "idle_flagged_at": None,
    "started_at": None,
}
_MOVE = update(ALLOC).where(ALLOC.c.id == bindparam("b_id"), ALLOC.c.state == bindparam("b_from"))
_REQUEUE = _MOVE.values(
    **_ENDED,
    state=AllocationState.PENDING.value,
    not_before=bindparam("b_not_before"),
    pending_reason=PendingReason.BACKOFF.value,
    pending_detail=None,
    reclaim_count=ALLOC.c.reclaim_count + 1,
)
_RELEASE = _MOVE.values(
    **_ENDED,
    state=AllocationState.RELEASED.value,
    released_at=bindparam("b_now"),
    released_by=bindparam("b_actor"),
    end_reason=bindparam("b_reason"),
)
_RELEASE_RECLAIMED = _RELEASE.values(reclaim_count=ALLOC.c.reclaim_count + 1)
_FAIL = _RELEASE.values(state=AllocationState.FAILED.value)
_TO_RELEASING = _MOVE.values(
    **_ENDED,
    state=AllocationState.RELEASING.value,
    released_by=bindparam("b_actor"),
    end_reason=bindparam("b_reason"),
)
_INSTANCES_RELEASING = (
    update(_EXTERNAL)
    .where(
        _EXTERNAL.c.allocation_id == bindparam("b_id"),
        (_EXTERNAL.c.state == "provisioning") | (_EXTERNAL.c.state == "active"),
    )
    .values(state="releasing", updated_at=bindparam("b_now"))
)
_FAILURES = frozenset({EndReason.PROVIDER_FAILED, EndReason.INSTANCE_LOST})
_EXTERNAL_LIVE = frozenset(
    {AllocationState.PROVISIONING, AllocationState.ACTIVE, AllocationState.RECLAIMING}
)
_HELD_ADDRESSES = (
    select(_IPS.c.id)
    .where(_IPS.c.allocation_id == bindparam("b_id"), _IPS.c.released_at.is_(None))
    .limit(1)
)
_ITEMS_HELD = select(_ITEMS.c.host_id, _ITEMS.c.resource_class, _ITEMS.c.amount).where(
    _ITEMS.c.allocation_id == bindparam("b_id")
)
_LOANS_HELD = select(_LOANS.c.lender_id, _LOANS.c.resource_class, _LOANS.c.amount).where(
    _LOANS.c.allocation_id == bindparam("b_id")
)
_DEVICES_HELD = select(_UNIT_GPUS.c.host_id, _UNIT_GPUS.c.device, _UNIT_GPUS.c.milli).where(
    _UNIT_GPUS.c.allocation_id == bindparam("b_id")
)
_FORGET_DEVICES = delete(_UNIT_GPUS).where(_UNIT_GPUS.c.allocation_id == bindparam("b_id"))
_FORGET_ITEMS = delete(_ITEMS).where(_ITEMS.c.allocation_id == bindparam("b_id"))
_FORGET_LOANS = delete(_LOANS).where(_LOANS.c.allocation_id == bindparam("b_id"))
_LEAVE_AFFINITY = delete(_AFFINITY).where(_AFFINITY.c.allocation_id == bindparam("b_id"))


def end(
    conn: Connection,
    actor: str,
    allocation_id: str,
    reason: EndReason,
    *,
    from_states: Sequence[AllocationState] = (
        AllocationState.PENDING,
        AllocationState.ACTIVE,
        AllocationState.RECLAIMING,
        AllocationState.PROVISIONING,
    ),
    requeue_at: datetime | None = None,
    data: Mapping[str, Any] | None = None,
    quarantine_s: float,
    now: datetime,
) -> HostChanges | None:
    """Give back everything the allocation holds and move it to ``released`` (or, with
    ``requeue_at``, back to ``pending`` until then); what the hosts got back, signed for
    the index. Its interface addresses go into quarantine for ``quarantine_s`` (a
    requeued allocation gets new ones when admitted again). None when it was not in one
    of ``from_states`` (someone else ended it first: nothing is changed).

    Every release, reclaim and expiry runs these statements, so they are compiled once
    and run on the driver's cursor inside ``conn``'s transaction (``db.prepared``), as
    the claim path does; only the rare release of addresses goes through SQLAlchemy."""
    dialect = conn.dialect
    with on_connection(conn) as cur:
        found = cur.rows(prepared(_STATE, dialect), {"b_id": allocation_id})
        if not found or AllocationState(found[0][1]) not in from_states:
            return None
        company_id, state = int(found[0][0]), str(found[0][1])
        external = bool(found[0][2])
        params: dict[str, Any] = {"b_id": allocation_id, "b_from": state}
        if external and reason not in _FAILURES and AllocationState(state) in _EXTERNAL_LIVE:
            return _start_releasing(cur, dialect, actor, allocation_id, company_id, state,
                                    reason, now, data)  # fmt: skip
        if requeue_at is not None:
            move = _REQUEUE
            params["b_not_before"] = requeue_at
        else:
            move = _RELEASE_RECLAIMED if reason is EndReason.RECLAIMED else _RELEASE
            move = _FAIL if reason in _FAILURES else move
            params.update(b_now=now, b_actor=actor, b_reason=reason.value)
        if cur.run(prepared(move, dialect), params) != 1:
            return None
        deltas: list[Delta] = []
        devices: list[DeviceChange] = []
        released: list[tuple[int, str, str]] = []
        if AllocationState(state).holds_capacity:
            deltas, devices = _give_back(
                cur,
                dialect,
                company_id,
                allocation_id,
                requeue_at is not None,
                _external_demand(conn, allocation_id) if external else {},
            )
            if cur.rows(prepared(_HELD_ADDRESSES, dialect), {"b_id": allocation_id}):
                released = release_rows(
                    conn, _IPS.c.allocation_id == allocation_id, now, quarantine_s
                )
        kind = "allocation.requeued" if requeue_at is not None else "allocation.released"
        kind = "allocation.failed" if reason in _FAILURES else kind
        payload: dict[str, Any] = {
            "reason": reason.value,
            "returned": by_class(deltas),
            **(data or {}),
        }
        if released:
            payload["addresses"] = [address for _, address, _ in released]
        if requeue_at is not None:
            payload["not_before"] = requeue_at.isoformat()
        cur.run(
            prepared(audit.INSERT, dialect, audit.COLUMNS),
            audit.row(actor, kind, f"allocation/{allocation_id}", company_id, payload, at=now),
        )
    return HostChanges([(h, rc, -n) for h, rc, n in deltas], devices)


def _start_releasing(
    cur: Cursor,
    dialect: Dialect,
    actor: str,
    allocation_id: str,
    company_id: int,
    state: str,
    reason: EndReason,
    now: datetime,
    data: Mapping[str, Any] | None,
) -> HostChanges | None:
    """An external allocation's release, lease end or idle release: ``releasing`` (its
    instances to be deleted by the provisioner, which then ends it from there), quota
    still held: the instances cost money until they are gone."""
    params = {"b_id": allocation_id, "b_from": state, "b_actor": actor, "b_reason": reason.value}
    if cur.run(prepared(_TO_RELEASING, dialect), params) != 1:
        return None
    cur.run(prepared(_INSTANCES_RELEASING, dialect), {"b_id": allocation_id, "b_now": now})
    cur.run(
        prepared(audit.INSERT, dialect, audit.COLUMNS),
        audit.row(
            actor,
            "allocation.releasing",
            f"allocation/{allocation_id}",
            company_id,
            {"reason": reason.value, **(data or {})},
            at=now,
        ),
    )
    return HostChanges()


def _external_demand(conn: Connection, allocation_id: str) -> dict[str, int]:
    """The quota an external allocation holds: its amounts per unit times its units (it
    holds no hosts, GPU shares or loans)."""
    row = conn.execute(
        select(ALLOC.c.resources, ALLOC.c.count).where(ALLOC.c.id == allocation_id)
    ).one()
    return scale(row[0], int(row[1]))


def _give_back(
    cur: Cursor,
    dialect: Dialect,
    company_id: int,
    allocation_id: str,
    forget: bool,
    external: Mapping[str, int],
) -> tuple[list[Delta], list[DeviceChange]]:
    """Return exactly what the allocation's items, GPU shares, loans and (external
    placement) quota without hosts hold: to the borrower's quota, to each lender's
    quota, to each shared device and to each host.
    Items, devices and loans stay as the history of a released allocation; ``forget``
    deletes them for one that queues again. Returns what each host got back (positive)
    and each device's change of free thousandths."""
    by_id = {"b_id": allocation_id}
    per_host: dict[tuple[int, str], int] = defaultdict(int)
    for host_id, rc, amount in cur.rows(prepared(_ITEMS_HELD, dialect), by_id):
        per_host[int(host_id), str(rc)] += int(amount)
    demand = by_class([(h, rc, n) for (h, rc), n in per_host.items()])
    for rc, n in external.items():
        demand[rc] = demand.get(rc, 0) + n
    shares: dict[tuple[int, int], int] = defaultdict(int)
    units = cur.rows(prepared(_DEVICES_HELD, dialect), by_id)
    for host_id, device, milli in units:
        shares[int(host_id), int(device)] += int(milli)
    if units:  # the GPU quota a share was charged (the shares of one allocation are equal)
        demand["GPU"] = demand.get("GPU", 0) + gpu_quota(len(units), int(units[0][2]))
    loans = {
        (int(lender), str(rc)): int(amount)
        for lender, rc, amount in cur.rows(prepared(_LOANS_HELD, dialect), by_id)
    }
    changes = quota_changes(company_id, dict(sorted(demand.items())), loans)
    given = cur.run(prepared(_GIVE_QUOTA, dialect), changes) if changes else 0
    missing = given != len(changes)
    for (h, device), milli in sorted(shares.items()):
        key = {"b_host": h, "b_device": device, "b_milli": milli}
        if cur.run(prepared(_FREE_DEVICE, dialect), key) == 1:
            per_host[h, "GPU"] += 1  # its last share: the device is entirely free again
        elif cur.run(prepared(_LEAVE_DEVICE, dialect), key) != 1:
            missing = True
    deltas = [(h, rc, n) for (h, rc), n in sorted(per_host.items())]
    returns = [{"b_host": h, "b_rc": rc, "b_amount": n} for h, rc, n in deltas]
    returned = cur.run(prepared(_GIVE_INVENTORY, dialect), returns) if returns else 0
    if missing or returned != len(deltas):
        raise GroupcloudError(
            f"allocation {allocation_id}: counters to return to are missing; nothing was changed"
        )
    if forget:
        cur.run(prepared(_FORGET_ITEMS, dialect), by_id)
        cur.run(prepared(_FORGET_DEVICES, dialect), by_id)
        cur.run(prepared(_FORGET_LOANS, dialect), by_id)
    cur.run(prepared(_LEAVE_AFFINITY, dialect), by_id)
    return deltas, [(h, device, milli) for (h, device), milli in sorted(shares.items())]


def by_class(deltas: Sequence[Delta]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for _, rc, n in deltas:
        out[rc] += n
    return dict(sorted(out.items()))

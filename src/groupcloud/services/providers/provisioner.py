"""The provisioner and reconciler: make the providers match the database.

The database says what should exist (``external_instances`` rows); the provisioner, run
by the worker's leader every round, makes it so:

* **create** what is ``provisioning`` (idempotent on the row's client token: a creation
  repeated after a crash returns the same instance), then the allocation is ``active``
  once every unit is;
* **delete** what is ``releasing``; when an allocation's last instance is gone, ``end``
  gives its quota back (``released``);
* **fail over**: a creation that fails or times out blocks the zone (``zone_blocks``,
  doubling back-off) and re-plans the unit in the next allowed zone; with none left the
  allocation ``failed`` (``provider_failed``), its quota returned;
* **reconcile** every ``reconcile_interval_s``: an instance the provider lists whose
  token no live row holds (a crash between creation and commit, an abandoned attempt,
  a release that forgot an id) is adopted or deleted; a row whose instance vanished is
  failed (``instance_lost``) and its quota returned;
* **repatriation**: an external allocation with ``repatriate`` is flagged
  (``repatriable_at``, event ``allocation.repatriable``) when a private zone could take it.

Provider calls of one pass run concurrently (``asyncio.gather``), each bounded by
``with_retries``; database changes are short transactions between them, never around a
provider call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from groupcloud.db import claims
from groupcloud.db.models import AllocationRow, CompanyRow, ExternalInstanceRow, ZoneBlockRow
from groupcloud.domain.allocation import AllocationState, EndReason, spec_of
from groupcloud.errors import NoOffer, ProvidersUnavailable
from groupcloud.placement.pipeline import Rejection, place
from groupcloud.providers.base import (
    TAG_ALLOCATION,
    TAG_MANAGED,
    TAG_UNIT,
    Instance,
    InstanceSpec,
    Provider,
    ProviderError,
    with_retries,
)
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.providers import external
from groupcloud.services.providers.catalog import adapter
from groupcloud.services.providers.external import ExternalZone
from groupcloud.services.zones.rules import zone_decision, zone_kinds, zones_of_kind

__all__ = ["Pass", "block_zone", "step"]

log = logging.getLogger("groupcloud.provisioner")
T = TypeVar("T")
SYSTEM = "system:provisioner"
_RECONCILED = "reconciled_at"


@dataclass
class Pass:
    """What one pass did (the worker's round counts it)."""

    created: int = 0
    deleted: int = 0
    replanned: int = 0
    failed: int = 0
    adopted: int = 0
    orphans_deleted: int = 0
    lost: int = 0
    repatriable: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """Instances created, deleted, re-planned, failed, adopted or cleaned up (what a
        worker round reports; flags of repatriation candidates are not changes)."""
        return sum((self.created, self.deleted, self.replanned, self.failed, self.adopted,
                    self.orphans_deleted, self.lost))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Work:
    row_id: int
    allocation_id: str
    unit: int
    zone: ExternalZone
    instance_type: str
    client_token: str
    instance_id: str | None
    state: str


def step(rt: Runtime, now: datetime | None = None, *, reconcile: bool | None = None) -> Pass:
    """One pass: create, delete, then (when due, or ``reconcile=True``) reconcile."""
    now = now or rt.clock()
    out = Pass()
    work = _load(rt)
    if work:
        creating = [w for w in work if w.state == "provisioning"]
        deleting = [w for w in work if w.state == "releasing"]
        created, removed = _sync(_pair(_create_all(rt, creating), _delete_all(rt, deleting)))
        for w, result in zip(creating, created, strict=True):
            _after_create(rt, w, result, out, now)
        for w, error in zip(deleting, removed, strict=True):
            _after_delete(rt, w, error, out, now)
    last = rt.adapters.get(_RECONCILED)
    due = not isinstance(last, datetime) or now - last >= timedelta(
        seconds=rt.settings.reconcile_interval_s
    )
    if reconcile or (reconcile is None and due):
        rt.adapters[_RECONCILED] = now
        reconcile_all(rt, out, now)
        _flag_repatriable(rt, out, now)
    return out


# --- loading -----------------------------------------------------------------------------


def _load(rt: Runtime) -> list[_Work]:
    with rt.db.read() as s:
        zones = {z.id: z for z in external.external_zones(s)}
        rows = s.scalars(
            select(ExternalInstanceRow)
            .where(ExternalInstanceRow.state.in_(["provisioning", "releasing"]))
            .order_by(ExternalInstanceRow.id)
        ).all()
    return [
        _Work(
            r.id,
            r.allocation_id,
            r.unit,
            zones[r.zone_id],
            r.instance_type,
            r.client_token,
            r.instance_id,
            r.state,
        )
        for r in rows
        if r.zone_id in zones
    ]


def _provider(rt: Runtime, zone: ExternalZone) -> Provider:
    return adapter(rt, zone.provider, zone.kind, zone.settings)


def _sync(call: Awaitable[T]) -> T:
    """Wait for ``call`` from the worker's thread (which runs no event loop)."""

    async def wrapped() -> T:
        return await call

    return asyncio.run(wrapped())


async def _pair(first: Awaitable[T], second: Awaitable[Any]) -> tuple[T, Any]:
    a, b = await asyncio.gather(first, second)
    return a, b


async def _call(rt: Runtime, call: Callable[[], Awaitable[T]]) -> T:
    return await with_retries(
        call, timeout_s=rt.settings.provider_timeout_s, attempts=rt.settings.provider_attempts
    )


async def _guarded(rt: Runtime, call: Callable[[], Awaitable[T]]) -> T | ProviderError:
    """The call's result, or the provider error it ended with (never raised: one
    failing zone must not stop the others' work)."""
    try:
        return await _call(rt, call)
    except ProviderError as exc:
        return exc


# --- creation and failover ---------------------------------------------------------------


async def _create_all(rt: Runtime, work: Sequence[_Work]) -> list[Instance | ProviderError]:
    async def one(w: _Work) -> Instance | ProviderError:
        provider = _provider(rt, w.zone)
        spec = InstanceSpec(
            client_token=w.client_token,
            region=w.zone.region,
            instance_type=w.instance_type,
            tags={TAG_MANAGED: "true", TAG_ALLOCATION: w.allocation_id, TAG_UNIT: str(w.unit)},
        )
        return await _guarded(rt, lambda: provider.create_instance(spec))

    return list(await asyncio.gather(*(one(w) for w in work)))


def _after_create(
    rt: Runtime, w: _Work, result: Instance | ProviderError, out: Pass, now: datetime
) -> None:
    if isinstance(result, ProviderError):
        _failover(rt, w, result, out, now)
        return
    out.created += 1
    with rt.db.write() as s:
        row = s.get(ExternalInstanceRow, w.row_id, with_for_update=True)
        if row is None:
            return
        row.instance_id = result.id  # whatever its state now: a release deletes it by id
        row.updated_at = now
        if row.state == "provisioning":
            row.state = "active"
        s.execute(delete(ZoneBlockRow).where(ZoneBlockRow.zone_id == w.zone.id))
        s.flush()
        _activate_if_complete(s, w.allocation_id, now)


def _activate_if_complete(s: Session, allocation_id: str, now: datetime) -> None:
    """``active`` once every unit's instance is (the allocation row locked first)."""
    alloc = s.scalar(
        select(AllocationRow).where(AllocationRow.id == allocation_id).with_for_update()
    )
    if alloc is None or alloc.state != AllocationState.PROVISIONING.value:
        return
    states = _unit_states(s, allocation_id)
    if len(states) < alloc.count or any(v != "active" for v in states.values()):
        return
    alloc.state = AllocationState.ACTIVE.value
    alloc.started_at = now
    events.record(
        s,
        SYSTEM,
        "allocation.provisioned",
        f"allocation/{allocation_id}",
        alloc.company_id,
        {"instances": sorted(_instance_ids(s, allocation_id))},
        at=now,
    )


def _unit_states(s: Session, allocation_id: str) -> dict[int, str]:
    """Each unit's current row state (``abandoned`` attempts left out)."""
    query = select(ExternalInstanceRow.unit, ExternalInstanceRow.state).where(
        ExternalInstanceRow.allocation_id == allocation_id,
        ExternalInstanceRow.state != "abandoned",
    )
    return {int(unit): str(state) for unit, state in s.execute(query)}


def _instance_ids(s: Session, allocation_id: str) -> list[str]:
    return [
        i
        for i in s.scalars(
            select(ExternalInstanceRow.instance_id).where(
                ExternalInstanceRow.allocation_id == allocation_id,
                ExternalInstanceRow.instance_id.is_not(None),
            )
        )
        if i is not None
    ]


def block_zone(
    s: Session, zone_id: int, reason: str, now: datetime, base_s: float, max_s: float
) -> datetime:
    """Block a zone after a provider failure: ``base_s`` doubled per failure in a row,
    at most ``max_s``. Returns until when."""
    block = s.get(ZoneBlockRow, zone_id, with_for_update=True)
    failures = (block.failures if block else 0) + 1
    until = now + timedelta(seconds=min(base_s * 2 ** (failures - 1), max_s))
    if block is None:
        s.add(
            ZoneBlockRow(
                zone_id=zone_id, until=until, failures=failures, reason=reason, updated_at=now
            )
        )
    else:
        block.until, block.failures, block.reason, block.updated_at = until, failures, reason, now
    return until


def _failover(rt: Runtime, w: _Work, error: ProviderError, out: Pass, now: datetime) -> None:
    """The unit's creation failed: block the zone, abandon the attempt (the reconciler
    deletes an instance it may have left), and place the unit in the next allowed zone;
    with none, the allocation fails and its quota comes back."""
    out.errors.append(f"{w.zone.name}: {error}")
    settings = rt.settings
    with rt.db.write() as s:
        row = s.get(ExternalInstanceRow, w.row_id, with_for_update=True)
        if row is None or row.state != "provisioning":
            return
        until = block_zone(
            s, w.zone.id, str(error), now, settings.zone_block_s, settings.zone_block_max_s
        )
        row.state, row.error, row.updated_at = "abandoned", str(error), now
        row.attempts += 1
        alloc = s.scalar(select(AllocationRow).where(AllocationRow.id == w.allocation_id))
        assert alloc is not None
        company = s.scalar(select(CompanyRow.slug).where(CompanyRow.id == alloc.company_id))
        events.record(
            s,
            SYSTEM,
            "zone.blocked",
            f"zone/{w.zone.name}",
            None,
            {"until": until.isoformat(), "error": str(error), "allocation": w.allocation_id},
            at=now,
        )
        attempt = s.scalar(
            select(ExternalInstanceRow.id)
            .where(ExternalInstanceRow.allocation_id == w.allocation_id)
            .order_by(ExternalInstanceRow.id.desc())
        )
        decision = zone_decision(rt, company or "", alloc.data_class, alloc.system_type)
        try:
            plan = external.choose(
                rt,
                decision,
                resources=alloc.resources,
                gpu_share=alloc.gpu_share,
                gpu_models=alloc.gpu_models or [],
                zone=None,
                exclude={w.zone.name},
                now=now,
            )
        except (NoOffer, ProvidersUnavailable) as exc:
            failed_because = str(exc)
        else:
            (new,) = external.instance_rows(w.allocation_id, plan, [w.unit], attempt or 0, now)
            s.add(ExternalInstanceRow(**new))
            events.record(
                s,
                SYSTEM,
                "allocation.replanned",
                f"allocation/{w.allocation_id}",
                alloc.company_id,
                {"unit": w.unit, "from": w.zone.name, **external.event_data(plan, 1)},
                at=now,
            )
            out.replanned += 1
            return
    _fail(rt, w.allocation_id, EndReason.PROVIDER_FAILED, failed_because, now)
    out.failed += 1


def _fail(rt: Runtime, allocation_id: str, reason: EndReason, why: str, now: datetime) -> None:
    """End an external allocation as ``failed``: quota back; instances it still has are
    deleted by the next passes."""

    def attempt() -> None:
        with rt.db.write_conn() as conn:
            ended = claims.end(
                conn,
                SYSTEM,
                allocation_id,
                reason,
                from_states=(
                    AllocationState.PROVISIONING,
                    AllocationState.ACTIVE,
                    AllocationState.RECLAIMING,
                    AllocationState.RELEASING,
                ),
                data={"error": why},
                quarantine_s=rt.settings.ip_quarantine_s,
                now=now,
            )
            if ended is None:
                return
            conn.execute(
                update(ExternalInstanceRow)
                .where(
                    ExternalInstanceRow.allocation_id == allocation_id,
                    ExternalInstanceRow.state.in_(["provisioning", "active"]),
                )
                .values(state="releasing", updated_at=now)
            )

    rt.db.retrying(attempt)
    rt.wakeup.set()


# --- deletion ----------------------------------------------------------------------------


async def _delete_all(rt: Runtime, work: Sequence[_Work]) -> list[ProviderError | None]:
    async def one(w: _Work) -> ProviderError | None:
        if w.instance_id is None:
            return None  # never created (or not known yet: the reconciler finds it by token)
        provider, instance_id = _provider(rt, w.zone), w.instance_id
        result = await _guarded(rt, lambda: provider.delete_instance(w.zone.region, instance_id))
        return result if isinstance(result, ProviderError) else None

    return list(await asyncio.gather(*(one(w) for w in work)))


def _after_delete(
    rt: Runtime, w: _Work, error: ProviderError | None, out: Pass, now: datetime
) -> None:
    with rt.db.write() as s:
        row = s.get(ExternalInstanceRow, w.row_id, with_for_update=True)
        if row is None or row.state != "releasing":
            return
        if error is not None:  # tried again next pass; the quota stays held meanwhile
            row.error, row.updated_at = str(error), now
            row.attempts += 1
            out.errors.append(f"{w.zone.name}: {error}")
            return
        row.state, row.updated_at = "released", now
        out.deleted += 1
        s.flush()
        states = _unit_states(s, w.allocation_id)
        done = all(v in ("released", "failed") for v in states.values())
        alloc_state = s.scalar(
            select(AllocationRow.state).where(AllocationRow.id == w.allocation_id)
        )
    if done and alloc_state == AllocationState.RELEASING.value:
        _finish_release(rt, w.allocation_id, now)


def _finish_release(rt: Runtime, allocation_id: str, now: datetime) -> None:
    """Every instance is gone: give the quota back (``released``)."""

    def attempt() -> None:
        with rt.db.write_conn() as conn:
            reason = conn.execute(
                select(AllocationRow.end_reason).where(AllocationRow.id == allocation_id)
            ).scalar_one()
            claims.end(
                conn,
                SYSTEM,
                allocation_id,
                EndReason(reason or EndReason.RELEASED.value),
                from_states=(AllocationState.RELEASING,),
                quarantine_s=rt.settings.ip_quarantine_s,
                now=now,
            )

    rt.db.retrying(attempt)
    rt.wakeup.set()  # its quota may let a queued request in


# --- reconciliation ----------------------------------------------------------------------


def reconcile_all(rt: Runtime, out: Pass, now: datetime) -> None:
    """Compare every region's instances with the rows (see the module doc)."""
    with rt.db.read() as s:
        zones = external.external_zones(s)
        rows = s.scalars(select(ExternalInstanceRow)).all()
    by_token = {r.client_token: r for r in rows}
    regions: dict[tuple[str, str], ExternalZone] = {}
    for z in zones:
        regions.setdefault((z.provider, z.region), z)
    listed = _sync(_list_all(rt, list(regions.values())))
    seen: set[str] = set()
    for zone, found in zip(regions.values(), listed, strict=True):
        if isinstance(found, ProviderError):
            out.errors.append(f"{zone.name}: {found}")
            continue
        for instance in found:
            seen.add(instance.id)
            _reconcile_instance(rt, zone, instance, by_token, out, now)
    listed_ok = {
        (z.provider, z.region)
        for z, f in zip(regions.values(), listed, strict=True)
        if not isinstance(f, ProviderError)
    }
    zone_by_id = {z.id: z for z in zones}
    for r in rows:
        where = zone_by_id.get(r.zone_id)
        if (
            r.state == "active"
            and r.instance_id
            and r.instance_id not in seen
            and where is not None
            and (where.provider, where.region) in listed_ok
        ):
            _lost(rt, r, where, out, now)


async def _list_all(
    rt: Runtime, zones: Sequence[ExternalZone]
) -> list[list[Instance] | ProviderError]:
    async def one(z: ExternalZone) -> list[Instance] | ProviderError:
        provider = _provider(rt, z)
        return await _guarded(rt, lambda: provider.list_instances(z.region))

    return list(await asyncio.gather(*(one(z) for z in zones)))


def _token(instance: Instance) -> str:
    return instance.client_token or instance.tags.get("groupcloud:token", "")


def _reconcile_instance(
    rt: Runtime,
    zone: ExternalZone,
    instance: Instance,
    by_token: dict[str, ExternalInstanceRow],
    out: Pass,
    now: datetime,
) -> None:
    """Adopt, keep or delete one instance the provider lists (see the module doc)."""
    row = by_token.get(_token(instance))
    if row is not None and row.state == "active" and row.instance_id == instance.id:
        return
    if row is not None and row.state in ("provisioning", "releasing") and row.instance_id is None:
        with rt.db.write() as s:  # created, then the process died before it committed
            fresh = s.get(ExternalInstanceRow, row.id, with_for_update=True)
            if fresh is None or fresh.instance_id is not None:
                return
            fresh.instance_id, fresh.updated_at = instance.id, now
            if fresh.state == "provisioning":
                fresh.state = "active"
            s.flush()
            _activate_if_complete(s, fresh.allocation_id, now)
        out.adopted += 1
        return
    if row is not None and row.state == "releasing" and row.instance_id == instance.id:
        return  # the deletion pass deletes it
    # No live unit holds this instance (an abandoned attempt, an older crash, a second
    # instance of one token): it only costs money.
    provider = _provider(rt, zone)
    error = _sync(_guarded(rt, lambda: provider.delete_instance(zone.region, instance.id)))
    if isinstance(error, ProviderError):
        out.errors.append(f"{zone.name}: {error}")
        return
    out.orphans_deleted += 1
    with rt.db.write() as s:
        events.record(
            s,
            SYSTEM,
            "provider.orphan_deleted",
            f"zone/{zone.name}",
            None,
            {
                "instance": instance.id,
                "token": _token(instance),
                "allocation": instance.tags.get(TAG_ALLOCATION),
            },
            at=now,
        )


def _lost(
    rt: Runtime, row: ExternalInstanceRow, zone: ExternalZone, out: Pass, now: datetime
) -> None:
    """The provider no longer lists an active unit's instance: confirm, then fail it."""
    provider, instance_id = _provider(rt, zone), row.instance_id or ""
    found = _sync(_guarded(rt, lambda: provider.describe(zone.region, instance_id)))
    if found is not None:
        return  # listed late, or the describe failed: look again next time
    with rt.db.write() as s:
        fresh = s.get(ExternalInstanceRow, row.id, with_for_update=True)
        if fresh is None or fresh.state != "active":
            return
        fresh.state, fresh.error, fresh.updated_at = "failed", "instance vanished", now
    _fail(
        rt,
        row.allocation_id,
        EndReason.INSTANCE_LOST,
        f"instance {instance_id} vanished from zone {zone.name}",
        now,
    )
    out.lost += 1


# --- repatriation ------------------------------------------------------------------------


def _flag_repatriable(rt: Runtime, out: Pass, now: datetime) -> None:
    """Flag external allocations asking for it that a private zone could take now."""
    with rt.db.read() as s:
        rows = s.execute(
            select(AllocationRow, CompanyRow.slug)
            .join(CompanyRow, CompanyRow.id == AllocationRow.company_id)
            .where(
                AllocationRow.external.is_(True),
                AllocationRow.repatriate.is_(True),
                AllocationRow.repatriable_at.is_(None),
                AllocationRow.state == AllocationState.ACTIVE.value,
            )
        ).all()
    if not rows:
        return
    kinds = zone_kinds(rt)
    private = frozenset(z for z, k in kinds.items() if k.private)
    index = rt.index.get()
    flagged: dict[str, tuple[int, list[str]]] = {}
    for alloc, company in rows:
        decision = zone_decision(rt, company, alloc.data_class, alloc.system_type)
        allowed = (zones_of_kind(decision, kinds, None) or frozenset(kinds)) & private
        outcome = place(index, spec_of(_Unplaced.of(alloc), frozenset(), allowed))
        if not isinstance(outcome, Rejection):
            flagged[alloc.id] = (alloc.company_id, sorted(outcome.host_names))
    for allocation_id, (company_id, hosts) in flagged.items():
        with rt.db.write() as s:
            s.execute(
                update(AllocationRow)
                .where(AllocationRow.id == allocation_id, AllocationRow.repatriable_at.is_(None))
                .values(repatriable_at=now)
            )
            events.record(
                s,
                SYSTEM,
                "allocation.repatriable",
                f"allocation/{allocation_id}",
                company_id,
                {"hosts": hosts},
                at=now,
            )
        out.repatriable += 1


@dataclass(frozen=True, slots=True)
class _Unplaced:
    """An external allocation as placement reads a request, its zone left to the rules
    (it names the external zone it runs in)."""

    resources: Mapping[str, int]
    count: int
    required_traits: Sequence[str]
    anti_affinity_group: str | None
    strategy: str
    gpu_share: int
    gpu_models: Sequence[str] | None
    zone: str | None = None

    @classmethod
    def of(cls, row: AllocationRow) -> _Unplaced:
        return cls(
            row.resources,
            row.count,
            row.required_traits,
            row.anti_affinity_group,
            row.strategy,
            row.gpu_share,
            row.gpu_models,
        )

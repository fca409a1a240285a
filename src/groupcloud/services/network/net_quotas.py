"""Network quotas per company: how many VPCs, how many floating addresses, and how many
IPv4 addresses its VPCs may hold.

They are enforced like compute quota: one conditional update in the transaction that
carves or hands out (``used + n <= limit``), so concurrent requests on several processes
can never take a company above its limit, and the release in the transaction that gives
back. A company without a quota row has no limit; its row is created, with its use
counted from the stored prefixes and addresses, the first time it is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from groupcloud.db.models import (
    CompanyRow,
    IpAddressRow,
    NetPrefixRow,
    NetQuotaRow,
    table_of,
)
from groupcloud.domain.network import NetQuotaKind
from groupcloud.domain.tenancy import Principal
from groupcloud.errors import GroupcloudError, NetworkQuotaExceeded
from groupcloud.schemas.network import NetQuota, NetQuotaSet
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy.access import company_by_slug, require_group_admin

__all__ = ["charge", "ipv4_size", "list_net_quotas", "measure", "set_net_quota"]


def measure(conn: Connection, company_id: int, kind: NetQuotaKind) -> int:
    """What the company holds of ``kind``, counted from the rows (the counters' truth)."""
    if kind is NetQuotaKind.FLOATING_IPS:
        query = select(func.count()).where(
            IpAddressRow.company_id == company_id,
            IpAddressRow.kind == "floating",
            IpAddressRow.released_at.is_(None),
        )
        return int(conn.scalar(query) or 0)
    vpcs = conn.execute(
        select(NetPrefixRow.cidr).where(
            NetPrefixRow.kind == "vpc", NetPrefixRow.company_id == company_id
        )
    ).scalars()
    if kind is NetQuotaKind.VPCS:
        return sum(1 for _ in vpcs)
    return sum(ipv4_size(c) for c in vpcs)


def ipv4_size(cidr: str) -> int:
    """Addresses a prefix counts against ``ipv4_addresses`` (IPv6 prefixes count 0)."""
    if ":" in cidr:
        return 0
    return 1 << (32 - int(cidr.rsplit("/", 1)[1]))


def charge(
    conn: Connection,
    company_id: int,
    changes: Iterable[tuple[NetQuotaKind, int]],
    now: datetime,
) -> None:
    """Add ``n`` (negative: give back) to the company's use of each kind, refusing with
    ``network_quota_exceeded`` what would go above a limit. Call it before the change it
    counts (a missing row is created from what the rows hold then). Kinds in a fixed
    order, so concurrent transactions lock quota rows in the same order."""
    for kind, n in sorted(changes, key=lambda c: c[0].value):
        if n == 0 or _apply(conn, company_id, kind, n, now):
            continue
        limit, used = _row(conn, company_id, kind, lock=True, now=now)
        if _apply(conn, company_id, kind, n, now):
            continue
        if n < 0:
            raise GroupcloudError(
                f"company {company_id}: the {kind.value} counter ({used}) is below what is "
                f"given back ({-n}); nothing was changed"
            )
        raise NetworkQuotaExceeded(
            f"the {kind.value} quota allows {limit}; {used} used, {n} more requested",
            kind=kind.value,
            requested=n,
            used=used,
            limit=limit,
        )


_Q = table_of(NetQuotaRow)
_CHARGE = (
    update(_Q)
    .where(
        _Q.c.company_id == bindparam("b_company"),
        _Q.c.kind == bindparam("b_kind"),
        # the limit bounds taking only: giving back works whatever the limit is now
        (bindparam("b_n") <= 0)
        | (_Q.c.quota_limit.is_(None))
        | (_Q.c.used + bindparam("b_n") <= _Q.c.quota_limit),
        _Q.c.used + bindparam("b_n") >= 0,
    )
    .values(used=_Q.c.used + bindparam("b_n"), updated_at=bindparam("b_now"))
)


def _apply(conn: Connection, company_id: int, kind: NetQuotaKind, n: int, now: datetime) -> bool:
    params = {"b_company": company_id, "b_kind": kind.value, "b_n": n, "b_now": now}
    return conn.execute(_CHARGE, params).rowcount == 1


def _row(
    conn: Connection, company_id: int, kind: NetQuotaKind, *, lock: bool, now: datetime
) -> tuple[int | None, int]:
    """(limit, used) of the quota row, created (no limit, use measured) if missing."""
    query = select(NetQuotaRow.quota_limit, NetQuotaRow.used).where(
        NetQuotaRow.company_id == company_id, NetQuotaRow.kind == kind.value
    )
    got = conn.execute(query.with_for_update() if lock else query).first()
    if got is None:
        used = measure(conn, company_id, kind)
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(NetQuotaRow).values(
                        company_id=company_id,
                        kind=kind.value,
                        quota_limit=None,
                        used=used,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # created concurrently
            pass
        got = conn.execute(query.with_for_update() if lock else query).first()
    assert got is not None
    return got.quota_limit, got.used


def set_net_quota(
    rt: Runtime, actor: Principal, company: str, kind: NetQuotaKind, body: NetQuotaSet
) -> NetQuota:
    """Set (or lift, with null) a company's network quota. A limit below the current use
    is accepted: nothing is taken away, but nothing more is handed out until the use is
    below it again (the response shows both)."""
    require_group_admin(actor, "setting network quotas")
    now = rt.clock()
    with rt.db.write() as s:
        owner = company_by_slug(s, actor, company)
        conn = s.connection()
        _row(conn, owner.id, kind, lock=True, now=now)
        conn.execute(
            update(NetQuotaRow)
            .where(NetQuotaRow.company_id == owner.id, NetQuotaRow.kind == kind.value)
            .values(quota_limit=body.limit, updated_at=now)
        )
        events.record(
            conn,
            actor.actor,
            "network.quota_set",
            f"net-quota/{company}/{kind.value}",
            owner.id,
            {"limit": body.limit},
            at=now,
        )
        return _out(company, kind, *_row(conn, owner.id, kind, lock=False, now=now))


def list_net_quotas(rt: Runtime, actor: Principal, company: str | None = None) -> list[NetQuota]:
    """Every kind for each visible company (a company token: its own), with its use."""
    now = rt.clock()
    with rt.db.write() as s:  # rows may be created (measured) on first sight
        conn = s.connection()
        if company is not None:
            owners = [company_by_slug(s, actor, company)]
        else:
            query = select(CompanyRow).order_by(CompanyRow.id)
            if not actor.sees_all:
                query = query.where(CompanyRow.id == actor.company_id)
            owners = list(s.scalars(query))
        return [
            _out(owner.slug, kind, *_row(conn, owner.id, kind, lock=False, now=now))
            for owner in owners
            for kind in NetQuotaKind
        ]


def _out(company: str, kind: NetQuotaKind, limit: int | None, used: int) -> NetQuota:
    free = None if limit is None else max(0, limit - used)
    return NetQuota(company=company, kind=kind, limit=limit, used=used, free=free)

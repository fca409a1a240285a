"""Networks on the services, on SQLite and PostgreSQL: supernets, VPCs, subnets, IPs and
their quarantine, floating addresses, segment pools, network quotas, deletion, the
addressing plan, bad input, and racing threads and processes that must never get the
same prefix, address or segment id."""

from __future__ import annotations

import csv
import io
import ipaddress
import itertools
import threading
from collections import Counter
from pathlib import Path

import pytest

from groupcloud.domain.network import NetQuotaKind
from groupcloud.errors import (
    AddressSpaceExhausted,
    AlreadyExists,
    Forbidden,
    GroupcloudError,
    IdempotencyKeyReused,
    InvalidInput,
    NetworkQuotaExceeded,
    NotFound,
    PrefixInUse,
    PrefixOutsideParent,
    PrefixOverlaps,
    SegmentPoolExhausted,
)
from groupcloud.schemas.network import (
    FloatingIpCreate,
    FloatingIpUpdate,
    IpCreate,
    NetQuotaSet,
    SegmentPoolCreate,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.network import address_plan, ips, net_quotas, prefixes, segments
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.service.helpers import who
from tests.support import ManualClock, World


def _plan(rt: Runtime) -> None:
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    prefixes.create_vpc(
        rt, SYSTEM, VpcCreate(name="core", supernet="corp", company="bank", prefixlen=16)
    )


def _subnet(rt: Runtime, name: str, prefixlen: int = 24, company: str = "bank") -> str:
    prefixes.create_subnet(
        rt, SYSTEM, company, "core", SubnetCreate(name=name, prefixlen=prefixlen)
    )
    return name


def _addresses(rt: Runtime, subnet: str, n: int) -> list[str]:
    return [ips.allocate_ip(rt, SYSTEM, "bank", subnet, IpCreate()).address for _ in range(n)]


def test_vpcs_subnets_and_ips_are_carved_without_overlap(rt: Runtime, world: World) -> None:
    _plan(rt)
    bank = who(rt, world.bank_admin)
    second = prefixes.create_vpc(rt, bank, VpcCreate(name="edge", supernet="corp", prefixlen=20))
    assert (second.cidr, second.company, second.data_class) == ("10.1.0.0/20", "bank", "internal")
    sub = prefixes.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="web", prefixlen=24))
    assert sub.cidr == "10.0.0.0/24"
    assert (sub.addresses, sub.used, sub.free) == (256, 3, 253)  # network, gateway, broadcast
    got = [ips.allocate_ip(rt, bank, "bank", "web", IpCreate()) for _ in range(3)]
    assert [i.address for i in got] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    given = ips.allocate_ip(rt, bank, "bank", "web", IpCreate(address="10.0.0.200"))
    assert given.address == "10.0.0.200"
    vpcs = {v.name: v for v in prefixes.list_prefixes(rt, bank, prefixes.VPC).items}
    assert vpcs["core"].used == 256
    assert vpcs["core"].largest_free == "10.0.128.0/17"
    supernet = prefixes.list_prefixes(rt, bank, prefixes.SUPERNET).items[0]
    assert supernet.used == 2**16 + 2**12
    assert [
        s.name for s in prefixes.list_prefixes(rt, bank, prefixes.SUBNET, parent="core").items
    ] == ["web"]
    assert prefixes.list_prefixes(rt, bank, prefixes.SUBNET, parent="edge").items == []


def test_released_addresses_wait_in_quarantine_before_reuse(rt: Runtime, world: World) -> None:
    _plan(rt)
    _subnet(rt, "web")
    first = [ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate()) for _ in range(3)]
    released = ips.release_ip(rt, SYSTEM, first[1].id)
    assert released.released_at is not None
    assert released.reusable_at is not None
    assert (released.reusable_at - released.released_at).total_seconds() == pytest.approx(300)
    again = ips.release_ip(rt, SYSTEM, first[1].id)  # idempotent
    assert again.released_at == released.released_at
    assert _addresses(rt, "web", 1) == ["10.0.0.5"]  # 10.0.0.3 is in quarantine
    with pytest.raises(PrefixOverlaps, match="quarantine"):
        ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate(address="10.0.0.3"))
    subnet = prefixes.get_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "web")
    assert (subnet.used, subnet.quarantined) == (3 + 4, 1)
    live = [i.address for i in ips.list_ips(rt, SYSTEM, "bank", "web").items]
    assert live == ["10.0.0.2", "10.0.0.4", "10.0.0.5"]
    held = [i.address for i in ips.list_ips(rt, SYSTEM, "bank", "web", released=True).items]
    assert held == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_without_quarantine_the_lowest_released_address_comes_back_first(
    database_url: str, tmp_path: Path, rt: Runtime, world: World
) -> None:
    _plan(rt)
    _subnet(rt, "web")
    got = [ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate()) for _ in range(3)]
    quick = open_runtime(database_url, tmp_path, ip_quarantine_s=0)
    try:
        ips.release_ip(quick, SYSTEM, got[1].id)
        ips.release_ip(quick, SYSTEM, got[0].id)
        assert _addresses(quick, "web", 3) == ["10.0.0.2", "10.0.0.3", "10.0.0.5"]
        # the other runtime's cached free space is stale now, and is not trusted
        assert _addresses(rt, "web", 1) == ["10.0.0.6"]
    finally:
        quick.close()


def test_processes_with_their_own_caches_take_turns_without_collisions(
    database_url: str, tmp_path: Path, rt: Runtime, world: World
) -> None:
    _plan(rt)
    _subnet(rt, "web")
    other = open_runtime(database_url, tmp_path)
    try:
        seen = []
        for i in range(6):
            seen += _addresses(rt if i % 2 else other, "web", 2)
            runtime = other if i % 2 else rt
            prefixes.create_subnet(
                runtime, SYSTEM, "bank", "core", SubnetCreate(name=f"s{i}", prefixlen=26)
            )
        assert seen == [f"10.0.0.{n}" for n in range(2, 14)]
        cidrs = [p.cidr for p in prefixes.list_prefixes(rt, SYSTEM, prefixes.SUBNET).items]
        assert cidrs == [
            "10.0.0.0/24",
            *(f"10.0.1.{64 * i}/26" for i in range(4)),
            "10.0.2.0/26",
            "10.0.2.64/26",
        ]
    finally:
        other.close()


def test_bad_network_requests_are_refused_and_change_nothing(rt: Runtime, world: World) -> None:
    _plan(rt)
    bank, card = who(rt, world.bank_admin), who(rt, world.card_member)
    with pytest.raises(PrefixOverlaps):
        prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="x", cidr="10.5.0.0/16"))
    with pytest.raises(PrefixOutsideParent):
        prefixes.create_vpc(rt, bank, VpcCreate(name="out", supernet="corp", cidr="11.0.0.0/16"))
    with pytest.raises(PrefixOverlaps):
        prefixes.create_vpc(rt, bank, VpcCreate(name="dup", supernet="corp", cidr="10.0.5.0/24"))
    with pytest.raises(AlreadyExists):
        prefixes.create_vpc(rt, bank, VpcCreate(name="core", supernet="corp", prefixlen=24))
    prefixes.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="tiny", prefixlen=30))
    ips.allocate_ip(rt, bank, "bank", "tiny", IpCreate())
    with pytest.raises(AddressSpaceExhausted):
        ips.allocate_ip(rt, bank, "bank", "tiny", IpCreate())
    with pytest.raises(PrefixOutsideParent):
        ips.allocate_ip(rt, bank, "bank", "tiny", IpCreate(address="10.9.9.9"))
    with pytest.raises(AddressSpaceExhausted, match=r"largest free block is 10\.0\.128\.0/17"):
        prefixes.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="big", prefixlen=16))
    with pytest.raises(
        PrefixOutsideParent, match=r"a /8 does not fit inside vpc core \(10\.0\.0\.0/16\)"
    ):
        prefixes.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="big", prefixlen=8))
    with pytest.raises(Forbidden):
        prefixes.create_vpc(rt, card, VpcCreate(name="c", supernet="corp", prefixlen=24))
    with pytest.raises(NotFound):  # another company's VPC is invisible
        prefixes.create_subnet(rt, card, "bank", "core", SubnetCreate(name="s", prefixlen=28))
    with pytest.raises(NotFound):
        ips.allocate_ip(rt, card, "bank", "tiny", IpCreate())
    with pytest.raises(NotFound):
        prefixes.create_subnet(rt, bank, "bank", "nope", SubnetCreate(name="s", prefixlen=28))
    assert [v.name for v in prefixes.list_prefixes(rt, SYSTEM, prefixes.VPC).items] == ["core"]
    assert [v.name for v in prefixes.list_prefixes(rt, SYSTEM, prefixes.SUBNET).items] == ["tiny"]
    # the refusals left the cached free spaces as they were
    assert (
        prefixes.create_vpc(rt, bank, VpcCreate(name="next", supernet="corp", prefixlen=16)).cidr
        == "10.1.0.0/16"
    )


def test_network_quotas_refuse_what_is_above_them(rt: Runtime, world: World) -> None:
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="v6", cidr="fd00::/48"))
    bank = who(rt, world.bank_admin)
    limit = NetQuotaSet(limit=2)
    net_quotas.set_net_quota(rt, SYSTEM, "bank", NetQuotaKind.VPCS, limit)
    net_quotas.set_net_quota(
        rt, SYSTEM, "bank", NetQuotaKind.IPV4_ADDRESSES, NetQuotaSet(limit=4096)
    )
    prefixes.create_vpc(rt, bank, VpcCreate(name="a", supernet="corp", prefixlen=21))
    with pytest.raises(NetworkQuotaExceeded, match="ipv4_addresses quota allows 4096") as exc:
        prefixes.create_vpc(rt, bank, VpcCreate(name="b", supernet="corp", prefixlen=20))
    assert exc.value.extra == {
        "kind": "ipv4_addresses",
        "requested": 4096,
        "used": 2048,
        "limit": 4096,
    }
    prefixes.create_vpc(rt, bank, VpcCreate(name="six", supernet="v6", prefixlen=56))  # IPv6: 0
    with pytest.raises(NetworkQuotaExceeded, match="vpcs quota allows 2"):
        prefixes.create_vpc(rt, bank, VpcCreate(name="c", supernet="corp", prefixlen=28))
    assert [v.name for v in prefixes.list_prefixes(rt, SYSTEM, prefixes.VPC).items] == ["a", "six"]
    prefixes.delete_prefix(rt, bank, prefixes.VPC, "bank", "a")
    prefixes.create_vpc(rt, bank, VpcCreate(name="b", supernet="corp", prefixlen=20))
    rows = {q.kind: q for q in net_quotas.list_net_quotas(rt, bank)}
    assert (rows[NetQuotaKind.VPCS].used, rows[NetQuotaKind.VPCS].free) == (2, 0)
    assert rows[NetQuotaKind.IPV4_ADDRESSES].used == 4096
    assert (rows[NetQuotaKind.FLOATING_IPS].limit, rows[NetQuotaKind.FLOATING_IPS].used) == (
        None,
        0,
    )
    card_rows = net_quotas.list_net_quotas(rt, SYSTEM, "card")
    assert {q.used for q in card_rows} == {0}
    with pytest.raises(Forbidden):
        net_quotas.set_net_quota(rt, bank, "bank", NetQuotaKind.VPCS, NetQuotaSet(limit=9))


def test_vpcs_and_subnets_take_segment_ids_from_their_zone(rt: Runtime, world: World) -> None:
    pool = SegmentPoolCreate(name="vni", kind="vxlan", first=5000, last=5999)
    segments.create_pool(rt, SYSTEM, pool)
    segments.create_pool(
        rt,
        SYSTEM,
        SegmentPoolCreate(name="vlan", kind="vlan", first=100, last=101),
    )
    with pytest.raises(AlreadyExists, match="overlap pool vlan"):
        segments.create_pool(
            rt,
            SYSTEM,
            SegmentPoolCreate(name="more", kind="vlan", first=101, last=200),
        )
    _plan(rt)
    assert prefixes.get_prefix(rt, SYSTEM, prefixes.VPC, "bank", "core").segment == 5000
    assert (
        prefixes.create_subnet(
            rt, SYSTEM, "bank", "core", SubnetCreate(name="a", prefixlen=24)
        ).segment
        == 100
    )
    assert (
        prefixes.create_subnet(
            rt, SYSTEM, "bank", "core", SubnetCreate(name="b", prefixlen=24)
        ).segment
        == 101
    )
    with pytest.raises(SegmentPoolExhausted):
        prefixes.create_subnet(rt, SYSTEM, "bank", "core", SubnetCreate(name="c", prefixlen=24))
    assert [s.name for s in prefixes.list_prefixes(rt, SYSTEM, prefixes.SUBNET).items] == ["a", "b"]
    prefixes.delete_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "a")
    again = prefixes.create_subnet(rt, SYSTEM, "bank", "core", SubnetCreate(name="c", prefixlen=24))
    assert (again.segment, again.cidr) == (100, "10.0.0.0/24")
    used = {p.name: (p.used, p.free) for p in segments.list_pools(rt, SYSTEM)}
    assert used == {"vni": (1, 999), "vlan": (2, 0)}
    with pytest.raises(PrefixInUse):
        segments.delete_pool(rt, SYSTEM, "vlan")


def test_floating_addresses_come_from_public_pools(rt: Runtime, world: World) -> None:
    _plan(rt)
    _subnet(rt, "web")
    fixed = ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate())
    prefixes.create_supernet(
        rt,
        SYSTEM,
        SupernetCreate(name="internet", cidr="203.0.113.0/29", purpose="public"),
    )
    bank = who(rt, world.bank_member)
    with pytest.raises(InvalidInput, match="public pool"):
        prefixes.create_vpc(
            rt, SYSTEM, VpcCreate(name="x", supernet="internet", company="bank", prefixlen=30)
        )
    net_quotas.set_net_quota(rt, SYSTEM, "bank", NetQuotaKind.FLOATING_IPS, NetQuotaSet(limit=2))
    fip = ips.allocate_floating_ip(rt, bank, FloatingIpCreate(pool="internet", attach_to=fixed.id))
    assert (fip.kind, fip.address, fip.attached_to, fip.subnet) == (
        "floating",
        "203.0.113.2",
        fixed.id,
        "internet",
    )
    second = ips.allocate_floating_ip(rt, bank, FloatingIpCreate(pool="internet"))
    with pytest.raises(NetworkQuotaExceeded):
        ips.allocate_floating_ip(rt, bank, FloatingIpCreate(pool="internet"))
    assert (
        ips.update_floating_ip(
            rt, bank, second.id, FloatingIpUpdate(attach_to=fixed.id)
        ).attached_to
        == fixed.id
    )
    assert (
        ips.update_floating_ip(rt, bank, second.id, FloatingIpUpdate(attach_to=None)).attached_to
        is None
    )
    card = who(rt, world.card_member)
    with pytest.raises(NotFound):  # invisible to another company
        ips.update_floating_ip(rt, card, fip.id, FloatingIpUpdate(attach_to=None))
    with pytest.raises(NotFound):  # and it cannot attach to one of bank's addresses
        ips.allocate_floating_ip(rt, card, FloatingIpCreate(pool="internet", attach_to=fixed.id))
    ips.release_ip(rt, bank, second.id)
    third = ips.allocate_floating_ip(rt, bank, FloatingIpCreate(pool="internet"))
    assert third.address == "203.0.113.4"  # .3 is in quarantine
    assert [f.address for f in ips.list_floating_ips(rt, bank).items] == [
        "203.0.113.2",
        "203.0.113.4",
    ]
    assert ips.list_floating_ips(rt, card).items == []
    ips.release_ip(rt, SYSTEM, fixed.id)  # the floating address attached to it is detached
    assert ips.get_ip(rt, bank, fip.id).attached_to is None


def test_deleting_prefixes_refuses_while_they_hold_anything(rt: Runtime, world: World) -> None:
    _plan(rt)
    _subnet(rt, "web")
    got = ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate())
    with pytest.raises(PrefixInUse, match="vpc core still holds 1"):
        prefixes.delete_prefix(rt, SYSTEM, prefixes.VPC, "bank", "core")
    ips.release_ip(rt, SYSTEM, got.id)
    with pytest.raises(PrefixInUse, match="quarantined included"):
        prefixes.delete_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "web")
    with pytest.raises(PrefixInUse):
        prefixes.delete_prefix(rt, SYSTEM, prefixes.SUPERNET, None, "corp")
    with pytest.raises(Forbidden):
        prefixes.delete_prefix(rt, who(rt, world.bank_member), prefixes.VPC, "bank", "core")
    prefixes.create_subnet(rt, SYSTEM, "bank", "core", SubnetCreate(name="spare", prefixlen=24))
    gone = prefixes.delete_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "spare")
    assert gone.cidr == "10.0.1.0/24"
    assert _subnet(rt, "again") == "again"
    assert prefixes.get_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "again").cidr == "10.0.1.0/24"


def test_the_addressing_plan_lists_everything_a_company_holds(rt: Runtime, world: World) -> None:
    segments.create_pool(rt, SYSTEM, SegmentPoolCreate(name="vni", kind="vxlan", first=7, last=9))
    _plan(rt)
    _subnet(rt, "web")
    a, b = (
        ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate(description=f"db-{i}")) for i in (1, 2)
    )
    ips.release_ip(rt, SYSTEM, b.id)
    doc = address_plan.plan(rt, who(rt, world.bank_member), "bank")
    (vpc,) = doc.vpcs
    assert (vpc.name, vpc.cidr, vpc.vni, vpc.zone, vpc.supernet) == (
        "core",
        "10.0.0.0/16",
        7,
        "shared",
        "corp",
    )
    (sub,) = vpc.subnets
    assert (sub.cidr, sub.gateway) == ("10.0.0.0/24", "10.0.0.1")
    assert [(x.address, x.state, x.description) for x in sub.addresses] == [
        ("10.0.0.2", "held", "db-1"),
        ("10.0.0.3", "quarantined", "db-2"),
    ]
    rows = list(csv.DictReader(io.StringIO(address_plan.to_csv(doc))))
    assert [(r["kind"], r["prefix"] or r["address"], r["segment"]) for r in rows] == [
        ("vpc", "10.0.0.0/16", "7"),
        ("subnet", "10.0.0.0/24", ""),
        ("fixed_ip", "10.0.0.2", ""),
        ("fixed_ip", "10.0.0.3", ""),
    ]
    with pytest.raises(NotFound):
        address_plan.plan(rt, who(rt, world.card_member), "bank")
    assert a.id < b.id


def test_address_lists_are_paged(rt: Runtime, world: World) -> None:
    _plan(rt)
    _subnet(rt, "web")
    _addresses(rt, "web", 7)
    first = ips.list_ips(rt, SYSTEM, "bank", "web", limit=5)
    assert len(first.items) == 5
    assert first.next_cursor is not None
    rest = ips.list_ips(rt, SYSTEM, "bank", "web", cursor=first.next_cursor, limit=5)
    assert [i.address for i in rest.items] == ["10.0.0.7", "10.0.0.8"]
    assert rest.next_cursor is None


def test_racing_threads_never_get_the_same_prefix_address_or_segment(
    rt: Runtime, world: World
) -> None:
    segments.create_pool(
        rt, SYSTEM, SegmentPoolCreate(name="vlan", kind="vlan", first=1, last=4094)
    )
    _plan(rt)
    _subnet(rt, "pool")
    got_ips: list[str] = []
    got_prefixes: list[str] = []
    got_vlans: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work(i: int) -> None:
        try:
            start.wait()
            for j in range(5):
                got_ips.append(ips.allocate_ip(rt, SYSTEM, "bank", "pool", IpCreate()).address)
                sub = prefixes.create_subnet(
                    rt, SYSTEM, "bank", "core", SubnetCreate(name=f"s{i}-{j}", prefixlen=28)
                )
                got_prefixes.append(sub.cidr)
                assert sub.segment is not None
                got_vlans.append(sub.segment)
        except GroupcloudError as exc:  # never expected: the pool is large enough
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(got_ips) == 80
    assert not [a for a, n in Counter(got_ips).items() if n > 1]
    assert sorted(got_vlans) == list(range(2, 82))  # 1 went to the first subnet
    blocks = sorted(ipaddress.ip_network(c) for c in got_prefixes)
    assert len(blocks) == 80
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(blocks))
    assert all(not b.overlaps(ipaddress.ip_network("10.0.0.0/24")) for b in blocks)


def test_ipv6_prefixes_and_addresses_are_carved_the_same_way(rt: Runtime, world: World) -> None:
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="v6", cidr="fd00::/48"))
    vpc = prefixes.create_vpc(
        rt, SYSTEM, VpcCreate(name="six", supernet="v6", company="bank", prefixlen=56)
    )
    assert vpc.cidr == "fd00::/56"
    sub = prefixes.create_subnet(rt, SYSTEM, "bank", "six", SubnetCreate(name="web6", prefixlen=64))
    assert (sub.cidr, sub.addresses, sub.used) == ("fd00::/64", 2**64, 2)  # no broadcast in IPv6
    got = [ips.allocate_ip(rt, SYSTEM, "bank", "web6", IpCreate()).address for _ in range(2)]
    assert got == ["fd00::2", "fd00::3"]
    given = ips.allocate_ip(rt, SYSTEM, "bank", "web6", IpCreate(address="fd00::ffff:1"))
    assert given.address == "fd00::ffff:1"
    with pytest.raises(PrefixOutsideParent):
        ips.allocate_ip(rt, SYSTEM, "bank", "web6", IpCreate(address="10.0.0.1"))
    rows = {q.kind: q.used for q in net_quotas.list_net_quotas(rt, SYSTEM, "bank")}
    assert rows[NetQuotaKind.IPV4_ADDRESSES] == 0


def test_an_address_comes_back_once_its_quarantine_is_over(rt: Runtime, world: World) -> None:
    """The quarantine runs on the runtime's clock: a released address stays held for
    ``ip_quarantine_s`` and is handed out again by the first claim after it ends."""
    clock = ManualClock()
    rt.clock = clock
    quarantine_s = rt.settings.ip_quarantine_s
    _plan(rt)
    _subnet(rt, "web")
    first = ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate())
    ips.release_ip(rt, SYSTEM, first.id)
    assert _addresses(rt, "web", 1) == ["10.0.0.3"]  # still in quarantine
    clock.advance(quarantine_s / 2)
    assert _addresses(rt, "web", 1) == ["10.0.0.4"]  # half way: still held
    assert prefixes.get_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "web").quarantined == 1
    clock.advance(quarantine_s / 2)
    assert _addresses(rt, "web", 1) == ["10.0.0.2"]  # freed by this claim's sweep
    assert prefixes.get_prefix(rt, SYSTEM, prefixes.SUBNET, "bank", "web").quarantined == 0


def test_a_retried_request_with_its_idempotency_key_gets_the_same_address(
    rt: Runtime, world: World
) -> None:
    _plan(rt)
    _subnet(rt, "web")
    prefixes.create_supernet(
        rt, SYSTEM, SupernetCreate(name="internet", cidr="203.0.113.0/29", purpose="public")
    )
    bank = who(rt, world.bank_member)
    first = ips.allocate_ip(rt, bank, "bank", "web", IpCreate(description="db"), "db-1")
    again = ips.allocate_ip(rt, bank, "bank", "web", IpCreate(description="db"), "db-1")
    assert (again.id, again.address) == (first.id, first.address)
    with pytest.raises(IdempotencyKeyReused, match=r"address 10\.0\.0\.2"):
        ips.allocate_ip(rt, bank, "bank", "web", IpCreate(description="other"), "db-1")
    card = who(rt, world.card_member)
    prefixes.create_vpc(
        rt, SYSTEM, VpcCreate(name="core", supernet="corp", company="card", prefixlen=16)
    )
    prefixes.create_subnet(rt, SYSTEM, "card", "core", SubnetCreate(name="web", prefixlen=24))
    theirs = ips.allocate_ip(rt, card, "card", "web", IpCreate(description="db"), "db-1")
    assert theirs.id != first.id  # keys are per company
    fip = ips.allocate_floating_ip(rt, bank, FloatingIpCreate(pool="internet"), "edge")
    assert (
        ips.allocate_floating_ip(rt, bank, FloatingIpCreate(pool="internet"), "edge").id == fip.id
    )
    assert [i.address for i in ips.list_ips(rt, bank, "bank", "web").items] == ["10.0.0.2"]
    rows = {q.kind: q.used for q in net_quotas.list_net_quotas(rt, bank)}
    assert rows[NetQuotaKind.FLOATING_IPS] == 1


def test_racing_retries_with_one_key_hand_out_one_address(rt: Runtime, world: World) -> None:
    _plan(rt)
    _subnet(rt, "web")
    got: list[int] = []
    start = threading.Barrier(12)

    def retry() -> None:
        start.wait()
        got.append(ips.allocate_ip(rt, SYSTEM, "bank", "web", IpCreate(), "same").id)

    threads = [threading.Thread(target=retry) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 12
    assert len(set(got)) == 1
    assert len(ips.list_ips(rt, SYSTEM, "bank", "web").items) == 1


def test_releasing_always_works_when_the_quota_was_lowered_below_use(
    rt: Runtime, world: World
) -> None:
    """A limit below the use hands out nothing more, but giving back must still work
    (it was a 500 and the address or VPC stayed held)."""
    _plan(rt)
    prefixes.create_supernet(
        rt, SYSTEM, SupernetCreate(name="internet", cidr="203.0.113.0/29", purpose="public")
    )
    prefixes.create_vpc(
        rt, SYSTEM, VpcCreate(name="spare", supernet="corp", company="bank", prefixlen=24)
    )
    taken = [
        ips.allocate_floating_ip(rt, SYSTEM, FloatingIpCreate(pool="internet", company="bank"))
        for _ in range(2)
    ]
    for kind in (NetQuotaKind.FLOATING_IPS, NetQuotaKind.VPCS, NetQuotaKind.IPV4_ADDRESSES):
        net_quotas.set_net_quota(rt, SYSTEM, "bank", kind, NetQuotaSet(limit=0))

    released = ips.release_ip(rt, SYSTEM, taken[0].id)
    assert released.released_at is not None
    prefixes.delete_prefix(rt, SYSTEM, "vpc", "bank", "spare")
    with pytest.raises(NetworkQuotaExceeded):  # still nothing more is handed out
        ips.allocate_floating_ip(rt, SYSTEM, FloatingIpCreate(pool="internet", company="bank"))
    used = {q.kind: q.used for q in net_quotas.list_net_quotas(rt, SYSTEM, "bank")}
    assert used[NetQuotaKind.FLOATING_IPS] == 1
    assert used[NetQuotaKind.VPCS] == 1

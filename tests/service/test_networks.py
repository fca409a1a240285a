"""Networks on the services, on SQLite and PostgreSQL: supernets, VPCs, subnets, IPs,
bad input, and racing threads that must never get the same prefix or address."""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections import Counter

import pytest

from groupcloud.errors import (
    AddressSpaceExhausted,
    AlreadyExists,
    Forbidden,
    GroupcloudError,
    NotFound,
    PrefixOutsideParent,
    PrefixOverlaps,
)
from groupcloud.schemas import IpCreate, SubnetCreate, SupernetCreate, VpcCreate
from groupcloud.services import networks
from groupcloud.services.runtime import Runtime
from groupcloud.services.tokens import SYSTEM
from tests.service.helpers import who
from tests.support import World


def _plan(rt: Runtime) -> None:
    networks.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    networks.create_vpc(
        rt, SYSTEM, VpcCreate(name="core", supernet="corp", company="bank", prefixlen=16)
    )


def test_vpcs_subnets_and_ips_are_carved_without_overlap(rt: Runtime, world: World) -> None:
    _plan(rt)
    bank = who(rt, world.bank_admin)
    second = networks.create_vpc(rt, bank, VpcCreate(name="edge", supernet="corp", prefixlen=20))
    assert second.cidr == "10.1.0.0/20"
    assert second.company == "bank"
    sub = networks.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="web", prefixlen=24))
    assert sub.cidr == "10.0.0.0/24"
    assert (sub.addresses, sub.used, sub.free) == (256, 3, 253)  # network, gateway, broadcast
    ips = [networks.allocate_ip(rt, bank, "bank", "web", IpCreate()) for _ in range(3)]
    assert [i.address for i in ips] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    given = networks.allocate_ip(rt, bank, "bank", "web", IpCreate(address="10.0.0.200"))
    assert given.address == "10.0.0.200"
    networks.release_ip(rt, bank, ips[1].id)
    again = networks.release_ip(rt, bank, ips[1].id)  # idempotent
    assert again.released_at is not None
    assert networks.allocate_ip(rt, bank, "bank", "web", IpCreate()).address == "10.0.0.3"
    vpcs = {v.name: v for v in networks.list_prefixes(rt, bank, networks.VPC)}
    assert vpcs["core"].used == 256
    assert vpcs["core"].largest_free == "10.0.128.0/17"
    supernet = networks.list_prefixes(rt, bank, networks.SUPERNET)[0]
    assert supernet.used == 2**16 + 2**12


def test_bad_network_requests_are_refused_and_change_nothing(rt: Runtime, world: World) -> None:
    _plan(rt)
    bank, card = who(rt, world.bank_admin), who(rt, world.card_member)
    with pytest.raises(PrefixOverlaps):
        networks.create_supernet(rt, SYSTEM, SupernetCreate(name="x", cidr="10.5.0.0/16"))
    with pytest.raises(PrefixOutsideParent):
        networks.create_vpc(rt, bank, VpcCreate(name="out", supernet="corp", cidr="11.0.0.0/16"))
    with pytest.raises(PrefixOverlaps):
        networks.create_vpc(rt, bank, VpcCreate(name="dup", supernet="corp", cidr="10.0.5.0/24"))
    with pytest.raises(AlreadyExists):
        networks.create_vpc(rt, bank, VpcCreate(name="core", supernet="corp", prefixlen=24))
    networks.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="tiny", prefixlen=30))
    networks.allocate_ip(rt, bank, "bank", "tiny", IpCreate())
    with pytest.raises(AddressSpaceExhausted):
        networks.allocate_ip(rt, bank, "bank", "tiny", IpCreate())
    with pytest.raises(PrefixOutsideParent):
        networks.allocate_ip(rt, bank, "bank", "tiny", IpCreate(address="10.9.9.9"))
    with pytest.raises(AddressSpaceExhausted, match=r"largest free block is 10\.0\.128\.0/17"):
        networks.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="big", prefixlen=16))
    with pytest.raises(PrefixOutsideParent, match=r"a /8 does not fit inside 10\.0\.0\.0/16"):
        networks.create_subnet(rt, bank, "bank", "core", SubnetCreate(name="big", prefixlen=8))
    with pytest.raises(Forbidden):
        networks.create_vpc(rt, card, VpcCreate(name="c", supernet="corp", prefixlen=24))
    with pytest.raises(NotFound):  # another company's VPC is invisible
        networks.create_subnet(rt, card, "bank", "core", SubnetCreate(name="s", prefixlen=28))
    assert [v.name for v in networks.list_prefixes(rt, SYSTEM, networks.VPC)] == ["core"]
    assert [v.name for v in networks.list_prefixes(rt, SYSTEM, networks.SUBNET)] == ["tiny"]


def test_racing_threads_never_get_the_same_prefix_or_address(rt: Runtime, world: World) -> None:
    _plan(rt)
    networks.create_subnet(rt, SYSTEM, "bank", "core", SubnetCreate(name="pool", prefixlen=24))
    got_ips: list[str] = []
    got_prefixes: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work(i: int) -> None:
        try:
            start.wait()
            for j in range(5):
                ip = networks.allocate_ip(rt, SYSTEM, "bank", "pool", IpCreate())
                got_ips.append(ip.address)
                sub = networks.create_subnet(
                    rt, SYSTEM, "bank", "core", SubnetCreate(name=f"s{i}-{j}", prefixlen=28)
                )
                got_prefixes.append(sub.cidr)
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
    blocks = sorted(ipaddress.ip_network(c) for c in got_prefixes)
    assert len(blocks) == 80
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(blocks))
    assert all(not b.overlaps(ipaddress.ip_network("10.0.0.0/24")) for b in blocks)

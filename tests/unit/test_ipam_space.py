"""The free-space allocator of IPAM, checked against a plain model: the set of allocated
prefixes. Spaces are small enough here that the model can enumerate them; the engine
never does."""

from __future__ import annotations

import ipaddress
import re
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupcloud.ipam.space import Network, Space, SpaceError, SpaceExhausted


def net(text: str) -> Network:
    return ipaddress.ip_network(text)


def _disjoint(networks: list[Network]) -> bool:
    ordered = sorted(networks, key=lambda n: int(n.network_address))
    return all(int(a.broadcast_address) < int(b.network_address) for a, b in pairwise(ordered))


def _inside(inner: Network, outer: Network) -> bool:
    return int(outer.network_address) <= int(inner.network_address) and int(
        inner.broadcast_address
    ) <= int(outer.broadcast_address)


def test_carving_from_a_slash_8_never_enumerates_it() -> None:
    space = Space(net("10.0.0.0/8"))
    first = space.allocate(20)
    second = space.allocate(20)
    assert (first, second) == (net("10.0.0.0/20"), net("10.0.16.0/20"))
    assert space.free_addresses == 2**24 - 2 * 2**12
    assert space.largest_free() == net("10.128.0.0/9")


def test_best_fit_uses_the_smallest_free_block_and_keeps_large_ones_whole() -> None:
    space = Space(net("10.0.0.0/16"), [net("10.0.0.0/24"), net("10.0.2.0/23")])
    # Free: 10.0.1.0/24 (small hole), 10.0.4.0/22, ... ; a /25 goes into the hole.
    assert space.allocate(25) == net("10.0.1.0/25")
    assert space.allocate(22) == net("10.0.4.0/22")


def test_lowest_gives_the_next_free_address_in_order() -> None:
    space = Space(net("192.168.1.0/24"), [net("192.168.1.0/30")])
    got = [space.allocate(32, lowest=True) for _ in range(3)]
    assert got == [net("192.168.1.4/32"), net("192.168.1.5/32"), net("192.168.1.6/32")]
    space.release(net("192.168.1.5/32"))
    assert space.allocate(32, lowest=True) == net("192.168.1.5/32")


def test_claim_a_given_prefix_and_refuse_overlaps_and_outsiders() -> None:
    space = Space(net("10.1.0.0/16"))
    space.claim(net("10.1.8.0/21"))
    with pytest.raises(SpaceError, match="not free"):
        space.claim(net("10.1.12.0/24"))  # inside the claimed /21
    with pytest.raises(SpaceError, match="not free"):
        space.claim(net("10.1.0.0/20"))  # contains the claimed /21
    with pytest.raises(SpaceError, match="not inside"):
        space.claim(net("10.2.0.0/24"))
    with pytest.raises(SpaceError, match="not inside"):
        space.claim(net("2001:db8::/64"))
    with pytest.raises(SpaceError, match="free already"):
        space.release(net("10.1.0.0/24"))


def test_exhausted_space_says_what_is_left() -> None:
    space = Space(net("10.0.0.0/30"))
    space.allocate(31)
    with pytest.raises(SpaceExhausted, match=re.escape("largest free block is 10.0.0.2/31")):
        space.allocate(30)
    space.allocate(31)
    with pytest.raises(SpaceExhausted, match="it is full"):
        space.allocate(32)
    with pytest.raises(SpaceError, match="does not fit"):
        space.allocate(29)


def test_ipv6_spaces_work_the_same_way() -> None:
    space = Space(net("2001:db8::/32"))
    assert space.allocate(48) == net("2001:db8::/48")
    assert space.allocate(64, lowest=True) == net("2001:db8:1::/64")
    zero = Space(net("::/120"))
    assert zero.allocate(128, lowest=True) == net("::/128")


ops = st.lists(
    st.tuples(
        st.sampled_from(["best", "lowest", "claim", "release"]),
        st.integers(0, 8),  # prefix length below the root's
        st.integers(0, 2**16),  # which address / which allocation
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(root_len=st.integers(22, 28), steps=ops)
def test_the_space_always_equals_the_complement_of_the_allocations(
    root_len: int, steps: list[tuple[str, int, int]]
) -> None:
    root = ipaddress.IPv4Network((0x0A000000, root_len))
    space = Space(root)
    allocated: list[Network] = []
    free_blocks_before = list(space.free_blocks())
    for kind, depth, pick in steps:
        prefixlen = min(root_len + depth, 32)
        size = 1 << (32 - prefixlen)
        free = set(range(int(root.network_address), int(root.broadcast_address) + 1))
        for n in allocated:
            free -= set(range(int(n.network_address), int(n.broadcast_address) + 1))
        fits = [
            a
            for a in range(int(root.network_address), int(root.broadcast_address) + 1, size)
            if all(x in free for x in range(a, a + size))
        ]
        if kind in ("best", "lowest"):
            if not fits:
                with pytest.raises(SpaceExhausted):
                    space.allocate(prefixlen, lowest=kind == "lowest")
                continue
            got = space.allocate(prefixlen, lowest=kind == "lowest")
            assert got.prefixlen == prefixlen
            assert _inside(got, root)
            assert int(got.network_address) in fits
            if kind == "lowest":
                assert int(got.network_address) == min(fits)
            else:  # best fit: no free block smaller than the one it came from could hold it
                blocks = [b for b in free_blocks_before if b.num_addresses >= size]
                smallest = min(b.num_addresses for b in blocks)
                holder = next(b for b in blocks if _inside(got, b))
                assert holder.num_addresses == smallest
            allocated.append(got)
        elif kind == "claim":
            candidate = ipaddress.IPv4Network(
                (int(root.network_address) + (pick * size) % root.num_addresses, prefixlen)
            )
            if int(candidate.network_address) in fits:
                space.claim(candidate)
                allocated.append(candidate)
            else:
                with pytest.raises(SpaceError):
                    space.claim(candidate)
        elif allocated:
            space.release(allocated.pop(pick % len(allocated)))
        free_blocks_before = list(space.free_blocks())
        assert _disjoint(allocated)
        assert _disjoint(free_blocks_before)
        assert not any(b.overlaps(a) for b in free_blocks_before for a in allocated)
        used = sum(n.num_addresses for n in allocated)
        assert space.free_addresses == root.num_addresses - used
        assert sum(b.num_addresses for b in free_blocks_before) == space.free_addresses
    for n in allocated:
        space.release(n)
    assert list(space.free_blocks()) == [root]  # buddies merged back into one block

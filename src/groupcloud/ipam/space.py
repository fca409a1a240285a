"""Free address space of one prefix (a supernet, a VPC or a subnet), without enumerating it.

The free space is kept as disjoint CIDR-aligned blocks, bucketed by prefix length (a
buddy allocator). Carving a /20 out of a /8, claiming one given prefix, or handing out
the next free address each touch at most one block per prefix length (32 for IPv4, 128
for IPv6), whatever the size of the space; releasing merges a block with its free buddy
again, so the space never fragments into more blocks than the allocations force.

Two ways to choose a block:

* ``best_fit`` (prefixes): the smallest free block that holds the request, lowest address
  first among equals, so large blocks stay whole for large requests;
* ``lowest`` (addresses): the lowest free address, as "next free IP" is expected to be.

This module is pure (no I/O): services load the allocated prefixes of a space, build a
``Space`` and claim in the database what it proposes (lock + recheck there).
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterable, Iterator

__all__ = ["Network", "Space", "SpaceError", "SpaceExhausted"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SpaceError(ValueError):
    """A prefix that is not inside the space, or not free / not allocated as asked."""


class SpaceExhausted(SpaceError):
    """No free block is large enough for the request."""


class Space:
    """The free blocks of ``root``; everything else in it is allocated."""

    def __init__(self, root: Network, allocated: Iterable[Network] = ()) -> None:
        self.root = root
        self.version = root.version
        self.max_prefixlen = root.max_prefixlen
        # prefix length -> set of free block starts (ints) and a heap of the same starts
        # (lazy deletion: a heap entry counts only while it is in the set)
        self._free: dict[int, set[int]] = {p: set() for p in range(self.max_prefixlen + 1)}
        self._heaps: dict[int, list[int]] = {p: [] for p in range(self.max_prefixlen + 1)}
        self._free_addresses = 0
        self._add(int(root.network_address), root.prefixlen)
        for network in allocated:
            self.claim(network)

    # --- queries ---------------------------------------------------------------------

    @property
    def free_addresses(self) -> int:
        return self._free_addresses

    @property
    def used_addresses(self) -> int:
        return self.root.num_addresses - self._free_addresses

    def largest_free(self) -> Network | None:
        """The largest free block (lowest address among equals), None when full."""
        for prefixlen in range(self.root.prefixlen, self.max_prefixlen + 1):
            start = self._lowest(prefixlen)
            if start is not None:
                return self._network(start, prefixlen)
        return None

    def free_blocks(self) -> Iterator[Network]:
        """Every free block, in address order."""
        blocks = sorted((start, p) for p, starts in self._free.items() for start in starts)
        for start, prefixlen in blocks:
            yield self._network(start, prefixlen)

    def is_free(self, network: Network) -> bool:
        return self._container(network) is not None

    # --- changes ---------------------------------------------------------------------

    def allocate(self, prefixlen: int, *, lowest: bool = False) -> Network:
        """A free block of ``prefixlen``, taken out of the free space (see the module doc
        for ``lowest``); ``SpaceExhausted`` when no free block is large enough."""
        return self._network(self._take(prefixlen, lowest), prefixlen)

    def allocate_address(self) -> str:
        """The lowest free address, taken out of the free space, as text (what handing out
        "the next free IP" needs, without building a network object for it)."""
        start = self._take(self.max_prefixlen, True)
        if self.version == 4:
            return str(ipaddress.IPv4Address(start))
        return str(ipaddress.IPv6Address(start))

    def _take(self, prefixlen: int, lowest: bool) -> int:
        if not self.root.prefixlen <= prefixlen <= self.max_prefixlen:
            raise SpaceError(
                f"/{prefixlen} does not fit in {self.root} (prefix lengths "
                f"{self.root.prefixlen}-{self.max_prefixlen})"
            )
        found: tuple[int, int] | None = None
        for p in range(prefixlen, self.root.prefixlen - 1, -1):  # smallest blocks first
            start = self._lowest(p)
            if start is None:
                continue
            if not lowest:
                found = (start, p)
                break
            if found is None or start < found[0]:
                found = (start, p)
        if found is None:
            largest = self.largest_free()
            raise SpaceExhausted(
                f"no free /{prefixlen} in {self.root}: "
                + (f"the largest free block is {largest}" if largest else "it is full")
            )
        start, p = found
        self._remove(start, p)
        self._split_off(start, p, start, prefixlen)
        return start

    def claim(self, network: Network) -> Network:
        """Take a given prefix out of the free space (it must lie inside and be free)."""
        self._check_inside(network)
        container = self._container(network)
        if container is None:
            raise SpaceError(f"{network} is not free in {self.root}")
        start, p = container
        self._remove(start, p)
        self._split_off(start, p, int(network.network_address), network.prefixlen)
        return network

    def release(self, network: Network) -> None:
        """Give a prefix back; it merges with its free buddies into larger blocks."""
        self._check_inside(network)
        if self._overlaps_free(network):
            raise SpaceError(f"{network} is (partly) free already in {self.root}")
        start, p = int(network.network_address), network.prefixlen
        while p > self.root.prefixlen:
            size = 1 << (self.max_prefixlen - p)
            buddy = start ^ size
            if buddy not in self._free[p]:
                break
            self._remove(buddy, p)
            start, p = min(start, buddy), p - 1
        self._add(start, p)

    # --- internals -------------------------------------------------------------------

    def _network(self, start: int, prefixlen: int) -> Network:
        if self.version == 4:
            return ipaddress.IPv4Network((start, prefixlen))
        return ipaddress.IPv6Network((start, prefixlen))

    def _check_inside(self, network: Network) -> None:
        if network.version != self.version or not network.subnet_of(self.root):  # type: ignore[arg-type]
            raise SpaceError(f"{network} is not inside {self.root}")

    def _container(self, network: Network) -> tuple[int, int] | None:
        """The free block that contains ``network`` whole, if any."""
        start = int(network.network_address)
        for p in range(network.prefixlen, self.root.prefixlen - 1, -1):
            block = start & ~((1 << (self.max_prefixlen - p)) - 1)
            if block in self._free[p]:
                return block, p
        return None

    def _overlaps_free(self, network: Network) -> bool:
        """Whether any free block lies inside ``network`` or contains it."""
        if self._container(network) is not None:
            return True
        start = int(network.network_address)
        end = start + network.num_addresses
        for p in range(network.prefixlen + 1, self.max_prefixlen + 1):
            # blocks smaller than the network: is one of them inside it?
            if len(self._free[p]) < (end - start) >> (self.max_prefixlen - p):
                if any(start <= s < end for s in self._free[p]):
                    return True
            else:
                size = 1 << (self.max_prefixlen - p)
                if any(s in self._free[p] for s in range(start, end, size)):
                    return True
        return False

    def _split_off(self, start: int, p: int, target: int, prefixlen: int) -> None:
        """Block (start, p) was removed; give back every part of it except (target,
        prefixlen): one buddy per level between the two."""
        while p < prefixlen:
            p += 1
            size = 1 << (self.max_prefixlen - p)
            if target >= start + size:  # the target is in the upper half
                self._add(start, p)
                start += size
            else:
                self._add(start + size, p)

    def _lowest(self, prefixlen: int) -> int | None:
        heap, live = self._heaps[prefixlen], self._free[prefixlen]
        while heap and heap[0] not in live:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _add(self, start: int, prefixlen: int) -> None:
        self._free[prefixlen].add(start)
        heapq.heappush(self._heaps[prefixlen], start)
        self._free_addresses += 1 << (self.max_prefixlen - prefixlen)

    def _remove(self, start: int, prefixlen: int) -> None:
        self._free[prefixlen].discard(start)
        self._free_addresses -= 1 << (self.max_prefixlen - prefixlen)

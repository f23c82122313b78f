"""Address pools per virtual router.

Each VR has named pools (several ranges, minus exclusions) and one VR-wide ledger of
addresses in use, so that an address is never handed to two live subscribers of one VR
whichever way it was obtained: from a pool, as a specific request inside a pool (RADIUS
Framed-IP-Address), or from RADIUS outside every pool (allowed, still tracked). Different
VRs may use the same addresses (they are separate routing instances).

Allocation is O(1) amortised, for 10,000+ subscribers: a pool hands out never-used
addresses from a cursor walking its ranges, and reuses released ones from a FIFO free
list (FIFO so that a just-released address is reused last, which keeps stale routes and
ARP/accounting records of the previous user from meeting the next one). A specific
reservation of an address still on the free list is not searched for: the entry goes
stale and is skipped when it comes up.

Double release is an error raised loudly: it means a resource-ledger bug elsewhere.
"""
from __future__ import annotations

import bisect
import collections
import ipaddress
import logging
from dataclasses import dataclass
from typing import Hashable, Iterable, Iterator

log = logging.getLogger(__name__)

IPv4 = ipaddress.IPv4Address


class PoolError(Exception):
    """Base of the typed pool errors."""


class PoolConfigError(PoolError):
    """A pool definition is inconsistent (bad range, overlap with another pool of the VR)."""


class UnknownPoolError(PoolError):
    """No such VR or pool."""


class PoolExhaustedError(PoolError):
    """The pool has no free address."""


class AddressInUseError(PoolError):
    """A specific address was requested that a live subscriber of that VR already holds."""


class DoubleReleaseError(PoolError):
    """An address was released that is not in use: a leak or double-free bug elsewhere."""


def parse_range(spec: str) -> tuple[int, int]:
    """``"10.0.0.10-10.0.0.20"``, ``"10.0.0.0/24"`` (network and broadcast left out for
    prefixes shorter than /31) or ``"10.0.0.7"`` -> (first, last) as integers."""
    spec = spec.strip()
    if "-" in spec:
        first_s, last_s = (s.strip() for s in spec.split("-", 1))
        first, last = int(IPv4(first_s)), int(IPv4(last_s))
    elif "/" in spec:
        net = ipaddress.IPv4Network(spec, strict=False)
        first, last = int(net.network_address), int(net.broadcast_address)
        if net.prefixlen < 31:
            first, last = first + 1, last - 1
    else:
        first = last = int(IPv4(spec))
    if first > last:
        raise PoolConfigError(f"address range {spec!r} is empty (first > last)")
    return first, last


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _subtract(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges minus holes; both merged and sorted."""
    result: list[tuple[int, int]] = []
    for first, last in ranges:
        cursor = first
        for h_first, h_last in holes:
            if h_last < cursor or h_first > last:
                continue
            if h_first > cursor:
                result.append((cursor, h_first - 1))
            cursor = max(cursor, h_last + 1)
        if cursor <= last:
            result.append((cursor, last))
    return result


@dataclass(frozen=True)
class Lease:
    """An address held by one owner in one VR. ``pool`` is None for an address from
    RADIUS outside every pool."""

    vr: str
    address: IPv4
    pool: str | None
    owner: Hashable


@dataclass(frozen=True)
class PoolStats:
    vr: str
    pool: str
    size: int
    used: int

    @property
    def free(self) -> int:
        return self.size - self.used


class AddressPool:
    """One named pool. Knows which of its addresses are free; the VR decides who holds
    them. Not used directly: go through :class:`PoolManager`."""

    def __init__(self, name: str, ranges: list[str], exclude: list[str] | None = None) -> None:
        if not ranges:
            raise PoolConfigError(f"pool {name!r} has no address range")
        self.name = name
        holes = _merge(parse_range(s) for s in exclude or [])
        self.ranges = _subtract(_merge(parse_range(s) for s in ranges), holes)
        if not self.ranges:
            raise PoolConfigError(f"pool {name!r}: the exclusions leave no address")
        self.size = sum(last - first + 1 for first, last in self.ranges)
        self._starts = [first for first, _ in self.ranges]
        self._range_index = 0          # cursor: next never-handed-out address
        self._next = self.ranges[0][0]
        self._free: collections.deque[int] = collections.deque()
        self._queued: set[int] = set()  # what _free holds (entries may be stale)
        self._used: set[int] = set()

    @property
    def used(self) -> int:
        return len(self._used)

    def contains(self, address: int) -> bool:
        i = bisect.bisect_right(self._starts, address) - 1
        return i >= 0 and address <= self.ranges[i][1]

    def _cursor_passed(self, address: int) -> bool:
        """True if the cursor has gone past ``address`` (it will not hand it out again)."""
        if self._range_index >= len(self.ranges):
            return True
        first, _ = self.ranges[self._range_index]
        if address < first:
            return True
        return first <= address < self._next

    def _take_from_cursor(self) -> int | None:
        while self._range_index < len(self.ranges):
            _, last = self.ranges[self._range_index]
            while self._next <= last:
                address = self._next
                self._next += 1
                if address not in self._used:      # skipped: reserved specifically earlier
                    return address
            self._range_index += 1
            if self._range_index < len(self.ranges):
                self._next = self.ranges[self._range_index][0]
        return None

    def _take_from_free_list(self) -> int | None:
        while self._free:
            address = self._free.popleft()
            self._queued.discard(address)
            if address not in self._used:          # stale entries: reserved specifically since
                return address
        return None

    def take_any(self) -> int | None:
        # Prefer never-used addresses, then the oldest released ones (see module doc).
        address = self._take_from_cursor()
        if address is None:
            address = self._take_from_free_list()
        if address is not None:
            self._used.add(address)
        return address

    def take_specific(self, address: int) -> None:
        self._used.add(address)               # free-list/cursor entries are skipped lazily

    def give_back(self, address: int) -> None:
        self._used.remove(address)
        if self._cursor_passed(address) and address not in self._queued:
            self._free.append(address)
            self._queued.add(address)


class VirtualRouterPools:
    """The pools of one VR plus its VR-wide record of addresses in use."""

    def __init__(self, vr: str) -> None:
        self.vr = vr
        self.pools: dict[str, AddressPool] = {}
        self._holders: dict[int, Lease] = {}

    def add_pool(self, pool: AddressPool) -> None:
        if pool.name in self.pools:
            raise PoolConfigError(f"VR {self.vr!r}: pool {pool.name!r} defined twice")
        for other in self.pools.values():
            if any(first <= o_last and o_first <= last
                   for first, last in pool.ranges for o_first, o_last in other.ranges):
                raise PoolConfigError(
                    f"VR {self.vr!r}: pools {pool.name!r} and {other.name!r} overlap; an "
                    "address must belong to one pool of a VR")
        self.pools[pool.name] = pool

    def grow_pool(self, name: str, ranges: list[str], exclude: list[str]) -> AddressPool:
        """Pool `name` with new ranges that keep every address it has leased (a reload
        that grows it); PoolConfigError, and the pool unchanged, if it would overlap
        another pool of the VR."""
        old = self.pool(name)
        grown = AddressPool(name, ranges, exclude)
        for address in sorted(old._used):
            grown.take_specific(address)
        del self.pools[name]
        try:
            self.add_pool(grown)
        except PoolConfigError:
            self.pools[name] = old
            raise
        return grown

    def pool(self, name: str) -> AddressPool:
        try:
            return self.pools[name]
        except KeyError:
            raise UnknownPoolError(f"VR {self.vr!r} has no pool {name!r} "
                                   f"(pools: {sorted(self.pools)})") from None

    def pool_of(self, address: int) -> AddressPool | None:
        for pool in self.pools.values():
            if pool.contains(address):
                return pool
        return None

    def allocate(self, pool_name: str, owner: Hashable) -> Lease:
        pool = self.pool(pool_name)
        address = pool.take_any()
        if address is None:
            raise PoolExhaustedError(f"pool {pool_name!r} of VR {self.vr!r} is exhausted "
                                     f"({pool.size} of {pool.size} in use)")
        return self._record(address, pool.name, owner)

    def reserve(self, address: IPv4, owner: Hashable) -> Lease:
        value = int(address)
        holder = self._holders.get(value)
        if holder is not None:
            raise AddressInUseError(f"{address} in VR {self.vr!r} is held by {holder.owner!r}")
        pool = self.pool_of(value)
        if pool is not None:
            pool.take_specific(value)
        return self._record(value, pool.name if pool else None, owner)

    def _record(self, address: int, pool: str | None, owner: Hashable) -> Lease:
        lease = Lease(vr=self.vr, address=IPv4(address), pool=pool, owner=owner)
        self._holders[address] = lease
        return lease

    def release(self, address: IPv4, owner: Hashable | None = None) -> None:
        value = int(address)
        holder = self._holders.get(value)
        if holder is None:
            raise DoubleReleaseError(f"{address} in VR {self.vr!r} released but not in use "
                                     "(double release or never allocated)")
        if owner is not None and holder.owner != owner:
            raise DoubleReleaseError(f"{address} in VR {self.vr!r} released by {owner!r} "
                                     f"but held by {holder.owner!r}")
        del self._holders[value]
        if holder.pool is not None:
            self.pools[holder.pool].give_back(value)

    def holder(self, address: IPv4) -> Lease | None:
        return self._holders.get(int(address))

    def outside_pools(self) -> int:
        return sum(1 for lease in self._holders.values() if lease.pool is None)


class PoolManager:
    """All VRs' pools. The one object the daemon owns for address assignment."""

    def __init__(self) -> None:
        self._vrs: dict[str, VirtualRouterPools] = {}

    def add_pool(self, vr: str, name: str, ranges: list[str],
                 exclude: list[str] | None = None) -> AddressPool:
        pool = AddressPool(name, ranges, exclude)
        self._vrs.setdefault(vr, VirtualRouterPools(vr)).add_pool(pool)
        return pool

    def vr(self, vr: str) -> VirtualRouterPools:
        try:
            return self._vrs[vr]
        except KeyError:
            raise UnknownPoolError(f"no address pools in VR {vr!r}") from None

    def _vr_or_empty(self, vr: str) -> VirtualRouterPools:
        """Addresses from RADIUS may land in a VR without pools: still track them."""
        return self._vrs.setdefault(vr, VirtualRouterPools(vr))

    def allocate(self, vr: str, pool: str, owner: Hashable) -> Lease:
        """Any free address of ``pool`` in ``vr``."""
        return self.vr(vr).allocate(pool, owner)

    def reserve(self, vr: str, address: IPv4 | str, owner: Hashable) -> Lease:
        """A specific address (e.g. RADIUS Framed-IP-Address), inside a pool or not."""
        return self._vr_or_empty(vr).reserve(IPv4(address), owner)

    def assign(self, vr: str, owner: Hashable, *, address: IPv4 | str | None = None,
               pool: str | None = None) -> Lease:
        """SPEC step 5 precedence: an address from AAA (Framed-IP-Address) first, else a
        pool (the one AAA named, else the profile's -- the caller passes whichever)."""
        if address is not None:
            return self.reserve(vr, address, owner)
        if pool is None:
            raise UnknownPoolError(f"no address from AAA and no pool for VR {vr!r}")
        return self.allocate(vr, pool, owner)

    def release(self, lease: Lease) -> None:
        """Give the address back; raises :class:`DoubleReleaseError` if it is not held
        by the lease's owner."""
        self.vr(lease.vr).release(lease.address, lease.owner)

    def holder(self, vr: str, address: IPv4 | str) -> Lease | None:
        holders = self._vrs.get(vr)
        return holders.holder(IPv4(address)) if holders else None

    def stats(self) -> list[PoolStats]:
        """For ``show pools``: one line per pool, sorted by VR and name."""
        return [PoolStats(vr=vr.vr, pool=pool.name, size=pool.size, used=pool.used)
                for vr in sorted(self._vrs.values(), key=lambda v: v.vr)
                for pool in sorted(vr.pools.values(), key=lambda p: p.name)]

    def __iter__(self) -> Iterator[VirtualRouterPools]:
        return iter(self._vrs.values())

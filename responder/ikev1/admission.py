"""Who may start a phase 1, and what an unproven source may get from us.

Sans-I/O, no clock reads: the engine asks `AdmissionBook.decide(peer)` for
each new message 1 and tells the book about every SA it adds, changes and
removes. The book counts SAs and half-open SAs per peer address, per prefix
(`Limits.half_open_prefix_v4` / `_v6` bits) and in all.

A half-open SA whose peer never sent message 3 (Main Mode: KE with our
cookie; Aggressive Mode: HASH_I) has not shown that it receives what we
send to its address: it may be spoofed. Such an SA is *evictable*: when a
limit is reached, a new message 1 takes the slot of the oldest evictable SA
(of its own prefix at the prefix limit; of the prefix holding the most
evictable SAs at the global limit) instead of being dropped. A flood of
spoofed message 1s then churns through its own slots, and an honest peer
keeps its slot for as long as `max_half_open` newer message 1s take to
arrive (it needs one round trip to send message 3).

`TokenBucket` bounds the error notifies sent to unproven sources.

`FirstMessageGate` sheds message 1s before they are parsed, when they come
faster than `Limits.first_messages_per_s` (the I/O layer asks it for every
datagram, as strongSwan's receiver does before a job is queued): answering a
message 1 costs a parse, a proposal match and a reply (Aggressive Mode: a
DH), so a flood faster than that rate would take the CPU the honest logins
need. Under that pressure each prefix gets `first_messages_per_prefix_per_s`
of its own: a flood is held to its prefixes' budgets while a peer from any
other prefix still gets its one message 1 through.
"""

from __future__ import annotations

import socket
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Literal

from .enums import ExchangeType
from .policy import Limits, ResponderPolicy

__all__ = ["AdmissionBook", "Decision", "FirstMessageGate", "TokenBucket", "UNPROVEN_STATES", "policy_refusal",
           "prefix_of", "unproven"]

#: (exchange, state) of an SA whose peer has not yet sent message 3
UNPROVEN_STATES = frozenset({
    ("main", "start"), ("main", "sa_sent"),
    ("aggressive", "start"), ("aggressive", "auth_sent"),
})


def unproven(exchange: str, state: str) -> bool:
    return (exchange, state) in UNPROVEN_STATES


def prefix_of(address: str, v4_bits: int, v6_bits: int) -> Hashable:
    """The address's network of `v4_bits` (IPv4) or `v6_bits` (IPv6) bits."""
    for family, bits, width in ((socket.AF_INET, v4_bits, 32), (socket.AF_INET6, v6_bits, 128)):
        try:
            value = int.from_bytes(socket.inet_pton(family, address), "big")
        except OSError:
            continue
        return (width, value >> (width - bits))
    return address


@dataclass(frozen=True, slots=True)
class Decision:
    """`admit` the new SA, `evict` `victim` then admit it, or `drop` it;
    `reason` names the limit (the engine counts `dropped_<reason>` /
    `evicted_<reason>`)."""

    action: Literal["admit", "evict", "drop"]
    reason: str = ""
    victim: str | None = None


ADMIT = Decision("admit")

#: exchange type of a message 1 -> (the Phase1Policy switch, drop reason when off)
_EXCHANGE_SWITCHES = {
    ExchangeType.IDENTITY_PROTECTION: ("allow_main", "main_disabled"),
    ExchangeType.AGGRESSIVE: ("allow_aggressive", "aggressive_disabled"),
}


def policy_refusal(policy: ResponderPolicy, exchange_type: int, peer: str) -> Decision | None:
    """A drop when the exchange is switched off or an IKE policy rule denies the peer."""
    switch, reason = _EXCHANGE_SWITCHES[exchange_type]
    if not getattr(policy.phase1, switch):
        return Decision("drop", reason)
    if not policy.peer_allowed(peer):
        return Decision("drop", "policy_denied")
    return None


@dataclass(slots=True)
class _Entry:
    sa_id: str
    peer: str
    prefix: Hashable
    half_open: bool
    evictable: bool


class _EvictionQueue:
    """Evictable SAs per prefix, oldest first, and the prefixes grouped by how
    many they hold, so that the largest is found in O(1). Among prefixes of
    equal size, the one that reached that size first goes first."""

    def __init__(self) -> None:
        self._by_prefix: dict[Hashable, dict[str, None]] = {}
        self._by_size: dict[int, dict[Hashable, None]] = {}
        self._largest = 0

    def add(self, prefix: Hashable, sa_id: str) -> None:
        members = self._by_prefix.setdefault(prefix, {})
        self._resize(prefix, len(members), len(members) + 1)
        members[sa_id] = None

    def discard(self, prefix: Hashable, sa_id: str) -> None:
        members = self._by_prefix.get(prefix)
        if members is None or sa_id not in members:
            return
        del members[sa_id]
        self._resize(prefix, len(members) + 1, len(members))
        if not members:
            del self._by_prefix[prefix]

    def oldest_of(self, prefix: Hashable) -> str | None:
        members = self._by_prefix.get(prefix)
        return next(iter(members)) if members else None

    def oldest_of_largest(self) -> str | None:
        while self._largest and not self._by_size.get(self._largest):
            self._largest -= 1
        if not self._largest:
            return None
        return self.oldest_of(next(iter(self._by_size[self._largest])))

    def _resize(self, prefix: Hashable, old: int, new: int) -> None:
        if old:
            bucket = self._by_size[old]
            del bucket[prefix]
            if not bucket:
                del self._by_size[old]
        if new:
            self._by_size.setdefault(new, {})[prefix] = None
            self._largest = max(self._largest, new)


class AdmissionBook:
    """The SA counts the limits are checked against, and the eviction order."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._entries: dict[str, _Entry] = {}
        self.half_open = 0
        self.half_open_by_peer: Counter[str] = Counter()
        self.half_open_by_prefix: Counter[Hashable] = Counter()
        self.sas_by_peer: Counter[str] = Counter()
        self._evictable = _EvictionQueue()
        #: (reason, limit reached?, whom to evict or None to drop), in order:
        #: a source's own limits drop, the shared ones evict an unproven SA
        self._checks: tuple[tuple[str, Callable[[str, Hashable], bool],
                                  Callable[[Hashable], str | None]], ...] = (
            ("half_open_peer_limit",
             lambda peer, prefix: self.half_open_by_peer[peer] >= limits.max_half_open_per_peer,
             lambda prefix: None),
            ("sa_limit",
             lambda peer, prefix: self.sas_by_peer[peer] >= limits.max_sas_per_peer
             or len(self._entries) >= limits.max_sas,
             lambda prefix: None),
            ("half_open_prefix_limit",
             lambda peer, prefix: self.half_open_by_prefix[prefix]
             >= limits.max_half_open_per_prefix,
             self._evictable.oldest_of),
            ("half_open_limit",
             lambda peer, prefix: self.half_open >= limits.max_half_open,
             lambda prefix: self._evictable.oldest_of_largest()),
        )

    def prefix(self, peer: str) -> Hashable:
        return prefix_of(peer, self.limits.half_open_prefix_v4, self.limits.half_open_prefix_v6)

    def decide(self, peer: str) -> Decision:
        """What to do with a new message 1 from `peer`."""
        prefix = self.prefix(peer)
        for reason, reached, victim_of in self._checks:
            if reached(peer, prefix):
                victim = victim_of(prefix)
                return Decision("drop", reason) if victim is None \
                    else Decision("evict", reason, victim)
        return ADMIT

    def add(self, sa_id: str, peer: str) -> None:
        """A new half-open SA, evictable until its peer sends message 3."""
        entry = _Entry(sa_id, peer, self.prefix(peer), half_open=True, evictable=True)
        self._entries[sa_id] = entry
        self._count(entry, +1)

    def update(self, sa_id: str, peer: str, half_open: bool, evictable: bool) -> None:
        entry = self._entries.get(sa_id)
        if entry is None or (entry.peer, entry.half_open, entry.evictable) == \
                (peer, half_open, evictable and half_open):
            return
        self._count(entry, -1)
        entry.peer, entry.prefix = peer, self.prefix(peer)
        entry.half_open, entry.evictable = half_open, evictable and half_open
        self._count(entry, +1)

    def remove(self, sa_id: str) -> None:
        entry = self._entries.pop(sa_id, None)
        if entry is not None:
            self._count(entry, -1)

    def __len__(self) -> int:
        return len(self._entries)

    def _count(self, entry: _Entry, delta: int) -> None:
        _bump(self.sas_by_peer, entry.peer, delta)
        if entry.half_open:
            self.half_open += delta
            _bump(self.half_open_by_peer, entry.peer, delta)
            _bump(self.half_open_by_prefix, entry.prefix, delta)
        if entry.evictable:
            if delta > 0:
                self._evictable.add(entry.prefix, entry.sa_id)
            else:
                self._evictable.discard(entry.prefix, entry.sa_id)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved; `take(now)` spends one."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp: float | None = None

    def take(self, now: float) -> bool:
        if self._stamp is None or now < self._stamp:
            self._stamp = now
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


#: bytes 8..16 of the ISAKMP header: the responder cookie, zero in a message 1
_RESPONDER_COOKIE = slice(8, 16)
_NO_COOKIE = bytes(8)
#: prefix buckets kept (least recently used dropped first): a flood from more
#: prefixes than this gets fresh buckets, and is then bounded by the evictions
#: of the AdmissionBook instead
MAX_GATED_PREFIXES = 4096


class FirstMessageGate:
    """`admit(data, peer, now)`: False sheds a message 1 unparsed (see the module
    docstring). Everything that is not a message 1 passes: an SA in progress is
    never slowed down by a flood."""

    def __init__(self, limits: Limits) -> None:
        self.enabled = limits.first_messages_per_s > 0
        self._free = TokenBucket(limits.first_messages_per_s,
                                 max(1, int(2 * limits.first_messages_per_s)))
        self._prefix_rate = limits.first_messages_per_prefix_per_s
        self._prefix_burst = max(1, int(2 * self._prefix_rate))
        self._bits = (limits.half_open_prefix_v4, limits.half_open_prefix_v6)
        self._prefixes: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def admit(self, data: bytes, peer: str, now: float) -> bool:
        if not self.enabled or len(data) < 28 or data[_RESPONDER_COOKIE] != _NO_COOKIE:
            return True
        return self._free.take(now) or self._bucket(peer).take(now)

    def _bucket(self, peer: str) -> TokenBucket:
        prefix = prefix_of(peer, *self._bits)
        bucket = self._prefixes.get(prefix)
        if bucket is None:
            bucket = TokenBucket(self._prefix_rate, self._prefix_burst)
            self._prefixes[prefix] = bucket
            if len(self._prefixes) > MAX_GATED_PREFIXES:
                self._prefixes.popitem(last=False)
        else:
            self._prefixes.move_to_end(prefix)
        return bucket


def _bump(counter: Counter, key: Hashable, delta: int) -> None:
    value = counter[key] + delta
    if value:
        counter[key] = value
    else:
        del counter[key]

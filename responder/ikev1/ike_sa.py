"""State of one phase 1 (ISAKMP) SA and its child (ESP) SAs, as plain data.

The exchanges read and update these objects; the engine owns the tables.
Secrets (PSK, DH private value, keys) are kept out of `repr`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .crypto.dh import DHKeyPair
from .crypto.iv import MessageCipher
from .crypto.phase1 import Phase1Keys
from .natt import NatStatus
from .vendor_ids import NattVersion, PeerFeatures
from .policy import Identity, Selector
from .proposals import EspChoice, Phase1Choice

__all__ = ["ChildSa", "IkeSa", "QuickModeState", "datagram_digest", "MAX_CACHED_REPLIES",
           "WATCHED_FIELDS"]

Address = tuple[str, int]

#: Replies kept for retransmission detection (phase 1 + a few parallel QMs).
MAX_CACHED_REPLIES = 4


#: Fields whose change can move the SA's next deadline or its place in the
#: engine's counters (half-open, per peer). Setting one calls `on_change`, so
#: the engine's timer index and counters stay right even when a task changes
#: them outside a datagram (e.g. the daemon's AAA answer re-arms
#: `transaction_deadline`). Children and Quick Modes change only while the
#: engine handles a datagram or a timer for this SA; the engine re-indexes
#: the SA after each.
WATCHED_FIELDS = frozenset({
    "half_open_deadline", "expires_at", "transaction_deadline", "established_at",
    "last_activity", "dpd_sent_at", "dpd_outstanding", "features", "remote",
})


def datagram_digest(data: bytes) -> bytes:
    """Key of the reply cache: a hash of the whole received datagram."""
    return hashlib.sha256(data).digest()


@dataclass
class ChildSa:
    child_id: int
    message_id: int
    inbound_spi: bytes
    outbound_spi: bytes
    remote_selector: Selector
    local_selector: Selector
    choice: EspChoice
    established_at: float
    expires_at: float
    dynamic: bool


@dataclass
class QuickModeState:
    """One Quick Mode in progress (keyed by message id on the IKE SA)."""

    message_id: int
    state: str
    started_at: float
    choice: EspChoice | None = None
    inbound_spi: bytes = b""
    ni_b: bytes = b""
    nr_b: bytes = b""
    remote_selector: Selector | None = None
    local_selector: Selector | None = None
    id_payloads: tuple[Any, Any] | None = None
    pfs_shared_secret: bytes | None = field(default=None, repr=False)
    rekey_of: int | None = None


@dataclass
class IkeSa:
    sa_id: str
    cky_i: bytes
    cky_r: bytes
    local: Address
    remote: Address
    exchange: str  # "main" / "aggressive"
    state: str
    created_at: float
    last_activity: float
    # --- negotiation
    peer_vendor_ids: list[bytes] = field(default_factory=list)
    features: PeerFeatures = field(default_factory=PeerFeatures)
    natt_version: NattVersion | None = None
    nat: NatStatus | None = None
    choice: Phase1Choice | None = None
    sai_b: bytes = b""
    dh: DHKeyPair | None = field(default=None, repr=False)
    g_xi: bytes = field(default=b"", repr=False)
    g_xr: bytes = field(default=b"", repr=False)
    ni_b: bytes = field(default=b"", repr=False)
    nr_b: bytes = field(default=b"", repr=False)
    psk: bytes | None = field(default=None, repr=False)
    keys: Phase1Keys | None = field(default=None, repr=False)
    cipher: MessageCipher | None = field(default=None, repr=False)
    identity: Identity | None = None
    id_payload_body: bytes = b""  # IDii_b as received (Aggressive Mode)
    # --- life
    established_at: float | None = None
    expires_at: float | None = None
    half_open_deadline: float | None = None
    # --- after phase 1
    transaction_done: bool = False
    transaction_deadline: float | None = None
    children: dict[int, ChildSa] = field(default_factory=dict)
    quick_modes: dict[int, QuickModeState] = field(default_factory=dict)
    #: message IDs the peer used for Quick Mode and Transaction (replay check)
    seen_message_ids: "OrderedDict[int, None]" = field(default_factory=OrderedDict)
    #: message IDs of the peer's Informationals (bounded window, replay check)
    seen_informational_ids: "OrderedDict[int, None]" = field(default_factory=OrderedDict)
    # --- DPD (RFC 3706)
    dpd_sequence: int = 0
    dpd_outstanding: int | None = None
    dpd_sent_at: float | None = None
    dpd_next_probe: float | None = None
    #: the peer's last accepted R-U-THERE sequence number (RFC 3706 §7)
    dpd_peer_sequence: int | None = None
    # --- retransmission detection: digest of a request -> our reply datagrams
    replies: "OrderedDict[bytes, list[bytes]]" = field(default_factory=OrderedDict)
    #: cached replies resent before the peer sent message 3 (bounded)
    unproven_resends: int = 0
    #: set by the engine: called with this SA when a WATCHED_FIELDS field changes
    on_change: Callable[["IkeSa"], None] | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in WATCHED_FIELDS:
            hook = self.__dict__.get("on_change")
            if hook is not None:
                hook(self)

    @property
    def established(self) -> bool:
        return self.established_at is not None

    @property
    def xauth_required(self) -> bool:
        return self.choice is not None and self.choice.ike.auth_method == 65001

    @property
    def cookies(self) -> bytes:
        return self.cky_i + self.cky_r

    @property
    def dynamic(self) -> bool:
        """SPEC "Recognition": dynamic only if the peer sent the Xauth VID."""
        return self.features.dynamic

    @property
    def dpd_supported(self) -> bool:
        return self.features.dpd

    def remember_reply(self, request: bytes, replies: list[bytes]) -> None:
        self.replies[datagram_digest(request)] = list(replies)
        while len(self.replies) > MAX_CACHED_REPLIES:
            self.replies.popitem(last=False)

    def cached_reply(self, request: bytes) -> list[bytes] | None:
        return self.replies.get(datagram_digest(request))

    def note_message_id(self, message_id: int, bound: int,
                        seen: "OrderedDict[int, None] | None" = None) -> bool:
        """False if this message id was already used (RFC 2408 §3.1: unique).
        `seen`: the bounded window it goes in (default: Quick Mode and
        Transaction IDs; informationals have their own)."""
        seen = self.seen_message_ids if seen is None else seen
        if message_id in seen:
            return False
        seen[message_id] = None
        while len(seen) > bound:
            seen.popitem(last=False)
        return True

    def next_child_id(self) -> int:
        return max(self.children, default=0) + 1

    def child_by_spi(self, spi: bytes) -> ChildSa | None:
        for child in self.children.values():
            if spi in (child.inbound_spi, child.outbound_spi):
                return child
        return None

"""Typed events produced by the sans-I/O `Responder` (see engine.py).

Events describe outcomes, never wire details; the subscriber layer consumes
them (instantiate a subscriber, install ESP keys, tear down). Keys inside
events are deliberately kept out of `repr` so that logging an event never
leaks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .policy import Identity, Selector

__all__ = [
    "Event",
    "Phase1Established",
    "Phase1Deleted",
    "Phase2Established",
    "Phase2Deleted",
    "PeerDead",
    "InitialContact",
    "ExchangeFailed",
    "KeyExport",
    "EspKeyMaterial",
]

Address = tuple[str, int]


class Event:
    """Base class of every engine event."""


@dataclass(frozen=True)
class Phase1Established(Event):
    sa_id: str
    peer: Address
    local: Address
    identity: Identity
    #: peer sent the Xauth vendor ID 09002689DFD6B712 (SPEC "Recognition")
    dynamic: bool
    #: XAUTHInitPreShared (65001) was negotiated: Xauth must run before QM
    xauth_required: bool
    exchange: str  # "main" / "aggressive"
    transform: str
    vendor_features: frozenset[str]
    natt_version: str
    local_behind_nat: bool
    peer_behind_nat: bool
    lifetime_seconds: int


@dataclass(frozen=True)
class Phase1Deleted(Event):
    sa_id: str
    peer: Address
    reason: str  # "peer-delete", "local-delete", "expired", "dpd", "auth-timeout", ...


@dataclass(frozen=True)
class EspKeyMaterial:
    spi: bytes
    encryption_key: bytes = field(repr=False)
    integrity_key: bytes = field(repr=False)
    salt: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Phase2Established(Event):
    sa_id: str
    child_id: int
    peer: Address
    local: Address
    #: traffic selectors: IDci (peer side) and IDcr (our side)
    remote_selector: Selector
    local_selector: Selector
    cipher: int
    cipher_key_bits: int | None
    integrity: int
    inbound: EspKeyMaterial  # SPI we chose; the peer encrypts with it
    outbound: EspKeyMaterial  # SPI the peer chose
    encapsulation_mode: int
    udp_encapsulated: bool
    pfs_group: int | None
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    dynamic: bool
    #: a previous child with the same selectors exists (a rekey)
    rekey_of: int | None = None


@dataclass(frozen=True)
class Phase2Deleted(Event):
    sa_id: str
    child_id: int
    inbound_spi: bytes
    outbound_spi: bytes
    reason: str


@dataclass(frozen=True)
class PeerDead(Event):
    """RFC 3706: no answer to R-U-THERE within the DPD timeout."""

    sa_id: str
    peer: Address


@dataclass(frozen=True)
class InitialContact(Event):
    """RFC 2407 §4.6.3.3: the peer has no other SA with us: drop old sessions."""

    sa_id: str
    peer: Address
    identity: Identity | None


@dataclass(frozen=True)
class ExchangeFailed(Event):
    """An exchange was refused; `notify` is what we told the peer (if anything)."""

    sa_id: str | None
    peer: Address
    exchange: str
    notify: str
    reason: str


@dataclass(frozen=True)
class KeyExport(Event):
    """Opt-in (policy.export_keys): one Wireshark IKEv1 decryption table line."""

    sa_id: str
    line: str = field(repr=False)

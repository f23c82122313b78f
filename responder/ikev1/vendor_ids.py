"""Known IKEv1 vendor IDs and what they tell us about a peer.

A Vendor ID payload (RFC 2408 §3.16) is an opaque hash; some announce
protocol extensions. The table holds only values confirmed by a standard, by
the reference captures in tests/vectors/captures,
or by the strongSwan and Wireshark vendor tables.

Matching: most entries are compared exactly. Entries whose trailing bytes carry
a version or flags (DPD, Cisco Unity, fragmentation, Microsoft) match on a
prefix and require the full length.

The Xauth VID (`09002689DFD6B712`) decides whether a phase 1 is *dynamic*
(SPEC.md, recognition). It is matched **exactly, all 8 bytes and nothing
more**: it is a policy switch (dynamic vs static tunnels), every client seen
(strongSwan, vpnc, Cisco, Shrew) sends exactly these 8 bytes, and a prefix
rule would let any longer VID that happens to start with them - for instance
a vendor's own 16-byte hash - silently turn a static peer into a dynamic one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable

__all__ = [
    "VendorKind",
    "NattVersion",
    "KnownVendorID",
    "KNOWN_VENDOR_IDS",
    "XAUTH",
    "DPD",
    "CISCO_UNITY",
    "FRAGMENTATION",
    "NATT_RFC3947",
    "recognize",
    "PeerFeatures",
    "peer_features",
    "natt_vendor_id",
]


class VendorKind(Enum):
    """What recognising the VID implies."""

    XAUTH = "xauth"
    DPD = "dpd"
    UNITY = "unity"
    FRAGMENTATION = "fragmentation"
    NATT = "natt"
    IMPLEMENTATION = "implementation"  # names the software only


class NattVersion(str, Enum):
    """NAT-T flavours, best first (the order strongSwan prefers)."""

    RFC3947 = "rfc3947"
    DRAFT_03 = "draft-03"
    DRAFT_02N = "draft-02n"
    DRAFT_02 = "draft-02"
    DRAFT_01 = "draft-01"
    DRAFT_00 = "draft-00"

    @property
    def is_rfc(self) -> bool:
        """RFC 3947 uses payloads 20/21 and encapsulation modes 3/4; every
        draft uses 130/131 and 61443/61444."""
        return self is NattVersion.RFC3947


@dataclass(frozen=True)
class KnownVendorID:
    """One table entry. `data` is the value we send (when we send it);
    `prefix` bytes of it identify the VID, whose total length must be `length`."""

    name: str
    data: bytes
    kind: VendorKind
    prefix: int
    length: int
    natt_version: NattVersion | None = None

    def matches(self, vid: bytes) -> bool:
        return len(vid) == self.length and vid[: self.prefix] == self.data[: self.prefix]

    def version(self, vid: bytes) -> bytes:
        """The trailing version/flag bytes of a prefix-matched VID."""
        return bytes(vid[self.prefix :])


def _exact(name: str, hexdata: str, kind: VendorKind, natt: NattVersion | None = None) -> KnownVendorID:
    data = bytes.fromhex(hexdata)
    return KnownVendorID(name, data, kind, len(data), len(data), natt)


def _versioned(name: str, hexdata: str, kind: VendorKind, prefix: int) -> KnownVendorID:
    data = bytes.fromhex(hexdata)
    return KnownVendorID(name, data, kind, prefix, len(data))


XAUTH = _exact("XAUTH", "09002689DFD6B712", VendorKind.XAUTH)
# RFC 3706 §5: 14 fixed bytes, then major 0x01 and minor 0x00.
DPD = _versioned("RFC 3706 DPD", "AFCAD71368A1F1C96B8696FC77570100", VendorKind.DPD, 14)
# MD5("CISCO-UNITY") truncated to 14 bytes, then major/minor version.
CISCO_UNITY = _versioned("CISCO-UNITY", "12F5F28C457168A9702D9FE274CC0100", VendorKind.UNITY, 14)
# MD5("FRAGMENTATION") followed by 4 capability-flag bytes (0x80000000 seen
# from strongSwan); strongSwan also requires the 20-byte form.
FRAGMENTATION = _versioned(
    "Cisco Fragmentation", "4048B7D56EBCE88525E7DE7F00D6C2D380000000", VendorKind.FRAGMENTATION, 16
)
NATT_RFC3947 = _exact(
    "RFC 3947 NAT-T", "4A131C81070358455C5728F20E95452F", VendorKind.NATT, NattVersion.RFC3947
)

KNOWN_VENDOR_IDS: tuple[KnownVendorID, ...] = (
    XAUTH,
    DPD,
    CISCO_UNITY,
    FRAGMENTATION,
    NATT_RFC3947,
    _exact("draft-ietf-ipsec-nat-t-ike-03", "7D9419A65310CA6F2C179D9215529D56",
           VendorKind.NATT, NattVersion.DRAFT_03),
    # MD5("draft-ietf-ipsec-nat-t-ike-02\n") - the newline is part of the hash.
    _exact("draft-ietf-ipsec-nat-t-ike-02\\n", "90CB80913EBB696E086381B5EC427B1F",
           VendorKind.NATT, NattVersion.DRAFT_02N),
    _exact("draft-ietf-ipsec-nat-t-ike-02", "CD60464335DF21F87CFDB2FC68B6A448",
           VendorKind.NATT, NattVersion.DRAFT_02),
    _exact("draft-ietf-ipsec-nat-t-ike-01", "16F6CA16E4A4066D83821A0F0AEAA862",
           VendorKind.NATT, NattVersion.DRAFT_01),
    _exact("draft-ietf-ipsec-nat-t-ike-00", "4485152D18B6BBCD0BE8A8469579DDCC",
           VendorKind.NATT, NattVersion.DRAFT_00),
    _exact("strongSwan", "882FE56D6FD20DBC2251613B2EBE5BEB", VendorKind.IMPLEMENTATION),
    # Sent by vpnc in Aggressive Mode message 3 (see vpnc-aggr.vendor-ids.md).
    _exact("vpnc (unknown to wireshark)", "126E1F577291153B20485F7F155B4BC8",
           VendorKind.IMPLEMENTATION),
    # MD5("MS NT5 ISAKMPOAKLEY") + 4-byte Windows version.
    _versioned("Microsoft Windows (MS NT5 ISAKMPOAKLEY)",
               "1E2B516905991C7D7C96FCBFB587E46100000000", VendorKind.IMPLEMENTATION, 16),
)

_NATT_PREFERENCE = list(NattVersion)


def recognize(vid: bytes) -> KnownVendorID | None:
    """The table entry matching a received Vendor ID, or None."""
    for entry in KNOWN_VENDOR_IDS:
        if entry.matches(vid):
            return entry
    return None


@dataclass(frozen=True)
class PeerFeatures:
    """What a peer announced through its vendor IDs in one message/exchange."""

    xauth: bool = False
    dpd: bool = False
    unity: bool = False
    fragmentation: bool = False
    natt_version: NattVersion | None = None
    unknown: tuple[bytes, ...] = ()

    @property
    def dynamic(self) -> bool:
        """A phase 1 is dynamic only when the peer sent the Xauth VID (SPEC.md)."""
        return self.xauth


def _dpd_supported(entry: KnownVendorID, vid: bytes) -> bool:
    # RFC 3706 §5: only major version 1 is defined.
    return entry.version(vid)[:1] == b"\x01"


def peer_features(vids: Iterable[bytes]) -> PeerFeatures:
    """Summarise a list of received Vendor ID payload values.

    NAT-T: the best announced version wins (RFC > 03 > 02n > 02 > 01 > 00).
    """
    xauth = dpd = unity = frag = False
    natt: list[NattVersion] = []
    unknown: list[bytes] = []
    for vid in vids:
        entry = recognize(vid)
        if entry is None:
            unknown.append(bytes(vid))
        elif entry.kind is VendorKind.XAUTH:
            xauth = True
        elif entry.kind is VendorKind.DPD:
            dpd = dpd or _dpd_supported(entry, vid)
        elif entry.kind is VendorKind.UNITY:
            unity = True
        elif entry.kind is VendorKind.FRAGMENTATION:
            frag = True
        elif entry.kind is VendorKind.NATT and entry.natt_version is not None:
            natt.append(entry.natt_version)
    best = min(natt, key=_NATT_PREFERENCE.index) if natt else None
    return PeerFeatures(xauth, dpd, unity, frag, best, tuple(unknown))


def natt_vendor_id(version: NattVersion) -> bytes:
    """The VID to send back for the NAT-T version chosen."""
    for entry in KNOWN_VENDOR_IDS:
        if entry.natt_version is version:
            return entry.data
    raise KeyError(version)  # unreachable: every NattVersion has an entry

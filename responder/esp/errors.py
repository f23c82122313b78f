"""Why an ESP packet was dropped: one typed exception, one enum of reasons.

Every drop in the data path ends in :class:`EspDrop`; the I/O adapter catches it at
one boundary, counts it (the SA already did) and logs at debug level. Reasons are
the counter keys, so they are stable strings.
"""
from __future__ import annotations

from enum import Enum


class DropReason(str, Enum):
    """Why an ESP packet (or an inner packet on its way out) was dropped."""

    REPLAY = "replay"  # RFC 4303 §3.4.3: already received inside the window
    TOO_OLD = "too_old"  # left of the window (or sequence number 0)
    BAD_ICV = "bad_icv"  # RFC 4303 §3.4.4: integrity check failed
    BAD_PADDING = "bad_padding"  # §2.4: pad length/contents wrong, or not block aligned
    BAD_NEXT_HEADER = "bad_next_header"  # tunnel mode carries IPv4 (4) only here
    DUMMY_PACKET = "dummy_packet"  # §2.6: next header 59, TFC dummy; silent, counted
    SHORT_PACKET = "short_packet"  # too short for header, IV, trailer and ICV
    UNKNOWN_SPI = "unknown_spi"  # no inbound SA with this SPI (demux)
    LIFETIME_EXPIRED = "lifetime_expired"  # hard lifetime (bytes or seconds) reached
    SEQUENCE_EXHAUSTED = "sequence_exhausted"  # §3.3.3: no wrap without ESN, rekey first
    BAD_INNER_SOURCE = "bad_inner_source"  # inner source is not the subscriber's address
    BAD_INNER_PACKET = "bad_inner_packet"  # inner packet is not a well-formed IPv4 header


# Drops that are part of normal operation and need no log line above debug.
SILENT_DROPS = frozenset({DropReason.DUMMY_PACKET})


class EspDrop(Exception):
    """A packet was dropped; ``reason`` says why (and is already counted by the SA)."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail

"""ESP security associations, tunnel mode (RFC 4303), sans-I/O.

An :class:`OutboundSA` turns an inner IPv4 packet into an ESP packet (SPI onwards;
the caller puts it in a UDP datagram to port 4500 or sends it as IP protocol 50);
an :class:`InboundSA` does the reverse and drops what must be dropped by raising
:class:`~responder.esp.errors.EspDrop` after counting it. No sockets, no clock reads:
``now`` is passed in where lifetimes matter.

Mapping from the IKE engine (``responder.ikev1.crypto.phase2``)
----------------------------------------------------------------
Quick Mode gives a ``ChildSaKeys(inbound=EspKeys, outbound=EspKeys)`` and the chosen
``NegotiatedEspTransform`` (cipher and integrity rows of the algorithm registry, key
size in bytes). Each direction becomes one :class:`EspSAParams`::

    EspSAParams(
        spi=int.from_bytes(keys.spi, "big"),         # inbound: the SPI we chose
        enc_id=transform.cipher.esp_transform_id,    # 3, 12 or 20
        auth_id=transform.integrity.esp_auth_id if transform.integrity else None,
        key_bits=transform.encryption_key_size * 8,
        enc_key=keys.encryption_key,                 # first bytes of KEYMAT
        auth_key=keys.integrity_key,                 # after key (and salt), empty for GCM
        salt=keys.salt,                              # 4 bytes for AES-GCM (RFC 4106 §8.1)
        encap_udp=<NAT detected or forced>,          # UDP-encapsulated (RFC 3948) or raw ESP
        lifetime_bytes=<SA Life Duration in kilobytes * 1024, or None>,
        lifetime_seconds=<SA Life Duration in seconds, or None>,
    )

``keys.inbound`` builds the :class:`InboundSA`, ``keys.outbound`` the :class:`OutboundSA`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Callable

from .counters import DEFAULT_SOFT_LIFETIME_RATIO, Lifetime, LifetimeState, SaCounters
from .errors import DropReason, EspDrop
from .packet import (ESP_HEADER, ESP_HEADER_SIZE, NEXT_HEADER_IPV4, NEXT_HEADER_NONE,
                     ipv4_header_length, ipv4_source, ipv4_total_length)
from .replay import DEFAULT_WINDOW_SIZE, MAX_SEQUENCE, ReplayWindow
from .transforms import EspCipherSuite, IntegrityCheckFailed, lookup_transform

# RFC 4303 §2.4: default padding is the monotonically increasing series 1, 2, 3, ...
_PADDING = bytes(range(1, 256))
_TRAILER_SIZE = 2  # Pad Length, Next Header

Rng = Callable[[int], bytes]


@dataclass(frozen=True)
class EspSAParams:
    """Everything one ESP SA needs, as plain values (see the module docstring)."""

    spi: int
    enc_id: int
    auth_id: int | None
    key_bits: int | None
    enc_key: bytes = field(repr=False)
    auth_key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    encap_udp: bool
    lifetime_bytes: int | None = None
    lifetime_seconds: float | None = None
    replay_window: int = DEFAULT_WINDOW_SIZE
    soft_lifetime_ratio: float = DEFAULT_SOFT_LIFETIME_RATIO

    def __post_init__(self) -> None:
        # RFC 4303 §2.1: SPI 0 is reserved for local use, 1-255 by IANA.
        if not 256 <= self.spi <= MAX_SEQUENCE:
            raise ValueError(f"SPI {self.spi:#x} is reserved or out of range")


class _EspSA:
    """What both directions share: transform, keyed algorithms, counters, lifetime."""

    def __init__(self, params: EspSAParams, now: float) -> None:
        self.params = params
        self.spi = params.spi
        self.transform: EspCipherSuite = lookup_transform(params.enc_id, params.auth_id, params.key_bits)
        self._cipher = self.transform.keyed_cipher(params.enc_key, params.salt)
        self._integrity = self.transform.keyed_integrity(params.auth_key)
        self._aead = self.transform.cipher.aead
        self._iv_size = self.transform.iv_size
        self._icv_size = self.transform.icv_size
        self.counters = SaCounters()
        self.lifetime = Lifetime(now, params.lifetime_bytes, params.lifetime_seconds, params.soft_lifetime_ratio)

    def lifetime_state(self, now: float) -> LifetimeState:
        return self.lifetime.state(self.counters.octets, now)

    def _refuse_if_expired(self, now: float | None) -> None:
        if self.lifetime.hard_expired(self.counters.octets, now):
            raise EspDrop(DropReason.LIFETIME_EXPIRED, f"SPI {self.spi:#010x}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spi={self.spi:#010x}, {self.transform.name})"


class OutboundSA(_EspSA):
    """Protects inner IPv4 packets for one peer (RFC 4303 §3.1-3.3)."""

    def __init__(self, params: EspSAParams, *, now: float = 0.0, rng: Rng = os.urandom) -> None:
        super().__init__(params, now)
        self._rng = rng
        self._pad_alignment = self.transform.pad_alignment
        self.next_sequence = 1  # §3.3.3: the first packet carries 1

    def encapsulate(self, inner_ip_packet: bytes, *, now: float | None = None) -> bytes:
        """The ESP packet (header to ICV) carrying ``inner_ip_packet``.

        Raises EspDrop(lifetime_expired) past the hard lifetime (time checked only when
        ``now`` is given) and EspDrop(sequence_exhausted) when 2^32-1 packets were sent.
        """
        try:
            return self._encapsulate(inner_ip_packet, now)
        except EspDrop as drop:
            self.counters.count_drop(drop.reason)
            raise

    def _encapsulate(self, inner: bytes, now: float | None) -> bytes:
        self._refuse_if_expired(now)
        sequence = self._take_sequence()
        header = ESP_HEADER.pack(self.spi, sequence)
        plaintext = self._pad(inner)
        if self._aead:
            # RFC 4106 §3.1: the IV must never repeat under one key; the sequence number
            # never repeats within an SA, so it is a valid counter-based IV.
            iv = sequence.to_bytes(self._iv_size, "big")
            # RFC 4106 §5: AAD is SPI | sequence number (32-bit, no ESN); tag appended.
            packet = header + iv + self._cipher.encrypt(iv, plaintext, header)
        else:
            # RFC 3602 §3: CBC needs an unpredictable IV per packet (see _CbcCipher).
            iv_and_ciphertext = self._cipher.encrypt_with_fresh_iv(self._rng(self._iv_size), plaintext)
            # RFC 4303 §3.3.4: the ICV covers header, IV and ciphertext.
            authenticated = header + iv_and_ciphertext
            packet = authenticated + self._integrity.icv(authenticated)
        self.counters.count_packet(len(inner))
        return packet

    def _take_sequence(self) -> int:
        sequence = self.next_sequence
        # §3.3.3: without ESN the counter must not cycle; the SA has to be rekeyed.
        if sequence > MAX_SEQUENCE:
            raise EspDrop(DropReason.SEQUENCE_EXHAUSTED, f"SPI {self.spi:#010x}")
        self.next_sequence = sequence + 1
        return sequence

    def _pad(self, inner: bytes) -> bytes:
        pad_length = -(len(inner) + _TRAILER_SIZE) % self._pad_alignment
        return inner + _PADDING[:pad_length] + bytes((pad_length, NEXT_HEADER_IPV4))


class InboundSA(_EspSA):
    """Verifies and opens ESP packets from one peer (RFC 4303 §3.4).

    ``allowed_inner_source``: when set (the subscriber's assigned address), inner
    packets from any other source are dropped as bad_inner_source - the selector
    check of RFC 4301 §5.2 reduced to what a remote-access subscriber may send.
    """

    def __init__(
        self,
        params: EspSAParams,
        *,
        now: float = 0.0,
        allowed_inner_source: IPv4Address | None = None,
    ) -> None:
        super().__init__(params, now)
        self.replay_window = ReplayWindow(params.replay_window)
        self.allowed_inner_source = allowed_inner_source
        self._block_size = self.transform.cipher.block_size
        self._min_length = self._minimum_packet_length()

    @property
    def allowed_inner_source(self) -> IPv4Address | None:
        return self._allowed_source

    @allowed_inner_source.setter
    def allowed_inner_source(self, address: IPv4Address | None) -> None:
        self._allowed_source = address
        self._allowed_source_bytes = address.packed if address is not None else None

    def _minimum_packet_length(self) -> int:
        # Header, IV, the smallest ciphertext that can hold the 2-byte trailer, ICV.
        smallest_ciphertext = self.transform.pad_alignment
        return ESP_HEADER_SIZE + self._iv_size + smallest_ciphertext + self._icv_size

    def decapsulate(self, esp_packet: bytes, *, now: float | None = None) -> bytes:
        """The inner IPv4 packet, or EspDrop(reason) after counting the drop."""
        try:
            return self._decapsulate(esp_packet, now)
        except EspDrop as drop:
            self.counters.count_drop(drop.reason)
            raise

    def _decapsulate(self, packet: bytes, now: float | None) -> bytes:
        if len(packet) < self._min_length:
            raise EspDrop(DropReason.SHORT_PACKET, f"{len(packet)} bytes")
        spi, sequence = ESP_HEADER.unpack_from(packet)
        if spi != self.spi:
            raise EspDrop(DropReason.UNKNOWN_SPI, f"SPI {spi:#010x} sent to SA {self.spi:#010x}")
        self._refuse_if_expired(now)
        # §3.4.3: the cheap duplicate check comes before the expensive ICV check ...
        replay = self.replay_window.check(sequence)
        if replay is not None:
            raise EspDrop(replay, f"sequence {sequence}")
        plaintext = self._verify_and_decrypt(packet)
        # ... and the window moves only for packets whose ICV verified.
        self.replay_window.update(sequence)
        inner = self._check_inner_packet(self._strip_trailer(plaintext))
        self.counters.count_packet(len(inner))
        return inner

    def _verify_and_decrypt(self, packet: bytes) -> bytes:
        iv_end = ESP_HEADER_SIZE + self._iv_size
        iv = packet[ESP_HEADER_SIZE:iv_end]
        try:
            if self._aead:
                return self._cipher.decrypt(iv, packet[iv_end:], packet[:ESP_HEADER_SIZE])
            icv_start = len(packet) - self._icv_size
            view = memoryview(packet)
            # §3.4.4: verify the ICV before decrypting anything.
            self._integrity.verify(view[:icv_start], view[icv_start:])
        except IntegrityCheckFailed:
            raise EspDrop(DropReason.BAD_ICV, f"SPI {self.spi:#010x}") from None
        ciphertext = packet[iv_end:icv_start]
        if len(ciphertext) % self._block_size:
            raise EspDrop(DropReason.BAD_PADDING, f"{len(ciphertext)}-byte ciphertext is not block aligned")
        return self._cipher.decrypt(iv, ciphertext, b"")

    def _strip_trailer(self, plaintext: bytes) -> bytes:
        pad_length, next_header = plaintext[-2], plaintext[-1]
        payload_end = len(plaintext) - _TRAILER_SIZE - pad_length
        if payload_end < 0:
            raise EspDrop(DropReason.BAD_PADDING, f"pad length {pad_length} exceeds the payload")
        # §2.4: the receiver SHOULD inspect the padding (default series 1, 2, 3, ...).
        if plaintext[payload_end:-_TRAILER_SIZE] != _PADDING[:pad_length]:
            raise EspDrop(DropReason.BAD_PADDING, "padding is not 1, 2, 3, ...")
        if next_header == NEXT_HEADER_IPV4:
            return plaintext[:payload_end]
        if next_header == NEXT_HEADER_NONE:
            # §2.6: a dummy packet (traffic flow confidentiality) is silently discarded.
            raise EspDrop(DropReason.DUMMY_PACKET)
        raise EspDrop(DropReason.BAD_NEXT_HEADER, f"next header {next_header}")

    def _check_inner_packet(self, inner: bytes) -> bytes:
        header_length = ipv4_header_length(inner)
        total_length = ipv4_total_length(inner)
        if not header_length <= total_length <= len(inner):
            raise EspDrop(DropReason.BAD_INNER_PACKET, f"IPv4 total length {total_length} of {len(inner)}")
        if self._allowed_source_bytes is not None and ipv4_source(inner) != self._allowed_source_bytes:
            raise EspDrop(DropReason.BAD_INNER_SOURCE, f"inner source {IPv4Address(ipv4_source(inner))}")
        # §2.4/§2.7: TFC padding may follow the inner packet; its own length is authoritative.
        return inner if total_length == len(inner) else inner[:total_length]


def check_inner_source(inner_ip_packet: bytes, allowed: IPv4Address) -> None:
    """Raise EspDrop(bad_inner_source) unless the inner IPv4 source is ``allowed``.

    For callers that decapsulate without ``allowed_inner_source`` on the SA (the SA
    then does not count this drop; the caller does).
    """
    ipv4_header_length(inner_ip_packet)
    if ipv4_source(inner_ip_packet) != allowed.packed:
        raise EspDrop(DropReason.BAD_INNER_SOURCE, f"inner source {IPv4Address(ipv4_source(inner_ip_packet))}")

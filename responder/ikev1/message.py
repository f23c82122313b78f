"""ISAKMP messages: the fixed header (RFC 2408 §3.1) and the payload chain.

Decoding is split the way the protocol is:

* `parse_header(datagram)` validates the 28-byte header against the datagram
  (version 1.0, Length equal to the datagram size, size bounds);
* `Message.parse(datagram)` also parses the payloads of a cleartext message;
  for an encrypted one (E flag) it returns the header and the ciphertext,
  which the crypto layer decrypts and hands to `parse_payloads`
  (`Message.payloads_from_plaintext` does both steps' bookkeeping).

Encoding mirrors it: `Message(header, payloads).serialize()` for cleartext, or
`serialize_payloads(payloads)` -> encrypt -> `serialize_with_body(header,
first_payload_type, ciphertext)` for encrypted messages.

Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

from .buffer import Buffer
from .enums import ExchangeType, HeaderFlag, PayloadType, lookup
from .errors import (
    DecodeError,
    EncodeError,
    InvalidMajorVersion,
    InvalidMinorVersion,
    MessageTooLarge,
    PayloadMalformed,
    UnequalPayloadLengths,
)
from .payloads import (
    DEFAULT_MAX_PAYLOADS,
    Payload,
    parse_payload_chain,
    parse_payloads,
    serialize_payloads,
)

__all__ = [
    "ISAKMP_HEADER_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "COOKIE_SIZE",
    "Header",
    "Message",
    "parse_header",
    "serialize_with_body",
    "build_message",
]

ISAKMP_HEADER_SIZE = 28
COOKIE_SIZE = 8
#: Largest datagram we decode at all (bounds the work done on hostile input).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
MAJOR_VERSION = 1
MINOR_VERSION = 0


@dataclass
class Header:
    """The ISAKMP header (RFC 2408 §3.1).

    `next_payload` and `length` describe the message this header was read
    from; when serialising they are recomputed from the payloads/body.
    """

    initiator_cookie: bytes
    responder_cookie: bytes = bytes(COOKIE_SIZE)
    exchange_type: int = ExchangeType.IDENTITY_PROTECTION
    flags: int = 0
    message_id: int = 0
    next_payload: int = PayloadType.NONE
    major_version: int = MAJOR_VERSION
    minor_version: int = MINOR_VERSION
    length: int = ISAKMP_HEADER_SIZE

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & HeaderFlag.ENCRYPTION)

    @property
    def commit(self) -> bool:
        return bool(self.flags & HeaderFlag.COMMIT)

    @property
    def authentication_only(self) -> bool:
        return bool(self.flags & HeaderFlag.AUTHENTICATION_ONLY)

    @property
    def body_length(self) -> int:
        return self.length - ISAKMP_HEADER_SIZE

    @classmethod
    def pull(cls, buf: Buffer) -> "Header":
        """Read the 28 header bytes; no validation beyond their presence."""
        if buf.remaining < ISAKMP_HEADER_SIZE:
            raise DecodeError(
                f"truncated ISAKMP header: {buf.remaining} of {ISAKMP_HEADER_SIZE} bytes",
                offset=buf.position,
            )
        initiator_cookie = buf.pull_bytes(COOKIE_SIZE)
        responder_cookie = buf.pull_bytes(COOKIE_SIZE)
        next_payload = lookup(PayloadType, buf.pull_uint8())
        version = buf.pull_uint8()
        return cls(
            initiator_cookie=initiator_cookie,
            responder_cookie=responder_cookie,
            next_payload=next_payload,
            major_version=version >> 4,
            minor_version=version & 0x0F,
            exchange_type=lookup(ExchangeType, buf.pull_uint8()),
            flags=buf.pull_uint8(),
            message_id=buf.pull_uint32(),
            length=buf.pull_uint32(),
        )

    def push(self, buf: Buffer) -> None:
        for name in ("initiator_cookie", "responder_cookie"):
            if len(getattr(self, name)) != COOKIE_SIZE:
                raise EncodeError(f"{name} must be {COOKIE_SIZE} bytes")
        if not (0 <= self.major_version < 16 and 0 <= self.minor_version < 16):
            raise EncodeError(f"version {self.major_version}.{self.minor_version}")
        buf.push_bytes(self.initiator_cookie)
        buf.push_bytes(self.responder_cookie)
        buf.push_uint8(self.next_payload)
        buf.push_uint8(self.major_version << 4 | self.minor_version)
        buf.push_uint8(self.exchange_type)
        buf.push_uint8(self.flags)
        buf.push_uint32(self.message_id)
        buf.push_uint32(self.length)

    def __str__(self) -> str:
        return (
            f"{lookup(ExchangeType, self.exchange_type).name} "
            f"{self.initiator_cookie.hex()}/{self.responder_cookie.hex()} "
            f"mid={self.message_id:08x} flags={self.flags:#04x} len={self.length}"
        )


def _check_version(header: Header) -> None:
    # RFC 2408 §5.1: reject a major version we do not implement; RFC 2408
    # §3.1 lets an implementation reject a higher minor version too, and
    # every IKEv1 peer sends 1.0 (IKEv2 sends 2.0 - answered the same way).
    if header.major_version != MAJOR_VERSION:
        raise InvalidMajorVersion(
            f"ISAKMP version {header.major_version}.{header.minor_version}, 1.0 expected"
        )
    if header.minor_version != MINOR_VERSION:
        raise InvalidMinorVersion(
            f"ISAKMP version {header.major_version}.{header.minor_version}, 1.0 expected"
        )


def parse_header(data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Header:
    """Parse and validate the header of a whole ISAKMP datagram.

    Checks, in order: size bound, header present, version 1.0, header Length
    not below 28 and equal to the datagram length (RFC 2408 §5.1; a longer or
    shorter datagram - truncation or trailing junk - is rejected).
    """
    if len(data) > max_size:
        raise MessageTooLarge(f"datagram of {len(data)} bytes exceeds {max_size}")
    header = Header.pull(Buffer(data))
    _check_version(header)
    if header.length < ISAKMP_HEADER_SIZE:
        raise PayloadMalformed(
            f"header Length {header.length} is below the {ISAKMP_HEADER_SIZE}-byte header"
        )
    if header.length != len(data):
        raise UnequalPayloadLengths(
            f"header Length {header.length} but datagram has {len(data)} bytes"
        )
    return header


@dataclass
class Message:
    """An ISAKMP message: header plus either payloads (cleartext) or body.

    For a parsed encrypted message `payloads` is empty and `body` holds the
    ciphertext. For a parsed cleartext message `body` holds the raw payload
    bytes (useful for hashing, e.g. SA_i in HASH_I, RFC 2409 §5).
    """

    header: Header
    payloads: list[Payload] = field(default_factory=list)
    body: bytes = b""

    @property
    def encrypted(self) -> bool:
        return self.header.encrypted

    @classmethod
    def parse(
        cls,
        data: bytes,
        *,
        allow_unknown: bool = False,
        max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_payloads: int = DEFAULT_MAX_PAYLOADS,
    ) -> "Message":
        """Decode a datagram (without the NAT-T non-ESP marker).

        Raises a `CodecError` subclass, and nothing else, on any bad input.
        """
        header = parse_header(data, max_size=max_size)
        body = bytes(data[ISAKMP_HEADER_SIZE:])
        if header.encrypted:
            return cls(header, [], body)
        payloads = parse_payload_chain(
            header.next_payload,
            body,
            trailing_allowed=False,
            allow_unknown=allow_unknown,
            max_payloads=max_payloads,
        )
        return cls(header, payloads, body)

    def payloads_from_plaintext(
        self,
        plaintext: bytes,
        *,
        allow_unknown: bool = False,
        max_payloads: int = DEFAULT_MAX_PAYLOADS,
    ) -> "Message":
        """A copy with the payloads of the decrypted body (padding ignored)."""
        payloads = parse_payloads(
            self.header.next_payload,
            plaintext,
            allow_unknown=allow_unknown,
            max_payloads=max_payloads,
        )
        return Message(self.header, payloads, plaintext)

    def serialize(self) -> bytes:
        """Encode a cleartext message: chain the payloads, set Next Payload
        and Length in the header. Encrypted messages go through
        `serialize_payloads` + `serialize_with_body` instead."""
        if self.header.encrypted:
            raise EncodeError("Message.serialize() builds cleartext only; use serialize_with_body")
        first, body = serialize_payloads(self.payloads)
        return serialize_with_body(self.header, first, body)

    def payloads_of(self, payload_type: type[Payload]) -> list[Payload]:
        """The payloads of one class, in message order."""
        return [p for p in self.payloads if isinstance(p, payload_type)]

    def first(self, payload_type: type[Payload]) -> Payload | None:
        """The first payload of one class, or None."""
        found = self.payloads_of(payload_type)
        return found[0] if found else None


def serialize_with_body(header: Header, first_payload_type: int, body: bytes) -> bytes:
    """Header + body, with Next Payload and Length filled in.

    `body` is either the chained payloads (cleartext) or their ciphertext; the
    crypto layer sets the E flag in `header` and passes the encrypted bytes.
    """
    length = ISAKMP_HEADER_SIZE + len(body)
    if length > 0xFFFFFFFF:
        raise EncodeError(f"message of {length} bytes")
    final = replace(header, next_payload=first_payload_type, length=length)
    buf = Buffer()
    final.push(buf)
    buf.push_bytes(body)
    return buf.data


def build_message(header: Header, payloads: Iterable[Payload]) -> bytes:
    """Shorthand for `Message(header, list(payloads)).serialize()`."""
    return Message(header, list(payloads)).serialize()


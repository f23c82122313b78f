"""Errors that carry the protocol answer.

Every failure in the codec and in the exchanges is raised as a `ProtocolError`
holding the Notify message type (RFC 2408 §3.14.1) that describes it. One
boundary (the connection object) turns it into an Informational Notify or a
silent drop; nothing below that boundary decides how to answer.

Two families are kept apart, as h11 does:

* `RemoteProtocolError` - the peer sent something we cannot accept (malformed
  datagram, bad proposal, wrong hash ...). The notify type says what to tell it.
* `LocalProtocolError` - our own code asked for something impossible (a value
  that does not fit its wire field, an unknown payload to serialise). This is a
  bug or a misconfiguration on our side; the peer is never told about it.

Codec errors (`CodecError` and subclasses) are all remote errors: the codec only
ever decodes bytes that came from the network.
"""

from __future__ import annotations

from .enums import NotifyType

__all__ = [
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "CodecError",
    "DecodeError",
    "PayloadMalformed",
    "InvalidPayloadType",
    "InvalidMajorVersion",
    "InvalidMinorVersion",
    "UnequalPayloadLengths",
    "MessageTooLarge",
    "TooManyPayloads",
    "PayloadChainError",
    "BadProposalSyntax",
    "MalformedAttribute",
    "InvalidIdInformation",
    "EncodeError",
]


class ProtocolError(Exception):
    """Base of all protocol errors; carries the answer for the peer.

    `notify_type` is the Notify message type that describes the fault; `spi`
    and `data` fill the Notify payload's SPI and Notification Data fields
    (RFC 2408 §3.14) when the boundary decides to send one.
    """

    #: Whether the boundary may answer with a Notify (subclasses narrow this).
    notify_peer: bool = True

    def __init__(
        self,
        notify_type: NotifyType,
        message: str,
        *,
        spi: bytes = b"",
        data: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.notify_type = notify_type
        self.message = message
        self.spi = spi
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} [{self.notify_type.name}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.notify_type.name}, {self.message!r})"


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; tell it `notify_type` (or drop silently)."""


class LocalProtocolError(ProtocolError):
    """Our side asked for something the protocol cannot express; never sent."""

    notify_peer = False


# --------------------------------------------------------------------------
# Codec (decoding) errors: always faults of the bytes we received.
# --------------------------------------------------------------------------


class CodecError(RemoteProtocolError):
    """Common base of every error raised while decoding a datagram.

    `offset` is the position in the buffer being decoded where the fault was
    found (relative to the start of that buffer), or None when not meaningful.
    """

    default_notify: NotifyType = NotifyType.PAYLOAD_MALFORMED

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        notify_type: NotifyType | None = None,
        data: bytes = b"",
    ) -> None:
        if offset is not None:
            message = f"{message} (at offset {offset})"
        super().__init__(notify_type or self.default_notify, message, data=data)
        self.offset = offset

    def add_context(self, where: str) -> None:
        """Prefix the message with where the fault sits (e.g. which payload)."""
        self.message = f"{where}: {self.message}"
        self.args = (self.message,)


class DecodeError(CodecError):
    """A read ran past the end of the available bytes (short read)."""


class PayloadMalformed(CodecError):
    """A length or size field is impossible (RFC 2408 §5.2: PAYLOAD-MALFORMED)."""


class PayloadChainError(PayloadMalformed):
    """The Next Payload chain ended before the data, or ran past it."""


class MalformedAttribute(PayloadMalformed):
    """A data attribute (RFC 2408 §3.3) is truncated or overruns its payload."""


class MessageTooLarge(PayloadMalformed):
    """The datagram exceeds the configured maximum message size."""


class TooManyPayloads(PayloadMalformed):
    """More payloads than the configured bound (protects against hostile input)."""


class InvalidPayloadType(CodecError):
    """A Next Payload value names no payload we can process (RFC 2408 §5.2)."""

    default_notify = NotifyType.INVALID_PAYLOAD_TYPE


class InvalidMajorVersion(CodecError):
    """Major version is not 1 (RFC 2408 §5.1)."""

    default_notify = NotifyType.INVALID_MAJOR_VERSION


class InvalidMinorVersion(CodecError):
    """Minor version is not 0 (RFC 2408 §5.1)."""

    default_notify = NotifyType.INVALID_MINOR_VERSION


class UnequalPayloadLengths(CodecError):
    """Header Length differs from the datagram length (RFC 2408 §5.1)."""

    default_notify = NotifyType.UNEQUAL_PAYLOAD_LENGTHS


class BadProposalSyntax(CodecError):
    """Proposal/transform structure is inconsistent (RFC 2408 §5.4)."""

    default_notify = NotifyType.BAD_PROPOSAL_SYNTAX


class InvalidIdInformation(CodecError):
    """Identification data does not match its ID type (RFC 2407 §4.6.2)."""

    default_notify = NotifyType.INVALID_ID_INFORMATION


# --------------------------------------------------------------------------
# Encoding errors: our own fault.
# --------------------------------------------------------------------------


class EncodeError(LocalProtocolError):
    """A value cannot be represented in its wire field."""

    def __init__(self, message: str) -> None:
        super().__init__(NotifyType.PAYLOAD_MALFORMED, message)

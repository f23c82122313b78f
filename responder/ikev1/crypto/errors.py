"""Typed crypto errors that carry the ISAKMP answer (RFC 2408 3.14.1).

They belong to the engine's one error family (`responder.ikev1.errors`): a
peer-caused crypto error is a `RemoteProtocolError` whose `notify_type` the
engine's boundary sends (or logs before dropping), like a codec error; a
local fault (asking for an algorithm we never offered) is
:class:`UnsupportedAlgorithm`, a `LocalProtocolError` that is never sent.
`notify` (an int, or None for local faults) is kept for callers that only
need the number.
"""
from __future__ import annotations

from ..enums import NotifyType
from ..errors import LocalProtocolError, ProtocolError, RemoteProtocolError

# RFC 2408 3.14.1 Notify Message Types (error range)
PAYLOAD_MALFORMED = int(NotifyType.PAYLOAD_MALFORMED)
INVALID_KEY_INFORMATION = int(NotifyType.INVALID_KEY_INFORMATION)
INVALID_HASH_INFORMATION = int(NotifyType.INVALID_HASH_INFORMATION)
AUTHENTICATION_FAILED = int(NotifyType.AUTHENTICATION_FAILED)


class CryptoError(ProtocolError):
    """Base class of every error raised by responder.ikev1.crypto."""

    notify: int | None = None

    def __init__(self, message: str = "") -> None:
        # local faults never reach the peer (notify_peer is False): the type is
        # only a placeholder there
        notify = NotifyType(self.notify) if self.notify is not None \
            else NotifyType.PAYLOAD_MALFORMED
        super().__init__(notify, message)

    def __str__(self) -> str:  # as before joining the family: the message only
        return self.message


class UnsupportedAlgorithm(CryptoError, LocalProtocolError, KeyError):
    """An algorithm number or key length this package does not implement."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args and self.args[0] else "unsupported algorithm"


class InvalidKeyInformation(CryptoError, RemoteProtocolError):
    """The peer's KE payload is not a valid public value of the group."""

    notify = INVALID_KEY_INFORMATION


class CiphertextMalformed(CryptoError, RemoteProtocolError):
    """Encrypted data that cannot be decrypted (length not a block multiple).

    Distinct from the codec's ``responder.ikev1.errors.PayloadMalformed`` (a length
    field that is impossible); both are answered with PAYLOAD-MALFORMED.
    """

    notify = PAYLOAD_MALFORMED


class InvalidHash(CryptoError, RemoteProtocolError):
    """A HASH payload of a phase 2 / informational / transaction message is wrong."""

    notify = INVALID_HASH_INFORMATION


class AuthenticationFailed(CryptoError, RemoteProtocolError):
    """HASH_I / HASH_R of phase 1 does not verify (wrong PSK or tampering)."""

    notify = AUTHENTICATION_FAILED

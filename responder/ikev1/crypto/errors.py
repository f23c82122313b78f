"""Typed crypto errors that carry the ISAKMP answer (RFC 2408 3.14.1).

Each peer-caused error names the Notify message type the exchange layer should
send (or log before dropping).  Local faults (asking for an algorithm we never
offered) are :class:`UnsupportedAlgorithm` and carry no notify.
"""
from __future__ import annotations

# RFC 2408 3.14.1 Notify Message Types (error range); kept local so this
# package does not depend on the codec's enums.
PAYLOAD_MALFORMED = 16
INVALID_KEY_INFORMATION = 17
INVALID_HASH_INFORMATION = 23
AUTHENTICATION_FAILED = 24


class CryptoError(Exception):
    """Base class of every error raised by responder.ikev1.crypto."""

    notify: int | None = None


class UnsupportedAlgorithm(CryptoError, KeyError):
    """An algorithm number or key length this package does not implement."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unsupported algorithm"


class InvalidKeyInformation(CryptoError):
    """The peer's KE payload is not a valid public value of the group."""

    notify = INVALID_KEY_INFORMATION


class PayloadMalformed(CryptoError):
    """Encrypted data that cannot be decrypted (length not a block multiple)."""

    notify = PAYLOAD_MALFORMED


class InvalidHash(CryptoError):
    """A HASH payload of a phase 2 / informational / transaction message is wrong."""

    notify = INVALID_HASH_INFORMATION


class AuthenticationFailed(CryptoError):
    """HASH_I / HASH_R of phase 1 does not verify (wrong PSK or tampering)."""

    notify = AUTHENTICATION_FAILED

"""Hashes of the exchanges after phase 1 and Quick Mode KEYMAT.

RFC 2409 section 5.5 (Quick Mode), 5.7 (Informational) and
draft-dukes-ike-mode-cfg / draft-beaulieu-ike-xauth (Transaction,
same hash as Informational).  ``payloads_after_hash`` is every payload after
the HASH payload, generic headers included, up to the end of the last payload
(without the encryption padding).  Message IDs are the 32-bit header values.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Mapping

from .errors import InvalidHash, UnsupportedAlgorithm
from .iv import message_id_bytes
from .prf import HashAlgorithm, prf_plus

# RFC 2407 section 4.4.1 Protocol IDs; KEYMAT mixes in the one-octet value.
PROTO_IPSEC_AH = 2
PROTO_IPSEC_ESP = 3


def quick_mode_hash1(prf: HashAlgorithm, skeyid_a: bytes, message_id: int, payloads_after_hash: bytes) -> bytes:
    """HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr])."""
    return prf.prf(skeyid_a, message_id_bytes(message_id) + payloads_after_hash)


def quick_mode_hash2(
    prf: HashAlgorithm, skeyid_a: bytes, message_id: int, ni_b: bytes, payloads_after_hash: bytes
) -> bytes:
    """HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr])."""
    return prf.prf(skeyid_a, message_id_bytes(message_id) + ni_b + payloads_after_hash)


def quick_mode_hash3(prf: HashAlgorithm, skeyid_a: bytes, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)  (0 is one octet)."""
    return prf.prf(skeyid_a, b"\x00" + message_id_bytes(message_id) + ni_b + nr_b)


def informational_hash(prf: HashAlgorithm, skeyid_a: bytes, message_id: int, payloads_after_hash: bytes) -> bytes:
    """HASH(1) of Informational and Transaction: prf(SKEYID_a, M-ID | N/D or ATTR)."""
    return prf.prf(skeyid_a, message_id_bytes(message_id) + payloads_after_hash)


def verify_hash(expected: bytes, received: bytes, what: str = "HASH") -> None:
    """Constant-time check of a received HASH payload; raises :class:`InvalidHash`."""
    if not hmac.compare_digest(expected, received):
        raise InvalidHash(f"{what} payload does not verify")


def keymat(
    prf: HashAlgorithm,
    skeyid_d: bytes,
    *,
    protocol: int,
    spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    length: int,
    pfs_shared_secret: bytes | None = None,
) -> bytes:
    """KEYMAT for one direction of an IPsec SA (RFC 2409 section 5.5).

    KEYMAT = K1 | K2 | ..., K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
    Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b).
    ``spi`` is the SPI of *this* SA: the one its receiver chose.
    """
    if len(spi) != 4:
        raise ValueError("an ESP/AH SPI is 4 bytes")
    seed = (pfs_shared_secret or b"") + bytes([protocol]) + spi + ni_b + nr_b
    return prf_plus(prf.prf, skeyid_d, seed, length)


@dataclass(frozen=True)
class EspEncryption:
    """An ESP transform ID (RFC 2407 section 4.4.4, IANA "IPsec ESP Transform Identifiers")."""

    transform_id: int
    name: str
    key_sizes: tuple[int, ...]  # bytes; the Key Length attribute picks one
    default_key_size: int | None  # None: Key Length attribute required (AES)
    salt_size: int = 0  # RFC 4106 section 8.1: 4-byte salt after the AES-GCM key
    aead: bool = False


@dataclass(frozen=True)
class EspIntegrity:
    """An IPsec Authentication Algorithm attribute value (RFC 2407 4.5, RFC 4868)."""

    number: int
    name: str
    key_size: int
    icv_size: int


ESP_ENCRYPTION: Mapping[int, EspEncryption] = {
    e.transform_id: e
    for e in (
        EspEncryption(3, "3DES-CBC", (24,), 24),
        EspEncryption(12, "AES-CBC", (16, 24, 32), None),
        EspEncryption(20, "AES-GCM-16", (16, 24, 32), None, salt_size=4, aead=True),
    )
}

ESP_INTEGRITY: Mapping[int, EspIntegrity] = {
    i.number: i
    for i in (
        EspIntegrity(1, "HMAC-MD5-96", 16, 12),
        EspIntegrity(2, "HMAC-SHA1-96", 20, 12),
        EspIntegrity(5, "HMAC-SHA2-256-128", 32, 16),
        EspIntegrity(6, "HMAC-SHA2-384-192", 48, 24),
        EspIntegrity(7, "HMAC-SHA2-512-256", 64, 32),
    )
}


@dataclass(frozen=True)
class EspKeys:
    """Keys of one ESP SA, in the order they are cut from KEYMAT."""

    spi: bytes
    encryption_key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    integrity_key: bytes = field(repr=False)


@dataclass(frozen=True)
class EspTransform:
    """The negotiated ESP transform: what to cut out of KEYMAT."""

    encryption: EspEncryption
    encryption_key_size: int
    integrity: EspIntegrity | None

    @classmethod
    def from_attributes(
        cls, transform_id: int, *, key_length_bits: int | None = None, auth_algorithm: int | None = None
    ) -> "EspTransform":
        try:
            encryption = ESP_ENCRYPTION[transform_id]
        except KeyError:
            raise UnsupportedAlgorithm(f"ESP transform {transform_id} not supported") from None
        integrity = _esp_integrity(encryption, auth_algorithm)
        return cls(encryption, _esp_key_size(encryption, key_length_bits), integrity)

    @property
    def keymat_length(self) -> int:
        integrity_size = self.integrity.key_size if self.integrity else 0
        return self.encryption_key_size + self.encryption.salt_size + integrity_size

    def split(self, spi: bytes, material: bytes) -> EspKeys:
        """Encryption key, then salt (GCM), then integrity key - as the kernel expects."""
        enc_end = self.encryption_key_size
        salt_end = enc_end + self.encryption.salt_size
        return EspKeys(
            spi=spi,
            encryption_key=material[:enc_end],
            salt=material[enc_end:salt_end],
            integrity_key=material[salt_end : self.keymat_length],
        )


def _esp_integrity(encryption: EspEncryption, auth_algorithm: int | None) -> EspIntegrity | None:
    if encryption.aead:
        if auth_algorithm is not None:
            raise UnsupportedAlgorithm(f"{encryption.name} takes no Authentication Algorithm")
        return None
    if auth_algorithm is None:
        raise UnsupportedAlgorithm(f"{encryption.name} needs an Authentication Algorithm")
    try:
        return ESP_INTEGRITY[auth_algorithm]
    except KeyError:
        raise UnsupportedAlgorithm(f"IPsec authentication algorithm {auth_algorithm} not supported") from None


def _esp_key_size(encryption: EspEncryption, key_length_bits: int | None) -> int:
    if key_length_bits is None:
        if encryption.default_key_size is None:
            raise UnsupportedAlgorithm(f"{encryption.name} needs a Key Length attribute")
        return encryption.default_key_size
    if key_length_bits % 8 or key_length_bits // 8 not in encryption.key_sizes:
        raise UnsupportedAlgorithm(f"{encryption.name} with a {key_length_bits}-bit key not supported")
    return key_length_bits // 8


@dataclass(frozen=True)
class ChildSaKeys:
    """Both directions of a Quick Mode SA pair, seen from the local end."""

    inbound: EspKeys  # SPI we chose; the peer encrypts with these keys
    outbound: EspKeys  # SPI the peer chose; we encrypt with these keys


def derive_esp_keys(
    prf: HashAlgorithm,
    skeyid_d: bytes,
    transform: EspTransform,
    *,
    inbound_spi: bytes,
    outbound_spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    pfs_shared_secret: bytes | None = None,
) -> ChildSaKeys:
    """KEYMAT for both ESP SAs of a Quick Mode (RFC 2409 section 5.5).

    The nonces keep their initiator/responder order for both directions; only
    the SPI differs.  ``ni_b``/``nr_b`` are the Quick Mode nonce bodies.
    """
    def one(spi: bytes) -> EspKeys:
        material = keymat(
            prf,
            skeyid_d,
            protocol=PROTO_IPSEC_ESP,
            spi=spi,
            ni_b=ni_b,
            nr_b=nr_b,
            length=transform.keymat_length,
            pfs_shared_secret=pfs_shared_secret,
        )
        return transform.split(spi, material)

    return ChildSaKeys(inbound=one(inbound_spi), outbound=one(outbound_spi))

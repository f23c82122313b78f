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

from ..algorithms import ESP_CIPHERS, ESP_INTEGRITY, CipherEntry, HashEntry
from .errors import InvalidHash, UnsupportedAlgorithm
from .iv import message_id_bytes
from .prf import HashFunction, prf_plus

# RFC 2407 section 4.4.1 Protocol IDs; KEYMAT mixes in the one-octet value.
PROTO_IPSEC_AH = 2
PROTO_IPSEC_ESP = 3


def quick_mode_hash1(prf: HashFunction, skeyid_a: bytes, message_id: int, payloads_after_hash: bytes) -> bytes:
    """HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr])."""
    return prf.prf(skeyid_a, message_id_bytes(message_id) + payloads_after_hash)


def quick_mode_hash2(
    prf: HashFunction, skeyid_a: bytes, message_id: int, ni_b: bytes, payloads_after_hash: bytes
) -> bytes:
    """HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr])."""
    return prf.prf(skeyid_a, message_id_bytes(message_id) + ni_b + payloads_after_hash)


def quick_mode_hash3(prf: HashFunction, skeyid_a: bytes, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)  (0 is one octet)."""
    return prf.prf(skeyid_a, b"\x00" + message_id_bytes(message_id) + ni_b + nr_b)


def informational_hash(prf: HashFunction, skeyid_a: bytes, message_id: int, payloads_after_hash: bytes) -> bytes:
    """HASH(1) of Informational and Transaction: prf(SKEYID_a, M-ID | N/D or ATTR)."""
    return prf.prf(skeyid_a, message_id_bytes(message_id) + payloads_after_hash)


def verify_hash(expected: bytes, received: bytes, what: str = "HASH") -> None:
    """Constant-time check of a received HASH payload; raises :class:`InvalidHash`."""
    if not hmac.compare_digest(expected, received):
        raise InvalidHash(f"{what} payload does not verify")


def keymat(
    prf: HashFunction,
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
class EspKeys:
    """Keys of one ESP SA, in the order they are cut from KEYMAT."""

    spi: bytes
    encryption_key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    integrity_key: bytes = field(repr=False)


@dataclass(frozen=True)
class NegotiatedEspTransform:
    """The ESP transform Quick Mode agreed on, as keying sees it: what to cut out of KEYMAT.

    ``cipher`` and ``integrity`` are rows of the algorithm registry; the data path
    builds its own per-SA objects from the same rows (``responder.esp.transforms``).
    """

    cipher: CipherEntry
    encryption_key_size: int  # bytes
    integrity: HashEntry | None

    @classmethod
    def from_attributes(
        cls, transform_id: int, *, key_length_bits: int | None = None, auth_algorithm: int | None = None
    ) -> "NegotiatedEspTransform":
        cipher = ESP_CIPHERS.get(transform_id)
        if cipher is None:
            raise UnsupportedAlgorithm(f"ESP transform {transform_id} not supported")
        integrity = _esp_integrity(cipher, auth_algorithm)
        return cls(cipher, _esp_key_size(cipher, key_length_bits), integrity)

    @property
    def keymat_length(self) -> int:
        integrity_size = self.integrity.key_size if self.integrity else 0
        return self.encryption_key_size + self.cipher.salt_size + integrity_size

    def split(self, spi: bytes, material: bytes) -> EspKeys:
        """Encryption key, then salt (GCM), then integrity key - as the kernel expects."""
        enc_end = self.encryption_key_size
        salt_end = enc_end + self.cipher.salt_size
        return EspKeys(
            spi=spi,
            encryption_key=material[:enc_end],
            salt=material[enc_end:salt_end],
            integrity_key=material[salt_end : self.keymat_length],
        )


def _esp_integrity(cipher: CipherEntry, auth_algorithm: int | None) -> HashEntry | None:
    if cipher.aead:
        if auth_algorithm is not None:
            raise UnsupportedAlgorithm(f"{cipher.name} takes no Authentication Algorithm")
        return None
    if auth_algorithm is None:
        raise UnsupportedAlgorithm(f"{cipher.name} needs an Authentication Algorithm")
    integrity = ESP_INTEGRITY.get(auth_algorithm)
    if integrity is None:
        raise UnsupportedAlgorithm(f"IPsec authentication algorithm {auth_algorithm} not supported")
    return integrity


def _esp_key_size(cipher: CipherEntry, key_length_bits: int | None) -> int:
    """Key size in bytes; the Key Length attribute is required exactly when the row says so."""
    if key_length_bits is None and cipher.key_length_attribute:
        raise UnsupportedAlgorithm(f"{cipher.name} needs a Key Length attribute")
    key_bits = cipher.key_bits_for(key_length_bits)
    if key_bits is None:
        raise UnsupportedAlgorithm(f"{cipher.name} with a {key_length_bits}-bit key not supported")
    return key_bits // 8


@dataclass(frozen=True)
class ChildSaKeys:
    """Both directions of a Quick Mode SA pair, seen from the local end."""

    inbound: EspKeys  # SPI we chose; the peer encrypts with these keys
    outbound: EspKeys  # SPI the peer chose; we encrypt with these keys


def derive_esp_keys(
    prf: HashFunction,
    skeyid_d: bytes,
    transform: NegotiatedEspTransform,
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

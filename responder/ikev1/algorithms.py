"""The algorithm registry: one row per algorithm, read by every layer that names one.

Each row holds every fact about one algorithm that some layer needs:

* the configuration tokens an operator writes (strongSwan style: ``aes256``,
  ``sha256``, ``modp2048``), parsed by ``responder.config.algorithms``;
* the IKEv1 numbers: phase 1 attribute values (RFC 2409 Appendix A) and ESP
  transform id / IPsec Authentication Algorithm (RFC 2407 §4.4.4, §4.5), ``None``
  where the algorithm does not exist in that context; proposal matching
  (``responder.ikev1.proposals``) and keying (``responder.ikev1.crypto``) look
  rows up by them;
* sizes: key sizes, block/IV size, salt, ICV (the truncated HMAC of RFC 2404 /
  RFC 4868, or the AEAD tag), which keying cuts out of KEYMAT and the ESP data
  path (``responder.esp``) uses for framing;
* the primitive both keying and the data path are built from: a ``cryptography``
  block cipher or AEAD class, a hash class for the PRF, a ``hashlib`` name for the
  data path's HMAC. The data path wraps a primitive by :class:`CipherMode` (CBC
  stream contexts, GCM nonce = salt | IV); the mode is the data-path factory key.

The registry is a leaf: it imports only the standard library and
``responder.ikev1.enums``, so the initiator (``clients/``), configuration, keying and
the data path can all import it without cycles. Primitives are named by
:class:`PrimitiveRef` (module, attribute) and imported on first :meth:`~PrimitiveRef.load`:
configuration parsing reads the same rows without loading ``cryptography``.
Lookups are plain mappings (``.get`` gives ``None`` for unknown numbers and tokens);
each caller raises its own error.

Stable API:

* rows: :class:`CipherEntry`, :class:`HashEntry`, :class:`GroupEntry`
  (tuples :data:`CIPHERS`, :data:`HASHES`, :data:`GROUPS`);
* by IKEv1 number: :data:`IKE_CIPHERS`, :data:`IKE_HASHES`, :data:`DH_GROUPS_BY_NUMBER`,
  :data:`ESP_CIPHERS`, :data:`ESP_INTEGRITY`;
* by token: :data:`CIPHER_TOKENS` (token -> (row, key bits)), :data:`HASH_TOKENS`,
  :data:`GROUP_TOKENS`, :data:`AUTH_METHOD_TOKENS`;
* :func:`esp_suites`: every negotiable ESP combination (cipher, key bits, integrity).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Iterator, Mapping

from .enums import (AuthMethod, EncryptionAlgorithm, EspTransformId, GroupDescription,
                    HashAlgorithm, IpsecAuthAlgorithm)

__all__ = [
    "AUTH_METHOD_TOKENS",
    "CIPHERS",
    "CIPHER_TOKENS",
    "CipherEntry",
    "CipherMode",
    "DH_GROUPS_BY_NUMBER",
    "ESP_CIPHERS",
    "ESP_INTEGRITY",
    "GROUPS",
    "GROUP_TOKENS",
    "GroupEntry",
    "HASHES",
    "HASH_TOKENS",
    "HashEntry",
    "IKE_CIPHERS",
    "IKE_HASHES",
    "PrimitiveRef",
    "esp_suites",
]


@dataclass(frozen=True)
class PrimitiveRef:
    """A ``cryptography`` class named by module and attribute, imported on first use.

    ``places`` are tried in order (3DES moved to the "decrepit" module in
    cryptography 43).
    """

    places: tuple[tuple[str, str], ...]

    @classmethod
    def at(cls, module: str, attribute: str, *fallbacks: tuple[str, str]) -> "PrimitiveRef":
        return cls(((module, attribute), *fallbacks))

    def load(self) -> Any:
        return _load(self.places)


@lru_cache(maxsize=None)
def _load(places: tuple[tuple[str, str], ...]) -> Any:
    for module, attribute in places:
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {places} can be imported")


_CIPHERS_MODULE = "cryptography.hazmat.primitives.ciphers.algorithms"
_HASHES_MODULE = "cryptography.hazmat.primitives.hashes"
_AES = PrimitiveRef.at(_CIPHERS_MODULE, "AES")
_TRIPLE_DES = PrimitiveRef.at("cryptography.hazmat.decrepit.ciphers.algorithms", "TripleDES",
                              (_CIPHERS_MODULE, "TripleDES"))
_AES_GCM = PrimitiveRef.at("cryptography.hazmat.primitives.ciphers.aead", "AESGCM")


def _hash(attribute: str) -> PrimitiveRef:
    return PrimitiveRef.at(_HASHES_MODULE, attribute)


class CipherMode(Enum):
    """How the primitive is driven; the data path keys its wrappers by it."""

    CBC = "cbc"  # block cipher in CBC mode, explicit IV (RFC 2451, RFC 3602)
    GCM = "gcm"  # AEAD, nonce = salt | explicit IV (RFC 4106)


@dataclass(frozen=True)
class CipherEntry:
    """One encryption algorithm; sizes in bytes, key sizes in bits.

    ``tokens``: configuration token -> key size in bits it selects.
    ``key_length_attribute``: the Key Length attribute names the key size and must
    be sent (AES, RFC 3602 §5.3, RFC 4106 §8.4); else the key size is fixed and the
    attribute is absent (3DES).
    ``block_size``: what ciphertext aligns to (the cipher block for CBC; 4 for GCM,
    which ESP aligns on 4 bytes, RFC 4106 §3.2).
    ``icv_size``: the AEAD tag appended by the cipher itself, 0 for CBC.
    """

    name: str
    tokens: Mapping[str, int] = field(hash=False)  # rows stay hashable: the name decides
    key_bits: tuple[int, ...]
    key_length_attribute: bool
    ike_number: int | None
    esp_transform_id: int | None
    block_size: int
    iv_size: int
    salt_size: int
    icv_size: int
    mode: CipherMode
    primitive: PrimitiveRef  # block cipher class (CBC) or AEAD class (GCM), called with the key
    weak: bool = False

    @property
    def aead(self) -> bool:
        return self.icv_size > 0

    def key_length_value(self, key_bits: int) -> int | None:
        """The Key Length attribute for ``key_bits``: None when the size is fixed."""
        return key_bits if self.key_length_attribute else None

    def key_bits_for(self, key_length: int | None) -> int | None:
        """Key size in bits for a received Key Length attribute, None if not acceptable."""
        if key_length is None:
            return None if self.key_length_attribute else self.key_bits[0]
        return key_length if key_length in self.key_bits else None


@dataclass(frozen=True)
class HashEntry:
    """One hash: the IKE hash / PRF (HMAC with it) and the ESP HMAC integrity.

    ``key_size`` is the ESP integrity key (the digest size, RFC 2404 §3, RFC 4868
    §2.1.1); ``icv_size`` the truncated ICV (RFC 2403/2404: 96 bits, RFC 4868: half
    the digest).
    """

    name: str
    esp_name: str
    tokens: tuple[str, ...]
    ike_number: int | None
    esp_auth_id: int | None
    digest_size: int
    key_size: int
    icv_size: int
    hashlib_name: str
    primitive: PrimitiveRef  # hash class, for the PRF and phase 1 hashes
    weak: bool = False


@dataclass(frozen=True)
class GroupEntry:
    """One Diffie-Hellman group; the arithmetic is ``responder.ikev1.crypto.dh``."""

    name: str
    token: str
    number: int
    weak: bool = False


def _aes_cbc_tokens() -> dict[str, int]:
    # strongSwan: "aes" alone is AES-128.
    return {"aes128": 128, "aes192": 192, "aes256": 256, "aes": 128}


CIPHERS: tuple[CipherEntry, ...] = (
    # RFC 3602: 128-bit block, 16-byte explicit IV.
    CipherEntry("AES-CBC", _aes_cbc_tokens(), (128, 192, 256), True, EncryptionAlgorithm.AES_CBC,
                EspTransformId.AES_CBC, 16, 16, 0, 0, CipherMode.CBC, _AES),
    # RFC 2451: 64-bit block, 8-byte explicit IV, 192-bit key (with parity bits).
    CipherEntry("3DES-CBC", {"3des": 192}, (192,), False, EncryptionAlgorithm.TRIPLE_DES_CBC,
                EspTransformId.TRIPLE_DES, 8, 8, 0, 0, CipherMode.CBC, _TRIPLE_DES),
    # RFC 4106: 8-byte explicit IV, KEYMAT gives key | 4-byte salt (§8.1), 16-byte ICV
    # for transform 20 (§6). ESP only.
    CipherEntry("AES-GCM-16", {"aes128gcm16": 128, "aes192gcm16": 192, "aes256gcm16": 256},
                (128, 192, 256), True, None, EspTransformId.AES_GCM_16, 4, 8, 4, 16,
                CipherMode.GCM, _AES_GCM),
)

HASHES: tuple[HashEntry, ...] = (
    HashEntry("MD5", "HMAC-MD5-96", ("md5",), HashAlgorithm.MD5, IpsecAuthAlgorithm.HMAC_MD5,
              16, 16, 12, "md5", _hash("MD5"), weak=True),  # RFC 2403
    HashEntry("SHA1", "HMAC-SHA1-96", ("sha1", "sha"), HashAlgorithm.SHA,
              IpsecAuthAlgorithm.HMAC_SHA, 20, 20, 12, "sha1", _hash("SHA1")),  # RFC 2404
    HashEntry("SHA2-256", "HMAC-SHA2-256-128", ("sha256",), HashAlgorithm.SHA2_256,
              IpsecAuthAlgorithm.HMAC_SHA2_256, 32, 32, 16, "sha256", _hash("SHA256")),  # RFC 4868
    HashEntry("SHA2-384", "HMAC-SHA2-384-192", ("sha384",), HashAlgorithm.SHA2_384,
              IpsecAuthAlgorithm.HMAC_SHA2_384, 48, 48, 24, "sha384", _hash("SHA384")),  # RFC 4868
    HashEntry("SHA2-512", "HMAC-SHA2-512-256", ("sha512",), HashAlgorithm.SHA2_512,
              IpsecAuthAlgorithm.HMAC_SHA2_512, 64, 64, 32, "sha512", _hash("SHA512")),  # RFC 4868
)

GROUPS: tuple[GroupEntry, ...] = (
    GroupEntry("MODP-768", "modp768", GroupDescription.MODP_768, weak=True),  # RFC 2409 §6.1
    GroupEntry("MODP-1024", "modp1024", GroupDescription.MODP_1024),  # RFC 2409 §6.2
    GroupEntry("MODP-1536", "modp1536", GroupDescription.MODP_1536),  # RFC 3526 §2
    GroupEntry("MODP-2048", "modp2048", GroupDescription.MODP_2048),  # RFC 3526 §3
    GroupEntry("MODP-3072", "modp3072", GroupDescription.MODP_3072),  # RFC 3526 §4
    GroupEntry("MODP-4096", "modp4096", GroupDescription.MODP_4096),  # RFC 3526 §5
    GroupEntry("ECP-256", "ecp256", GroupDescription.ECP_256),  # RFC 5903
    GroupEntry("ECP-384", "ecp384", GroupDescription.ECP_384),  # RFC 5903
)

#: Xauth PSK is what dynamic subscribers use; plain PSK serves static tunnels.
AUTH_METHOD_TOKENS: Mapping[str, int] = {
    "psk": AuthMethod.PRE_SHARED_KEY,
    "xauth-psk": AuthMethod.XAUTH_INIT_PSK,
}

IKE_CIPHERS: Mapping[int, CipherEntry] = {c.ike_number: c for c in CIPHERS if c.ike_number is not None}
ESP_CIPHERS: Mapping[int, CipherEntry] = {
    c.esp_transform_id: c for c in CIPHERS if c.esp_transform_id is not None
}
IKE_HASHES: Mapping[int, HashEntry] = {h.ike_number: h for h in HASHES if h.ike_number is not None}
ESP_INTEGRITY: Mapping[int, HashEntry] = {h.esp_auth_id: h for h in HASHES if h.esp_auth_id is not None}
DH_GROUPS_BY_NUMBER: Mapping[int, GroupEntry] = {g.number: g for g in GROUPS}

CIPHER_TOKENS: Mapping[str, tuple[CipherEntry, int]] = {
    token: (c, bits) for c in CIPHERS for token, bits in c.tokens.items()
}
HASH_TOKENS: Mapping[str, HashEntry] = {token: h for h in HASHES for token in h.tokens}
GROUP_TOKENS: Mapping[str, GroupEntry] = {g.token: g for g in GROUPS}


def esp_suites() -> Iterator[tuple[CipherEntry, int, HashEntry | None]]:
    """Every negotiable ESP combination: (cipher, key bits, integrity or None for AEAD)."""
    for cipher in ESP_CIPHERS.values():
        integrities: tuple[HashEntry | None, ...] = (
            (None,) if cipher.aead else tuple(ESP_INTEGRITY.values()))
        for key_bits in cipher.key_bits:
            for integrity in integrities:
                yield cipher, key_bits, integrity

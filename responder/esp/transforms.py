"""ESP transform registry: one table per kind (cipher, integrity), combined by key.

A transform is looked up by what Quick Mode negotiated:
``(ESP transform id, IPsec authentication algorithm, key length in bits)``.

* ESP transform ids: RFC 2407 §4.4.4 and the IANA "IPsec ESP Transform Identifiers"
  registry (3 = 3DES, 12 = AES-CBC (RFC 3602), 20 = AES-GCM with 16-byte ICV (RFC 4106)).
* Authentication algorithm: the IKEv1 SA attribute "Authentication Algorithm"
  (RFC 2407 §4.5; 1 = HMAC-MD5, 2 = HMAC-SHA1, 5 = HMAC-SHA2-256 per RFC 4868).
  AES-GCM is combined mode: no authentication attribute, ``auth_id`` is None.

Each entry knows its sizes and can key itself: ``transform.cipher.keyed(key, salt)``
and ``transform.integrity.keyed(key)`` give per-SA objects so that key schedules
(HMAC inner/outer pads, the AES-GCM context) are computed once per SA, not per packet.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from itertools import product
from typing import Callable, Mapping, NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# RFC 2407 §4.4.4 / IANA ESP transform identifiers.
ESP_3DES = 3
ESP_AES_CBC = 12
ESP_AES_GCM_16 = 20

# RFC 2407 §4.5 "Authentication Algorithm" attribute values (IKEv1 phase 2).
AUTH_HMAC_MD5 = 1
AUTH_HMAC_SHA1 = 2
AUTH_HMAC_SHA2_256 = 5


class IntegrityCheckFailed(Exception):
    """The ICV (HMAC or AEAD tag) did not verify; the SA turns it into EspDrop(bad_icv)."""


# ---------------------------------------------------------------------------------------
# Ciphers


class KeyedCipher(Protocol):
    """A cipher bound to one SA's key (and salt for AEAD).

    CBC ciphers also offer ``encrypt_with_fresh_iv(random_block, plaintext)``, which the
    SA uses on the hot path (see :class:`_CbcCipher`).
    """

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext; for AEAD ciphers the ICV (tag) is appended."""

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Plaintext; AEAD ciphers verify the appended tag and raise IntegrityCheckFailed."""


class _CbcCipher:
    """CBC with no cipher-level padding: ESP pads itself (RFC 4303 §2.4).

    Creating a cryptography Cipher context costs more than encrypting 1400 bytes, so
    each SA keeps one encryptor and one decryptor running for its whole life:

    * encrypt: the stream is fed ``random block | plaintext``. The first output block,
      E(random XOR previous ciphertext block), is unpredictable (the way NIST SP 800-38A
      Appendix C makes CBC IVs) and is sent as the packet's IV; the rest is exactly the
      CBC encryption of the plaintext under that IV (RFC 3602 §3).
    * decrypt: the stream is fed ``IV | ciphertext``; the first output block is
      discarded and the rest is the plaintext, whatever the previous packet was.

    Inputs are whole blocks (the SA checks alignment first), so the contexts never hold
    a partial block between packets. Not thread-safe: one SA, one event loop.
    """

    __slots__ = ("_algorithm", "_block_size", "_stream_encryptor", "_stream_decryptor")

    def __init__(self, algorithm: algorithms.AES | TripleDES) -> None:
        self._algorithm = algorithm
        self._block_size = algorithm.block_size // 8
        zero_iv = bytes(self._block_size)
        self._stream_encryptor = Cipher(algorithm, modes.CBC(zero_iv)).encryptor()
        self._stream_decryptor = Cipher(algorithm, modes.CBC(zero_iv)).decryptor()

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """CBC under a given IV (known-answer tests); the SA uses encrypt_with_fresh_iv."""
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return encryptor.update(plaintext) + encryptor.finalize()

    def encrypt_with_fresh_iv(self, random_block: bytes, plaintext: bytes) -> bytes:
        """IV | ciphertext, the IV derived from ``random_block`` as explained above."""
        self._require_whole_blocks(random_block, plaintext)
        return self._stream_encryptor.update(random_block + plaintext)

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        self._require_whole_blocks(iv, ciphertext)
        return self._stream_decryptor.update(iv + ciphertext)[self._block_size:]

    def _require_whole_blocks(self, first_block: bytes, data: bytes) -> None:
        # A partial block would stay buffered in the stream and corrupt the next packet.
        if len(first_block) != self._block_size or len(data) % self._block_size:
            raise ValueError("CBC input must be one IV block and whole blocks")


class _GcmCipher:
    """AES-GCM per RFC 4106 §4: nonce = 4-byte salt | 8-byte explicit IV."""

    __slots__ = ("_aead", "_salt")

    def __init__(self, key: bytes, salt: bytes) -> None:
        self._aead = AESGCM(key)
        self._salt = salt

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, ciphertext, aad)
        except InvalidTag:
            raise IntegrityCheckFailed("AES-GCM tag does not verify") from None


def _aes_cbc(key: bytes, salt: bytes) -> KeyedCipher:
    return _CbcCipher(algorithms.AES(key))


def _3des_cbc(key: bytes, salt: bytes) -> KeyedCipher:
    return _CbcCipher(TripleDES(key))


def _aes_gcm(key: bytes, salt: bytes) -> KeyedCipher:
    return _GcmCipher(key, salt)


@dataclass(frozen=True)
class CipherAlgorithm:
    """Sizes are in bytes. ``icv_size`` is non-zero only for combined-mode (AEAD) ciphers."""

    transform_id: int
    name: str
    key_bits: tuple[int, ...]
    block_size: int
    iv_size: int
    salt_size: int
    icv_size: int
    factory: Callable[[bytes, bytes], KeyedCipher]

    @property
    def aead(self) -> bool:
        return self.icv_size > 0

    def keyed(self, key: bytes, salt: bytes = b"") -> KeyedCipher:
        if len(key) * 8 not in self.key_bits:
            raise ValueError(f"{self.name}: a {len(key) * 8}-bit key is not one of {self.key_bits}")
        if len(salt) != self.salt_size:
            raise ValueError(f"{self.name}: salt must be {self.salt_size} bytes, not {len(salt)}")
        return self.factory(key, salt)


CIPHERS: Mapping[int, CipherAlgorithm] = {
    c.transform_id: c
    for c in (
        # RFC 2451: 3DES-CBC, 64-bit block and explicit IV, 192-bit key (with parity bits).
        CipherAlgorithm(ESP_3DES, "3DES-CBC", (192,), 8, 8, 0, 0, _3des_cbc),
        # RFC 3602: AES-CBC, 128-bit block, 16-byte explicit IV.
        CipherAlgorithm(ESP_AES_CBC, "AES-CBC", (128, 192, 256), 16, 16, 0, 0, _aes_cbc),
        # RFC 4106 §3: GCM is a stream mode; ESP still aligns to 4 bytes (§3.2), 8-byte IV,
        # §8.1: KEYMAT supplies key | 4-byte salt, §6: 16-byte ICV for transform 20.
        CipherAlgorithm(ESP_AES_GCM_16, "AES-GCM-16", (128, 192, 256), 4, 8, 4, 16, _aes_gcm),
    )
}


# ---------------------------------------------------------------------------------------
# Integrity


class KeyedIntegrity:
    """HMAC bound to one SA's key; the key schedule is done once and copied per packet."""

    __slots__ = ("_prototype", "icv_size")

    def __init__(self, key: bytes, digest: str, icv_size: int) -> None:
        self._prototype = hmac.new(key, digestmod=digest)
        self.icv_size = icv_size

    def icv(self, data: bytes | memoryview) -> bytes:
        mac = self._prototype.copy()
        mac.update(data)
        return mac.digest()[: self.icv_size]

    def verify(self, data: bytes | memoryview, received_icv: bytes | memoryview) -> None:
        # Constant-time comparison (RFC 4303 §3.4.4 computes and compares the ICV).
        if not hmac.compare_digest(self.icv(data), bytes(received_icv)):
            raise IntegrityCheckFailed("HMAC does not verify")


@dataclass(frozen=True)
class IntegrityAlgorithm:
    auth_id: int
    name: str
    key_size: int  # bytes
    icv_size: int  # bytes: the truncated HMAC
    digest: str  # hashlib name

    def keyed(self, key: bytes) -> KeyedIntegrity:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name}: key must be {self.key_size} bytes, not {len(key)}")
        return KeyedIntegrity(key, self.digest, self.icv_size)


INTEGRITY: Mapping[int, IntegrityAlgorithm] = {
    i.auth_id: i
    for i in (
        IntegrityAlgorithm(AUTH_HMAC_MD5, "HMAC-MD5-96", 16, 12, "md5"),  # RFC 2403
        IntegrityAlgorithm(AUTH_HMAC_SHA1, "HMAC-SHA1-96", 20, 12, "sha1"),  # RFC 2404
        IntegrityAlgorithm(AUTH_HMAC_SHA2_256, "HMAC-SHA2-256-128", 32, 16, "sha256"),  # RFC 4868
    )
}


# ---------------------------------------------------------------------------------------
# Transforms: the combinations that are offered


class TransformKey(NamedTuple):
    enc_id: int
    auth_id: int | None
    key_bits: int


@dataclass(frozen=True)
class EspTransform:
    """One negotiable ESP transform with every size the packet codec needs."""

    cipher: CipherAlgorithm
    integrity: IntegrityAlgorithm | None
    key_bits: int

    @property
    def key(self) -> TransformKey:
        return TransformKey(self.cipher.transform_id, self.auth_id, self.key_bits)

    @property
    def auth_id(self) -> int | None:
        return self.integrity.auth_id if self.integrity else None

    @property
    def name(self) -> str:
        suffix = f"+{self.integrity.name}" if self.integrity else ""
        return f"{self.cipher.name}-{self.key_bits}{suffix}"

    @property
    def enc_key_size(self) -> int:
        return self.key_bits // 8

    @property
    def auth_key_size(self) -> int:
        return self.integrity.key_size if self.integrity else 0

    @property
    def salt_size(self) -> int:
        return self.cipher.salt_size

    @property
    def iv_size(self) -> int:
        return self.cipher.iv_size

    @property
    def pad_alignment(self) -> int:
        # RFC 4303 §2.4: ciphertext must be a multiple of the block size, and the
        # trailer must end on a 4-byte boundary whatever the cipher.
        return max(self.cipher.block_size, 4)

    @property
    def icv_size(self) -> int:
        return self.cipher.icv_size if self.cipher.aead else self.integrity.icv_size  # type: ignore[union-attr]

    def keyed_cipher(self, enc_key: bytes, salt: bytes) -> KeyedCipher:
        """The cipher for one SA; the key must have exactly this transform's length."""
        if len(enc_key) != self.enc_key_size:
            raise ValueError(f"{self.name}: encryption key must be {self.enc_key_size} bytes, not {len(enc_key)}")
        return self.cipher.keyed(enc_key, salt)

    def keyed_integrity(self, auth_key: bytes) -> KeyedIntegrity | None:
        """The HMAC for one SA, or None for combined-mode ciphers (which take no key)."""
        if self.integrity is None:
            if auth_key:
                raise ValueError(f"{self.name} is combined mode and takes no integrity key")
            return None
        return self.integrity.keyed(auth_key)


def _build_registry() -> dict[TransformKey, EspTransform]:
    cbc_ciphers = (CIPHERS[ESP_3DES], CIPHERS[ESP_AES_CBC])
    registry: dict[TransformKey, EspTransform] = {}
    for cipher, integrity in product(cbc_ciphers, INTEGRITY.values()):
        for key_bits in cipher.key_bits:
            transform = EspTransform(cipher, integrity, key_bits)
            registry[transform.key] = transform
    gcm = CIPHERS[ESP_AES_GCM_16]
    for key_bits in gcm.key_bits:
        transform = EspTransform(gcm, None, key_bits)
        registry[transform.key] = transform
    return registry


TRANSFORMS: Mapping[TransformKey, EspTransform] = _build_registry()


class UnsupportedTransform(LookupError):
    """No registry entry for the negotiated combination."""


def lookup_transform(enc_id: int, auth_id: int | None, key_bits: int | None = None) -> EspTransform:
    """The transform for a negotiated combination.

    ``key_bits`` may be None for ciphers with a single key size (3DES: the Key Length
    attribute is not sent for it). ``auth_id`` 0 is treated as "none" (combined mode).
    """
    cipher = CIPHERS.get(enc_id)
    if cipher is None:
        raise UnsupportedTransform(f"ESP transform id {enc_id} is not supported")
    if key_bits is None:
        if len(cipher.key_bits) != 1:
            raise UnsupportedTransform(f"{cipher.name} needs a key length")
        key_bits = cipher.key_bits[0]
    key = TransformKey(enc_id, auth_id or None, key_bits)
    try:
        return TRANSFORMS[key]
    except KeyError:
        raise UnsupportedTransform(f"no ESP transform for {key}") from None

"""ESP cipher suites: the negotiable combinations of the algorithm registry, keyed per SA.

A suite is looked up by what Quick Mode negotiated:
``(ESP transform id, IPsec authentication algorithm, key length in bits)``. The facts
(numbers, sizes, primitives) are rows of ``responder.ikev1.algorithms``; this module only
adds what the data path does with them: per-SA keyed objects, so that key schedules
(HMAC inner/outer pads, the AES-GCM context) are computed once per SA, not per packet.
``suite.keyed_cipher(key, salt)`` wraps the row's primitive by its
:class:`~responder.ikev1.algorithms.CipherMode`; ``suite.keyed_integrity(key)`` is the
row's HMAC truncated to its ICV size (RFC 2404, RFC 4868).

AES-GCM is combined mode: no authentication attribute, ``auth_id`` is None.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from responder.ikev1.algorithms import ESP_CIPHERS, CipherEntry, CipherMode, HashEntry, esp_suites


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

    def __init__(self, algorithm: BlockCipherAlgorithm) -> None:
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

    def __init__(self, aead: AESGCM, salt: bytes) -> None:
        self._aead = aead
        self._salt = salt

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, ciphertext, aad)
        except InvalidTag:
            raise IntegrityCheckFailed("AES-GCM tag does not verify") from None


def _keyed_cbc(cipher: CipherEntry, key: bytes, salt: bytes) -> KeyedCipher:
    return _CbcCipher(cipher.primitive.load()(key))


def _keyed_gcm(cipher: CipherEntry, key: bytes, salt: bytes) -> KeyedCipher:
    return _GcmCipher(cipher.primitive.load()(key), salt)


#: The data-path factory of each cipher mode of the registry.
KEYED_CIPHER_FACTORIES: Mapping[CipherMode, Callable[[CipherEntry, bytes, bytes], KeyedCipher]] = {
    CipherMode.CBC: _keyed_cbc,
    CipherMode.GCM: _keyed_gcm,
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


# ---------------------------------------------------------------------------------------
# Suites: the combinations that can be negotiated


class TransformKey(NamedTuple):
    enc_id: int
    auth_id: int | None
    key_bits: int


@dataclass(frozen=True)
class EspCipherSuite:
    """One negotiable ESP combination with every size the packet codec needs."""

    cipher: CipherEntry
    integrity: HashEntry | None
    key_bits: int

    @property
    def key(self) -> TransformKey:
        return TransformKey(self.enc_id, self.auth_id, self.key_bits)

    @property
    def enc_id(self) -> int:
        return self.cipher.esp_transform_id  # type: ignore[return-value]

    @property
    def auth_id(self) -> int | None:
        return self.integrity.esp_auth_id if self.integrity else None

    @property
    def name(self) -> str:
        suffix = f"+{self.integrity.esp_name}" if self.integrity else ""
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
        """The cipher for one SA; key and salt must have exactly this suite's lengths."""
        if len(enc_key) != self.enc_key_size:
            raise ValueError(f"{self.name}: encryption key must be {self.enc_key_size} bytes, not {len(enc_key)}")
        if len(salt) != self.salt_size:
            raise ValueError(f"{self.name}: salt must be {self.salt_size} bytes, not {len(salt)}")
        return KEYED_CIPHER_FACTORIES[self.cipher.mode](self.cipher, enc_key, salt)

    def keyed_integrity(self, auth_key: bytes) -> KeyedIntegrity | None:
        """The HMAC for one SA, or None for combined-mode ciphers (which take no key)."""
        if self.integrity is None:
            if auth_key:
                raise ValueError(f"{self.name} is combined mode and takes no integrity key")
            return None
        return keyed_hmac(self.integrity, auth_key)


def keyed_hmac(integrity: HashEntry, key: bytes) -> KeyedIntegrity:
    """The truncated HMAC of ``integrity`` bound to one SA's key."""
    if len(key) != integrity.key_size:
        raise ValueError(f"{integrity.esp_name}: key must be {integrity.key_size} bytes, not {len(key)}")
    return KeyedIntegrity(key, integrity.hashlib_name, integrity.icv_size)


TRANSFORMS: Mapping[TransformKey, EspCipherSuite] = {
    suite.key: suite
    for suite in (EspCipherSuite(cipher, integrity, key_bits)
                  for cipher, key_bits, integrity in esp_suites())
}


class UnsupportedTransform(LookupError):
    """No registry entry for the negotiated combination."""


def lookup_transform(enc_id: int, auth_id: int | None, key_bits: int | None = None) -> EspCipherSuite:
    """The suite for a negotiated combination.

    ``key_bits`` may be None for ciphers with a single key size (3DES: the Key Length
    attribute is not sent for it). ``auth_id`` 0 is treated as "none" (combined mode).
    """
    cipher = ESP_CIPHERS.get(enc_id)
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

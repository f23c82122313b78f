"""Phase 1 encryption keyed by the IKEv1 Encryption Algorithm number.

The ciphers are the rows of the algorithm registry (``responder.ikev1.algorithms``)
that have a phase 1 number: RFC 2409 Appendix A "Encryption Algorithm" class
(attribute 1): 5 3DES-CBC (RFC 2451, 24-byte key, 8-byte block); 7 AES-CBC (RFC 3602
section 5.3: the Key Length attribute (14) MUST be sent; 128, 192 or 256 bits;
16-byte block).
The ISAKMP message body is encrypted in CBC mode without any padding scheme of
the cipher itself: the exchange pads to the block size (:func:`pad`) and the
receiver finds the end of the payload chain from the payload lengths.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, modes

from ..algorithms import IKE_CIPHERS, CipherEntry
from .errors import CiphertextMalformed, UnsupportedAlgorithm


@dataclass(frozen=True)
class CipherAlgorithm:
    """One negotiable phase 1 cipher; sizes in bytes."""

    number: int
    name: str
    block_size: int
    key_sizes: tuple[int, ...]
    # None: the Key Length attribute is required (AES); else the fixed key size.
    fixed_key_size: int | None
    _factory: Callable[[bytes], BlockCipherAlgorithm]

    @classmethod
    def from_entry(cls, entry: CipherEntry) -> "CipherAlgorithm":
        """The phase 1 view of a registry row (sizes in bytes)."""
        key_sizes = tuple(bits // 8 for bits in entry.key_bits)
        fixed_key_size = None if entry.key_length_attribute else key_sizes[0]
        return cls(int(entry.ike_number), entry.name, entry.block_size, key_sizes,  # type: ignore[arg-type]
                   fixed_key_size, entry.primitive.load())

    def key_size(self, key_length_bits: int | None = None) -> int:
        """Key size in bytes for a transform's Key Length attribute (in bits)."""
        if key_length_bits is None:
            if self.fixed_key_size is None:
                raise UnsupportedAlgorithm(f"{self.name} needs a Key Length attribute")
            return self.fixed_key_size
        if key_length_bits % 8 or key_length_bits // 8 not in self.key_sizes:
            raise UnsupportedAlgorithm(f"{self.name} with a {key_length_bits}-bit key not supported")
        return key_length_bits // 8

    def encrypt(self, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
        """CBC-encrypt an already padded plaintext (see :func:`pad`)."""
        self._check_key_iv(key, iv)
        if len(plaintext) % self.block_size:
            raise ValueError(f"plaintext of {len(plaintext)} bytes is not padded to {self.block_size}")
        encryptor = Cipher(self._factory(key), modes.CBC(iv)).encryptor()
        return encryptor.update(plaintext) + encryptor.finalize()

    def decrypt(self, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        """CBC-decrypt; returns the plaintext including the sender's padding.

        Never interprets the padding: strongSwan pads with zeros, vpnc puts the
        pad length in the last byte; the payload chain says where data ends.
        """
        self._check_key_iv(key, iv)
        if not ciphertext or len(ciphertext) % self.block_size:
            raise CiphertextMalformed(
                f"{len(ciphertext)} encrypted bytes are not a multiple of the {self.name} block size"
            )
        decryptor = Cipher(self._factory(key), modes.CBC(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()

    def _check_key_iv(self, key: bytes, iv: bytes) -> None:
        # Local faults: keys and IVs come from our own derivation, never the wire.
        if len(key) not in self.key_sizes:
            raise ValueError(f"{self.name} key must be one of {self.key_sizes} bytes, got {len(key)}")
        if len(iv) != self.block_size:
            raise ValueError(f"{self.name} IV must be {self.block_size} bytes, got {len(iv)}")


CIPHER_ALGORITHMS: Mapping[int, CipherAlgorithm] = {
    number: CipherAlgorithm.from_entry(entry) for number, entry in IKE_CIPHERS.items()
}


def cipher_algorithm(number: int) -> CipherAlgorithm:
    """The registry entry for an IKE encryption algorithm number."""
    try:
        return CIPHER_ALGORITHMS[number]
    except KeyError:
        raise UnsupportedAlgorithm(f"IKE encryption algorithm {number} not supported") from None


def pad(plaintext: bytes, block_size: int) -> bytes:
    """Pad an ISAKMP body before encryption: 1..block_size zero bytes.

    ISAKMP only needs a block multiple (the header length counts the padding,
    the payload chain says where data ends); the pad content is not defined for
    IKEv1.  This mirrors strongSwan, whose messages in the reference captures
    always carry 1..16 zero bytes (a whole block when already aligned); vpnc
    sends 0..15 zero bytes.  Neither uses the last byte as a pad count, and
    :meth:`CipherAlgorithm.decrypt` never interprets the padding.
    """
    return plaintext + bytes(block_size - len(plaintext) % block_size)

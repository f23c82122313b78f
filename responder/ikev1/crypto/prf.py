"""Hash and PRF keyed by the IKEv1 Hash Algorithm number.

The hashes are the rows of the algorithm registry (``responder.ikev1.algorithms``)
with a phase 1 number: RFC 2409 Appendix A, "Hash Algorithm" class (attribute 2):
1 MD5, 2 SHA, 3 Tiger (not implemented), 4-6 SHA2-256/384/512 (RFC 4868 section 2.1
numbers, IANA "IPSEC Hash Algorithm" registry).  RFC 2409 section 4: when no PRF is
negotiated (always, in practice), the PRF is the HMAC version of the negotiated
hash.  :class:`HashFunction` is the implementation; the IANA numbers are the enum
``responder.ikev1.enums.HashAlgorithm``.
"""
from __future__ import annotations

import hmac as _stdlib_hmac
from dataclasses import dataclass
from typing import Callable, Mapping

from cryptography.hazmat.primitives import hashes, hmac

from ..algorithms import IKE_HASHES, HashEntry
from .errors import UnsupportedAlgorithm


@dataclass(frozen=True)
class HashFunction:
    """One negotiable hash: ``prf`` is HMAC with it, ``hash`` the bare digest."""

    number: int
    name: str
    _factory: Callable[[], hashes.HashAlgorithm]

    @classmethod
    def from_entry(cls, entry: HashEntry) -> "HashFunction":
        return cls(int(entry.ike_number), entry.name, entry.primitive.load())  # type: ignore[arg-type]

    @property
    def digest_size(self) -> int:
        return self._factory().digest_size

    def hash(self, data: bytes) -> bytes:
        digest = hashes.Hash(self._factory())
        digest.update(data)
        return digest.finalize()

    def prf(self, key: bytes, data: bytes) -> bytes:
        mac = hmac.HMAC(key, self._factory())
        mac.update(data)
        return mac.finalize()

    def verify_prf(self, key: bytes, data: bytes, expected: bytes) -> bool:
        """Constant-time comparison of a received HASH payload with prf(key, data)."""
        return _stdlib_hmac.compare_digest(self.prf(key, data), expected)


HASH_ALGORITHMS: Mapping[int, HashFunction] = {
    number: HashFunction.from_entry(entry) for number, entry in IKE_HASHES.items()
}


def hash_algorithm(number: int) -> HashFunction:
    """The registry entry for an IKE hash algorithm number."""
    try:
        return HASH_ALGORITHMS[number]
    except KeyError:
        raise UnsupportedAlgorithm(f"IKE hash algorithm {number} not supported") from None


def prf_plus(prf: Callable[[bytes, bytes], bytes], key: bytes, seed: bytes, length: int) -> bytes:
    """RFC 2409 section 5.5 KEYMAT expansion: K1 = prf(key, seed), Kn = prf(key, Kn-1 | seed).

    Returns the first ``length`` bytes of K1 | K2 | ...
    """
    blocks, previous = [], b""
    while sum(map(len, blocks)) < length:
        previous = prf(key, previous + seed)
        blocks.append(previous)
    return b"".join(blocks)[:length]


def appendix_b_expand(prf: Callable[[bytes, bytes], bytes], key: bytes, length: int) -> bytes:
    """RFC 2409 Appendix B: K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1).

    Only used when SKEYID_e is shorter than the cipher key; "0" is one zero octet.
    """
    blocks, previous = [], b"\x00"
    while sum(map(len, blocks)) < length:
        previous = prf(key, previous)
        blocks.append(previous)
    return b"".join(blocks)[:length]

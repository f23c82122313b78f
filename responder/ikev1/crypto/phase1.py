"""Phase 1 key material and authentication hashes (RFC 2409 section 5).

Pre-shared key authentication only: auth method 1 and XAUTHInitPreShared
(65001, draft-beaulieu-ike-xauth), whose phase 1 is computed exactly like
method 1 (Xauth runs afterwards, in a Transaction exchange).  Inputs are raw payload bodies (without the 4-byte generic payload
header), as RFC 2409 section 5 requires for Ni_b, Nr_b, SAi_b, IDii_b, IDir_b,
and KE data as sent (fixed length).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from .cipher import CipherAlgorithm
from .errors import AuthenticationFailed
from .prf import HashFunction, appendix_b_expand


def skeyid_pre_shared_key(prf: HashFunction, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """SKEYID = prf(pre-shared-key, Ni_b | Nr_b)  (RFC 2409 section 5)."""
    return prf.prf(psk, ni_b + nr_b)


def encryption_key_from_skeyid_e(prf: HashFunction, skeyid_e: bytes, key_size: int) -> bytes:
    """The phase 1 cipher key (RFC 2409 Appendix B).

    The first ``key_size`` bytes of SKEYID_e, or, when SKEYID_e is shorter (e.g.
    AES-256 with SHA1), of K1 | K2 | ... with K1 = prf(SKEYID_e, 0).
    """
    if len(skeyid_e) >= key_size:
        return skeyid_e[:key_size]
    return appendix_b_expand(prf.prf, skeyid_e, key_size)


def initial_phase1_iv(prf: HashFunction, block_size: int, g_xi: bytes, g_xr: bytes) -> bytes:
    """IV of the first encrypted phase 1 message: hash(g^xi | g^xr), truncated (App. B)."""
    return prf.hash(g_xi + g_xr)[:block_size]


def hash_i(
    prf: HashFunction,
    skeyid: bytes,
    *,
    g_xi: bytes,
    g_xr: bytes,
    cky_i: bytes,
    cky_r: bytes,
    sai_b: bytes,
    idii_b: bytes,
) -> bytes:
    """HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)."""
    return prf.prf(skeyid, g_xi + g_xr + cky_i + cky_r + sai_b + idii_b)


def hash_r(
    prf: HashFunction,
    skeyid: bytes,
    *,
    g_xi: bytes,
    g_xr: bytes,
    cky_i: bytes,
    cky_r: bytes,
    sai_b: bytes,
    idir_b: bytes,
) -> bytes:
    """HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)."""
    return prf.prf(skeyid, g_xr + g_xi + cky_r + cky_i + sai_b + idir_b)


@dataclass(frozen=True)
class Phase1Keys:
    """The keying material of one ISAKMP SA.

    ``prf`` is the negotiated hash (its HMAC is the PRF), ``cipher`` the
    negotiated encryption algorithm; secrets are kept out of ``repr``.
    """

    prf: HashFunction
    cipher: CipherAlgorithm
    cky_i: bytes
    cky_r: bytes
    skeyid: bytes = field(repr=False)
    skeyid_d: bytes = field(repr=False)
    skeyid_a: bytes = field(repr=False)
    skeyid_e: bytes = field(repr=False)
    encryption_key: bytes = field(repr=False)

    @classmethod
    def derive(
        cls,
        *,
        prf: HashFunction,
        cipher: CipherAlgorithm,
        key_size: int,
        skeyid: bytes,
        shared_secret: bytes,
        cky_i: bytes,
        cky_r: bytes,
    ) -> "Phase1Keys":
        """SKEYID_d/a/e and the cipher key from SKEYID and g^xy (RFC 2409 section 5).

        SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
        SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
        SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
        """
        _check_cookies(cky_i, cky_r)
        tail = shared_secret + cky_i + cky_r
        skeyid_d = prf.prf(skeyid, tail + b"\x00")
        skeyid_a = prf.prf(skeyid, skeyid_d + tail + b"\x01")
        skeyid_e = prf.prf(skeyid, skeyid_a + tail + b"\x02")
        return cls(
            prf=prf,
            cipher=cipher,
            cky_i=cky_i,
            cky_r=cky_r,
            skeyid=skeyid,
            skeyid_d=skeyid_d,
            skeyid_a=skeyid_a,
            skeyid_e=skeyid_e,
            encryption_key=encryption_key_from_skeyid_e(prf, skeyid_e, key_size),
        )

    @classmethod
    def derive_pre_shared_key(
        cls,
        *,
        prf: HashFunction,
        cipher: CipherAlgorithm,
        key_size: int,
        psk: bytes,
        ni_b: bytes,
        nr_b: bytes,
        shared_secret: bytes,
        cky_i: bytes,
        cky_r: bytes,
    ) -> "Phase1Keys":
        """All phase 1 keys for pre-shared key authentication."""
        return cls.derive(
            prf=prf,
            cipher=cipher,
            key_size=key_size,
            skeyid=skeyid_pre_shared_key(prf, psk, ni_b, nr_b),
            shared_secret=shared_secret,
            cky_i=cky_i,
            cky_r=cky_r,
        )

    def hash_i(self, *, g_xi: bytes, g_xr: bytes, sai_b: bytes, idii_b: bytes) -> bytes:
        """HASH_I of this SA (see :func:`hash_i`)."""
        return hash_i(
            self.prf, self.skeyid, g_xi=g_xi, g_xr=g_xr, cky_i=self.cky_i, cky_r=self.cky_r,
            sai_b=sai_b, idii_b=idii_b,
        )

    def hash_r(self, *, g_xi: bytes, g_xr: bytes, sai_b: bytes, idir_b: bytes) -> bytes:
        """HASH_R of this SA (see :func:`hash_r`)."""
        return hash_r(
            self.prf, self.skeyid, g_xi=g_xi, g_xr=g_xr, cky_i=self.cky_i, cky_r=self.cky_r,
            sai_b=sai_b, idir_b=idir_b,
        )

    def verify_hash_i(
        self, received: bytes, *, g_xi: bytes, g_xr: bytes, sai_b: bytes, idii_b: bytes
    ) -> None:
        """Check the initiator's HASH payload; raises :class:`AuthenticationFailed`."""
        expected = self.hash_i(g_xi=g_xi, g_xr=g_xr, sai_b=sai_b, idii_b=idii_b)
        _require_equal(expected, received, "HASH_I")

    def verify_hash_r(
        self, received: bytes, *, g_xi: bytes, g_xr: bytes, sai_b: bytes, idir_b: bytes
    ) -> None:
        """Check the responder's HASH payload (used by the initiator in clients/)."""
        expected = self.hash_r(g_xi=g_xi, g_xr=g_xr, sai_b=sai_b, idir_b=idir_b)
        _require_equal(expected, received, "HASH_R")

    def initial_iv(self, g_xi: bytes, g_xr: bytes) -> bytes:
        return initial_phase1_iv(self.prf, self.cipher.block_size, g_xi, g_xr)


def _check_cookies(cky_i: bytes, cky_r: bytes) -> None:
    if len(cky_i) != 8 or len(cky_r) != 8:
        raise ValueError("ISAKMP cookies are 8 bytes each")


def _require_equal(expected: bytes, received: bytes, what: str) -> None:
    if not hmac.compare_digest(expected, received):
        raise AuthenticationFailed(f"{what} does not match (wrong pre-shared key?)")

"""Diffie-Hellman groups keyed by the IKEv1 Group Description number.

MODP groups 1 and 2 are RFC 2409 section 6.1/6.2, 5 is RFC 3526 section 2
(first defined in draft-ietf-ipsec-ike-modp-groups), 14, 15, 16 are RFC 3526
sections 3-5; all with generator 2.  Each prime is
``2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k)``; the hex below was
produced from that formula and cross-checked against OpenSSL's named groups
(``openssl genpkey -genparam -algorithm DH -pkeyopt group:modp_N``) and the
primes compiled into strongSwan's libstrongswan (see
tests/vectors/crypto/verify_modp_primes.py; tests/unit/test_crypto_dh.py
recomputes the formula).

ECP groups 19 and 20 are RFC 5903 (NIST P-256, P-384).  In IKEv1 (RFC 5903
section 7 as corrected by RFC 6989/errata: same as IKEv2) the KE payload holds
``x | y`` without the 0x04 point-format octet and the shared secret g^xy is the
x coordinate only, each coordinate left-padded to the field size.

All arithmetic is done by ``cryptography`` (OpenSSL); randomness comes from an
injectable ``rng(n) -> n bytes`` (``os.urandom`` by default) so tests can pin
private values.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterator, Mapping, Union

from cryptography.hazmat.primitives.asymmetric import dh, ec
from cryptography.utils import CryptographyDeprecationWarning

from .errors import InvalidKeyInformation, UnsupportedAlgorithm

Rng = Callable[[int], bytes]

# Extra random bits when reducing rng output modulo the group order: bias 2^-64
# (the "extra random bits" method of FIPS 186-4 B.4.1 / B.5.1).
_EXTRA_RANDOM_BYTES = 8


def _prime(text: str) -> int:
    return int("".join(text.split()), 16)


_MODP_768 = _prime("""
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A63A3620 FFFFFFFF FFFFFFFF
""")
_MODP_1024 = _prime("""
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE65381 FFFFFFFF FFFFFFFF
""")
_MODP_1536 = _prime("""
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA237327 FFFFFFFF FFFFFFFF
""")
_MODP_2048 = _prime("""
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AACAA68 FFFFFFFF FFFFFFFF
""")
_MODP_3072 = _prime("""
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AAAC42D AD33170D 04507A33
    A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7
    ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
    D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2
    08E24FA0 74E5AB31 43DB5BFC E0FD108E 4B82D120 A93AD2CA FFFFFFFF FFFFFFFF
""")
_MODP_4096 = _prime("""
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AAAC42D AD33170D 04507A33
    A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D B3970F85 A6E1E4C7
    ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
    D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2
    08E24FA0 74E5AB31 43DB5BFC E0FD108E 4B82D120 A9210801 1A723C12 A787E6D7
    88719A10 BDBA5B26 99C32718 6AF4E23C 1A946834 B6150BDA 2583E9CA 2AD44CE8
    DBBBC2DB 04DE8EF9 2E8EFC14 1FBECAA6 287C5947 4E6BC05D 99B2964F A090C3A2
    233BA186 515BE7ED 1F612970 CEE2D7AF B81BDD76 2170481C D0069127 D5B05AA9
    93B4EA98 8D8FDDC1 86FFB7DC 90A6C08F 4DF435C9 34063199 FFFFFFFF FFFFFFFF
""")


def _random_in_range(rng: Rng, low: int, high: int) -> int:
    """Integer in [low, high] from ``rng`` bytes (modulo bias below 2^-64)."""
    span = high - low + 1
    draw = rng((span.bit_length() + 7) // 8 + _EXTRA_RANDOM_BYTES)
    return low + int.from_bytes(draw, "big") % span


@contextmanager
def _finite_field_dh() -> Iterator[None]:
    # cryptography >= 46 deprecates FFDH, but IKEv1's MODP groups are FFDH by
    # definition; silence only that warning, only around our own calls.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


@dataclass(frozen=True)
class DHKeyPair:
    """Our side of one exchange: the private key and the KE payload data."""

    group: "DHGroup"
    public_bytes: bytes
    private_value: int = field(repr=False)
    _key: Union[dh.DHPrivateKey, ec.EllipticCurvePrivateKey] = field(repr=False)

    def compute_shared(self, peer_public: bytes) -> bytes:
        """g^xy for the peer's KE payload data (validated, fixed length)."""
        return self.group.compute_shared(self, peer_public)


@dataclass(frozen=True)
class ModpGroup:
    """A MODP group (RFC 2409 / RFC 3526): safe prime, generator 2."""

    number: int
    name: str
    prime: int = field(repr=False)
    generator: int = 2

    @property
    def public_size(self) -> int:
        """KE data and g^xy are left-padded to the prime's length (RFC 2409 section 5)."""
        return (self.prime.bit_length() + 7) // 8

    @cached_property
    def _parameter_numbers(self) -> dh.DHParameterNumbers:
        return dh.DHParameterNumbers(self.prime, self.generator)

    def generate(self, rng: Rng = os.urandom) -> DHKeyPair:
        """Fresh key pair; the private exponent is uniform in [2, p-2]."""
        return self.key_pair_from_private(_random_in_range(rng, 2, self.prime - 2))

    def key_pair_from_private(self, private_value: int) -> DHKeyPair:
        """Key pair for a given exponent (deterministic tests, vectors)."""
        if not 1 < private_value < self.prime - 1:
            raise ValueError(f"{self.name}: private value out of range")
        with _finite_field_dh():
            # cryptography cannot derive y = g^x from x, and every DH key object
            # it builds re-validates p (about 40 ms for groups 1 and 2, which
            # OpenSSL does not know by name).  So build one key whose public
            # part is a placeholder (g), and let OpenSSL compute g^x in constant
            # time as the "shared secret" with the public value g.  exchange()
            # only ever uses the private exponent of this key.
            key = dh.DHPrivateNumbers(
                private_value, dh.DHPublicNumbers(self.generator, self._parameter_numbers)
            ).private_key()
            public_value = key.exchange(self._generator_public_key)
        return DHKeyPair(self, public_value.rjust(self.public_size, b"\x00"), private_value, key)

    @cached_property
    def _generator_public_key(self) -> dh.DHPublicKey:
        with _finite_field_dh():
            return dh.DHPublicNumbers(self.generator, self._parameter_numbers).public_key()

    def compute_shared(self, key_pair: DHKeyPair, peer_public: bytes) -> bytes:
        peer = self._peer_public_key(peer_public)
        with _finite_field_dh():
            try:
                secret = key_pair._key.exchange(peer)  # type: ignore[arg-type]
            except ValueError as exc:
                raise InvalidKeyInformation(f"{self.name}: DH computation refused: {exc}") from None
        return secret.rjust(self.public_size, b"\x00")

    def _peer_public_key(self, peer_public: bytes) -> dh.DHPublicKey:
        # RFC 2409 section 5: KE data MUST be padded to the prime's length;
        # 1 < y < p-1 excludes the trivial subgroup (y = 1, p-1) and 0.
        if len(peer_public) != self.public_size:
            raise InvalidKeyInformation(
                f"{self.name}: KE data is {len(peer_public)} bytes, expected {self.public_size}"
            )
        value = int.from_bytes(peer_public, "big")
        if not 1 < value < self.prime - 1:
            raise InvalidKeyInformation(f"{self.name}: public value out of range (1, p-1)")
        with _finite_field_dh():
            try:
                # OpenSSL also checks y^q = 1 when it recognises an RFC 3526 prime
                return dh.DHPublicNumbers(value, self._parameter_numbers).public_key()
            except ValueError as exc:
                raise InvalidKeyInformation(f"{self.name}: invalid public value: {exc}") from None


@dataclass(frozen=True)
class EcpGroup:
    """A NIST prime curve group (RFC 5903)."""

    number: int
    name: str
    curve: ec.EllipticCurve = field(repr=False)
    # order n of the base point (SEC 2 / FIPS 186-4 D.1.2), for private scalars
    order: int = field(repr=False)

    @property
    def coordinate_size(self) -> int:
        return (self.curve.key_size + 7) // 8

    @property
    def public_size(self) -> int:
        return 2 * self.coordinate_size

    def generate(self, rng: Rng = os.urandom) -> DHKeyPair:
        """Fresh key pair; the private scalar is uniform in [1, n-1]."""
        return self.key_pair_from_private(_random_in_range(rng, 1, self.order - 1))

    def key_pair_from_private(self, private_value: int) -> DHKeyPair:
        if not 0 < private_value < self.order:
            raise ValueError(f"{self.name}: private scalar out of range")
        key = ec.derive_private_key(private_value, self.curve)
        point = key.public_key().public_numbers()
        return DHKeyPair(self, self._coordinate(point.x) + self._coordinate(point.y), private_value, key)

    def compute_shared(self, key_pair: DHKeyPair, peer_public: bytes) -> bytes:
        peer = self._peer_public_key(peer_public)
        try:
            secret = key_pair._key.exchange(ec.ECDH(), peer)  # type: ignore[call-arg,arg-type]
        except ValueError as exc:
            raise InvalidKeyInformation(f"{self.name}: ECDH refused: {exc}") from None
        return secret.rjust(self.coordinate_size, b"\x00")  # x coordinate (RFC 5903 section 7)

    def _peer_public_key(self, peer_public: bytes) -> ec.EllipticCurvePublicKey:
        if len(peer_public) != self.public_size:
            raise InvalidKeyInformation(
                f"{self.name}: KE data is {len(peer_public)} bytes, expected {self.public_size}"
            )
        try:
            # OpenSSL rejects points that are not on the curve (and infinity,
            # which x | y cannot encode anyway).
            return ec.EllipticCurvePublicKey.from_encoded_point(self.curve, b"\x04" + peer_public)
        except ValueError as exc:
            raise InvalidKeyInformation(f"{self.name}: point not on the curve: {exc}") from None

    def _coordinate(self, value: int) -> bytes:
        return value.to_bytes(self.coordinate_size, "big")


# What the exchanges hold: both kinds offer public_size, generate(),
# key_pair_from_private() and compute_shared().
DHGroup = Union[ModpGroup, EcpGroup]

_P256_ORDER = _prime("FFFFFFFF 00000000 FFFFFFFF FFFFFFFF BCE6FAAD A7179E84 F3B9CAC2 FC632551")
_P384_ORDER = _prime(
    "FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF C7634D81 F4372DDF"
    " 581A0DB2 48B0A77A ECEC196A CCC52973"
)

DH_GROUPS: Mapping[int, DHGroup] = {
    g.number: g
    for g in (
        ModpGroup(1, "MODP-768", _MODP_768),
        ModpGroup(2, "MODP-1024", _MODP_1024),
        ModpGroup(5, "MODP-1536", _MODP_1536),
        ModpGroup(14, "MODP-2048", _MODP_2048),
        ModpGroup(15, "MODP-3072", _MODP_3072),
        ModpGroup(16, "MODP-4096", _MODP_4096),
        EcpGroup(19, "ECP-256", ec.SECP256R1(), _P256_ORDER),
        EcpGroup(20, "ECP-384", ec.SECP384R1(), _P384_ORDER),
    )
}


def dh_group(number: int) -> DHGroup:
    """The registry entry for an IKE group description number."""
    try:
        return DH_GROUPS[number]
    except KeyError:
        raise UnsupportedAlgorithm(f"DH group {number} not supported") from None

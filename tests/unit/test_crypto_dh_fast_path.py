"""MODP groups 1 and 2 compute g^x and y^x with Python's pow (crypto/dh.py):
the results must equal OpenSSL's for the same private values."""
from __future__ import annotations

import pytest

from responder.ikev1.crypto import dh_group

# fixed private values: full-length, short (what generate() draws), tiny
PRIVATE = {
    "full": (int("7" * 180, 16), int("5" * 190, 16)),
    "short": ((1 << 159) + 0x1234567, (1 << 158) + 0xABCDEF),
    "tiny": (2, 3),
}


@pytest.mark.parametrize("kind", sorted(PRIVATE))
@pytest.mark.parametrize("number", [1, 2])
def test_pow_path_matches_openssl(number: int, kind: str) -> None:
    group = dh_group(number)
    xa, xb = (x % (group.prime - 3) + 2 for x in PRIVATE[kind])
    a, b = group.key_pair_from_private(xa), group.key_pair_from_private(xb)
    assert a._key is None and b._key is None  # the pow path
    # public values: g^x as OpenSSL computes it (exchange with the generator)
    openssl_a = group._openssl_private_key(xa).exchange(group._generator_public_key)
    assert a.public_bytes == openssl_a.rjust(group.public_size, b"\x00")
    shared = a.compute_shared(b.public_bytes)
    assert shared == b.compute_shared(a.public_bytes)
    assert shared == group.compute_shared_openssl(xa, b.public_bytes)
    assert len(shared) == group.public_size


@pytest.mark.parametrize("number", [5, 14, 15, 16])
def test_groups_openssl_knows_stay_on_openssl(number: int) -> None:
    group = dh_group(number)
    pair = group.key_pair_from_private(0x1234567)
    assert pair._key is not None
    other = group.key_pair_from_private(0x7654321)
    assert pair.compute_shared(other.public_bytes) == \
        group.compute_shared_openssl(0x1234567, other.public_bytes)


@pytest.mark.parametrize("number", [1, 2, 5, 14, 15, 16])
def test_generated_exponents_have_the_documented_length(number: int) -> None:
    group = dh_group(number)
    values = [group.generate().private_value for _ in range(8)]
    assert all(1 < x < 1 << group.private_bits for x in values)
    assert max(values).bit_length() > group.private_bits - 8  # uniform, not tiny

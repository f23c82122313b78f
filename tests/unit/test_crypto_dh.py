"""DH groups: exact primes, pinned key pairs, RFC 5903 vectors, peer validation."""
from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dh, ec

from clients.parts import FILES, require

from responder.ikev1.crypto import (
    DH_GROUPS,
    EcpGroup,
    InvalidKeyInformation,
    ModpGroup,
    UnsupportedAlgorithm,
    dh_group,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "crypto"
PINNED = json.loads((VECTORS / "dh_pinned.json").read_text())
MODP = sorted(n for n, g in DH_GROUPS.items() if isinstance(g, ModpGroup))
ECP = sorted(n for n, g in DH_GROUPS.items() if isinstance(g, EcpGroup))

# n -> k of p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
# (RFC 2409 6.1, 6.2; RFC 3526 2, 3, 4, 5)
PI_OFFSETS = {768: 149686, 1024: 129093, 1536: 741804, 2048: 124476, 3072: 1690314, 4096: 240904}
GROUP_BITS = {1: 768, 2: 1024, 5: 1536, 14: 2048, 15: 3072, 16: 4096}


def _floor_pi_shifted(bits: int) -> int:
    """floor(2^bits * pi), Machin's formula in integers with 64 guard bits."""
    def arctan_inverse(x: int, one: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total

    one = 1 << (bits + 64)
    return (4 * (4 * arctan_inverse(5, one) - arctan_inverse(239, one))) >> 64


def test_registry() -> None:
    assert sorted(DH_GROUPS) == [1, 2, 5, 14, 15, 16, 19, 20]
    assert {n: DH_GROUPS[n].public_size for n in DH_GROUPS} == {
        1: 96, 2: 128, 5: 192, 14: 256, 15: 384, 16: 512, 19: 64, 20: 96}
    with pytest.raises(UnsupportedAlgorithm):
        dh_group(22)  # RFC 5114 groups are not offered


@pytest.mark.parametrize("number", MODP)
def test_modp_prime_is_the_rfc_formula(number: int) -> None:
    group, n = dh_group(number), GROUP_BITS[number]
    assert isinstance(group, ModpGroup) and group.generator == 2
    expected = 2**n - 2 ** (n - 64) - 1 + 2**64 * (_floor_pi_shifted(n - 130) + PI_OFFSETS[n])
    assert group.prime == expected
    assert group.prime.bit_length() == n


@pytest.mark.parametrize("number", MODP)
def test_modp_prime_passes_cryptography_parameter_checks(number: int) -> None:
    group = dh_group(number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dh.DHParameterNumbers(group.prime, 2).parameters()
        with pytest.raises(ValueError):  # the check is real: p + 2 is composite
            dh.DHParameterNumbers(group.prime + 2, 2).parameters()


def test_modp_primes_match_local_strongswan_and_openssl() -> None:
    require("libstrongswan", "openssl")
    library = Path(FILES["libstrongswan"][0])
    blob = library.read_bytes()
    for number in MODP:
        prime = dh_group(number).prime
        assert blob.find(prime.to_bytes(prime.bit_length() // 8, "big")) >= 0, number
    for number in (5, 14, 15, 16):
        pem = subprocess.run(
            ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
             f"group:modp_{GROUP_BITS[number]}"], capture_output=True, check=True).stdout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from cryptography.hazmat.primitives.serialization import load_pem_parameters

            assert load_pem_parameters(pem).parameter_numbers().p == dh_group(number).prime


@pytest.mark.parametrize("number", sorted(DH_GROUPS))
def test_pinned_key_pairs_and_shared_secret(number: int) -> None:
    vector, group = PINNED[str(number)], dh_group(number)
    a = group.key_pair_from_private(int(vector["private_a"], 16))
    b = group.key_pair_from_private(int(vector["private_b"], 16))
    assert a.public_bytes.hex() == vector["public_a"]
    assert b.public_bytes.hex() == vector["public_b"]
    assert a.compute_shared(b.public_bytes).hex() == vector["shared"]
    assert b.compute_shared(a.public_bytes).hex() == vector["shared"]


def _counter_rng(label: str):
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        out, i = b"", 0
        while len(out) < n:
            out += hashlib.sha256(f"{label}{len(calls)}/{i}".encode()).digest()
            i += 1
        return out[:n]

    rng.calls = calls  # type: ignore[attr-defined]
    return rng


@pytest.mark.parametrize("number", sorted(DH_GROUPS))
def test_generate_uses_the_injected_rng_and_two_sides_agree(number: int) -> None:
    group = dh_group(number)
    a1, a2 = group.generate(_counter_rng("a")), group.generate(_counter_rng("a"))
    b = group.generate(_counter_rng("b"))
    assert a1.public_bytes == a2.public_bytes and a1.private_value == a2.private_value
    assert len(a1.public_bytes) == group.public_size
    shared = a1.compute_shared(b.public_bytes)
    assert shared == b.compute_shared(a1.public_bytes)
    assert len(shared) == (group.public_size if number in MODP else group.public_size // 2)
    assert "private_value" not in repr(a1) and f"{a1.private_value:x}" not in repr(a1)


def test_default_generation_uses_os_randomness() -> None:
    group = dh_group(19)
    assert group.generate().private_value != group.generate().private_value


@pytest.mark.parametrize("number", MODP)
def test_modp_public_values_are_left_padded(number: int) -> None:
    group = dh_group(number)
    small = group.key_pair_from_private(2)  # g^2 = 4: one significant byte
    assert small.public_bytes == bytes(group.public_size - 1) + b"\x04"


# RFC 5903 section 8.1 / 8.2: i, g^i = (gix, giy), r, g^r, g^ir (x only)
RFC5903 = {
    19: dict(
        i="C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
        gi="DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180"
        "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
        r="C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
        gr="D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
        "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
        gir="D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
    ),
    20: dict(
        i="099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655"
        "E35B538041E649EE3FAEF896783AB194",
        gi="667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6"
        "DE3AC808ACB4BDB4C88732AEE95F41AA"
        "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38E"
        "EB9FCFF3C2C947DAE69B4C634573A81C",
        r="41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942"
        "E0308312916B8ED2960E4BD55A7448FC",
        gr="E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D"
        "0D1AC43A0336DEF96FDA41D0774A3571"
        "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FF"
        "F83FA40142209DFF5EAAD96DB9E6386C",
        gir="11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4"
        "D603135569B9E9D09CF5D4A270F59746",
    ),
}


@pytest.mark.parametrize("number", ECP)
def test_rfc5903_vectors(number: int) -> None:
    v, group = RFC5903[number], dh_group(number)
    i = group.key_pair_from_private(int(v["i"], 16))
    r = group.key_pair_from_private(int(v["r"], 16))
    assert i.public_bytes.hex().upper() == v["gi"]
    assert r.public_bytes.hex().upper() == v["gr"]
    assert i.compute_shared(r.public_bytes).hex().upper() == v["gir"]
    assert r.compute_shared(i.public_bytes).hex().upper() == v["gir"]


@pytest.mark.parametrize("number", ECP)
def test_ecp_order_constant(number: int) -> None:
    group = dh_group(number)
    assert isinstance(group, EcpGroup)
    g = group.key_pair_from_private(1).public_bytes
    minus_g = group.key_pair_from_private(group.order - 1).public_bytes
    size = group.coordinate_size
    assert g[:size] == minus_g[:size] and g[size:] != minus_g[size:]  # (n-1)G = -G
    with pytest.raises(ValueError):
        group.key_pair_from_private(group.order)
    with pytest.raises(ValueError):
        ec.derive_private_key(group.order, group.curve)


# --- peer validation: INVALID_KEY_INFORMATION ---------------------------------

def _modp_bad_values(number: int) -> list[bytes]:
    group = dh_group(number)
    p, size = group.prime, group.public_size
    return [
        b"", bytes(size - 2) + b"\x05", bytes(size + 1),  # wrong lengths
        bytes(size), (1).to_bytes(size, "big"),  # 0, 1
        (p - 1).to_bytes(size, "big"), p.to_bytes(size, "big"), b"\xff" * size,  # p-1, p, > p
    ]


def _ecp_bad_values(number: int) -> list[bytes]:
    group = dh_group(number)
    good = group.key_pair_from_private(5).public_bytes
    off_curve = good[:-1] + bytes([good[-1] ^ 1])
    return [b"", good[:-1], b"\x04" + good, bytes(group.public_size), off_curve]


@pytest.mark.parametrize("number", [2, 14, 19, 20])
def test_invalid_peer_values_are_invalid_key_information(number: int) -> None:
    group = dh_group(number)
    mine = group.key_pair_from_private(3)
    bad = _modp_bad_values(number) if number in MODP else _ecp_bad_values(number)
    for value in bad:
        with pytest.raises(InvalidKeyInformation) as err:
            mine.compute_shared(value)
        assert err.value.notify == 17


def test_private_values_out_of_range_are_local_errors() -> None:
    modp = dh_group(2)
    for x in (0, 1, modp.prime - 1):
        with pytest.raises(ValueError):
            modp.key_pair_from_private(x)
    with pytest.raises(ValueError):
        dh_group(19).key_pair_from_private(0)

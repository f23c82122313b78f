"""Hash/PRF and cipher registries: published vectors and an independent
implementation (Python's stdlib hmac/hashlib) for the IKE expansions."""
from __future__ import annotations

import hashlib
import hmac as std_hmac

import pytest

from responder.ikev1.crypto import (
    CIPHER_ALGORITHMS,
    HASH_ALGORITHMS,
    CiphertextMalformed,
    UnsupportedAlgorithm,
    appendix_b_expand,
    cipher_algorithm,
    hash_algorithm,
    pad,
    prf_plus,
    wireshark_ikev1_decryption_line,
)

STDLIB_NAMES = {1: "md5", 2: "sha1", 4: "sha256", 5: "sha384", 6: "sha512"}

# RFC 2202 / RFC 4231 test case 2 (key "Jefe")
HMAC_JEFE = {
    1: "750c783e6ab0b503eaa86e310a5db738",
    2: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
    4: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    5: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
    "8e2240ca5e69e2c78b3239ecfab21649",
    6: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
    "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
}


def test_hash_registry_is_the_ike_numbering() -> None:
    assert {n: h.name for n, h in HASH_ALGORITHMS.items()} == {
        1: "MD5", 2: "SHA1", 4: "SHA2-256", 5: "SHA2-384", 6: "SHA2-512"}
    assert {n: h.digest_size for n, h in HASH_ALGORITHMS.items()} == {1: 16, 2: 20, 4: 32, 5: 48, 6: 64}


@pytest.mark.parametrize("number", sorted(HASH_ALGORITHMS))
def test_prf_published_vector(number: int) -> None:
    alg = hash_algorithm(number)
    assert alg.prf(b"Jefe", b"what do ya want for nothing?").hex() == HMAC_JEFE[number]


@pytest.mark.parametrize("number", sorted(HASH_ALGORITHMS))
def test_hash_and_prf_agree_with_stdlib(number: int) -> None:
    alg, name = hash_algorithm(number), STDLIB_NAMES[number]
    for key, data in [(b"", b""), (b"k" * 200, bytes(range(256)) * 3), (b"\x00" * 20, b"x")]:
        assert alg.prf(key, data) == std_hmac.new(key, data, name).digest()
        assert alg.hash(data) == hashlib.new(name, data).digest()


def test_verify_prf_is_a_yes_no_answer() -> None:
    sha1 = hash_algorithm(2)
    good = sha1.prf(b"k", b"d")
    assert sha1.verify_prf(b"k", b"d", good)
    assert not sha1.verify_prf(b"k", b"d", good[:-1] + bytes([good[-1] ^ 1]))
    assert not sha1.verify_prf(b"k", b"d", good[:12])


@pytest.mark.parametrize("number", [0, 3, 7, 65001])
def test_unknown_hash_is_a_local_error(number: int) -> None:
    with pytest.raises(UnsupportedAlgorithm) as err:
        hash_algorithm(number)
    assert err.value.notify is None


def _independent_appendix_b(name: str, key: bytes, length: int) -> bytes:
    out, k = b"", std_hmac.new(key, b"\x00", name).digest()
    while len(out) < length:
        out += k
        k = std_hmac.new(key, k, name).digest()
    return out[:length]


def _independent_prf_plus(name: str, key: bytes, seed: bytes, length: int) -> bytes:
    out, k = b"", b""
    while len(out) < length:
        k = std_hmac.new(key, k + seed, name).digest()
        out += k
    return out[:length]


@pytest.mark.parametrize("number", sorted(HASH_ALGORITHMS))
@pytest.mark.parametrize("length", [1, 16, 24, 32, 52, 100, 130])
def test_expansions_against_independent_code(number: int, length: int) -> None:
    alg, name = hash_algorithm(number), STDLIB_NAMES[number]
    key, seed = bytes(range(7, 27)), b"\x03" + b"\xca\xfe\x1a\x85" + b"N" * 32
    assert appendix_b_expand(alg.prf, key, length) == _independent_appendix_b(name, key, length)
    assert prf_plus(alg.prf, key, seed, length) == _independent_prf_plus(name, key, seed, length)


# --- ciphers ------------------------------------------------------------------

# (IKE algorithm, key, IV, plaintext, ciphertext)
CBC_VECTORS = [
    # RFC 3602 section 4, cases 1 and 2 (AES-128-CBC)
    (7, "06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
     b"Single block msg".hex(), "e353779c1079aeb82708942dbe77181a"),
    (7, "c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
     bytes(range(32)).hex(), "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"),
    # NIST SP 800-38A F.2.1, F.2.3, F.2.5 (first block): AES-128/192/256-CBC
    (7, "2b7e151628aed2a6abf7158809cf4f3c", "000102030405060708090a0b0c0d0e0f",
     "6bc1bee22e409f96e93d7e117393172a", "7649abac8119b246cee98e9b12e9197d"),
    (7, "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "000102030405060708090a0b0c0d0e0f",
     "6bc1bee22e409f96e93d7e117393172a", "4f021db243bc633d7178183a9fa071e8"),
    (7, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
     "000102030405060708090a0b0c0d0e0f",
     "6bc1bee22e409f96e93d7e117393172a", "f58c4c04d6e5f1ba779eabfb5f7bfbd6"),
    # 3DES-EDE with K1 = K2 = K3 is single DES; zero IV, one block = ECB:
    # the FIPS 46 worked example (key 133457799BBCDFF1, "The DES Algorithm Illustrated")
    (5, "133457799bbcdff1" * 3, "0000000000000000", "0123456789abcdef", "85e813540f0ab405"),
]


@pytest.mark.parametrize("number,key,iv,plaintext,ciphertext", CBC_VECTORS)
def test_cbc_known_answers(number: int, key: str, iv: str, plaintext: str, ciphertext: str) -> None:
    cipher = cipher_algorithm(number)
    k, v, p = bytes.fromhex(key), bytes.fromhex(iv), bytes.fromhex(plaintext)
    assert cipher.encrypt(k, v, p).hex() == ciphertext
    assert cipher.decrypt(k, v, bytes.fromhex(ciphertext)) == p


def test_cipher_registry_sizes() -> None:
    assert {n: (c.name, c.block_size, c.key_sizes) for n, c in CIPHER_ALGORITHMS.items()} == {
        5: ("3DES-CBC", 8, (24,)), 7: ("AES-CBC", 16, (16, 24, 32))}


def test_key_size_from_the_key_length_attribute() -> None:
    aes, des3 = cipher_algorithm(7), cipher_algorithm(5)
    assert [aes.key_size(bits) for bits in (128, 192, 256)] == [16, 24, 32]
    assert des3.key_size() == 24 and des3.key_size(192) == 24
    for bad in (None, 0, 64, 255, 512):
        with pytest.raises(UnsupportedAlgorithm):
            aes.key_size(bad)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 6, 8, 65004])
def test_unknown_cipher_is_a_local_error(number: int) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        cipher_algorithm(number)


@pytest.mark.parametrize("number", sorted(CIPHER_ALGORITHMS))
def test_ciphertext_not_a_block_multiple_is_payload_malformed(number: int) -> None:
    cipher = cipher_algorithm(number)
    key, iv = bytes(cipher.key_sizes[-1]), bytes(cipher.block_size)
    for length in (0, 1, cipher.block_size - 1, cipher.block_size + 3):
        with pytest.raises(CiphertextMalformed) as err:
            cipher.decrypt(key, iv, bytes(length))
        assert err.value.notify == 16


@pytest.mark.parametrize("number", sorted(CIPHER_ALGORITHMS))
def test_tampered_ciphertext_changes_the_plaintext(number: int) -> None:
    # CBC has no integrity: the HASH payload is what catches this (see
    # test_crypto_reference); here only that decryption does not hide it.
    cipher = cipher_algorithm(number)
    key, iv = bytes(range(cipher.key_sizes[-1])), bytes(cipher.block_size)
    plaintext = pad(b"payload chain", cipher.block_size)
    ciphertext = bytearray(cipher.encrypt(key, iv, plaintext))
    ciphertext[0] ^= 0x80
    assert cipher.decrypt(key, iv, bytes(ciphertext)) != plaintext


def test_local_misuse_is_a_value_error() -> None:
    aes = cipher_algorithm(7)
    with pytest.raises(ValueError):
        aes.encrypt(bytes(16), bytes(16), b"not padded")
    with pytest.raises(ValueError):
        aes.encrypt(bytes(15), bytes(16), bytes(16))
    with pytest.raises(ValueError):
        aes.decrypt(bytes(16), bytes(8), bytes(16))


@pytest.mark.parametrize("block", [8, 16])
def test_pad_adds_one_to_block_zero_bytes(block: int) -> None:
    for length in range(0, 3 * block):
        padded = pad(b"\xff" * length, block)
        assert len(padded) % block == 0
        assert 1 <= len(padded) - length <= block
        assert padded[length:] == bytes(len(padded) - length)


def test_wireshark_decryption_table_line() -> None:
    # format of tests/vectors/captures/*.ikev1_decryption_table
    line = wireshark_ikev1_decryption_line(bytes.fromhex("1e84213bdca07d75"), bytes(range(32)))
    assert line == "1e84213bdca07d75," + bytes(range(32)).hex()
    with pytest.raises(ValueError):
        wireshark_ikev1_decryption_line(bytes(16), bytes(16))

"""Phase 1 keys, IV chains and Quick Mode KEYMAT: an independent stdlib
computation of each RFC 2409 formula, and an in-memory initiator/responder
pair with deterministic DH."""
from __future__ import annotations

import hashlib
import hmac as std_hmac

import pytest

from responder.ikev1.algorithms import ESP_CIPHERS, ESP_INTEGRITY
from responder.ikev1.crypto import (
    AuthenticationFailed,
    InvalidHash,
    IVStore,
    MessageCipher,
    NegotiatedEspTransform,
    Phase1Keys,
    UnsupportedAlgorithm,
    cipher_algorithm,
    derive_esp_keys,
    dh_group,
    encryption_key_from_skeyid_e,
    hash_algorithm,
    informational_hash,
    keymat,
    message_id_bytes,
    quick_mode_hash1,
    quick_mode_hash2,
    quick_mode_hash3,
    verify_hash,
)

CKY_I, CKY_R = bytes.fromhex("0011223344556677"), bytes.fromhex("8899aabbccddeeff")
NI, NR = b"\x11" * 32, b"\x22" * 16
PSK = b"mm-group-psk"


def _h(name: str, key: bytes, data: bytes) -> bytes:
    return std_hmac.new(key, data, name).digest()


@pytest.mark.parametrize("hash_number,name", [(1, "md5"), (2, "sha1"), (4, "sha256"), (6, "sha512")])
@pytest.mark.parametrize("cipher_number,key_bits", [(5, None), (7, 128), (7, 256)])
def test_phase1_keys_against_rfc2409_section5(hash_number, name, cipher_number, key_bits) -> None:
    g_xy = bytes(range(256))
    cipher = cipher_algorithm(cipher_number)
    keys = Phase1Keys.derive_pre_shared_key(
        prf=hash_algorithm(hash_number), cipher=cipher, key_size=cipher.key_size(key_bits),
        psk=PSK, ni_b=NI, nr_b=NR, shared_secret=g_xy, cky_i=CKY_I, cky_r=CKY_R)
    skeyid = _h(name, PSK, NI + NR)
    d = _h(name, skeyid, g_xy + CKY_I + CKY_R + b"\x00")
    a = _h(name, skeyid, d + g_xy + CKY_I + CKY_R + b"\x01")
    e = _h(name, skeyid, a + g_xy + CKY_I + CKY_R + b"\x02")
    assert (keys.skeyid, keys.skeyid_d, keys.skeyid_a, keys.skeyid_e) == (skeyid, d, a, e)
    size = cipher.key_size(key_bits)
    if len(e) >= size:
        assert keys.encryption_key == e[:size]
    else:  # Appendix B: K1 = prf(SKEYID_e, 0), K2 = prf(SKEYID_e, K1)
        k1 = _h(name, e, b"\x00")
        k2 = _h(name, e, k1)
        assert keys.encryption_key == (k1 + k2)[:size]
    assert e.hex() not in repr(keys) and keys.encryption_key.hex() not in repr(keys)


def test_appendix_b_only_when_skeyid_e_is_short() -> None:
    md5, sha256 = hash_algorithm(1), hash_algorithm(4)
    skeyid_e16, skeyid_e32 = b"\x01" * 16, b"\x02" * 32
    assert encryption_key_from_skeyid_e(md5, skeyid_e16, 16) == skeyid_e16
    assert encryption_key_from_skeyid_e(sha256, skeyid_e32, 24) == skeyid_e32[:24]
    expanded = encryption_key_from_skeyid_e(md5, skeyid_e16, 24)  # 3DES with MD5
    assert expanded == _h("md5", skeyid_e16, b"\x00")[:16] + _h(
        "md5", skeyid_e16, _h("md5", skeyid_e16, b"\x00"))[:8]


def test_hash_i_hash_r_layouts() -> None:
    sha1 = hash_algorithm(2)
    keys = Phase1Keys.derive_pre_shared_key(
        prf=sha1, cipher=cipher_algorithm(7), key_size=16, psk=PSK, ni_b=NI, nr_b=NR,
        shared_secret=b"\x05" * 128, cky_i=CKY_I, cky_r=CKY_R)
    gxi, gxr, sai, idii, idir = b"I" * 128, b"R" * 128, b"SA", b"\x01\x00\x00\x00\x0a\x00\x00\x01", b"id-r"
    assert keys.hash_i(g_xi=gxi, g_xr=gxr, sai_b=sai, idii_b=idii) == _h(
        "sha1", keys.skeyid, gxi + gxr + CKY_I + CKY_R + sai + idii)
    assert keys.hash_r(g_xi=gxi, g_xr=gxr, sai_b=sai, idir_b=idir) == _h(
        "sha1", keys.skeyid, gxr + gxi + CKY_R + CKY_I + sai + idir)
    assert keys.initial_iv(gxi, gxr) == hashlib.sha1(gxi + gxr).digest()[:16]
    with pytest.raises(ValueError):
        Phase1Keys.derive(prf=sha1, cipher=cipher_algorithm(7), key_size=16, skeyid=b"k",
                          shared_secret=b"s", cky_i=b"short", cky_r=CKY_R)


# --- IV store ------------------------------------------------------------------

def _store(block: int = 16) -> IVStore:
    return IVStore(hash_algorithm(2), block, b"\xaa" * block, max_exchanges=3)


def test_iv_chains_per_message_id() -> None:
    ivs = _store()
    assert ivs.iv_for(0) == b"\xaa" * 16
    ivs.update(0, b"\x01" * 16)  # MM5 sent/received
    ivs.update(0, b"\x02" * 16)  # MM6
    assert ivs.iv_for(0) == ivs.phase1_iv == b"\x02" * 16
    fresh = hashlib.sha1(b"\x02" * 16 + message_id_bytes(0x44492331)).digest()[:16]
    assert ivs.iv_for(0x44492331) == ivs.fresh_iv(0x44492331) == fresh
    ivs.update(0x44492331, b"\x03" * 16)  # Transaction request
    quick = ivs.iv_for(0x00ABF0CB)  # an interleaved Quick Mode starts fresh
    assert quick == hashlib.sha1(b"\x02" * 16 + bytes.fromhex("00abf0cb")).digest()[:16]
    ivs.update(0x00ABF0CB, b"\x04" * 16)
    assert ivs.iv_for(0x44492331) == b"\x03" * 16  # ... and does not disturb it
    assert ivs.iv_for(0x00ABF0CB) == b"\x04" * 16
    assert ivs.fresh_iv(0x00ABF0CB) == quick  # informational-style: never chained
    ivs.forget(0x00ABF0CB)
    assert ivs.iv_for(0x00ABF0CB) == quick


def test_iv_store_is_bounded_and_checks_sizes() -> None:
    ivs = _store(8)
    for mid in range(1, 6):
        ivs.update(mid, bytes([mid]) * 8)
    assert ivs.iv_for(5) == b"\x05" * 8 and ivs.iv_for(3) == b"\x03" * 8
    assert ivs.iv_for(1) == ivs.fresh_iv(1)  # oldest dropped
    with pytest.raises(ValueError):
        ivs.update(1, b"\x00" * 16)
    with pytest.raises(ValueError):
        IVStore(hash_algorithm(2), 16, b"\x00" * 8)


# --- an in-memory initiator/responder pair ----------------------------------------

def _pair(cipher_number=7, key_bits=256, hash_number=4, group_number=14):
    group, prf, cipher = dh_group(group_number), hash_algorithm(hash_number), cipher_algorithm(cipher_number)
    initiator, responder = group.key_pair_from_private(0x1234567), group.key_pair_from_private(0x7654321)
    sides = []
    for mine, peer in ((initiator, responder), (responder, initiator)):
        keys = Phase1Keys.derive_pre_shared_key(
            prf=prf, cipher=cipher, key_size=cipher.key_size(key_bits), psk=PSK, ni_b=NI, nr_b=NR,
            shared_secret=mine.compute_shared(peer.public_bytes), cky_i=CKY_I, cky_r=CKY_R)
        iv = keys.initial_iv(initiator.public_bytes, responder.public_bytes)
        sides.append((keys, MessageCipher(cipher, keys.encryption_key, IVStore(prf, cipher.block_size, iv))))
    return initiator, responder, sides


@pytest.mark.parametrize("cipher_number,key_bits,hash_number,group_number",
                         [(7, 256, 4, 14), (5, None, 2, 2), (7, 128, 1, 19), (7, 192, 5, 20)])
def test_initiator_and_responder_stay_in_step(cipher_number, key_bits, hash_number, group_number) -> None:
    gi, gr, [(ki, ci), (kr, cr)] = _pair(cipher_number, key_bits, hash_number, group_number)
    assert ki == kr
    sai, idii = b"sa-body", b"\x01\x00\x00\x00\xc6\x12\x01\x02"
    hash_payload = ki.hash_i(g_xi=gi.public_bytes, g_xr=gr.public_bytes, sai_b=sai, idii_b=idii)
    mm5 = ci.encrypt(0, idii + hash_payload)  # (payload headers omitted)
    plain = cr.decrypt(0, mm5)
    kr.verify_hash_i(plain[len(idii):len(idii) + len(hash_payload)], g_xi=gi.public_bytes,
                     g_xr=gr.public_bytes, sai_b=sai, idii_b=idii)
    cr.accept(0, mm5)
    mm6 = cr.encrypt(0, b"mm6 payloads")
    assert ci.decrypt(0, mm6).startswith(b"mm6 payloads")
    ci.accept(0, mm6)
    # interleaved Transaction (responder starts) and Quick Mode (initiator starts)
    for sender, receiver, mid, text in [(cr, ci, 7, b"xauth request"), (ci, cr, 9, b"qm1"),
                                        (ci, cr, 7, b"xauth reply"), (cr, ci, 9, b"qm2"),
                                        (ci, cr, 9, b"qm3")]:
        ciphertext = sender.encrypt(mid, text)
        assert receiver.decrypt(mid, ciphertext).startswith(text)
        receiver.accept(mid, ciphertext)
    for mid in (0xDEAD, 0xDEAD):  # informationals never chain
        ciphertext = cr.encrypt_informational(mid, b"dpd")
        assert ci.decrypt_informational(mid, ciphertext).startswith(b"dpd")
    with pytest.raises(AuthenticationFailed):
        kr.verify_hash_i(hash_payload, g_xi=gi.public_bytes, g_xr=gr.public_bytes, sai_b=sai,
                         idii_b=idii + b"x")


def test_unaccepted_message_does_not_advance_the_chain() -> None:
    _, _, [(_, ci), (_, cr)] = _pair()
    first = ci.encrypt(0, b"mm5")
    forged = bytes(len(first))
    cr.decrypt(0, forged)  # decrypts to garbage; the HASH check would fail: no accept
    assert cr.decrypt(0, first).startswith(b"mm5")


# --- phase 2 hashes and KEYMAT -----------------------------------------------------

def test_phase2_hash_layouts() -> None:
    key, mid, rest = b"A" * 20, 0xED1DB7C2, b"SA|Ni|IDci|IDcr"
    m = bytes.fromhex("ed1db7c2")
    assert quick_mode_hash1(hash_algorithm(2), key, mid, rest) == _h("sha1", key, m + rest)
    assert quick_mode_hash2(hash_algorithm(2), key, mid, NI, rest) == _h("sha1", key, m + NI + rest)
    assert quick_mode_hash3(hash_algorithm(2), key, mid, NI, NR) == _h("sha1", key, b"\x00" + m + NI + NR)
    assert informational_hash(hash_algorithm(2), key, mid, rest) == _h("sha1", key, m + rest)
    verify_hash(_h("sha1", key, m + rest), informational_hash(hash_algorithm(2), key, mid, rest))
    with pytest.raises(InvalidHash):
        verify_hash(_h("sha1", key, m + rest), _h("sha1", key, m + rest)[:-1] + b"\x00")


@pytest.mark.parametrize("pfs", [None, b"\x07" * 256])
def test_keymat_against_rfc2409_section55(pfs) -> None:
    skeyid_d, spi = b"D" * 32, bytes.fromhex("cafe1a85")
    seed = (pfs or b"") + b"\x03" + spi + NI + NR
    k1 = _h("sha256", skeyid_d, seed)
    k2 = _h("sha256", skeyid_d, k1 + seed)
    k3 = _h("sha256", skeyid_d, k2 + seed)
    got = keymat(hash_algorithm(4), skeyid_d, protocol=3, spi=spi, ni_b=NI, nr_b=NR, length=72,
                 pfs_shared_secret=pfs)
    assert got == (k1 + k2 + k3)[:72]
    with pytest.raises(ValueError):
        keymat(hash_algorithm(4), skeyid_d, protocol=3, spi=b"\x00" * 3, ni_b=NI, nr_b=NR, length=16)


ESP_CASES = [
    # transform id, key bits, auth, (enc, salt, integrity) sizes
    (12, 128, 2, (16, 0, 20)), (12, 192, 2, (24, 0, 20)), (12, 256, 2, (32, 0, 20)),
    (12, 128, 5, (16, 0, 32)), (12, 256, 5, (32, 0, 32)), (12, 256, 1, (32, 0, 16)),
    (12, 256, 6, (32, 0, 48)), (12, 256, 7, (32, 0, 64)),
    (3, None, 2, (24, 0, 20)), (3, None, 1, (24, 0, 16)),
    (20, 128, None, (16, 4, 0)), (20, 256, None, (32, 4, 0)),
]


@pytest.mark.parametrize("transform_id,key_bits,auth,sizes", ESP_CASES)
def test_esp_keys_cut_from_keymat(transform_id, key_bits, auth, sizes) -> None:
    transform = NegotiatedEspTransform.from_attributes(transform_id, key_length_bits=key_bits, auth_algorithm=auth)
    assert transform.keymat_length == sum(sizes)
    child = derive_esp_keys(hash_algorithm(2), b"d" * 20, transform, inbound_spi=b"\x00\x00\x00\x01",
                            outbound_spi=b"\x00\x00\x00\x02", ni_b=NI, nr_b=NR)
    for sa in (child.inbound, child.outbound):
        material = keymat(hash_algorithm(2), b"d" * 20, protocol=3, spi=sa.spi, ni_b=NI, nr_b=NR,
                          length=sum(sizes))
        assert sa.encryption_key + sa.salt + sa.integrity_key == material
        assert (len(sa.encryption_key), len(sa.salt), len(sa.integrity_key)) == sizes
        assert sa.encryption_key.hex() not in repr(sa)
    assert child.inbound.encryption_key != child.outbound.encryption_key


def test_esp_tables() -> None:
    assert {i: e.name for i, e in ESP_CIPHERS.items()} == {3: "3DES-CBC", 12: "AES-CBC", 20: "AES-GCM-16"}
    assert {i: (a.key_size, a.icv_size) for i, a in ESP_INTEGRITY.items()} == {
        1: (16, 12), 2: (20, 12), 5: (32, 16), 6: (48, 24), 7: (64, 32)}


@pytest.mark.parametrize("transform_id,key_bits,auth", [
    (2, None, 2),  # ESP_DES
    (11, None, 2),  # ESP_NULL
    (12, None, 2),  # AES without Key Length
    (12, 100, 2),
    (12, 128, None),  # CBC without integrity
    (12, 128, 3),  # DES-MAC
    (20, 128, 2),  # GCM with an integrity algorithm
])
def test_esp_transforms_we_do_not_support(transform_id, key_bits, auth) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        NegotiatedEspTransform.from_attributes(transform_id, key_length_bits=key_bits, auth_algorithm=auth)

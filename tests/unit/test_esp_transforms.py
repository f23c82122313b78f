"""ESP cipher suites: sizes, lookups, known-answer vectors for every primitive."""
import pytest

from responder.esp import TRANSFORMS, UnsupportedTransform, lookup_transform
from responder.esp.transforms import IntegrityCheckFailed, keyed_hmac
from responder.ikev1.algorithms import ESP_INTEGRITY
from responder.ikev1.enums import EspTransformId, IpsecAuthAlgorithm

ESP_3DES, ESP_AES_CBC, ESP_AES_GCM_16 = (EspTransformId.TRIPLE_DES, EspTransformId.AES_CBC,
                                         EspTransformId.AES_GCM_16)
AUTH_HMAC_MD5, AUTH_HMAC_SHA1 = IpsecAuthAlgorithm.HMAC_MD5, IpsecAuthAlgorithm.HMAC_SHA
AUTH_HMAC_SHA2_256 = IpsecAuthAlgorithm.HMAC_SHA2_256
AUTH_HMAC_SHA2_384 = IpsecAuthAlgorithm.HMAC_SHA2_384
AUTH_HMAC_SHA2_512 = IpsecAuthAlgorithm.HMAC_SHA2_512

h = bytes.fromhex


def test_registry_has_every_required_combination():
    names = {t.name for t in TRANSFORMS.values()}
    for bits in (128, 192, 256):
        for auth in ("HMAC-SHA1-96", "HMAC-SHA2-256-128", "HMAC-MD5-96", "HMAC-SHA2-384-192",
                     "HMAC-SHA2-512-256"):
            assert f"AES-CBC-{bits}+{auth}" in names
    assert {"3DES-CBC-192+HMAC-SHA1-96", "3DES-CBC-192+HMAC-MD5-96"} <= names
    assert {"AES-GCM-16-128", "AES-GCM-16-256"} <= names


@pytest.mark.parametrize("key, sizes", [
    ((ESP_AES_CBC, AUTH_HMAC_SHA1, 128), dict(iv=16, icv=12, align=16, enc=16, auth=20, salt=0)),
    ((ESP_AES_CBC, AUTH_HMAC_SHA2_256, 256), dict(iv=16, icv=16, align=16, enc=32, auth=32, salt=0)),
    ((ESP_3DES, AUTH_HMAC_MD5, 192), dict(iv=8, icv=12, align=8, enc=24, auth=16, salt=0)),
    # RFC 4868 §2.1.1: the key is the digest size, the ICV half of it.
    ((ESP_AES_CBC, AUTH_HMAC_SHA2_384, 256), dict(iv=16, icv=24, align=16, enc=32, auth=48, salt=0)),
    ((ESP_AES_CBC, AUTH_HMAC_SHA2_512, 128), dict(iv=16, icv=32, align=16, enc=16, auth=64, salt=0)),
    ((ESP_AES_GCM_16, None, 128), dict(iv=8, icv=16, align=4, enc=16, auth=0, salt=4)),
])
def test_sizes(key, sizes):
    t = TRANSFORMS[key]
    assert (t.iv_size, t.icv_size, t.pad_alignment, t.enc_key_size, t.auth_key_size, t.salt_size) == (
        sizes["iv"], sizes["icv"], sizes["align"], sizes["enc"], sizes["auth"], sizes["salt"])


def test_lookup_defaults_3des_key_length_and_treats_auth_0_as_none():
    assert lookup_transform(ESP_3DES, AUTH_HMAC_SHA1).key_bits == 192  # vpnc sends no Key Length
    assert lookup_transform(ESP_AES_GCM_16, 0, 256).integrity is None


@pytest.mark.parametrize("args", [(2, AUTH_HMAC_SHA1, 64), (ESP_AES_CBC, AUTH_HMAC_SHA1, None),
                                  (ESP_AES_CBC, 99, 128), (ESP_AES_CBC, AUTH_HMAC_SHA1, 512),
                                  (ESP_AES_GCM_16, AUTH_HMAC_SHA1, 128)])
def test_unsupported_combinations_are_refused(args):
    with pytest.raises(UnsupportedTransform):
        lookup_transform(*args)


def test_wrong_key_sizes_are_refused():
    t = TRANSFORMS[(ESP_AES_CBC, AUTH_HMAC_SHA1, 128)]
    with pytest.raises(ValueError):
        t.keyed_cipher(bytes(24), b"")  # AES-192 key for an AES-128 transform
    with pytest.raises(ValueError):
        t.keyed_cipher(bytes(20), b"")
    with pytest.raises(ValueError):
        t.keyed_integrity(bytes(16))
    with pytest.raises(ValueError):
        TRANSFORMS[(ESP_AES_GCM_16, None, 128)].keyed_cipher(bytes(16), b"")  # salt missing


# GCM-in-ESP vectors from draft-mcgrew-gcm-test-01 (test cases 2 and 3): the nonce is
# salt | explicit IV and the AAD is SPI | 32-bit sequence number, as RFC 4106 §4-5 say.
GCM_VECTORS = [
    dict(key=h("feffe9928665731c6d6a8f9467308308feffe9928665731c"), salt=h("cafebabe"),
         iv=h("facedbaddecaf888"), aad=h("0000a5f80000000a"),
         plaintext=h("45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e501016d075680001"),
         sealed=h("a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0315b27452144cc77"
                  "95457b9652037f5318027b5b4cd7a636")),
    dict(key=h("abbccddef00112233445566778899aababbccddef00112233445566778899aab"), salt=h("11223344"),
         iv=h("0102030405060708"), aad=h("4a2cbfe300000002"),
         plaintext=h("4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
                     "7002400020bf0000020405b40101040201020201"),
         sealed=h("ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
                  "748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c4915956c96")),
]


@pytest.mark.parametrize("vector", GCM_VECTORS, ids=["gcm192-case2", "gcm256-case3"])
def test_gcm_known_answers(vector):
    transform = TRANSFORMS[(ESP_AES_GCM_16, None, len(vector["key"]) * 8)]
    cipher = transform.keyed_cipher(vector["key"], vector["salt"])
    assert cipher.encrypt(vector["iv"], vector["plaintext"], vector["aad"]) == vector["sealed"]
    assert cipher.decrypt(vector["iv"], vector["sealed"], vector["aad"]) == vector["plaintext"]
    with pytest.raises(IntegrityCheckFailed):
        cipher.decrypt(vector["iv"], vector["sealed"], vector["aad"][:-1] + b"\x0b")


def test_aes_cbc_known_answer_rfc3602_case1():
    cipher = TRANSFORMS[(ESP_AES_CBC, AUTH_HMAC_SHA1, 128)].keyed_cipher(h("06a9214036b8a15b512e03d534120006"), b"")
    iv = h("3dafba429d9eb430b422da802c9fac41")
    assert cipher.encrypt(iv, b"Single block msg", b"") == h("e353779c1079aeb82708942dbe77181a")
    assert cipher.decrypt(iv, h("e353779c1079aeb82708942dbe77181a"), b"") == b"Single block msg"


# RFC 2202 test case 1 (MD5, SHA-1) and RFC 4868 §2.7.2.1-3 AUTH256-1, AUTH384-1 and
# AUTH512-1, truncated as ESP uses them (96 bits; 128, 192 and 256 bits).
@pytest.mark.parametrize("auth_id, key, icv", [
    (AUTH_HMAC_MD5, b"\x0b" * 16, h("9294727a3638bb1c13f48ef8")),
    (AUTH_HMAC_SHA1, b"\x0b" * 20, h("b617318655057264e28bc0b6")),
    (AUTH_HMAC_SHA2_256, b"\x0b" * 32, h("198a607eb44bfbc69903a0f1cf2bbdc5")),
    (AUTH_HMAC_SHA2_384, b"\x0b" * 48, h("b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973")),
    (AUTH_HMAC_SHA2_512, b"\x0b" * 64,
     h("637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8")),
], ids=["md5-96", "sha1-96", "sha256-128", "sha384-192", "sha512-256"])
def test_hmac_known_answers_truncated(auth_id, key, icv):
    integrity = keyed_hmac(ESP_INTEGRITY[auth_id], key)
    assert integrity.icv(b"Hi There") == icv
    integrity.verify(b"Hi There", icv)
    with pytest.raises(IntegrityCheckFailed):
        integrity.verify(b"Hi there", icv)

"""The algorithm registry: every row complete, and every layer accepts the same algorithms.

Configuration (tokens), keying (phase 1 ciphers/hashes, DH groups, Quick Mode KEYMAT),
proposal matching and the ESP data path are asked through their own public entry points
over the same range of IKEv1 numbers; a table re-added to one of them that disagrees
makes the sets differ.
"""
from __future__ import annotations

import hashlib
import itertools

import pytest

from responder.config import algorithms as config
from responder.esp.transforms import (KEYED_CIPHER_FACTORIES, TRANSFORMS, UnsupportedTransform,
                                      lookup_transform)
from responder.ikev1 import algorithms as registry
from responder.ikev1 import proposals
from responder.ikev1.crypto import (NegotiatedEspTransform, UnsupportedAlgorithm, cipher_algorithm,
                                    dh_group, hash_algorithm)
from responder.ikev1.crypto.dh import DH_GROUPS
from responder.ikev1.enums import (AuthMethod, EncapsulationMode, IpsecAttribute,
                                   IsakmpTransformId, Phase1Attribute, ProtocolId)
from responder.ikev1.policy import EspPolicy, EspTransformSpec

#: Every number an IKEv1 attribute of these classes could plausibly carry.
NUMBERS = range(0, 32)
KEY_LENGTHS = (None, 40, 64, 100, 128, 160, 192, 256, 384, 512)
AUTH_IDS = (None, *range(1, 16))


def _accepts(call) -> bool:
    try:
        call()
    except (UnsupportedAlgorithm, UnsupportedTransform, proposals._Skip,
            proposals.NoProposalChosen):
        return False
    return True


# -- rows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("row", registry.CIPHERS, ids=lambda r: r.name)
def test_every_cipher_row_is_complete(row):
    assert row.name and row.tokens
    assert row.ike_number is not None or row.esp_transform_id is not None
    assert set(row.tokens.values()) <= set(row.key_bits) and set(row.tokens.values())
    assert all(bits % 8 == 0 for bits in row.key_bits)
    # A Key Length attribute is needed exactly when the cipher has more than one size.
    assert row.key_length_attribute == (len(row.key_bits) > 1)
    assert row.block_size > 0 and row.iv_size > 0
    assert row.mode in KEYED_CIPHER_FACTORIES
    primitive = row.primitive.load()
    if row.mode is registry.CipherMode.CBC:
        assert (row.salt_size, row.icv_size) == (0, 0)
        assert primitive(bytes(row.key_bits[0] // 8)).block_size // 8 == row.block_size == row.iv_size
    else:
        assert row.aead and row.ike_number is None  # combined mode is ESP only here
        assert (row.salt_size, row.icv_size, row.block_size) == (4, 16, 4)  # RFC 4106
        primitive(bytes(row.key_bits[0] // 8))


@pytest.mark.parametrize("row", registry.HASHES, ids=lambda r: r.name)
def test_every_hash_row_is_complete(row):
    assert row.name and row.esp_name and row.tokens
    assert row.ike_number is not None and row.esp_auth_id is not None
    assert row.primitive.load()().digest_size == row.digest_size
    assert hashlib.new(row.hashlib_name).digest_size == row.digest_size
    assert row.key_size == row.digest_size  # RFC 2404 §3, RFC 4868 §2.1.1
    expected_icv = 12 if row.digest_size <= 20 else row.digest_size // 2  # RFC 2403/2404/4868
    assert row.icv_size == expected_icv
    assert row.esp_name.endswith(f"-{row.icv_size * 8}")


@pytest.mark.parametrize("row", registry.GROUPS, ids=lambda r: r.name)
def test_every_group_row_is_complete_and_implemented(row):
    assert row.name and row.token
    assert dh_group(row.number).number == row.number


def test_a_token_names_one_algorithm():
    kinds = [set(registry.CIPHER_TOKENS), set(registry.HASH_TOKENS), set(registry.GROUP_TOKENS),
             set(registry.AUTH_METHOD_TOKENS)]
    for one, other in itertools.combinations(kinds, 2):
        assert not one & other
    assert sum(len(c.tokens) for c in registry.CIPHERS) == len(registry.CIPHER_TOKENS)
    assert sum(len(h.tokens) for h in registry.HASHES) == len(registry.HASH_TOKENS)


def test_importing_the_registry_loads_no_crypto_library():
    import subprocess
    import sys
    code = "import sys, responder.ikev1.algorithms; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- phase 1: config == keying == proposal matching ---------------------------------------
def _ike_offer(encryption: int, key_length: int | None, hash_: int, group: int):
    attributes = [(Phase1Attribute.ENCRYPTION_ALGORITHM, encryption),
                  (Phase1Attribute.HASH_ALGORITHM, hash_),
                  (Phase1Attribute.AUTHENTICATION_METHOD, AuthMethod.PRE_SHARED_KEY),
                  (Phase1Attribute.GROUP_DESCRIPTION, group)]
    if key_length is not None:
        attributes.append((Phase1Attribute.KEY_LENGTH, key_length))
    return proposals.OfferedTransform(1, IsakmpTransformId.KEY_IKE, tuple(attributes))


SHA1, MODP_2048, AES_CBC = 2, 14, 7


def _ike_cipher_key_size(encryption: int, key_length: int | None) -> tuple[int, int]:
    return encryption, cipher_algorithm(encryption).key_size(key_length)


def test_config_keying_and_proposals_accept_the_same_ike_ciphers():
    space = list(itertools.product(NUMBERS, KEY_LENGTHS))
    keying = {pair for pair in space if _accepts(lambda: _ike_cipher_key_size(*pair))}
    matching = {(enc, kl) for enc, kl in space
                if _accepts(lambda: proposals.parse_ike_transform(_ike_offer(enc, kl, SHA1, MODP_2048)))}
    from_config = set(config.IKE_ENCRYPTION.values())
    assert from_config <= keying
    assert matching == keying
    assert {_ike_cipher_key_size(*p) for p in from_config} == {_ike_cipher_key_size(*p) for p in keying}


def test_config_keying_and_proposals_accept_the_same_ike_hashes():
    keying = {n for n in NUMBERS if _accepts(lambda: hash_algorithm(n))}
    matching = {n for n in NUMBERS
                if _accepts(lambda: proposals.parse_ike_transform(_ike_offer(AES_CBC, 128, n, MODP_2048)))}
    assert set(config.IKE_HASH.values()) == keying == matching


def test_config_keying_and_proposals_accept_the_same_dh_groups():
    keying = {n for n in NUMBERS if _accepts(lambda: dh_group(n))}
    matching = {n for n in NUMBERS
                if _accepts(lambda: proposals.parse_ike_transform(_ike_offer(AES_CBC, 128, SHA1, n)))}
    assert set(config.DH_GROUP.values()) == keying == matching == set(DH_GROUPS)


# -- ESP: config == keying == proposal matching == data path -------------------------------
ESP_SPACE = list(itertools.product(NUMBERS, KEY_LENGTHS, AUTH_IDS))


def _keying(transform_id: int, key_length: int | None, auth: int | None) -> NegotiatedEspTransform:
    return NegotiatedEspTransform.from_attributes(transform_id, key_length_bits=key_length,
                                                  auth_algorithm=auth)


def _suite_of_keying(keying: NegotiatedEspTransform) -> tuple[int, int | None, int]:
    auth = keying.integrity.esp_auth_id if keying.integrity else None
    return keying.cipher.esp_transform_id, auth, keying.encryption_key_size * 8


def _config_esp_specs() -> set[tuple[int, int | None, int | None]]:
    texts = [c if combined else f"{c}-{i}"
             for c, (_, _, combined) in config.ESP_CIPHER.items()
             for i in ((None,) if combined else config.ESP_INTEGRITY)]
    return {(p.cipher, p.key_length, p.integrity) for p in map(config.parse_esp_transform, set(texts))}


def test_config_keying_and_data_path_accept_the_same_esp_transforms():
    keying = {t for t in ESP_SPACE if _accepts(lambda: _keying(*t))}
    data_path = {t for t in ESP_SPACE if _accepts(lambda: lookup_transform(t[0], t[2], t[1]))}
    from_config = _config_esp_specs()
    assert keying == data_path
    assert from_config <= keying
    suites = {_suite_of_keying(_keying(*t)) for t in keying}
    assert {_suite_of_keying(_keying(*t)) for t in from_config} == suites == set(TRANSFORMS)


def _esp_offer(spec: tuple[int, int | None, int | None]) -> proposals.OfferedProposal:
    transform_id, key_length, auth = spec
    attributes = [(IpsecAttribute.ENCAPSULATION_MODE, EncapsulationMode.TUNNEL)]
    if key_length is not None:
        attributes.append((IpsecAttribute.KEY_LENGTH, key_length))
    if auth is not None:
        attributes.append((IpsecAttribute.AUTHENTICATION_ALGORITHM, auth))
    transform = proposals.OfferedTransform(1, transform_id, tuple(attributes))
    return proposals.OfferedProposal(1, ProtocolId.IPSEC_ESP, b"\x00\x00\x10\x00", (transform,))


def test_proposal_matching_accepts_every_esp_transform_config_can_name():
    specs = _config_esp_specs()
    policy = EspPolicy(transforms=tuple(EspTransformSpec(*s) for s in specs))
    for spec in specs:
        choice = proposals.choose_esp([_esp_offer(spec)], policy,
                                      allowed_modes=(EncapsulationMode.TUNNEL,), pfs=False)
        assert _suite_of_keying(choice.keying) in TRANSFORMS


def test_rows_suites_and_negotiated_transforms_are_hashable():
    rows = {*registry.CIPHERS, *registry.HASHES, *registry.GROUPS}
    assert len(rows) == len(registry.CIPHERS) + len(registry.HASHES) + len(registry.GROUPS)
    assert len(set(TRANSFORMS.values())) == len(TRANSFORMS)
    assert len({_keying(12, 128, 2), _keying(12, 128, 2), _keying(20, 256, None)}) == 2

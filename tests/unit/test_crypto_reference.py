"""Real-traffic known answers: strongSwan 5.9.8 and vpnc 0.5.3 against the
strongSwan reference gateway (vectors from tests/vectors/crypto/
extract_reference_vectors.py; see the JSON files for sources).

What each test pins:
* the Wireshark key table + our IV rules decrypt every encrypted message of
  each capture (phase 1, Transaction, Quick Mode, Informational);
* SKEYID = prf(PSK, Ni_b | Nr_b) and our HASH_I / HASH_R layouts equal the
  HASH payloads strongSwan and vpnc sent (SHA2-256 and SHA1);
* vpnc printed g^xy and its keys: SKEYID_d/a/e, Appendix B expansion, the
  Transaction / Quick Mode / Informational hashes and ESP KEYMAT, and the
  derived ESP keys authenticate and decrypt the ESP packets of the capture.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from responder.ikev1.crypto import (
    AuthenticationFailed,
    InvalidHash,
    IVStore,
    MessageCipher,
    NegotiatedEspTransform,
    Phase1Keys,
    cipher_algorithm,
    derive_esp_keys,
    hash_algorithm,
    hash_i,
    hash_r,
    informational_hash,
    initial_phase1_iv,
    quick_mode_hash1,
    quick_mode_hash2,
    quick_mode_hash3,
    skeyid_pre_shared_key,
    verify_hash,
    wireshark_ikev1_decryption_line,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "crypto"
CAPTURES = ["ss-main", "ss-aggr", "vpnc-aggr"]

# RFC 2408 3.1 / 3.14, RFC 2409, draft-dukes-ike-mode-cfg
SA, KE, ID, HASH, NONCE, NOTIFY, DELETE, ATTR = 1, 4, 5, 8, 10, 11, 12, 14
EXCH_MAIN, EXCH_AGGRESSIVE, EXCH_INFORMATIONAL, EXCH_TRANSACTION, EXCH_QUICK = 2, 4, 5, 6, 32
FLAG_ENCRYPTION = 0x01


# --- a deliberately minimal ISAKMP reader (RFC 2408 3.1, 3.2) -----------------

@dataclass
class Message:
    raw: bytes
    sender: str
    frame: int

    @property
    def cky_i(self) -> bytes:
        return self.raw[0:8]

    @property
    def cky_r(self) -> bytes:
        return self.raw[8:16]

    @property
    def first_payload(self) -> int:
        return self.raw[16]

    @property
    def exchange(self) -> int:
        return self.raw[18]

    @property
    def encrypted(self) -> bool:
        return bool(self.raw[19] & FLAG_ENCRYPTION)

    @property
    def message_id(self) -> int:
        return struct.unpack_from("!I", self.raw, 20)[0]

    @property
    def body(self) -> bytes:
        assert struct.unpack_from("!I", self.raw, 24)[0] == len(self.raw)
        return self.raw[28:]


@dataclass
class Payload:
    type: int
    body: bytes  # without the 4-byte generic header
    raw: bytes  # with it


def payload_chain(first_type: int, data: bytes) -> tuple[list[Payload], int]:
    """Walk a payload chain; returns the payloads and where the chain ends."""
    payloads, ptype, offset = [], first_type, 0
    while ptype != 0:
        assert offset + 4 <= len(data), "truncated generic payload header"
        next_type, _reserved, length = struct.unpack_from("!BBH", data, offset)
        assert 4 <= length <= len(data) - offset, f"bad payload length {length}"
        payloads.append(Payload(ptype, data[offset + 4 : offset + length], data[offset : offset + length]))
        ptype, offset = next_type, offset + length
    return payloads, offset


def first(payloads: list[Payload], ptype: int) -> Payload:
    return next(p for p in payloads if p.type == ptype)


@dataclass
class Decrypted:
    message: Message
    payloads: list[Payload]
    padding: bytes
    plaintext: bytes

    def after_hash(self) -> bytes:
        """Payload bytes after the leading HASH payload, padding excluded."""
        assert self.payloads[0].type == HASH
        end = len(self.plaintext) - len(self.padding)
        return self.plaintext[len(self.payloads[0].raw) : end]


# --- the capture -------------------------------------------------------------

class Capture:
    def __init__(self, name: str) -> None:
        self.vector = json.loads((VECTORS / f"reference_{name}.json").read_text())
        self.name = name
        self.messages = [Message(bytes.fromhex(m["hex"]), m["from"], m["frame"]) for m in self.vector["messages"]]
        negotiated = self.vector["negotiated"]
        self.prf = hash_algorithm(negotiated["hash"])
        self.cipher = cipher_algorithm(negotiated["cipher"])
        self.key_size = self.cipher.key_size(negotiated.get("key_length"))
        self.aggressive = self.vector["exchange"] == "aggressive"
        self.cleartext = [m for m in self.messages if not m.encrypted]
        self.phase1_clear = [
            (m, payload_chain(m.first_payload, m.body)[0]) for m in self.cleartext
            if m.exchange in (EXCH_MAIN, EXCH_AGGRESSIVE)
        ]

    def clear_payload(self, sender: str, ptype: int) -> Payload:
        return next(
            first(pl, ptype) for m, pl in self.phase1_clear if m.sender == sender and any(p.type == ptype for p in pl)
        )

    @property
    def g_xi(self) -> bytes:
        return self.clear_payload("initiator", KE).body

    @property
    def g_xr(self) -> bytes:
        return self.clear_payload("responder", KE).body

    @property
    def ni_b(self) -> bytes:
        return self.clear_payload("initiator", NONCE).body

    @property
    def nr_b(self) -> bytes:
        return self.clear_payload("responder", NONCE).body

    @property
    def sai_b(self) -> bytes:
        return payload_chain(self.messages[0].first_payload, self.messages[0].body)[0][0].body

    @property
    def wireshark_key(self) -> bytes:
        return bytes.fromhex(self.vector["wireshark_encryption_key"])

    @property
    def psk(self) -> bytes:
        return self.vector["psk"].encode()

    def decrypt_all(self, key: bytes) -> list[Decrypted]:
        """Decrypt every encrypted message in capture order with our IV rules."""
        ivs = IVStore(self.prf, self.cipher.block_size, initial_phase1_iv(
            self.prf, self.cipher.block_size, self.g_xi, self.g_xr))
        crypter = MessageCipher(self.cipher, key, ivs)
        result = []
        for message in self.messages:
            if not message.encrypted:
                continue
            if message.exchange == EXCH_INFORMATIONAL:
                plaintext = crypter.decrypt_informational(message.message_id, message.body)
            else:
                plaintext = crypter.decrypt(message.message_id, message.body)
                crypter.accept(message.message_id, message.body)
            payloads, end = payload_chain(message.first_payload, plaintext)
            result.append(Decrypted(message, payloads, plaintext[end:], plaintext))
        self.final_phase1_iv = ivs.phase1_iv
        return result


@pytest.fixture(scope="module", params=CAPTURES)
def capture(request: pytest.FixtureRequest) -> Capture:
    return Capture(request.param)


@pytest.fixture(scope="module")
def vpnc() -> Capture:
    return Capture("vpnc-aggr")


# --- every capture: decryption, padding, HASH_I / HASH_R ---------------------

EXPECTED_FIRST_PAYLOADS = {
    EXCH_MAIN: [ID, HASH],  # MM5, MM6: IDii/IDir then HASH_I/HASH_R (RFC 2409 5.4)
    EXCH_AGGRESSIVE: [HASH],  # AM3: HASH_I [, notify, VIDs, NAT-D]
    EXCH_TRANSACTION: [HASH, ATTR],
    EXCH_QUICK: [HASH],
    EXCH_INFORMATIONAL: [HASH],
}


def test_every_encrypted_message_decrypts_to_a_payload_chain(capture: Capture) -> None:
    decrypted = capture.decrypt_all(capture.wireshark_key)
    exchanges = {d.message.exchange for d in decrypted}
    assert {EXCH_TRANSACTION, EXCH_QUICK, EXCH_INFORMATIONAL} <= exchanges
    for d in decrypted:
        expected = EXPECTED_FIRST_PAYLOADS[d.message.exchange]
        assert [p.type for p in d.payloads[: len(expected)]] == expected, d.message.frame


def test_peers_pad_with_zeros_and_not_with_a_count(capture: Capture) -> None:
    block = capture.cipher.block_size
    for d in capture.decrypt_all(capture.wireshark_key):
        assert d.padding == bytes(len(d.padding))
        if d.message.sender == "responder" or capture.name.startswith("ss-"):
            assert 1 <= len(d.padding) <= block  # strongSwan: always 1..block
        else:
            assert 0 <= len(d.padding) < block  # vpnc: none when aligned


def test_wrong_key_does_not_yield_payload_chains(capture: Capture) -> None:
    wrong = bytes(len(capture.wireshark_key))
    with pytest.raises(AssertionError):
        capture.decrypt_all(wrong)


def _authentication_payloads(capture: Capture) -> dict[str, bytes]:
    decrypted = capture.decrypt_all(capture.wireshark_key)
    phase1 = [d for d in decrypted if d.message.message_id == 0]
    if capture.aggressive:
        am3 = phase1[0]
        return {
            "idii_b": capture.clear_payload("initiator", ID).body,
            "idir_b": capture.clear_payload("responder", ID).body,
            "hash_i": first(am3.payloads, HASH).body,
            "hash_r": capture.clear_payload("responder", HASH).body,
        }
    mm5, mm6 = phase1[0], phase1[1]
    return {
        "idii_b": first(mm5.payloads, ID).body,
        "idir_b": first(mm6.payloads, ID).body,
        "hash_i": first(mm5.payloads, HASH).body,
        "hash_r": first(mm6.payloads, HASH).body,
    }


def test_hash_i_and_hash_r_match_the_peers(capture: Capture) -> None:
    auth = _authentication_payloads(capture)
    skeyid = skeyid_pre_shared_key(capture.prf, capture.psk, capture.ni_b, capture.nr_b)
    common = dict(g_xi=capture.g_xi, g_xr=capture.g_xr, cky_i=capture.messages[0].cky_i,
                  cky_r=capture.messages[1].cky_r, sai_b=capture.sai_b)
    assert hash_i(capture.prf, skeyid, idii_b=auth["idii_b"], **common) == auth["hash_i"]
    assert hash_r(capture.prf, skeyid, idir_b=auth["idir_b"], **common) == auth["hash_r"]


def test_wrong_psk_fails_authentication(capture: Capture) -> None:
    auth = _authentication_payloads(capture)
    keys = Phase1Keys.derive_pre_shared_key(
        prf=capture.prf, cipher=capture.cipher, key_size=capture.key_size, psk=b"not-the-psk",
        ni_b=capture.ni_b, nr_b=capture.nr_b, shared_secret=bytes(16),
        cky_i=capture.messages[0].cky_i, cky_r=capture.messages[1].cky_r,
    )
    with pytest.raises(AuthenticationFailed) as err:
        keys.verify_hash_i(auth["hash_i"], g_xi=capture.g_xi, g_xr=capture.g_xr,
                           sai_b=capture.sai_b, idii_b=auth["idii_b"])
    assert err.value.notify == 24


# --- vpnc: it printed g^xy, so every derived key is pinned -------------------

def _vpnc_keys(vpnc: Capture) -> Phase1Keys:
    debug = vpnc.vector["vpnc_debug"]
    return Phase1Keys.derive_pre_shared_key(
        prf=vpnc.prf, cipher=vpnc.cipher, key_size=vpnc.key_size, psk=vpnc.psk,
        ni_b=vpnc.ni_b, nr_b=vpnc.nr_b, shared_secret=bytes.fromhex(debug["dh_shared_secret"]),
        cky_i=vpnc.messages[0].cky_i, cky_r=vpnc.messages[1].cky_r,
    )


def test_vpnc_phase1_keys(vpnc: Capture) -> None:
    debug = vpnc.vector["vpnc_debug"]
    keys = _vpnc_keys(vpnc)
    assert len(debug["dh_shared_secret"]) == 2 * 128  # MODP-1024, padded to the prime
    assert keys.skeyid.hex() == debug["skeyid"]
    assert keys.skeyid_d.hex() == debug["skeyid_d"]
    assert keys.skeyid_a.hex() == debug["skeyid_a"]
    assert keys.skeyid_e.hex() == debug["skeyid_e"]
    # SHA1 SKEYID_e (20 bytes) < AES-256 key: Appendix B expansion
    assert keys.encryption_key.hex() == debug["enc_key"] == vpnc.vector["wireshark_encryption_key"]
    assert wireshark_ikev1_decryption_line(vpnc.messages[0].cky_i, keys.encryption_key) == (
        f"{vpnc.vector['icookie']},{vpnc.vector['wireshark_encryption_key']}"
    )


def test_vpnc_phase1_ivs(vpnc: Capture) -> None:
    debug = vpnc.vector["vpnc_debug"]
    keys = _vpnc_keys(vpnc)
    assert keys.initial_iv(vpnc.g_xi, vpnc.g_xr).hex() == debug["phase1_initial_iv"]
    vpnc.decrypt_all(keys.encryption_key)
    assert vpnc.final_phase1_iv.hex() == debug["phase1_final_iv"]  # last block of AM3


def test_vpnc_transaction_and_informational_hashes(vpnc: Capture) -> None:
    keys = _vpnc_keys(vpnc)
    checked = 0
    for d in vpnc.decrypt_all(keys.encryption_key):
        if d.message.exchange in (EXCH_TRANSACTION, EXCH_INFORMATIONAL):
            expected = informational_hash(vpnc.prf, keys.skeyid_a, d.message.message_id, d.after_hash())
            verify_hash(expected, d.payloads[0].body)
            checked += 1
    assert checked == 10  # 6 Xauth/Mode-Config, 2 DPD, 2 Delete


def _quick_mode(vpnc: Capture, keys: Phase1Keys) -> list[Decrypted]:
    qm = [d for d in vpnc.decrypt_all(keys.encryption_key) if d.message.exchange == EXCH_QUICK]
    assert [d.message.sender for d in qm] == ["initiator", "responder", "initiator"]
    return qm


def test_vpnc_quick_mode_hashes(vpnc: Capture) -> None:
    keys = _vpnc_keys(vpnc)
    qm1, qm2, qm3 = _quick_mode(vpnc, keys)
    mid = qm1.message.message_id
    ni_b, nr_b = first(qm1.payloads, NONCE).body, first(qm2.payloads, NONCE).body
    verify_hash(quick_mode_hash1(vpnc.prf, keys.skeyid_a, mid, qm1.after_hash()), qm1.payloads[0].body)
    verify_hash(quick_mode_hash2(vpnc.prf, keys.skeyid_a, mid, ni_b, qm2.after_hash()), qm2.payloads[0].body)
    verify_hash(quick_mode_hash3(vpnc.prf, keys.skeyid_a, mid, ni_b, nr_b), qm3.payloads[0].body)
    with pytest.raises(InvalidHash) as err:
        verify_hash(quick_mode_hash3(vpnc.prf, keys.skeyid_a, mid, nr_b, ni_b), qm3.payloads[0].body)
    assert err.value.notify == 23


def _vpnc_child_sa(vpnc: Capture):
    keys = _vpnc_keys(vpnc)
    qm1, qm2, _ = _quick_mode(vpnc, keys)
    # proposal in QM2's SA: ESP AES-CBC (12) 256 + HMAC-SHA1 (2); SPI after the
    # proposal header: DOI(4) situation(4) | proposal hdr(4) num proto spi_size ntrans
    def spi(sa_body: bytes) -> bytes:
        assert sa_body[8 + 4 + 2] == 4  # SPI size
        return sa_body[8 + 8 : 8 + 12]
    gateway_spi = spi(first(qm2.payloads, SA).body)
    client_spi = spi(first(qm1.payloads, SA).body)
    transform = NegotiatedEspTransform.from_attributes(12, key_length_bits=256, auth_algorithm=2)
    # from the gateway's (responder's) point of view
    return derive_esp_keys(
        vpnc.prf, keys.skeyid_d, transform, inbound_spi=gateway_spi, outbound_spi=client_spi,
        ni_b=first(qm1.payloads, NONCE).body, nr_b=first(qm2.payloads, NONCE).body,
    )


def test_vpnc_keymat(vpnc: Capture) -> None:
    debug = vpnc.vector["vpnc_debug"]
    child = _vpnc_child_sa(vpnc)
    assert child.inbound.spi.hex() == debug["esp_tx_spi"]  # vpnc -> gateway
    assert child.inbound.encryption_key.hex() == debug["esp_tx_enc_key"]
    assert child.inbound.integrity_key.hex() == debug["esp_tx_auth_key"]
    assert child.outbound.spi.hex() == debug["esp_rx_spi"]  # gateway -> vpnc
    assert child.outbound.encryption_key.hex() == debug["esp_rx_enc_key"]
    assert child.outbound.integrity_key.hex() == debug["esp_rx_auth_key"]


def test_vpnc_keymat_opens_the_esp_packets_of_the_capture(vpnc: Capture) -> None:
    """RFC 4303 + RFC 2404 (HMAC-SHA1-96) + RFC 3602, with the gateway's libipsec."""
    child = _vpnc_child_sa(vpnc)
    sas = {child.inbound.spi: child.inbound, child.outbound.spi: child.outbound}
    seen = set()
    for packet in vpnc.vector["esp"]:
        esp = bytes.fromhex(packet["hex"])
        sa = sas[esp[:4]]
        mac = hmac.HMAC(sa.integrity_key, hashes.SHA1())
        mac.update(esp[:-12])
        assert mac.finalize()[:12] == esp[-12:]
        iv, ciphertext = esp[8:24], esp[24:-12]
        decryptor = Cipher(algorithms.AES(sa.encryption_key), modes.CBC(iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        pad_length, next_header = plaintext[-2], plaintext[-1]
        assert plaintext[-2 - pad_length : -2] == bytes(range(1, pad_length + 1))  # RFC 4303 2.4
        # next header 4 (IP-in-IP); vpnc also uses 4 for the IPv6 router
        # solicitation it tunnels first (frame 14), hence version 4 or 6
        assert next_header == 4
        assert plaintext[0] >> 4 in (4, 6)
        seen.add(packet["from"])
    assert seen == {"initiator", "responder"}

"""ISAKMP messages: real captures, header validation, NAT-T framing, fuzzing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from responder.ikev1.enums import (
    AuthMethod,
    CfgType,
    ConfigAttribute,
    EncryptionAlgorithm,
    ExchangeType,
    HeaderFlag,
    IdType,
    NotifyType,
    PayloadType,
    Phase1Attribute,
    ProtocolId,
    UnknownValue,
    lookup,
)
from responder.ikev1.errors import (
    CodecError,
    DecodeError,
    EncodeError,
    InvalidMajorVersion,
    InvalidMinorVersion,
    InvalidPayloadType,
    MessageTooLarge,
    PayloadChainError,
    PayloadMalformed,
    TooManyPayloads,
    UnequalPayloadLengths,
)
from responder.ikev1.message import (
    ISAKMP_HEADER_SIZE,
    Header,
    Message,
    build_message,
    parse_header,
    serialize_with_body,
)
from responder.ikev1.natt_framing import (
    Port4500Kind,
    add_non_esp_marker,
    classify_port4500,
    is_nat_keepalive,
    strip_non_esp_marker,
)
from responder.ikev1.payloads import (
    AttributePayload,
    DataAttribute,
    Hash,
    Identification,
    KeyExchange,
    Nonce,
    Notification,
    SecurityAssociation,
    VendorId,
    parse_payloads,
    serialize_payloads,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CAPTURES = ("ss-main", "ss-aggr", "vpnc-aggr")
PCAPS = VECTORS / "captures"


def load(capture: str) -> dict:
    return json.loads((VECTORS / f"{capture}.json").read_text())


def all_packets(*, encrypted: bool | None = None) -> list[tuple[str, dict]]:
    return [
        (capture, packet)
        for capture in CAPTURES
        for packet in load(capture)["packets"]
        if encrypted is None or packet["encrypted"] == encrypted
    ]


def packet_id(item: tuple[str, dict]) -> str:
    return f"{item[0]}#{item[1]['index']}"


# ===================================================================== captures


@pytest.mark.parametrize("item", all_packets(encrypted=False), ids=packet_id)
def test_cleartext_capture_messages_round_trip(item):
    _, packet = item
    data = bytes.fromhex(packet["data_hex"])
    message = Message.parse(data)
    assert not message.encrypted
    assert message.header.exchange_type == packet["exchange"]
    assert message.header.initiator_cookie.hex() == packet["icookie"]
    assert message.serialize() == data


@pytest.mark.parametrize("item", all_packets(encrypted=False), ids=packet_id)
def test_cleartext_ke_and_nonce_match_scapy_extraction(item):
    _, packet = item
    message = Message.parse(bytes.fromhex(packet["data_hex"]))
    ke, nonce = message.first(KeyExchange), message.first(Nonce)
    assert (ke.key_data.hex() if ke else None) == packet.get("ke_hex")
    assert (nonce.data.hex() if nonce else None) == packet.get("nonce_hex")


@pytest.mark.parametrize("item", all_packets(encrypted=True), ids=packet_id)
def test_encrypted_capture_messages_and_their_plaintext(item):
    _, packet = item
    data = bytes.fromhex(packet["data_hex"])
    message = Message.parse(data)
    assert message.encrypted and message.payloads == []
    assert message.header.message_id == packet["msgid"]
    assert serialize_with_body(message.header, message.header.next_payload, message.body) == data

    plaintext = bytes.fromhex(packet["plaintext_hex"])
    decrypted = message.payloads_from_plaintext(plaintext)
    # Every encrypted IKEv1 message carries a HASH (first, except MM5/MM6: ID first).
    assert decrypted.first(Hash) is not None
    first, body = serialize_payloads(decrypted.payloads)
    assert first == message.header.next_payload
    padding = plaintext[len(body):]
    assert plaintext.startswith(body) and len(padding) <= 16


def test_vpnc_proposal_with_24_transforms_keeps_invalid_encryption_id():
    message = Message.parse(bytes.fromhex(load("vpnc-aggr")["packets"][0]["data_hex"]))
    sa = message.first(SecurityAssociation)
    (proposal,) = sa.proposals
    assert proposal.protocol_id is ProtocolId.ISAKMP
    assert len(proposal.transforms) == 24
    encryptions = [
        lookup(EncryptionAlgorithm, t.attribute(Phase1Attribute.ENCRYPTION_ALGORITHM).value)
        for t in proposal.transforms
    ]
    bogus = [e for e in encryptions if isinstance(e, UnknownValue)]
    assert len(bogus) == 4 and all(e == 0 for e in bogus)
    first = proposal.transforms[0]
    assert first.attribute(Phase1Attribute.AUTHENTICATION_METHOD).value == AuthMethod.XAUTH_INIT_PSK
    assert first.attribute(Phase1Attribute.LIFE_DURATION).as_int() == 2147483
    ident = message.first(Identification)
    assert ident.id_type is IdType.KEY_ID and ident.value() == b"vpngroup"


def test_xauth_request_from_strongswan_gateway():
    packet = load("ss-aggr")["packets"][3]  # gw -> client, first Transaction
    message = Message.parse(bytes.fromhex(packet["data_hex"]))
    assert message.header.exchange_type is ExchangeType.TRANSACTION
    attrs = message.payloads_from_plaintext(bytes.fromhex(packet["plaintext_hex"])).first(AttributePayload)
    assert attrs.cfg_type is CfgType.REQUEST
    assert [a.attr_type for a in attrs.attributes] == [
        ConfigAttribute.XAUTH_USER_NAME,
        ConfigAttribute.XAUTH_USER_PASSWORD,
    ]


@pytest.mark.parametrize("capture", CAPTURES)
def test_every_ike_datagram_in_the_pcaps(capture):
    """Straight from the pcap: demultiplex port 4500, parse, re-serialise."""
    from scapy import utils as scapy_utils
    from scapy.layers.inet import UDP

    vectors = [bytes.fromhex(p["data_hex"]) for p in load(capture)["packets"]]
    seen = []
    for pkt in scapy_utils.rdpcap(str(PCAPS / f"{capture}.pcap")):
        udp = pkt[UDP]
        datagram = bytes(udp.payload)
        if 4500 in (udp.sport, udp.dport):
            kind, datagram = classify_port4500(datagram)
            if kind is not Port4500Kind.IKE:
                continue
        message = Message.parse(datagram)
        if not message.encrypted:
            assert message.serialize() == datagram
        seen.append(datagram)
    assert seen == vectors  # the committed vectors are what extract.py reads


# ===================================================================== header

GOOD = bytes.fromhex(load("ss-main")["packets"][0]["data_hex"])


def with_header_field(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def test_truncated_header():
    with pytest.raises(DecodeError, match="truncated ISAKMP header: 27 of 28"):
        Message.parse(GOOD[:27])


def test_length_field_beyond_datagram():
    with pytest.raises(UnequalPayloadLengths) as info:
        Message.parse(GOOD[:-1])
    assert info.value.notify_type is NotifyType.UNEQUAL_PAYLOAD_LENGTHS


def test_trailing_junk_after_message():
    with pytest.raises(UnequalPayloadLengths):
        Message.parse(GOOD + b"\x00")


def test_length_field_below_header_size():
    bad = with_header_field(GOOD, 24, (27).to_bytes(4, "big"))
    with pytest.raises(PayloadMalformed, match="below the 28-byte header"):
        Message.parse(bad)


@pytest.mark.parametrize(
    "version, error, notify",
    [
        (0x20, InvalidMajorVersion, NotifyType.INVALID_MAJOR_VERSION),  # IKEv2
        (0x00, InvalidMajorVersion, NotifyType.INVALID_MAJOR_VERSION),
        (0x11, InvalidMinorVersion, NotifyType.INVALID_MINOR_VERSION),
    ],
)
def test_bad_version(version, error, notify):
    with pytest.raises(error) as info:
        Message.parse(with_header_field(GOOD, 17, bytes([version])))
    assert info.value.notify_type is notify


def test_message_too_large():
    with pytest.raises(MessageTooLarge):
        Message.parse(GOOD, max_size=len(GOOD) - 1)
    huge = Header(b"\1" * 8)
    data = build_message(huge, [KeyExchange(bytes(60000)), KeyExchange(bytes(6000))])
    with pytest.raises(MessageTooLarge):
        Message.parse(data)


def test_more_payloads_than_allowed():
    data = build_message(Header(b"\1" * 8), [VendorId(b"v")] * 65)
    with pytest.raises(TooManyPayloads):
        Message.parse(data)
    assert len(Message.parse(data, max_payloads=65).payloads) == 65


def test_first_payload_type_invalid():
    bad = with_header_field(GOOD, 16, bytes([PayloadType.TRANSFORM]))
    with pytest.raises(InvalidPayloadType):
        Message.parse(bad)


def test_payload_chain_ends_early_in_cleartext():
    header = Header(b"\1" * 8)
    data = build_message(header, [Nonce(b"n")]) + bytes(4)
    data = with_header_field(data, 24, len(data).to_bytes(4, "big"))
    with pytest.raises(PayloadChainError):
        Message.parse(data)


def test_payload_chain_ends_late_in_cleartext():
    data = build_message(Header(b"\1" * 8), [Nonce(b"n")])
    data = with_header_field(data, ISAKMP_HEADER_SIZE, bytes([PayloadType.VENDOR_ID]))
    with pytest.raises(PayloadChainError, match="announced"):
        Message.parse(data)


def test_parse_header_alone_and_flags():
    header = parse_header(GOOD)
    assert header.exchange_type is ExchangeType.IDENTITY_PROTECTION
    assert header.next_payload is PayloadType.SA
    assert header.length == len(GOOD) and header.body_length == len(GOOD) - 28
    flagged = Header(b"\1" * 8, flags=HeaderFlag.ENCRYPTION | HeaderFlag.COMMIT)
    assert flagged.encrypted and flagged.commit and not flagged.authentication_only
    assert "IDENTITY_PROTECTION" in str(header)


def test_build_and_parse_an_informational_message():
    header = Header(b"\1" * 8, b"\2" * 8, ExchangeType.INFORMATIONAL, message_id=0x1234)
    notify = Notification(NotifyType.R_U_THERE, spi=b"\1" * 8 + b"\2" * 8, data=(7).to_bytes(4, "big"))
    data = Message(header, [Hash(b"\0" * 20), notify]).serialize()
    parsed = Message.parse(data)
    assert parsed.header.next_payload is PayloadType.HASH
    assert parsed.header.length == len(data)
    assert parsed.payloads == [Hash(b"\0" * 20), notify]


def test_encrypted_message_is_built_from_body_bytes():
    header = Header(b"\1" * 8, b"\2" * 8, ExchangeType.TRANSACTION, HeaderFlag.ENCRYPTION, 5)
    first, plaintext = serialize_payloads([Hash(b"h" * 20), AttributePayload(CfgType.ACK, 1)])
    fake_ciphertext = plaintext + bytes(-len(plaintext) % 16)
    data = serialize_with_body(header, first, fake_ciphertext)
    parsed = Message.parse(data)
    assert parsed.encrypted and parsed.body == fake_ciphertext
    assert parsed.payloads_from_plaintext(parsed.body).payloads[1] == AttributePayload(CfgType.ACK, 1)
    with pytest.raises(EncodeError):
        Message(header, [Hash(b"")]).serialize()


def test_bad_cookie_length_cannot_be_encoded():
    with pytest.raises(EncodeError):
        build_message(Header(b"short"), [])


def test_message_without_payloads():
    data = build_message(Header(b"\1" * 8), [])
    assert len(data) == ISAKMP_HEADER_SIZE
    assert Message.parse(data).payloads == []


# ===================================================================== NAT-T framing


def test_port4500_demultiplexing():
    assert classify_port4500(b"\xff") == (Port4500Kind.KEEPALIVE, b"")
    assert is_nat_keepalive(b"\xff") and not is_nat_keepalive(b"\xff\xff")
    assert classify_port4500(b"\0\0\0\0" + GOOD) == (Port4500Kind.IKE, GOOD)
    esp = b"\x50\xc9\xd7\x12" + bytes(20)
    assert classify_port4500(esp) == (Port4500Kind.ESP, esp)
    assert strip_non_esp_marker(add_non_esp_marker(GOOD)) == GOOD
    with pytest.raises(DecodeError):
        strip_non_esp_marker(esp)
    with pytest.raises(DecodeError):
        classify_port4500(b"\0\0")


# ===================================================================== fuzzing


def fuzz_corpus() -> list[bytes]:
    corpus = []
    for _, packet in all_packets():
        corpus.append(bytes.fromhex(packet["data_hex"]))
        if "plaintext_hex" in packet:
            # Decrypted bodies behind a cleartext header: fuzz the inner payloads too.
            data = bytes.fromhex(packet["data_hex"])
            body = bytes.fromhex(packet["plaintext_hex"])
            corpus.append(data[:19] + bytes([data[19] & ~1]) + data[20:24]
                          + (28 + len(body)).to_bytes(4, "big") + body)
    return corpus


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0:
        buf = buf[: rng.randrange(len(buf) + 1)]
    elif choice == 1:
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
    elif choice == 2:
        pos = rng.randrange(len(buf))
        buf[pos] = rng.choice([0, 1, 3, 4, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif choice == 3:
        pos = rng.randrange(len(buf))
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:
        pos = rng.randrange(len(buf))
        del buf[pos : pos + rng.randint(1, 8)]
    if len(buf) >= ISAKMP_HEADER_SIZE and rng.random() < 0.7:
        # Keep the header length consistent so mutations reach the payloads.
        buf[24:28] = len(buf).to_bytes(4, "big")
    return bytes(buf)


def test_random_mutations_only_raise_codec_errors():
    rng = random.Random(20261126)
    corpus = fuzz_corpus()
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(2000):
        data = mutate(rng, rng.choice(corpus))
        try:
            message = Message.parse(data, allow_unknown=rng.random() < 0.3)
        except CodecError:
            outcomes["rejected"] += 1
            continue
        outcomes["parsed"] += 1
        if not message.encrypted:
            # Whatever was accepted must re-encode and decode to the same thing.
            again = Message.parse(message.serialize(), allow_unknown=True)
            assert again.payloads == message.payloads
        else:
            try:
                parse_payloads(message.header.next_payload, message.body)
            except CodecError:
                pass
    assert outcomes["parsed"] > 100 and outcomes["rejected"] > 100, outcomes


def test_identification_rendering_of_mutated_data_only_raises_codec_errors():
    rng = random.Random(7)
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        ident = Identification(rng.choice(list(IdType)), data)
        try:
            ident.value()
            str(ident)
        except CodecError:
            pass


def test_data_attribute_from_capture_helpers():
    attr = DataAttribute.tv(Phase1Attribute.ENCRYPTION_ALGORITHM, 0)
    assert lookup(EncryptionAlgorithm, attr.value) == 0

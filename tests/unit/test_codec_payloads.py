"""Payload layouts: round trips for every payload type and precise errors."""

from __future__ import annotations

import ipaddress

import pytest

from responder.ikev1.enums import (
    CfgType,
    ConfigAttribute,
    Doi,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspTransformId,
    IdType,
    IpsecAttribute,
    NotifyType,
    PayloadType,
    Phase1Attribute,
    ProtocolId,
    UnknownValue,
)
from responder.ikev1.errors import (
    BadProposalSyntax,
    DecodeError,
    EncodeError,
    InvalidIdInformation,
    InvalidPayloadType,
    MalformedAttribute,
    PayloadChainError,
    PayloadMalformed,
    TooManyPayloads,
)
from responder.ikev1.payloads import (
    AttributePayload,
    Certificate,
    CertificateRequest,
    DataAttribute,
    Delete,
    Fragment,
    Hash,
    Identification,
    KeyExchange,
    NatDiscovery,
    NatOriginalAddress,
    Nonce,
    Notification,
    Proposal,
    SecurityAssociation,
    Signature,
    Transform,
    UnknownPayload,
    VendorId,
    parse_payload_chain,
    parse_payloads,
    serialize_payloads,
)


def ike_transform(number: int = 1, enc: int = EncryptionAlgorithm.AES_CBC) -> Transform:
    return Transform(
        number,
        1,
        [
            DataAttribute.tv(Phase1Attribute.ENCRYPTION_ALGORITHM, enc),
            DataAttribute.tv(Phase1Attribute.KEY_LENGTH, 256),
            DataAttribute.from_int(Phase1Attribute.LIFE_DURATION, 2147483),
        ],
    )


SAMPLES = [
    SecurityAssociation(
        Doi.IPSEC, 1, [Proposal(1, ProtocolId.ISAKMP, b"", [ike_transform(0), ike_transform(1)])]
    ),
    SecurityAssociation(
        Doi.IPSEC,
        1,
        [
            Proposal(
                1,
                ProtocolId.IPSEC_ESP,
                b"\xca\xfe\x1a\x85",
                [
                    Transform(
                        1,
                        EspTransformId.AES_CBC,
                        [
                            DataAttribute.tv(IpsecAttribute.ENCAPSULATION_MODE, EncapsulationMode.UDP_TUNNEL),
                            DataAttribute.tlv(IpsecAttribute.SA_LIFE_DURATION, b"\x00\x00\x0e\x10"),
                        ],
                    )
                ],
            ),
            Proposal(2, ProtocolId.IPSEC_ESP, b"\x00\x00\x00\x01", [Transform(1, EspTransformId.NULL)]),
        ],
    ),
    KeyExchange(bytes(range(128))),
    Identification.ipv4_address("198.18.0.1", protocol=17, port=500),
    Identification.key_id("vpngroup"),
    Identification.ipv4_subnet("10.50.0.0/24"),
    Identification.ipv4_range("10.0.0.1", "10.0.0.9"),
    Identification.fqdn("gw.example.test"),
    Identification.user_fqdn("alice@example.test"),
    Identification.ipv6_subnet("2001:db8::/32"),
    Certificate(4, b"\x30\x82\x01\x00"),
    CertificateRequest(4, b""),
    Hash(b"\x11" * 20),
    Signature(b"\x22" * 64),
    Nonce(b"\x33" * 32),
    Notification(NotifyType.INITIAL_CONTACT, Doi.IPSEC, ProtocolId.ISAKMP, b"\x01" * 16),
    Notification(NotifyType.R_U_THERE, Doi.IPSEC, ProtocolId.ISAKMP, b"\x02" * 16, b"\x00\x00\x00\x2a"),
    Delete(ProtocolId.IPSEC_ESP, [b"\x50\xc9\xd7\x12", b"\xa9\x47\x3c\x5f"]),
    Delete(ProtocolId.ISAKMP, [b"\xaa" * 16]),
    VendorId(bytes.fromhex("09002689DFD6B712")),
    AttributePayload(
        CfgType.REQUEST,
        0x1234,
        [
            DataAttribute.tlv(ConfigAttribute.INTERNAL_IP4_ADDRESS, b""),
            DataAttribute.tv(ConfigAttribute.XAUTH_TYPE, 0),
            DataAttribute.tlv(ConfigAttribute.UNITY_BANNER, b"hello"),
        ],
    ),
    NatDiscovery(b"\x44" * 20),
    NatDiscovery(b"\x55" * 16, PayloadType.NAT_D_DRAFT),
    NatOriginalAddress.for_address("192.168.1.2"),
    NatOriginalAddress.for_address("192.168.1.2", PayloadType.NAT_OA_DRAFT),
    Fragment(7, 1, b"fragment-data", Fragment.LAST_FRAGMENT),
]


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: type(p).__name__)
def test_every_payload_round_trips_alone(payload):
    first, body = serialize_payloads([payload])
    assert first == payload.payload_type
    parsed = parse_payload_chain(first, body, trailing_allowed=False)
    assert parsed == [payload]
    assert parsed[0].serialize() == payload.serialize()


def test_all_payloads_round_trip_as_one_chain():
    first, body = serialize_payloads(SAMPLES)
    assert parse_payload_chain(first, body, trailing_allowed=False, max_payloads=100) == SAMPLES


def test_unknown_payload_kept_when_allowed_rejected_otherwise():
    raw = bytes([0, 0, 0, 9]) + b"hello"
    parsed = parse_payload_chain(200, raw, trailing_allowed=False, allow_unknown=True)
    assert parsed == [UnknownPayload(200, b"hello")]
    assert serialize_payloads(parsed) == (200, raw)
    with pytest.raises(InvalidPayloadType) as info:
        parse_payload_chain(200, raw, trailing_allowed=False)
    assert info.value.notify_type is NotifyType.INVALID_PAYLOAD_TYPE


@pytest.mark.parametrize("nested_type", [PayloadType.PROPOSAL, PayloadType.TRANSFORM, PayloadType.SAK])
def test_payloads_that_may_not_appear_at_top_level(nested_type):
    with pytest.raises(InvalidPayloadType):
        parse_payload_chain(nested_type, b"\x00\x00\x00\x08" + bytes(4), trailing_allowed=False)


# ----------------------------------------------------------------- attributes


def test_data_attribute_tv_and_tlv_wire_forms():
    first, body = serialize_payloads([ike_transform_holder()])
    # ENCRYPTION_ALGORITHM TV, KEY_LENGTH TV, LIFE_DURATION as a 4-byte TLV.
    assert body.endswith(bytes.fromhex("80010007" "800e0100" "000c0004" "0020c49b"))


def ike_transform_holder() -> SecurityAssociation:
    return SecurityAssociation(Doi.IPSEC, 1, [Proposal(1, ProtocolId.ISAKMP, b"", [ike_transform()])])


def test_data_attribute_helpers():
    life = DataAttribute.from_int(Phase1Attribute.LIFE_DURATION, 2147483)
    assert not life.is_tv and life.value == bytes.fromhex("0020c49b") and life.as_int() == 2147483
    short = DataAttribute.from_int(Phase1Attribute.LIFE_DURATION, 3600)
    assert short.is_tv and short.as_int() == 3600
    assert life.named_type(Phase1Attribute) is Phase1Attribute.LIFE_DURATION
    with pytest.raises(MalformedAttribute):
        DataAttribute.tlv(1, b"").as_int()
    with pytest.raises(EncodeError):
        DataAttribute.from_int(1, -1)
    with pytest.raises(EncodeError):
        Transform(1, 1, [DataAttribute.tv(0x8000, 1)]).serialize()


def test_transform_and_attribute_lookup_helpers():
    transform = ike_transform()
    assert transform.attribute(Phase1Attribute.KEY_LENGTH).value == 256
    assert transform.attribute(Phase1Attribute.GROUP_DESCRIPTION) is None
    proposal = Proposal(1, ProtocolId.IPSEC_ESP, b"\0\0\0\1", [Transform(1, 12), Transform(2, 250)])
    assert proposal.named_transform_id(proposal.transforms[0]) is EspTransformId.AES_CBC
    assert isinstance(proposal.named_transform_id(proposal.transforms[1]), UnknownValue)


def test_tlv_attribute_length_overrun():
    # Transform body: number, id, reserved(2), then a TLV claiming 8 bytes with 2 present.
    body = bytes([1, 1, 0, 0]) + bytes.fromhex("000c0008") + b"\x00\x01"
    with pytest.raises(MalformedAttribute) as info:
        Transform.parse(body)
    assert "overruns" in str(info.value)
    assert info.value.notify_type is NotifyType.PAYLOAD_MALFORMED


def test_truncated_tv_attribute():
    with pytest.raises(DecodeError):
        Transform.parse(bytes([1, 1, 0, 0]) + b"\x80\x01\x00")


# ----------------------------------------------------------------- SA structure


def sa_body(*, count_field: int = 1, proposal_next: int = 0, transform_next: int = 0,
            proposal_len_delta: int = 0) -> bytes:
    transform = bytes([transform_next, 0, 0, 8, 1, 1, 0, 0])
    proposal_body = bytes([1, ProtocolId.ISAKMP, 0, count_field]) + transform
    proposal = bytes([proposal_next, 0]) + (4 + len(proposal_body) + proposal_len_delta).to_bytes(2, "big")
    return (1).to_bytes(4, "big") + (1).to_bytes(4, "big") + proposal + proposal_body


def test_sa_body_helper_is_valid():
    sa = SecurityAssociation.parse(sa_body())
    assert sa.proposals[0].transforms == [Transform(1, 1)]


def test_transform_count_mismatch():
    with pytest.raises(BadProposalSyntax) as info:
        SecurityAssociation.parse(sa_body(count_field=2))
    assert "count field says 2, 1 present" in str(info.value)
    assert info.value.notify_type is NotifyType.BAD_PROPOSAL_SYNTAX


def test_transform_chain_announcing_more_than_the_proposal_holds():
    with pytest.raises(BadProposalSyntax, match="past the end"):
        SecurityAssociation.parse(sa_body(transform_next=3))


def test_nested_chain_with_wrong_next_payload():
    with pytest.raises(BadProposalSyntax, match="expected 3 or 0"):
        SecurityAssociation.parse(sa_body(transform_next=13))


def test_proposal_length_inconsistent_with_sa():
    with pytest.raises(BadProposalSyntax, match="overruns"):
        SecurityAssociation.parse(sa_body(proposal_len_delta=4))
    with pytest.raises(BadProposalSyntax):
        SecurityAssociation.parse(sa_body(proposal_len_delta=-4))


def test_proposal_chain_ends_early_inside_sa():
    with pytest.raises(BadProposalSyntax, match="left"):
        SecurityAssociation.parse(sa_body() + bytes(8))


def test_spi_size_beyond_proposal():
    body = bytes([1, ProtocolId.IPSEC_ESP, 40, 0]) + b"\x00" * 4
    with pytest.raises(PayloadMalformed, match="spi size 40"):
        Proposal.parse(body)


def test_delete_spi_count_mismatch():
    body = (1).to_bytes(4, "big") + bytes([3, 4]) + (3).to_bytes(2, "big") + bytes(8)
    with pytest.raises(PayloadMalformed, match="3 spis of 4 bytes need 12"):
        Delete.parse(body)


def test_delete_with_mixed_spi_sizes_cannot_be_encoded():
    with pytest.raises(EncodeError):
        Delete(ProtocolId.IPSEC_ESP, [b"\0" * 4, b"\0" * 16]).serialize()


def test_payload_shorter_than_its_fixed_part_is_a_short_read():
    # A transform with 3 bytes instead of the 4-byte fixed part.
    with pytest.raises(DecodeError):
        Transform.parse(b"\x01\x01\x00")


# ----------------------------------------------------------------- generic header / chain


def test_payload_length_below_header_size():
    with pytest.raises(PayloadMalformed, match="below the 4-byte header"):
        parse_payload_chain(PayloadType.NONCE, b"\x00\x00\x00\x03", trailing_allowed=False)


def test_payload_overruns_data():
    with pytest.raises(PayloadMalformed, match="overruns"):
        parse_payload_chain(PayloadType.NONCE, b"\x00\x00\x00\x10" + bytes(4), trailing_allowed=False)


def test_chain_ends_late():
    data = bytes([PayloadType.NONCE, 0, 0, 8]) + bytes(4)
    with pytest.raises(PayloadChainError, match="announced"):
        parse_payload_chain(PayloadType.NONCE, data, trailing_allowed=False)


def test_chain_ends_early_is_error_in_cleartext_and_padding_when_decrypted():
    data = bytes([0, 0, 0, 8]) + bytes(4) + bytes(8)
    with pytest.raises(PayloadChainError, match="8 bytes of the message left"):
        parse_payload_chain(PayloadType.NONCE, data, trailing_allowed=False)
    assert parse_payloads(PayloadType.NONCE, data) == [Nonce(bytes(4))]


def test_header_fragment_too_short_for_generic_header():
    with pytest.raises(PayloadMalformed, match="too short"):
        parse_payload_chain(PayloadType.NONCE, b"\x00\x00", trailing_allowed=False)


def test_too_many_payloads():
    payloads = [VendorId(b"x")] * 5
    first, body = serialize_payloads(payloads)
    assert len(parse_payload_chain(first, body, trailing_allowed=False, max_payloads=5)) == 5
    with pytest.raises(TooManyPayloads):
        parse_payload_chain(first, body, trailing_allowed=False, max_payloads=4)


def test_error_names_the_payload_it_happened_in():
    first, body = serialize_payloads([Nonce(b"n"), Delete(ProtocolId.IPSEC_ESP, [bytes(4)])])
    corrupted = body[:-4]  # drop the SPI, fix the Delete payload length
    corrupted = corrupted[:5 + 2] + (len(corrupted) - 5).to_bytes(2, "big") + corrupted[9:]
    with pytest.raises(PayloadMalformed, match=r"Delete payload #2 at offset 5"):
        parse_payload_chain(first, corrupted, trailing_allowed=False)


def test_oversized_payload_cannot_be_encoded():
    with pytest.raises(EncodeError):
        serialize_payloads([KeyExchange(bytes(70000))])


# ----------------------------------------------------------------- identification


@pytest.mark.parametrize(
    "ident, expected",
    [
        (Identification.ipv4_address("10.99.0.1"), ipaddress.IPv4Address("10.99.0.1")),
        (Identification.ipv6_address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::1")),
        (Identification.ipv4_subnet("0.0.0.0/0"), ipaddress.IPv4Network("0.0.0.0/0")),
        (Identification.ipv4_subnet("10.50.0.0/24"), ipaddress.IPv4Network("10.50.0.0/24")),
        (Identification.ipv6_subnet("2001:db8::/48"), ipaddress.IPv6Network("2001:db8::/48")),
        (
            Identification.ipv4_range("10.0.0.1", "10.0.0.9"),
            (ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.9")),
        ),
        (Identification.fqdn("gw.example.test"), "gw.example.test"),
        (Identification.user_fqdn("bob@example.test"), "bob@example.test"),
        (Identification.key_id("vpngroup"), b"vpngroup"),
        (Identification(IdType.DER_ASN1_DN, b"\x30\x00"), b"\x30\x00"),
    ],
)
def test_identification_values(ident, expected):
    assert ident.value() == expected
    assert str(ident).startswith(IdType(ident.id_type).name)


@pytest.mark.parametrize(
    "id_type, data",
    [
        (IdType.IPV4_ADDR, b"\x01\x02\x03"),
        (IdType.IPV4_ADDR_SUBNET, bytes([10, 0, 0, 0, 255, 0, 255, 0])),  # non-contiguous mask
        (IdType.IPV6_ADDR_SUBNET, bytes(16) + b"\xff" + bytes(14) + b"\xff"),
        (IdType.IPV4_ADDR_RANGE, bytes(7)),
        (IdType.FQDN, b"\xff\xfe"),
    ],
)
def test_identification_data_not_matching_its_type(id_type, data):
    with pytest.raises(InvalidIdInformation) as info:
        Identification(id_type, data).value()
    assert info.value.notify_type is NotifyType.INVALID_ID_INFORMATION


def test_nat_oa_address():
    assert NatOriginalAddress.for_address("2001:db8::2").ip() == ipaddress.IPv6Address("2001:db8::2")
    with pytest.raises(InvalidIdInformation):
        NatOriginalAddress(IdType.FQDN, b"x").ip()


def test_fragment_flags():
    assert Fragment(1, 2, b"", Fragment.LAST_FRAGMENT).is_last
    assert not Fragment(1, 1, b"").is_last

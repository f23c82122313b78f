"""Cross-check the encoder with an independent dissector (Wireshark's tshark).

Messages built by the codec are written to a pcap and dissected; tshark must
find no malformed packet and no expert error, and must name what we encoded.
Fails at once, naming the package, where tshark is not installed.
"""

from __future__ import annotations

import subprocess

import pytest

from clients.parts import require
from responder.ikev1.enums import (
    AuthMethod,
    CfgType,
    ConfigAttribute,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspTransformId,
    ExchangeType,
    GroupDescription,
    HashAlgorithm,
    IpsecAttribute,
    LifeType,
    NotifyType,
    PayloadType,
    Phase1Attribute,
    ProtocolId,
)
from responder.ikev1.message import Header, build_message
from responder.ikev1.natt_framing import add_non_esp_marker
from responder.ikev1.payloads import (
    AttributePayload,
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
    Transform,
    VendorId,
)
from responder.ikev1.vendor_ids import DPD, NATT_RFC3947, XAUTH



@pytest.fixture(autouse=True, scope="module")
def tshark_installed():
    require("tshark")

ICOOKIE, RCOOKIE = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")


def phase1_transform(number: int) -> Transform:
    a = DataAttribute
    return Transform(number, 1, [
        a.tv(Phase1Attribute.ENCRYPTION_ALGORITHM, EncryptionAlgorithm.AES_CBC),
        a.tv(Phase1Attribute.KEY_LENGTH, 256),
        a.tv(Phase1Attribute.HASH_ALGORITHM, HashAlgorithm.SHA),
        a.tv(Phase1Attribute.GROUP_DESCRIPTION, GroupDescription.MODP_1024),
        a.tv(Phase1Attribute.AUTHENTICATION_METHOD, AuthMethod.XAUTH_INIT_PSK),
        a.tv(Phase1Attribute.LIFE_TYPE, LifeType.SECONDS),
        a.from_int(Phase1Attribute.LIFE_DURATION, 2147483),
    ])


def messages() -> list[tuple[bytes, bool]]:
    """(ISAKMP message, sent on port 4500?) pairs covering every payload type."""
    aggressive = Header(ICOOKIE, RCOOKIE, ExchangeType.AGGRESSIVE)
    esp = Proposal(1, ProtocolId.IPSEC_ESP, b"\x3c\x88\x9a\xbe", [
        Transform(1, EspTransformId.AES_CBC, [
            DataAttribute.tv(IpsecAttribute.SA_LIFE_TYPE, LifeType.SECONDS),
            DataAttribute.from_int(IpsecAttribute.SA_LIFE_DURATION, 28800),
            DataAttribute.tv(IpsecAttribute.ENCAPSULATION_MODE, EncapsulationMode.UDP_TUNNEL),
            DataAttribute.tv(IpsecAttribute.AUTHENTICATION_ALGORITHM, 2),
            DataAttribute.tv(IpsecAttribute.KEY_LENGTH, 128),
        ])
    ])
    transaction = build_message(Header(ICOOKIE, RCOOKIE, ExchangeType.TRANSACTION, message_id=8), [
        Hash(b"\x06" * 20),
        AttributePayload(CfgType.REPLY, 0x55, [
            DataAttribute.tlv(ConfigAttribute.INTERNAL_IP4_ADDRESS, bytes([10, 99, 0, 1])),
            DataAttribute.tlv(ConfigAttribute.INTERNAL_IP4_DNS, bytes([10, 50, 0, 53])),
            DataAttribute.tlv(ConfigAttribute.XAUTH_USER_NAME, b"alice"),
            DataAttribute.tv(ConfigAttribute.XAUTH_STATUS, 1),
            DataAttribute.tlv(ConfigAttribute.UNITY_BANNER, b"hello"),
        ]),
    ])
    return [
        (build_message(aggressive, [
            SecurityAssociation(proposals=[Proposal(1, ProtocolId.ISAKMP, b"",
                                                    [phase1_transform(0), phase1_transform(1)])]),
            KeyExchange(bytes(range(128))),
            Nonce(b"\x42" * 20),
            Identification.key_id("vpngroup"),
            VendorId(XAUTH.data), VendorId(DPD.data), VendorId(NATT_RFC3947.data),
            NatDiscovery(b"\x01" * 20), NatDiscovery(b"\x02" * 20),
            CertificateRequest(4),
            Hash(b"\x03" * 20),
        ]), False),
        (build_message(Header(ICOOKIE, RCOOKIE, ExchangeType.QUICK_MODE, message_id=7), [
            Hash(b"\x04" * 20),
            SecurityAssociation(proposals=[esp]),
            Nonce(b"\x05" * 16),
            Identification.ipv4_address("10.99.0.1"),
            Identification.ipv4_subnet("10.50.0.0/24"),
            NatOriginalAddress.for_address("192.168.1.10"),
        ]), True),
        (transaction, True),
        (build_message(Header(ICOOKIE, RCOOKIE, ExchangeType.INFORMATIONAL, message_id=9), [
            Hash(b"\x07" * 20),
            Notification(NotifyType.R_U_THERE, spi=ICOOKIE + RCOOKIE, data=(1).to_bytes(4, "big")),
            Delete(ProtocolId.IPSEC_ESP, [b"\x3c\x88\x9a\xbe"]),
            Delete(ProtocolId.ISAKMP, [ICOOKIE + RCOOKIE]),
        ]), True),
        (build_message(Header(ICOOKIE, RCOOKIE, ExchangeType.IDENTITY_PROTECTION), [
            NatDiscovery(b"\x08" * 16, PayloadType.NAT_D_DRAFT),
            NatOriginalAddress.for_address("192.168.1.10", PayloadType.NAT_OA_DRAFT),
        ]), False),
        # Wireshark reassembles fragments and dissects the result: carry a real message.
        (build_message(Header(ICOOKIE, RCOOKIE, ExchangeType.IDENTITY_PROTECTION),
                       [Fragment(1, 1, transaction, Fragment.LAST_FRAGMENT)]), True),
    ]


def write_pcap(path, items) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    frames = []
    for message, natt in items:
        port = 4500 if natt else 500
        payload = add_non_esp_marker(message) if natt else message
        frames.append(Ether() / IP(src="198.18.1.1", dst="198.18.0.1")
                      / UDP(sport=port, dport=port) / Raw(payload))
    wrpcap(str(path), frames)


def tshark(path, *args: str) -> str:
    return subprocess.run(["tshark", "-r", str(path), *args], capture_output=True,
                          text=True, check=True, timeout=60).stdout


def test_tshark_dissects_our_messages_without_errors(tmp_path):
    items = messages()
    pcap = tmp_path / "codec.pcap"
    write_pcap(pcap, items)
    flagged = tshark(pcap, "-Y", "_ws.malformed || _ws.expert.severity >= 6291456",
                     "-T", "fields", "-e", "frame.number")
    assert flagged.strip() == "", f"frames with malformed/expert-error marks: {flagged.split()}"
    text = tshark(pcap, "-V")
    # +1: Wireshark also dissects the message reassembled from the fragment.
    assert text.count("Internet Security Association and Key Management Protocol") == len(items) + 1
    for expected in (
        "Vendor ID: XAUTH", "RFC 3706 DPD", "XAUTHInitPreShared", "DPD ARE-YOU-THERE sequence: 1",
        "UDP-Encapsulated-Tunnel", "INTERNAL_IP4_ADDRESS", "UNITY BANNER: hello", "XAUTH USER NAME: alice",
        "ID_KEY_ID", "10.50.0.0/255.255.255.0", "Payload: NAT-OA (RFC 3947)", "Payload: NAT-D (draft",
        "Frag last: Last fragment",
    ):
        assert expected in text, expected

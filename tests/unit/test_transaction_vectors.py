"""Every Transaction plaintext of the reference captures (both directions),
decoded with our Xauth / Mode-Config attribute handling."""

import ipaddress
import json
from pathlib import Path

import pytest

from responder.ikev1.enums import CfgType, ExchangeType
from responder.ikev1.message import Message
from responder.ikev1.modecfg import ModeConfig, decode_payload, reply_attributes, requested_types
from responder.ikev1.payloads import AttributePayload
from responder.ikev1.xauth import parse_reply

from tests.unit.test_transaction_support import A, vpnc_request

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
GATEWAY = "198.18.0.1"
IP = ipaddress.IPv4Address
NET = ipaddress.IPv4Network


def transaction_payloads(capture: str) -> list[tuple[str, AttributePayload]]:
    """(sender "gw"/"client", attribute payload) in capture order."""
    found = []
    for packet in json.loads((VECTORS / f"{capture}.json").read_text())["packets"]:
        if packet["exchange"] != ExchangeType.TRANSACTION:
            continue
        message = Message.parse(bytes.fromhex(packet["data_hex"]))
        decrypted = message.payloads_from_plaintext(bytes.fromhex(packet["plaintext_hex"]))
        [payload] = decrypted.payloads_of(AttributePayload)
        found.append(("gw" if packet["src"] == GATEWAY else "client", payload))
    return found


@pytest.mark.parametrize("capture, user, password", [
    ("ss-main", "bob", b"bob-pw"), ("ss-aggr", "alice", b"alice-pw"),
    ("vpnc-aggr", "alice", b"alice-pw")])
def test_xauth_exchange_of_each_capture(capture, user, password):
    (s1, request), (s2, reply), (s3, status), (s4, ack), *_ = transaction_payloads(capture)
    assert (s1, s2, s3, s4) == ("gw", "client", "gw", "client")
    assert request.cfg_type == CfgType.REQUEST
    assert decode_payload(request) == [(A.XAUTH_USER_NAME, None), (A.XAUTH_USER_PASSWORD, None)]
    parsed = parse_reply(reply)
    assert (parsed.username, parsed.password) == (user, password)
    assert status.cfg_type == CfgType.SET and decode_payload(status) == [(A.XAUTH_STATUS, 1)]
    assert ack.cfg_type == CfgType.ACK and [a.attr_type for a in ack.attributes] == [A.XAUTH_STATUS]
    # strongSwan ACKs with an empty variable STATUS, vpnc echoes the basic one
    assert ack.attributes[0].value == (1 if capture == "vpnc-aggr" else b"")


GATEWAY_REPLY = [
    (A.INTERNAL_IP4_ADDRESS, None), (A.INTERNAL_IP4_DNS, IP("10.50.0.53")),
    (A.INTERNAL_IP4_DNS, IP("10.50.0.54")), (A.INTERNAL_IP4_NBNS, IP("10.50.0.137")),
    (A.UNITY_BANNER, "strongSwan reference gateway ss-gw"), (A.UNITY_DEF_DOMAIN, "example.test"),
    (A.UNITY_SPLIT_INCLUDE, (NET("10.50.0.0/24"),)),
]


@pytest.mark.parametrize("capture, address", [
    ("ss-main", "10.99.0.2"), ("ss-aggr", "10.99.0.1"), ("vpnc-aggr", "10.99.0.1")])
def test_mode_config_exchange_of_each_capture(capture, address):
    *_, (s5, request), (s6, reply) = transaction_payloads(capture)
    assert (s5, s6) == ("client", "gw") and reply.identifier == request.identifier
    if capture == "vpnc-aggr":
        assert request.identifier == 20
        assert request.attributes == vpnc_request()  # our test copy is the real thing
    else:
        assert requested_types(request) == [A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_DNS]
    expected = [(A.INTERNAL_IP4_ADDRESS, IP(address))] + GATEWAY_REPLY[1:]
    assert decode_payload(reply) == expected


def test_our_reply_to_vpnc_matches_the_gateway_where_both_answer():
    *_, (_, request), (_, gateway_reply) = transaction_payloads("vpnc-aggr")
    config = ModeConfig("10.99.0.1", dns=["10.50.0.53", "10.50.0.54"], wins=["10.50.0.137"],
                        split_include=["10.50.0.0/24"], default_domain="example.test",
                        banner="strongSwan reference gateway ss-gw")
    ours = reply_attributes(requested_types(request), config, "dynipsec")
    gateway = gateway_reply.attributes
    # byte-identical values, per attribute type, for everything the gateway sent
    for attr_type in {a.attr_type for a in gateway}:
        assert [a.value for a in ours if a.attr_type == attr_type] == \
            [a.value for a in gateway if a.attr_type == attr_type]
    # we also answer what vpnc asked and the gateway ignored
    assert {a.attr_type for a in ours} - {a.attr_type for a in gateway} == \
        {A.UNITY_SAVE_PASSWD, A.APPLICATION_VERSION}


def test_every_transaction_plaintext_decodes():
    counts = {}
    for capture in ("ss-main", "ss-aggr", "vpnc-aggr"):
        payloads = transaction_payloads(capture)
        for _, payload in payloads:
            decode_payload(payload)  # raises on anything malformed
        counts[capture] = len(payloads)
    assert counts == {"ss-main": 6, "ss-aggr": 6, "vpnc-aggr": 6}

"""Mode-Config (mode-cfg-02 + Cisco Unity): codec and pull/push flows."""

import ipaddress

import pytest

from responder.ikev1.enums import CfgType, ExchangeType
from responder.ikev1.errors import MalformedAttribute
from responder.ikev1.events import Phase2Established
from responder.ikev1.exchanges.transaction import TransactionPolicy
from responder.ikev1.modecfg import (
    ModeConfig,
    decode_attribute,
    decode_payload,
    decode_split_include,
    encode_split_include,
    push_attributes,
    reply_attributes,
)
from responder.ikev1.payloads import DataAttribute, Identification
from responder.ikev1.transaction_events import ModeConfigDone

from tests.unit.test_transaction_support import (
    STRONGSWAN_REQUEST,
    SUBSCRIBER,
    A,
    exchange_of,
    logged_in,
    start,
    vpnc_request,
)

IP = ipaddress.IPv4Address


def empty(types):
    return [DataAttribute.tlv(t, b"") for t in types]


def decoded(attributes):
    return [decode_attribute(a) for a in attributes]


# ------------------------------------------------------------------ codec
def test_split_include_is_fourteen_bytes_per_network_like_the_gateway():
    # ss-main.decoded.txt: UNITY_SPLIT_INCLUDE 0a320000ffffff00000000000000
    nets = [ipaddress.IPv4Network("10.50.0.0/24"), ipaddress.IPv4Network("192.168.7.0/25")]
    data = encode_split_include(nets)
    assert data[:14].hex() == "0a320000ffffff00000000000000" and len(data) == 28
    assert decode_split_include(data) == tuple(nets)
    with pytest.raises(MalformedAttribute):
        decode_split_include(data[:-1])


def test_config_normalises_strings():
    config = ModeConfig("10.99.0.1", dns=["10.50.0.53"], split_include=["10.50.0.0/24"])
    assert config.address == IP("10.99.0.1") and config.dns == (IP("10.50.0.53"),)
    with pytest.raises(ValueError):
        ModeConfig("not-an-address")


def test_reply_answers_only_what_was_asked_in_request_order():
    attributes = reply_attributes([A.INTERNAL_IP4_DNS, A.INTERNAL_IP4_ADDRESS, 4242], SUBSCRIBER, "v")
    assert decoded(attributes) == [(A.INTERNAL_IP4_DNS, IP("10.50.0.53")),
                                   (A.INTERNAL_IP4_DNS, IP("10.50.0.54")),
                                   (A.INTERNAL_IP4_ADDRESS, IP("10.99.0.2"))]


def test_reply_leaves_out_values_we_do_not_have():
    bare = ModeConfig("10.99.0.9")
    attributes = reply_attributes([A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_NETMASK, A.INTERNAL_IP4_DNS,
                                   A.UNITY_BANNER, A.UNITY_SPLIT_INCLUDE, A.UNITY_PFS], bare, "v")
    assert [a.attr_type for a in attributes] == [A.INTERNAL_IP4_ADDRESS]


def test_answer_unrequested_sends_everything_like_strongswan_gateway():
    attributes = reply_attributes(STRONGSWAN_REQUEST, SUBSCRIBER, "v", answer_unrequested=True)
    types = [a.attr_type for a in attributes]
    assert types[:3] == [A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_DNS, A.INTERNAL_IP4_DNS]
    assert {A.INTERNAL_IP4_NBNS, A.INTERNAL_IP4_NETMASK, A.UNITY_BANNER,
            A.UNITY_SPLIT_INCLUDE} <= set(types)
    assert A.APPLICATION_VERSION not in types


def test_unity_flags_are_basic_attributes_for_vpnc():
    # vpnc (do_config_to_env) rejects the whole reply if PFS is not TV
    config = ModeConfig("10.99.0.1", pfs=True, save_password=False)
    attributes = reply_attributes([A.UNITY_PFS, A.UNITY_SAVE_PASSWD], config, "v")
    assert attributes == [DataAttribute.tv(A.UNITY_PFS, 1), DataAttribute.tv(A.UNITY_SAVE_PASSWD, 0)]


def test_push_carries_the_whole_config_but_no_version():
    types = [a.attr_type for a in push_attributes(SUBSCRIBER)]
    assert types.count(A.INTERNAL_IP4_DNS) == 2 and types.count(A.INTERNAL_IP4_NBNS) == 2
    assert A.APPLICATION_VERSION not in types and A.SUPPORTED_ATTRIBUTES not in types


# ------------------------------------------------------------------ pull
def test_pull_strongswan_request_gets_address_and_both_dns_only():
    setup = logged_in()
    client = setup.client
    assert setup.set_config() == []  # nothing asked yet (pull)
    [reply] = client.modecfg_request(empty(STRONGSWAN_REQUEST), identifier=0)
    received = client.read(reply)
    assert received.cfg_type == CfgType.REPLY
    assert received.message_id == 0x1f48fd3e and received.payload.identifier == 0
    assert decoded(received.payload.attributes) == [
        (A.INTERNAL_IP4_ADDRESS, IP("10.99.0.2")),
        (A.INTERNAL_IP4_DNS, IP("10.50.0.53")), (A.INTERNAL_IP4_DNS, IP("10.50.0.54"))]
    assert setup.events(ModeConfigDone) == [ModeConfigDone(setup.sa_id, IP("10.99.0.2"))]
    assert setup.task.state(setup.sa_id) == ("succeeded", "done")


def test_pull_vpnc_request_answers_what_was_asked_and_we_have():
    setup = logged_in(TransactionPolicy(application_version="dynipsec 1.0"), exchange="aggressive")
    setup.set_config()
    [reply] = setup.client.modecfg_request(vpnc_request(), identifier=20)
    received = setup.client.read(reply)
    assert received.payload.identifier == 20  # echoed
    assert decoded(received.payload.attributes) == [
        (A.INTERNAL_IP4_ADDRESS, IP("10.99.0.2")),
        (A.INTERNAL_IP4_NETMASK, IP("255.255.255.255")),
        (A.INTERNAL_IP4_DNS, IP("10.50.0.53")), (A.INTERNAL_IP4_DNS, IP("10.50.0.54")),
        (A.INTERNAL_IP4_NBNS, IP("10.50.0.137")), (A.INTERNAL_IP4_NBNS, IP("10.50.0.138")),
        (A.UNITY_DEF_DOMAIN, "example.test"),
        (A.UNITY_BANNER, "strongSwan reference gateway ss-gw"),
        (A.UNITY_SAVE_PASSWD, 0),
        (A.UNITY_SPLIT_INCLUDE, (ipaddress.IPv4Network("10.50.0.0/24"),)),
        (A.APPLICATION_VERSION, "dynipsec 1.0"),
    ]  # not answered: FW_TYPE, PFS (not configured), SPLIT_DNS (none), DDNS_HOSTNAME
    assert setup.events(ModeConfigDone)


def test_request_before_set_config_is_answered_after_it():
    setup = logged_in()
    assert setup.client.modecfg_request(empty(STRONGSWAN_REQUEST)) == []
    assert setup.task.stats["modecfg_request_queued"] == 1 and not setup.events(ModeConfigDone)
    [reply] = setup.set_config()
    assert setup.client.read(reply).payload.attributes[0].value == IP("10.99.0.2").packed
    assert setup.events(ModeConfigDone)


def test_request_before_xauth_finished_waits_for_the_ack():
    setup, [request] = start()
    client = setup.client
    client.credentials(client.read(request), b"bob", b"bob-pw")
    setup.set_config()  # daemon decides at grant time
    [status] = setup.grant()
    status = client.read(status)
    # a client that asks before acknowledging the status
    assert client.modecfg_request(empty(STRONGSWAN_REQUEST)) == []
    [reply] = client.ack(status)
    assert client.read(reply).cfg_type == CfgType.REPLY


def test_a_second_request_is_answered_again_without_a_second_done_event():
    setup = logged_in()
    setup.set_config()
    setup.client.modecfg_request(empty(STRONGSWAN_REQUEST), message_id=0x101)
    [reply] = setup.client.modecfg_request(empty([A.INTERNAL_IP4_NBNS]), message_id=0x202)
    assert [a.attr_type for a in setup.client.read(reply).payload.attributes] == \
        [A.INTERNAL_IP4_NBNS] * 2
    assert len(setup.events(ModeConfigDone)) == 1


def test_pull_client_that_never_asks_is_deleted():
    setup = logged_in(TransactionPolicy(modecfg_timeout=10))
    setup.set_config()
    setup.pair.advance(11)
    from responder.ikev1.events import Phase1Deleted
    assert setup.events(Phase1Deleted)[0].reason == "transaction-timeout"


# ------------------------------------------------------------------ push
def test_push_set_then_ack():
    setup = logged_in(TransactionPolicy(modecfg_push=True))
    [pushed] = setup.set_config()
    received = setup.client.read(pushed)
    assert received.cfg_type == CfgType.SET
    assert decode_payload(received.payload)[0] == (A.INTERNAL_IP4_ADDRESS, IP("10.99.0.2"))
    assert [a.attr_type for a in received.payload.attributes].count(A.INTERNAL_IP4_NBNS) == 2
    assert setup.pair.advance(4.5) == [pushed]  # retransmitted until ACKed
    assert not setup.events(ModeConfigDone)
    setup.client.answer(received, CfgType.ACK, empty([A.INTERNAL_IP4_ADDRESS]))
    assert setup.events(ModeConfigDone) == [ModeConfigDone(setup.sa_id, IP("10.99.0.2"))]
    assert setup.task.state(setup.sa_id) == ("succeeded", "done")
    later = setup.pair.advance(30)
    assert ExchangeType.TRANSACTION not in [exchange_of(d) for d in later]  # no more SET


def test_push_when_config_was_set_before_xauth_ended():
    setup, [request] = start(TransactionPolicy(modecfg_push=True))
    client = setup.client
    client.credentials(client.read(request), b"bob", b"bob-pw")
    setup.set_config()
    [status] = setup.grant()
    [pushed] = client.ack(client.read(status))
    assert client.read(pushed).cfg_type == CfgType.SET


# ------------------------------------------------------------------ Quick Mode gate
VPNC_IDS = (Identification.ipv4_address("10.99.0.2"), Identification.ipv4_subnet("0.0.0.0/0"))


def test_quick_mode_refused_before_mode_config_and_allowed_after():
    setup = logged_in()
    setup.set_config()
    _, qm = setup.pair.initiator.quick_mode_1(ids=VPNC_IDS)
    assert setup.pair.send(qm) == []  # dropped: transaction not complete
    assert setup.pair.responder.stats["dropped_out_of_order"] == 1
    setup.client.modecfg_request(empty(STRONGSWAN_REQUEST))
    setup.pair.quick_mode(ids=VPNC_IDS)
    assert setup.events(Phase2Established)


def test_modecfg_optional_allows_quick_mode_right_after_xauth():
    # iOS on reconnect: Xauth, then straight to Quick Mode
    setup = logged_in(TransactionPolicy(modecfg_optional=True))
    assert setup.pair.responder.sa(setup.sa_id).transaction_done
    setup.pair.quick_mode(ids=VPNC_IDS)
    assert setup.events(Phase2Established) and not setup.events(ModeConfigDone)
    # a later REQUEST is still answered
    setup.set_config()
    [reply] = setup.client.modecfg_request(empty(STRONGSWAN_REQUEST))
    assert setup.client.read(reply).cfg_type == CfgType.REPLY
    assert setup.events(ModeConfigDone)

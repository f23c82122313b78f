"""Bounds on what a peer may send: nonce sizes, ESP SPIs, pending Quick
Modes, a malformed XAUTH_TYPE."""

from responder.ikev1.enums import CfgType, ConfigAttribute, NotifyType
from responder.ikev1.events import Phase1Established
from responder.ikev1.message import Message
from responder.ikev1.payloads import DataAttribute, Notification
from responder.ikev1.policy import Limits, PresharedKey, ResponderPolicy
from responder.ikev1.transaction_events import XauthCredentials

from clients.ikev1_initiator.stepwise import esp_transform
from clients.ikev1_initiator.pair import PSK, make_pair
from tests.unit.test_transaction_support import start


def test_phase1_nonce_shorter_than_8_bytes_is_refused():
    pair = make_pair()
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    real_rng = i.rng
    i.rng = lambda n: real_rng(7 if n == 32 else n)  # the nonce
    data = i.main_mode_3()
    i.rng = real_rng
    assert len(i.ni_b) == 7
    [notify] = pair.send(data)
    assert Message.parse(notify).first(Notification).notify_type == NotifyType.PAYLOAD_MALFORMED
    assert pair.responder.sa_count == 0


def test_quick_mode_nonce_longer_than_256_bytes_is_refused():
    pair = make_pair()
    pair.main_mode()
    i = pair.initiator
    real_rng = i.rng
    i.rng = lambda n: real_rng(257 if n == 32 else n)  # the QM nonce
    run, data = i.quick_mode_1()
    i.rng = real_rng
    assert len(run.ni_b) == 257
    [notify] = pair.send(data)
    assert i.read_informational(notify).first(Notification).notify_type == \
        NotifyType.PAYLOAD_MALFORMED
    [sa] = pair.responder._by_id.values()
    assert not sa.quick_modes


def test_reserved_peer_esp_spi_is_refused():
    pair = make_pair()
    pair.main_mode()
    i = pair.initiator
    real_rng = i.rng
    calls = []

    def rng(n):  # the SPI is the first 4-byte draw after the message ID
        calls.append(n)
        return (255).to_bytes(4, "big") if n == 4 and len(calls) == 2 else real_rng(n)

    i.rng = rng
    run, data = i.quick_mode_1()
    i.rng = real_rng
    assert run.spi == (255).to_bytes(4, "big")
    [notify] = pair.send(data)
    assert i.read_informational(notify).first(Notification).notify_type == NotifyType.INVALID_SPI


def test_pending_quick_modes_per_sa_are_bounded():
    limit = 2
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),),
                                     limits=Limits(max_quick_modes_per_sa=limit)))
    pair.main_mode()
    i = pair.initiator
    for _ in range(limit):
        assert len(pair.send(i.quick_mode_1()[1])) == 1
    assert pair.send(i.quick_mode_1()[1]) == []
    assert pair.responder.stats["dropped_quick_mode_limit"] == 1
    [sa] = pair.responder._by_id.values()
    assert len(sa.quick_modes) == limit


def test_empty_xauth_type_fails_the_attempt_cleanly():
    setup, [request] = start()
    client = setup.client
    received = client.read(request)
    [again] = client.answer(received, CfgType.REPLY, [
        DataAttribute.tlv(ConfigAttribute.XAUTH_TYPE, b""),
        DataAttribute.tlv(ConfigAttribute.XAUTH_USER_NAME, b"bob"),
        DataAttribute.tlv(ConfigAttribute.XAUTH_USER_PASSWORD, b"pw")])
    assert setup.task.stats["xauth_invalid_reply"] == 1
    assert client.read(again).payload.cfg_type == CfgType.REQUEST  # re-prompted
    assert not setup.events(XauthCredentials)

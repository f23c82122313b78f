"""Main Mode responder driven in memory (RFC 2409 §5, PSK)."""

import logging

from responder.ikev1.enums import AuthMethod, ExchangeType, NotifyType
from responder.ikev1.events import (
    ExchangeFailed,
    InitialContact,
    Phase1Established,
    Phase2Established,
)
from responder.ikev1.message import Message
from responder.ikev1.payloads import Notification
from responder.ikev1.policy import PresharedKey, ResponderPolicy
from responder.ikev1.vendor_ids import CISCO_UNITY, DPD, FRAGMENTATION, NATT_RFC3947, XAUTH

from clients.ikev1_initiator.stepwise import StepInitiator, ike_transform, seeded_rng
from clients.ikev1_initiator.pair import PSK, make_pair


def test_main_mode_psk_to_completion():
    pair = make_pair()
    pair.main_mode()
    [est] = pair.of_type(Phase1Established)
    assert est.dynamic and est.xauth_required and est.exchange == "main"
    assert est.identity.value == "198.18.1.2"
    assert est.peer == ("198.18.1.2", 4500)
    assert est.natt_version == "rfc3947"
    assert pair.responder.sa(est.sa_id).established


def test_main_mode_plain_psk_without_xauth_vid_is_static():
    pair = make_pair(initiator_kwargs=dict(
        vendor_ids=(DPD.data,), transforms=[ike_transform(auth=AuthMethod.PRE_SHARED_KEY)]))
    pair.main_mode(float_to=None)
    [est] = pair.of_type(Phase1Established)
    assert not est.dynamic and not est.xauth_required
    assert est.natt_version == "none" and est.peer == ("198.18.1.2", 500)


def test_responder_vendor_ids():
    pair = make_pair(initiator_kwargs=dict(
        vendor_ids=(XAUTH.data, CISCO_UNITY.data, FRAGMENTATION.data, NATT_RFC3947.data,
                    DPD.data)))
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    assert i.responder_vids == [XAUTH.data, DPD.data, CISCO_UNITY.data, NATT_RFC3947.data]
    assert FRAGMENTATION.data not in i.responder_vids  # we do not implement it


def test_no_unity_vid_unless_peer_sent_it():
    pair = make_pair()
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    assert CISCO_UNITY.data not in i.responder_vids


def test_quick_mode_after_main_mode():
    pair = make_pair()
    pair.main_mode()
    run = pair.quick_mode()
    [child] = pair.of_type(Phase2Established)
    assert child.inbound.spi == run.responder_spi
    assert child.outbound.spi == run.spi
    assert child.inbound.encryption_key == run.keys.outbound.encryption_key
    assert child.outbound.integrity_key == run.keys.inbound.integrity_key


def test_wrong_psk_gives_authentication_failed_and_no_sa(caplog):
    pair = make_pair()
    pair.initiator.psk = b"Bad-Key-1234"
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(reply)
    with caplog.at_level(logging.DEBUG):
        [notify] = pair.send(i.main_mode_5())
    message = Message.parse(notify)
    assert message.header.exchange_type == ExchangeType.INFORMATIONAL
    assert not message.encrypted  # no shared keys: unprotected (RFC 2408 §5)
    assert message.first(Notification).notify_type == NotifyType.AUTHENTICATION_FAILED
    assert not pair.of_type(Phase1Established)
    # a bad MM5 could come from anyone who saw the cookies: the half-open SA
    # stays (the real MM5 may still come) until its timeout
    assert pair.responder.sa_count == 1
    assert pair.responder.stats["dropped_phase1_unauthenticated"] == 1
    pair.advance(pair.responder.policy.limits.half_open_timeout + 1)
    assert pair.responder.sa_count == 0
    # neither key appears in the log
    assert PSK.decode() not in caplog.text and "Bad-Key-1234" not in caplog.text


def test_no_acceptable_proposal_gives_no_proposal_chosen():
    pair = make_pair(initiator_kwargs=dict(transforms=[ike_transform(encryption=1, key_length=None)]))
    [notify] = pair.send(pair.initiator.main_mode_1())
    message = Message.parse(notify)
    assert message.first(Notification).notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert pair.responder.sa_count == 0


def test_retransmitted_requests_get_the_same_reply():
    pair = make_pair()
    i = pair.initiator
    msg1 = i.main_mode_1()
    [reply1] = pair.send(msg1)
    assert pair.send(msg1) == [reply1]
    assert pair.responder.sa_count == 1
    i.handle_main_mode_2(reply1)
    msg3 = i.main_mode_3()
    [reply3] = pair.send(msg3)
    assert pair.send(msg3) == [reply3]
    i.handle_main_mode_4(reply3)
    msg5 = i.main_mode_5()
    [reply5] = pair.send(msg5)
    assert pair.send(msg5) == [reply5]
    i.handle_main_mode_6(reply5)
    assert len(pair.of_type(Phase1Established)) == 1
    assert pair.responder.stats["retransmit_answered"] == 3


def test_out_of_order_message_is_dropped():
    pair = make_pair()
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    # a second SA payload on the same exchange: no table entry (sa_sent, sa)
    i2 = StepInitiator(PSK, seeded_rng(5), cky_i=i.cky_i)
    i2.cky_i, i2.cky_r = i.cky_i, i.cky_r
    assert pair.send(i2.main_mode_1()) == []
    assert pair.responder.stats["dropped_out_of_order"] == 1
    assert pair.responder.sa_count == 1


def test_initial_contact_in_main_mode_5():
    pair = make_pair()
    pair.main_mode(initial_contact=True)
    [ic] = pair.of_type(InitialContact)
    assert ic.identity.value == "198.18.1.2"


def test_main_mode_psk_found_by_address():
    policy = ResponderPolicy(psks=(PresharedKey(b"other", peer="10.0.0.0/8"),
                                   PresharedKey(PSK, local="198.18.0.1")))
    pair = make_pair(policy)
    pair.main_mode()
    assert pair.of_type(Phase1Established)

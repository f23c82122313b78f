"""Aggressive Mode responder (RFC 2409 §5, PSK chosen by identity)."""

import logging

from responder.ikev1.enums import AuthMethod, NotifyType
from responder.ikev1.events import InitialContact, Phase1Established
from responder.ikev1.message import Message
from responder.ikev1.payloads import Identification, Notification
from responder.ikev1.policy import IkeRule, Identity, PresharedKey, ResponderPolicy, RuleAction
from responder.ikev1.enums import IdType

from clients.ikev1_initiator.stepwise import ike_transform
from clients.ikev1_initiator.pair import PSK, make_pair

GROUP = Identity(IdType.KEY_ID, "vpngroup")


def group_policy(**kwargs) -> ResponderPolicy:
    return ResponderPolicy(psks=(PresharedKey(b"main-mode-key"), PresharedKey(PSK, identity=GROUP)),
                           **kwargs)


def vpnc_like(**kwargs):
    return make_pair(group_policy(**kwargs), initiator_kwargs=dict(
        identity=Identification.key_id("vpngroup")))


def test_aggressive_mode_key_id_encrypted_third_message(caplog):
    pair = vpnc_like()
    with caplog.at_level(logging.WARNING):
        pair.aggressive_mode(encrypted=True, initial_contact=True)
    [est] = pair.of_type(Phase1Established)
    assert est.exchange == "aggressive" and est.dynamic and est.xauth_required
    assert est.identity == GROUP
    assert est.peer == ("198.18.1.2", 4500)
    assert pair.of_type(InitialContact)
    assert "offline attack" in caplog.text  # AM + PSK is warned about


def test_aggressive_mode_cleartext_third_message_plain_psk():
    pair = make_pair(group_policy(), initiator_kwargs=dict(
        identity=Identification.key_id("vpngroup"),
        transforms=[ike_transform(auth=AuthMethod.PRE_SHARED_KEY)]))
    pair.aggressive_mode(encrypted=False, float_to=None)
    [est] = pair.of_type(Phase1Established)
    assert not est.xauth_required


def test_aggressive_mode_then_quick_mode():
    pair = vpnc_like()
    pair.aggressive_mode()
    run = pair.quick_mode()
    assert run.keys is not None


def test_aggressive_mode_reply_layout_like_strongswan():
    pair = vpnc_like()
    i = pair.initiator
    [reply] = pair.send(i.aggressive_1())
    types = [int(p.payload_type) for p in Message.parse(reply).payloads]
    # SA, KE, Nr, IDir, VID x3, NAT-D x2, HASH_R (vpnc-aggr frame 2), and
    # RESPONDER-LIFETIME: the peer's 8 h are more than our 3 h
    assert types == [1, 4, 10, 5, 13, 13, 13, 20, 20, 8, 11]


def test_unknown_group_gets_authentication_failed():
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK, identity=GROUP),)),
                     initiator_kwargs=dict(identity=Identification.key_id("othergroup")))
    [reply] = pair.send(pair.initiator.aggressive_1())
    assert Message.parse(reply).first(Notification).notify_type == NotifyType.AUTHENTICATION_FAILED
    assert pair.responder.sa_count == 0


def test_wrong_hash_i_is_refused():
    pair = vpnc_like()
    i = pair.initiator
    [reply] = pair.send(i.aggressive_1())
    i.handle_aggressive_2(reply)
    [notify] = pair.send(i.aggressive_3(encrypted=False, hash_override=b"\x00" * 20))
    assert Message.parse(notify).first(Notification).notify_type == NotifyType.AUTHENTICATION_FAILED
    assert not pair.of_type(Phase1Established)
    # anyone who saw the cookies could have sent it: the half-open SA waits
    # for the real message 3 until its timeout
    assert pair.responder.sa_count == 1
    assert pair.responder.stats["dropped_phase1_unauthenticated"] == 1


def test_identity_deny_rule():
    rules = (IkeRule(RuleAction.DENY, identity=GROUP),)
    pair = vpnc_like(rules=rules)
    [reply] = pair.send(pair.initiator.aggressive_1())
    assert Message.parse(reply).first(Notification).notify_type == NotifyType.AUTHENTICATION_FAILED


def test_aggressive_mode_can_be_disabled():
    from responder.ikev1.policy import Phase1Policy

    pair = vpnc_like(phase1=Phase1Policy(allow_aggressive=False))
    assert pair.send(pair.initiator.aggressive_1()) == []
    assert pair.responder.stats["dropped_aggressive_disabled"] == 1

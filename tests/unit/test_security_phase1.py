"""Hostile input before phase 1 completes: cleartext informationals and junk
in place of MM5 / AM3 change nothing; Aggressive Mode answers only with a key
bound to the peer's identity."""

import copy

from responder.ikev1.enums import ExchangeType, IdType, NotifyType, PayloadType
from responder.ikev1.events import Phase1Established
from responder.ikev1.message import Header, Message, serialize_with_body
from responder.ikev1.payloads import Hash, Notification, ProtocolId
from responder.ikev1.policy import Identity, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.pair import PSK, make_pair
from clients.ikev1_initiator.stepwise import Identification


def after_mm4(pair):
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(reply)



def assert_refused_without_hash(pair) -> None:
    """AM message 1 is answered with AUTHENTICATION_FAILED alone: no HASH_R to crack."""
    [reply] = pair.send(pair.initiator.aggressive_1())
    message = Message.parse(reply)
    assert message.header.exchange_type == ExchangeType.INFORMATIONAL
    assert message.first(Hash) is None
    assert message.first(Notification).notify_type == NotifyType.AUTHENTICATION_FAILED
    assert pair.responder.sa_count == 0

def test_cleartext_informational_does_not_delete_a_half_open_sa():
    pair = make_pair()
    after_mm4(pair)
    i = pair.initiator
    notify = Notification(NotifyType.INVALID_SPI, protocol_id=ProtocolId.ISAKMP,
                          spi=i.cky_i + i.cky_r)
    # a bare 28-byte header, then a notify in clear
    bare = serialize_with_body(Header(i.cky_i, i.cky_r, ExchangeType.INFORMATIONAL),
                               PayloadType.NONE, b"")
    assert len(bare) == 28
    assert pair.send(bare) == []
    assert pair.send(i._clear(ExchangeType.INFORMATIONAL, [notify])) == []
    assert pair.responder.sa_count == 1
    assert pair.responder.stats["dropped_unauthenticated"] == 2
    [reply] = pair.send(i.main_mode_5())
    i.handle_main_mode_6(reply)
    assert pair.of_type(Phase1Established)


def test_junk_in_place_of_mm5_is_dropped_and_the_real_mm5_still_works():
    pair = make_pair()
    after_mm4(pair)
    i = pair.initiator
    saved = copy.deepcopy(i.cipher)
    wrong_hash = i.main_mode_5(hash_override=b"\x00" * 32)
    i.cipher = saved  # the real MM5 starts from the same IV
    real = i.main_mode_5()
    junk = real[:28] + bytes(len(real) - 28)  # same header, garbage ciphertext
    for bad in (junk, wrong_hash):  # told why, in clear; nothing else happens
        [notify] = pair.send(bad)
        assert Message.parse(notify).first(Notification).notify_type == \
            NotifyType.AUTHENTICATION_FAILED
    assert pair.responder.sa_count == 1
    assert pair.responder.stats["dropped_phase1_unauthenticated"] == 2
    [reply] = pair.send(real)
    i.handle_main_mode_6(reply)
    assert pair.of_type(Phase1Established)


def test_junk_in_place_of_am3_is_dropped_and_the_real_am3_still_works():
    group = Identity(IdType.KEY_ID, "vpngroup")
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK, identity=group),)),
                     initiator_kwargs=dict(identity=Identification(IdType.KEY_ID, b"vpngroup")))
    i = pair.initiator
    [reply] = pair.send(i.aggressive_1())
    i.handle_aggressive_2(reply)
    saved = copy.deepcopy(i.cipher)
    assert len(pair.send(i.aggressive_3(hash_override=b"\x01" * 32))) == 1
    i.cipher = saved
    assert len(pair.send(i.aggressive_3(encrypted=False, hash_override=b"\x02" * 32))) == 1
    assert pair.responder.sa_count == 1
    assert pair.responder.stats["dropped_phase1_unauthenticated"] == 2
    assert pair.send(i.aggressive_3()) == []
    assert pair.of_type(Phase1Established)


def test_aggressive_mode_unknown_identity_gets_no_hash_r_of_the_address_key():
    group = Identity(IdType.KEY_ID, "vpngroup")
    policy = ResponderPolicy(psks=(PresharedKey(b"main-mode-key"),
                                   PresharedKey(PSK, identity=group)),
                             aggressive_address_keys=False)
    pair = make_pair(policy, initiator_kwargs=dict(
        identity=Identification(IdType.KEY_ID, b"guessed")))
    assert_refused_without_hash(pair)


def test_the_daemon_configuration_allows_no_address_key_in_aggressive_mode():
    from responder.config import build_responder_policy, load_config
    from tests.unit.test_config_builders import LAB

    policy = build_responder_policy(load_config(LAB))
    assert policy.aggressive_address_keys is False
    stranger = Identity(IdType.KEY_ID, "no-such-group")
    assert policy.psk_for_addresses("198.18.0.1", "198.18.1.5") is not None
    assert policy.psk_for_identity(stranger, "198.18.0.1", "198.18.1.5",
                                   fallback=policy.aggressive_address_keys) is None


# -------------------------------------------- only a real message 1 creates an SA
def _not_first_messages():
    from responder.ikev1.enums import HeaderFlag
    from responder.ikev1.payloads import Fragment, KeyExchange, Nonce
    from tests.unit.test_hostile_cve import raw
    from tests.unit.test_hostile_ikescan import AM, MM, aggressive_probe, main_mode_probe

    def encrypted(data: bytes) -> bytes:
        return data[:19] + bytes([HeaderFlag.ENCRYPTION]) + data[20:]

    def cookie(n: int) -> bytes:
        return n.to_bytes(8, "big")

    return [
        lambda n: raw(cookie(n), bytes(8), MM, [Fragment(0, 1, b"abc", Fragment.LAST_FRAGMENT)]),
        lambda n: raw(cookie(n), bytes(8), AM, [KeyExchange(bytes(128)), Nonce(bytes(32))]),
        lambda n: encrypted(main_mode_probe(cookie=cookie(n))),
        lambda n: encrypted(aggressive_probe("vpngroup", cookie=cookie(n))),
    ]


def test_messages_that_are_no_message_1_hold_no_half_open_slot():
    """Many more than the per-source half-open limit of junk message 1s (no SA
    payload, or the E flag set) from one address: each is dropped and
    counted, no SA is started, and a real MM1 from that address still gets
    its MM2 afterwards."""
    from tests.unit.test_hostile_ikescan import main_mode_probe

    pair = make_pair()
    r = pair.responder
    limit = r.policy.limits.max_half_open_per_peer
    makers = _not_first_messages()
    count = 0
    for n in range(3 * limit):
        for make in makers:
            assert pair.send(make(1000 + 10 * n + makers.index(make))) == []
            count += 1
    assert r.sa_count == 0 and r.stats["phase1_started"] == 0
    assert r.stats["dropped_not_first_message"] == count
    assert r.get_timer() is None
    [reply] = pair.send(main_mode_probe(cookie=b"realmm1!"))
    assert Message.parse(reply).header.exchange_type == ExchangeType.IDENTITY_PROTECTION
    assert r.sa_count == 1 and r.stats["phase1_started"] == 1


def test_valid_message_1s_still_meet_the_per_source_half_open_limit_after_junk():
    from tests.unit.test_hostile_ikescan import main_mode_probe

    pair = make_pair()
    r = pair.responder
    limit = r.policy.limits.max_half_open_per_peer
    for n, make in enumerate(_not_first_messages()):
        pair.send(make(n + 1))
    answered = sum(len(pair.send(main_mode_probe(cookie=(500 + n).to_bytes(8, "big"))))
                   for n in range(limit + 3))
    assert answered == limit and r.sa_count == limit
    assert r.stats["dropped_half_open_peer_limit"] == 3


# -------------------------------------------- Aggressive Mode keys: secure default
def test_core_policy_gives_aggressive_mode_no_address_key_by_default():
    assert ResponderPolicy().aggressive_address_keys is False
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),)))  # one wildcard key only
    assert_refused_without_hash(pair)


def test_aggressive_mode_address_key_fallback_is_an_explicit_opt_in():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), aggressive_address_keys=True)
    pair = make_pair(policy)
    i = pair.initiator
    [reply] = pair.send(i.aggressive_1())
    i.handle_aggressive_2(reply)  # HASH_R made with the wildcard key
    assert pair.send(i.aggressive_3()) == []
    assert pair.of_type(Phase1Established)

"""Engine-level behaviour: NAT-T, limits, policy rules, robustness, hooks."""

from responder.ikev1.engine import Responder
from responder.ikev1.enums import ExchangeType
from responder.ikev1.events import (
    KeyExport,
    Phase1Deleted,
    Phase1Established,
    Phase2Established,
)
from responder.ikev1.message import Message
from responder.ikev1.payloads import NatDiscovery
from responder.ikev1.policy import IkeRule, Limits, PresharedKey, ResponderPolicy, RuleAction

from clients.ikev1_initiator.stepwise import StepInitiator, seeded_rng
from clients.ikev1_initiator.pair import PSK, make_pair


def test_nat_detected_and_port_float_keeps_natted_port():
    # the client thinks it is 192.168.1.5:500; the NAT maps it to .1.2:500,
    # then to .1.2:35000 once it moves to 4500
    pair = make_pair(initiator_kwargs=dict(natd_self=("192.168.1.5", 500)))
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(reply)
    assert len(i.responder_natd) == 2
    i.remote = ("198.18.0.1", 4500)
    i.local = ("198.18.1.2", 35000)
    [reply] = pair.send(i.main_mode_5())
    i.handle_main_mode_6(reply)
    [est] = pair.of_type(Phase1Established)
    assert est.peer_behind_nat and not est.local_behind_nat
    assert est.peer == ("198.18.1.2", 35000) and est.local == ("198.18.0.1", 4500)
    # replies from 4500 carry the Non-ESP marker, to the NATed port
    last = pair.sent[-1]
    assert last.data[:4] == b"\0\0\0\0" and last.remote == ("198.18.1.2", 35000)
    pair.quick_mode()
    assert pair.of_type(Phase2Established)


def test_port_float_after_phase1_follows_peer():
    pair = make_pair()
    pair.main_mode(float_to=None)
    pair.float(4500, 41000)
    pair.quick_mode()
    assert pair.responder.sa(pair.of_type(Phase1Established)[0].sa_id).remote == ("198.18.1.2", 41000)


def test_responder_natd_hashes_match_rfc3947():
    pair = make_pair()
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    message = i.handle_main_mode_4(reply)
    ours = i._natd()  # initiator's view: [server, client]
    theirs = [p.hash_data for p in message.payloads_of(NatDiscovery)]
    # responder sends [peer address, own address]
    assert theirs == [ours[1].hash_data, ours[0].hash_data]


def test_force_encap_fakes_our_natd():
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), force_encap=True))
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    message = i.handle_main_mode_4(reply)
    ours = i._natd()
    theirs = [p.hash_data for p in message.payloads_of(NatDiscovery)]
    assert theirs[0] == ours[1].hash_data and theirs[1] != ours[0].hash_data
    pair.float(4500)
    [reply] = pair.send(i.main_mode_5())
    i.handle_main_mode_6(reply)
    [est] = pair.of_type(Phase1Established)
    assert est.local_behind_nat  # faked: UDP encapsulation will be used


def test_half_open_limit_per_peer_and_timeout():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),),
                             limits=Limits(max_half_open_per_peer=2, half_open_timeout=30))
    responder = Responder(policy, rng=seeded_rng(3))
    for n in range(3):
        initiator = StepInitiator(PSK, seeded_rng(100 + n))
        responder.receive_datagram(initiator.main_mode_1(), ("198.18.0.1", 500),
                                   ("198.18.1.2", 500), 10.0)
    assert responder.sa_count == 2
    assert responder.stats["dropped_half_open_peer_limit"] == 1
    assert responder.get_timer() == 40.0
    responder.handle_timer(40.0)
    assert responder.sa_count == 0
    assert responder.stats["half_open_timeout"] == 2
    assert list(responder.events()) == []  # never established: no Phase1Deleted


def test_global_half_open_limit():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), limits=Limits(max_half_open=3))
    responder = Responder(policy, rng=seeded_rng(3))
    for n in range(5):
        initiator = StepInitiator(PSK, seeded_rng(200 + n))
        responder.receive_datagram(initiator.main_mode_1(), ("198.18.0.1", 500),
                                   (f"198.18.1.{n + 1}", 500), 0.0)
    assert responder.sa_count == 3
    assert responder.stats["evicted_half_open_limit"] == 2  # the oldest unproven go


def test_policy_deny_rule_by_address():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),),
                             rules=(IkeRule(RuleAction.DENY, peer="198.18.1.0/24"),))
    pair = make_pair(policy)
    assert pair.send(pair.initiator.main_mode_1()) == []
    assert pair.responder.stats["dropped_policy_denied"] == 1
    assert pair.responder.sa_count == 0


def test_default_deny_with_accept_rule():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), default_action=RuleAction.DENY,
                             rules=(IkeRule(RuleAction.ACCEPT, peer="198.18.1.2"),))
    pair = make_pair(policy)
    pair.main_mode()
    assert pair.of_type(Phase1Established)


def test_unknown_cookies_and_garbage_are_dropped_and_counted():
    pair = make_pair()
    pair.main_mode()
    other = StepInitiator(PSK, seeded_rng(77))
    other.cky_r = b"\x01" * 8
    assert pair.send(other.main_mode_1()) == []
    assert pair.send(b"\x00" * 10) == []
    assert pair.send(b"\x01" * 40) == []
    stats = pair.responder.stats
    assert stats["dropped_unknown_cookies"] == 1
    assert stats["dropped_malformed_header"] == 2


def test_truncated_message_1_gets_payload_malformed_and_no_state():
    pair = make_pair()
    msg1 = bytearray(pair.initiator.main_mode_1())
    msg1[30:32] = (9).to_bytes(2, "big")  # SA payload length 9: body too short
    [reply] = pair.send(bytes(msg1))
    assert pair.responder.sa_count == 0
    notify = Message.parse(reply)
    assert notify.header.exchange_type == ExchangeType.INFORMATIONAL
    assert notify.payloads[0].notify_type == 16  # PAYLOAD-MALFORMED
    assert pair.responder.stats["error_PAYLOAD_MALFORMED"] == 1


def test_keepalive_and_esp_on_4500_are_not_ike():
    pair = make_pair()
    r = pair.responder
    r.receive_datagram(b"\xff", ("198.18.0.1", 4500), ("198.18.1.2", 4500), 0)
    r.receive_datagram(b"\x12\x34\x56\x78" + bytes(40), ("198.18.0.1", 4500),
                       ("198.18.1.2", 4500), 0)
    assert r.datagrams_to_send() == []
    assert r.stats["dropped_keepalive"] == 1 and r.stats["dropped_esp"] == 1


def test_key_export_is_opt_in():
    pair = make_pair()
    pair.main_mode()
    assert not pair.of_type(KeyExport)
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), export_keys=True))
    pair.main_mode()
    [export] = pair.of_type(KeyExport)
    icookie, key = export.line.split(",")
    assert icookie == pair.initiator.cky_i.hex()
    assert key == pair.initiator.keys.encryption_key.hex()
    assert key not in repr(export)


def test_phase1_expires_with_delete():
    pair = make_pair()
    pair.main_mode()
    est = pair.of_type(Phase1Established)[0]
    pair.advance(est.lifetime_seconds + 1)
    assert pair.of_type(Phase1Deleted)[0].reason in ("expired", "dpd")
    assert pair.responder.sa_count == 0


class FakeTransaction:
    """What the Xauth task will look like: push a request, then complete."""

    def __init__(self):
        self.started = []
        self.messages = []

    def phase1_established(self, ctx, sa):
        self.started.append(sa.sa_id)
        self.ctx, self.sa = ctx, sa

    def handle(self, ctx, sa, message):
        decrypted = ctx.decrypt_and_verify(sa, message)
        self.messages.append(decrypted)
        ctx.request_answered(sa, message.header.message_id)
        ctx.transaction_complete(sa)


def test_transaction_hook_gates_quick_mode_and_retransmits():
    from responder.ikev1.payloads import AttributePayload

    policy = ResponderPolicy(psks=(PresharedKey(PSK),), require_transaction=True)
    handler = FakeTransaction()
    pair = make_pair(policy)
    pair.responder.register_exchange(ExchangeType.TRANSACTION, handler)
    pair.main_mode()
    [sa_id] = handler.started
    # the handler sends a request that is retransmitted until answered
    handler.ctx.send_protected(handler.sa, ExchangeType.TRANSACTION, 0x1234,
                               [AttributePayload(cfg_type=1)], retransmit=True)
    [request] = pair.collect()
    assert pair.advance(4.5) and pair.collect() == []
    # Quick Mode before the transaction completes: silently dropped
    _, qm = pair.initiator.quick_mode_1()
    assert pair.send(qm) == []
    assert pair.responder.stats["dropped_out_of_order"] == 1
    # the peer answers the transaction
    i = pair.initiator
    from responder.ikev1.crypto.phase2 import informational_hash
    from responder.ikev1.payloads import Hash, serialize_payloads

    payloads = [AttributePayload(cfg_type=2)]
    _, chain = serialize_payloads(payloads)
    digest = informational_hash(i.keys.prf, i.keys.skeyid_a, 0x1234, chain)
    # the initiator must chain its IV on our request first
    i.decrypt(request[4:] if request[:4] == b"\0\0\0\0" else request)
    data = i._encrypted(ExchangeType.TRANSACTION, [Hash(digest), *payloads], 0x1234)
    assert pair.send(data) == []
    assert len(handler.messages) == 1
    pair.quick_mode()
    assert pair.of_type(Phase2Established)
    assert pair.responder.sa(sa_id).transaction_done


def test_transaction_timeout_deletes_dynamic_sa():
    from responder.ikev1.policy import Limits

    policy = ResponderPolicy(psks=(PresharedKey(PSK),), require_transaction=True,
                             limits=Limits(transaction_timeout=20))
    pair = make_pair(policy)
    pair.responder.register_exchange(ExchangeType.TRANSACTION, FakeTransaction())
    pair.main_mode()
    pair.advance(21)
    assert pair.of_type(Phase1Deleted)[0].reason == "transaction-timeout"


def test_builtin_exchange_cannot_be_replaced():
    import pytest

    pair = make_pair()
    with pytest.raises(ValueError):
        pair.responder.register_exchange(ExchangeType.QUICK_MODE, FakeTransaction())


def test_own_request_retransmitted_with_backoff_then_sa_deleted():
    from responder.ikev1.payloads import AttributePayload
    from responder.ikev1.policy import DpdPolicy, RetransmitPolicy

    policy = ResponderPolicy(psks=(PresharedKey(PSK),), dpd=DpdPolicy(enabled=False),
                             retransmit=RetransmitPolicy(timeout=2, backoff=2, tries=3))
    handler = FakeTransaction()
    pair = make_pair(policy)
    pair.responder.register_exchange(ExchangeType.TRANSACTION, handler)
    pair.main_mode()
    handler.ctx.send_protected(handler.sa, ExchangeType.TRANSACTION, 0x99,
                               [AttributePayload(cfg_type=1)], retransmit=True)
    [first] = pair.collect()
    start = pair.now
    pair.advance(100)
    sent_again = [d for d in pair.sent if d.data[4:] == first or d.data == first]
    assert len(sent_again) == 4  # original + 3 retransmissions (tries=3)
    assert pair.of_type(Phase1Deleted)[0].reason == "retransmit-timeout"
    assert pair.now - start == 100

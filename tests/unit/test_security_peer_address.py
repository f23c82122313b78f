"""Hostile input after phase 1: only a message that decrypted, whose HASH
verified and that is not a replay may move the peer address, prove the peer
alive or change DPD / teardown state."""

from responder.ikev1.enums import ExchangeType, HeaderFlag, NotifyType, PayloadType
from responder.ikev1.exchanges.transaction import TransactionTask
from responder.ikev1.message import Header, serialize_with_body
from responder.ikev1.payloads import Notification
from responder.ikev1.policy import PresharedKey, ResponderPolicy
from responder.ikev1.vendor_ids import DPD, NATT_RFC3947

from clients.ikev1_initiator.pair import PSK, make_pair

SPOOFER = ("203.0.113.66", 4500)
GATEWAY_4500 = ("198.18.0.1", 4500)


def established(*, dynamic: bool = True, transaction: bool = True):
    vids = (b"\x09\x00\x26\x89\xdf\xd6\xb7\x12",) if dynamic else ()
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),)),
                     initiator_kwargs=dict(vendor_ids=vids + (DPD.data, NATT_RFC3947.data)))
    task = TransactionTask.attach(pair.responder) if transaction else None
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(reply)
    pair.float(4500)
    i.handle_main_mode_6(pair.send(i.main_mode_5())[0])  # MM6 first, then Xauth
    sa = pair.responder.sa("ike1")
    assert sa is not None and sa.established and sa.dynamic is dynamic
    return pair, sa, task


def junk_transaction(pair, message_id: int = 0x01020304) -> bytes:
    """28-byte header + 4 bytes: right cookies, nothing anyone could verify."""
    i = pair.initiator
    header = Header(i.cky_i, i.cky_r, ExchangeType.TRANSACTION, HeaderFlag.ENCRYPTION, message_id)
    return serialize_with_body(header, PayloadType.HASH, b"\x00" * 4)


def test_unverified_transaction_does_not_move_a_static_sa_nor_prove_it_alive():
    pair, sa, _ = established(dynamic=False)
    before = (sa.local, sa.remote, sa.last_activity)
    pair.now += 5
    data = junk_transaction(pair)
    assert len(data) == 32
    assert pair.send(data, local=GATEWAY_4500, remote=SPOOFER) == []
    assert (sa.local, sa.remote, sa.last_activity) == before
    assert pair.responder.stats["dropped_unauthenticated"] == 1


def test_replayed_r_u_there_from_elsewhere_does_not_move_the_sa():
    pair, sa, _ = established()
    probe = pair.initiator.r_u_there(100)
    [ack] = pair.send(probe)
    note = pair.initiator.read_informational(ack).first(Notification)
    assert note.notify_type == NotifyType.R_U_THERE_ACK
    before = (sa.local, sa.remote, sa.last_activity)
    pair.now += 5
    assert pair.send(probe, local=GATEWAY_4500, remote=SPOOFER) == []
    assert (sa.local, sa.remote, sa.last_activity) == before
    assert pair.responder.stats["dropped_replay"] == 1


def test_old_dpd_sequence_is_a_replay_even_when_its_message_id_was_forgotten():
    pair, sa, _ = established()
    captured = pair.initiator.r_u_there(100)
    assert len(pair.send(captured)) == 1
    # enough later probes that the captured message ID left the bounded window
    window = pair.responder.policy.limits.max_message_ids
    for sequence in range(101, 101 + window + 1):
        assert len(pair.send(pair.initiator.r_u_there(sequence))) == 1
    before = (sa.local, sa.remote, sa.last_activity)
    pair.now += 5
    assert pair.send(captured, local=GATEWAY_4500, remote=SPOOFER) == []
    assert (sa.local, sa.remote, sa.last_activity) == before
    assert pair.responder.stats["dropped_dpd_replay"] == 1


def test_replayed_initial_contact_is_dropped():
    pair, sa, _ = established(dynamic=False, transaction=False)
    notify = pair.initiator.informational([Notification(NotifyType.INITIAL_CONTACT,
                                                        spi=sa.cookies)])
    assert pair.send(notify) == []
    events = len(pair.events)
    assert pair.send(notify, local=GATEWAY_4500, remote=SPOOFER) == []
    assert len(pair.events) == events  # no second InitialContact
    assert sa.remote != SPOOFER
    assert pair.responder.stats["dropped_replay"] == 1


def test_fresh_authenticated_message_still_follows_a_port_float():
    pair, sa, _ = established()
    moved = ("198.18.1.2", 61000)
    pair.now += 5
    [ack] = pair.send(pair.initiator.r_u_there(7), local=GATEWAY_4500, remote=moved)
    assert sa.remote == moved and sa.last_activity == pair.now

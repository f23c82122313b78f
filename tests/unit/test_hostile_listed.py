"""Hostile inputs a reviewer reproduced against the engine: regressions of fixed bugs.

Each test asserts the behaviour a user must see: junk in place of a real message
changes nothing (no burnt message ID, no lost login, no moved peer), bounds the RFCs
set (nonce length, reserved SPIs) are enforced, and a malformed Xauth reply is an
unusable reply, not a hung exchange.
"""

from __future__ import annotations

import pytest

from responder.ikev1.crypto.phase2 import informational_hash
from responder.ikev1.enums import ExchangeType, NotifyType, PayloadType
from responder.ikev1.events import Phase1Established, Phase2Established
from responder.ikev1.exchanges.transaction import TransactionTask
from responder.ikev1.message import Message
from responder.ikev1.payloads import (
    Hash,
    Notification,
    Nonce,
    Proposal,
    SecurityAssociation,
    serialize_payloads,
)
from responder.ikev1.enums import ProtocolId
from responder.ikev1.vendor_ids import DPD, NATT_RFC3947

from clients.ikev1_initiator.stepwise import esp_transform
from clients.ikev1_initiator.pair import make_pair
from tests.unit.test_hostile_cve import ENC, QM, established_pair, raw, snapshot

MM = ExchangeType.IDENTITY_PROTECTION


def test_junk_quick_mode_does_not_burn_the_message_id():
    pair = established_pair(child=False)
    i = pair.initiator
    mid = 0x42424243
    pair.send(raw(i.cky_i, i.cky_r, QM, [], flags=ENC, mid=mid, body=bytes(64),
                  first=PayloadType.HASH))
    run, data = i.quick_mode_1(message_id=mid)
    [reply] = pair.send(data)
    i.handle_quick_mode_2(run, reply)  # a QM msg 2, not a notify
    assert pair.send(i.quick_mode_3(run)) == []
    assert pair.of_type(Phase2Established)


def test_junk_main_mode_5_does_not_kill_the_login():
    pair = make_pair()
    i = pair.initiator
    [mm2] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(mm2)
    [mm4] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(mm4)
    pair.send(raw(i.cky_i, i.cky_r, MM, [], flags=ENC, body=bytes(64),
                  first=PayloadType.IDENTIFICATION))
    assert pair.responder.sa_count == 1
    [mm6] = pair.send(i.main_mode_5())
    i.handle_main_mode_6(mm6)
    assert pair.of_type(Phase1Established)


@pytest.mark.parametrize("length", [0, 4, 7, 257, 400])
def test_main_mode_3_nonce_out_of_range_is_refused(length):
    pair = make_pair()
    i = pair.initiator
    [mm2] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(mm2)
    payloads = [Nonce(bytes(length)) if isinstance(p, Nonce) else p
                for p in Message.parse(i.main_mode_3()).payloads]
    replies = pair.send(raw(i.cky_i, i.cky_r, MM, payloads))
    assert all(Message.parse(r).header.exchange_type == ExchangeType.INFORMATIONAL
               for r in replies)
    assert pair.responder.sa_count == 0


def _quick_mode_with_spi(i, spi: bytes, mid: int = 0x51515151) -> bytes:
    sa = SecurityAssociation(proposals=[Proposal(1, ProtocolId.IPSEC_ESP, spi, [esp_transform()])])
    payloads = [sa, Nonce(bytes(range(32)))]
    _, chain = serialize_payloads(payloads)
    digest = informational_hash(i.keys.prf, i.keys.skeyid_a, mid, chain)
    return i._encrypted(QM, [Hash(digest), *payloads], mid)


def test_quick_mode_with_a_valid_spi_is_accepted():
    """The builder used below is sound: SPI 256 gets a Quick Mode msg 2."""
    pair = established_pair(child=False)
    i = pair.initiator
    [reply] = pair.send(_quick_mode_with_spi(i, b"\0\0\1\0"))
    message, _ = i.decrypt(reply)
    assert message.header.exchange_type == QM and message.first(SecurityAssociation)


@pytest.mark.parametrize("spi", [b"\0\0\0\0", b"\0\0\0\x01", b"\0\0\0\xff"],
                         ids=lambda s: s.hex())
def test_quick_mode_with_reserved_spi_is_refused(spi):
    pair = established_pair(child=False)
    i = pair.initiator
    [reply] = pair.send(_quick_mode_with_spi(i, spi))
    message, _ = i.decrypt(reply)
    assert message.header.exchange_type == ExchangeType.INFORMATIONAL


def test_junk_transaction_does_not_move_peer_or_prove_liveness():
    pair = make_pair(initiator_kwargs=dict(vendor_ids=(DPD.data, NATT_RFC3947.data)))
    TransactionTask.attach(pair.responder)
    pair.main_mode()
    pair.advance(5)
    pair.collect()
    i = pair.initiator
    before = snapshot(pair.responder)
    pair.send(raw(i.cky_i, i.cky_r, ExchangeType.TRANSACTION, [], flags=ENC, mid=0x7777,
                  body=bytes(48), first=PayloadType.HASH), remote=("203.0.113.66", 4500))
    assert snapshot(pair.responder) == before


def test_replayed_informational_from_elsewhere_does_not_move_the_peer():
    pair = established_pair(child=False)
    i = pair.initiator
    rut = i.r_u_there(5)
    [ack] = pair.send(rut)
    assert i.read_informational(ack).first(Notification).notify_type == NotifyType.R_U_THERE_ACK
    pair.advance(3)
    pair.collect()
    before = snapshot(pair.responder)
    pair.send(rut, remote=("203.0.113.99", 4500))
    assert snapshot(pair.responder) == before


def test_empty_xauth_type_is_an_unusable_reply():
    from responder.ikev1.enums import CfgType
    from responder.ikev1.payloads import DataAttribute
    from responder.ikev1.transaction_events import XauthCredentials

    from tests.unit.test_transaction_support import A, start

    setup, [request] = start()
    received = setup.client.read(request)
    replies = setup.client.answer(received, CfgType.REPLY, [
        DataAttribute.tlv(A.XAUTH_TYPE, b""), DataAttribute.tlv(A.XAUTH_USER_NAME, b"bob"),
        DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"pw")])
    assert not setup.events(XauthCredentials)
    assert setup.task.stats["xauth_invalid_reply"] == 1
    [again] = replies
    assert setup.client.read(again).payload.cfg_type == CfgType.REQUEST  # asked again

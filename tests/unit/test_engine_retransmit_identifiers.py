"""Engine details: the responder resends QM msg 2 until HASH(3), AM msg 2
only when msg 1 is repeated; injectable identifier
generators; phase 1 RESPONDER-LIFETIME; a failed Quick Mode answered the same
way on retransmission; crypto errors in the ProtocolError family."""

import pytest

from responder.daemon.steering import worker_of_cookie, worker_of_spi
from responder.daemon.worker import WorkerResponder
from responder.ikev1.crypto import errors as crypto_errors
from responder.ikev1.engine import Responder
from responder.ikev1.enums import (
    ExchangeType,
    LifeType,
    NotifyType,
    Phase1Attribute,
    ProtocolId,
)
from responder.ikev1.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from responder.ikev1.events import Phase1Established, Phase2Established
from responder.ikev1.message import Message
from responder.ikev1.payloads import Identification, Notification
from responder.ikev1.policy import (
    Identity,
    PresharedKey,
    DpdPolicy,
    Limits,
    ResponderPolicy,
    RetransmitPolicy,
)
from responder.ikev1.enums import IdType

from clients.ikev1_initiator.stepwise import ike_transform, seeded_rng
from clients.ikev1_initiator.pair import PSK, make_pair
from tests.unit.test_exchange_quick_mode import STATIC_IDS, VPNC_IDS, static_pair

RETRANSMIT = RetransmitPolicy(timeout=2.0, backoff=2.0, tries=3)
#: longer than 2 + 4 + 8 + 16 s: the resends give up first
LIMITS = Limits(half_open_timeout=60.0)


def am_pair(**policy_kwargs):
    policy = ResponderPolicy(
        psks=(PresharedKey(PSK, identity=Identity(IdType.KEY_ID, "grp")),),
        retransmit=RETRANSMIT, limits=LIMITS, **policy_kwargs)
    return make_pair(policy, initiator_kwargs=dict(identity=Identification.key_id("grp")))


# ---------------------------------------------------------------- A1: resends
def test_aggressive_mode_message_2_is_resent_only_when_message_1_is_repeated():
    """No timer resends AM msg 2 (its source is unproven): the initiator's
    repeated msg 1 gets the very same bytes from the reply cache."""
    pair = am_pair()
    i = pair.initiator
    msg1 = i.aggressive_1()
    [msg2] = pair.send(msg1)
    assert pair.responder.get_timer() == pair.now + LIMITS.half_open_timeout
    assert pair.advance(30) == []
    assert pair.send(msg1) == [msg2]
    i.handle_aggressive_2(msg2)
    assert pair.send(i.aggressive_3()) == []
    assert pair.of_type(Phase1Established)
    assert msg2 not in pair.advance(60)


def test_aggressive_mode_half_open_sa_goes_at_the_half_open_timeout_unresent():
    pair = am_pair()
    pair.send(pair.initiator.aggressive_1())
    assert pair.advance(LIMITS.half_open_timeout + 1) == []
    assert pair.responder.sa_count == 0
    assert pair.responder.stats["half_open_timeout"] == 1
    assert not pair.of_type(Phase1Established)


def test_main_mode_is_driven_by_the_initiator():
    """No resends in Main Mode: every responder message answers a request, and a
    retransmitted request gets the cached reply (MM6 too)."""
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), retransmit=RETRANSMIT,
                                     limits=LIMITS))
    i = pair.initiator
    [msg2] = pair.send(i.main_mode_1())
    assert pair.advance(30) == []
    i.handle_main_mode_2(msg2)
    msg3 = i.main_mode_3()
    [msg4] = pair.send(msg3)
    assert pair.advance(10) == []
    i.handle_main_mode_4(msg4)
    msg5 = i.main_mode_5()
    [msg6] = pair.send(msg5)
    assert pair.send(msg5) == [msg6]
    assert pair.responder.stats["retransmit_answered"] == 1
    assert not any(key for key in pair.responder._retransmits)


def established(**policy_kwargs):
    # no DPD: an initiator that never answers would be declared dead meanwhile
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), retransmit=RETRANSMIT,
                                     limits=LIMITS, dpd=DpdPolicy(enabled=False),
                                     **policy_kwargs))
    pair.main_mode()
    return pair


def test_quick_mode_message_2_resent_until_hash3():
    pair = established()
    i = pair.initiator
    run, data = i.quick_mode_1(ids=VPNC_IDS)
    [msg2] = pair.send(data)
    assert pair.advance(2.0) == [msg2]
    assert pair.advance(4.0) == [msg2]
    i.handle_quick_mode_2(run, msg2)
    assert pair.send(i.quick_mode_3(run)) == []
    assert len(pair.of_type(Phase2Established)) == 1
    assert msg2 not in pair.advance(20)


def test_quick_mode_dropped_when_resends_exhausted_phase1_stays():
    pair = established()
    i = pair.initiator
    run, data = i.quick_mode_1(ids=VPNC_IDS)
    [msg2] = pair.send(data)
    [sa] = pair.responder._by_id.values()
    spi = sa.quick_modes[run.message_id].inbound_spi
    sent = pair.advance(2 + 4 + 8 + 1)
    assert sent == [msg2] * RETRANSMIT.tries
    assert run.message_id in sa.quick_modes  # last resend out, waiting once more
    assert msg2 not in pair.advance(16)
    assert run.message_id not in sa.quick_modes
    assert spi not in pair.responder._inbound_spis
    assert pair.responder.stats["retransmit_exhausted_quick_mode"] == 1
    assert pair.responder.sa_count == 1  # the phase 1 SA is kept
    # a late HASH(3) finds its message ID used up: refused, no child
    i.handle_quick_mode_2(run, msg2)
    [refusal] = pair.send(i.quick_mode_3(run))
    assert i.read_informational(refusal).first(Notification).notify_type == \
        NotifyType.INVALID_MESSAGE_ID
    assert not pair.of_type(Phase2Established)
    # and a new Quick Mode works
    pair.quick_mode(ids=VPNC_IDS)
    assert len(pair.of_type(Phase2Established)) == 1


# ------------------------------------------------------ A2: identifier sources
def test_injected_cookie_and_spi_factories_keep_engine_rules():
    cookies = iter([bytes(8), b"\x01" * 8, b"\x01" * 8, b"\x02" * 8])
    spis = iter([b"\x00\x00\x00\x05", b"\x00\x00\x10\x00", b"\x00\x00\x10\x00",
                 b"\x00\x00\x20\x00"])
    calls = []

    def cookie_factory(rng):
        calls.append(rng)
        return next(cookies)

    responder = Responder(ResponderPolicy(), rng=seeded_rng(3), cookie_factory=cookie_factory,
                          spi_factory=lambda rng: next(spis))
    # zero cookie refused, then duplicates skipped
    assert responder._new_cookie() == b"\x01" * 8
    assert responder._new_cookie() == b"\x02" * 8
    assert calls[0] is responder._rng
    # SPI below 256 refused, duplicates skipped
    assert responder.new_spi() == b"\x00\x00\x10\x00"
    assert responder.new_spi() == b"\x00\x00\x20\x00"


def test_factory_of_wrong_size_is_a_local_error():
    responder = Responder(ResponderPolicy(), spi_factory=lambda rng: rng(8))
    with pytest.raises(ValueError):
        responder.new_spi()


def test_worker_responder_uses_the_public_factories():
    assert "_new_cookie" not in WorkerResponder.__dict__
    assert "new_spi" not in WorkerResponder.__dict__
    pair = make_pair()
    engine = WorkerResponder(pair.responder.policy, rng=seeded_rng(4), worker_index=2,
                             workers=3)
    pair.responder = engine
    pair.main_mode()
    [sa] = engine._by_id.values()
    assert worker_of_cookie(sa.cky_r, 3) == 2
    pair.quick_mode(ids=VPNC_IDS)
    [child] = pair.of_type(Phase2Established)
    assert worker_of_spi(child.inbound.spi, 3) == 2


# ------------------------------------------------- A3: RESPONDER-LIFETIME, QM
def _responder_lifetime(message: Message):
    return [n for n in message.payloads_of(Notification)
            if n.notify_type == NotifyType.RESPONDER_LIFETIME]


def test_main_mode_6_carries_responder_lifetime_when_shortened():
    pair = make_pair(initiator_kwargs=dict(transforms=[ike_transform(lifetime=28800)]))
    i = pair.initiator
    [r] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(r)
    [r] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(r)
    [msg6] = pair.send(i.main_mode_5())
    [notify] = _responder_lifetime(i.handle_main_mode_6(msg6))
    assert notify.protocol_id == ProtocolId.ISAKMP
    assert notify.spi == i.cky_i + i.cky_r
    # LIFE_TYPE seconds (TV), LIFE_DURATION 10800 (TV: fits 16 bits)
    assert notify.data == (bytes.fromhex("800b") + LifeType.SECONDS.to_bytes(2, "big")
                           + bytes.fromhex("800c") + (3 * 3600).to_bytes(2, "big"))
    [event] = pair.of_type(Phase1Established)
    assert event.lifetime_seconds == 3 * 3600


def test_no_responder_lifetime_when_peer_lifetime_fits():
    pair = make_pair(initiator_kwargs=dict(transforms=[ike_transform(lifetime=3600)]))
    i = pair.initiator
    [r] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(r)
    [r] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(r)
    [msg6] = pair.send(i.main_mode_5())
    assert not _responder_lifetime(i.handle_main_mode_6(msg6))
    assert pair.of_type(Phase1Established)[0].lifetime_seconds == 3600


def test_aggressive_mode_2_carries_responder_lifetime_when_shortened():
    pair = am_pair()
    [msg2] = pair.send(pair.initiator.aggressive_1())
    [notify] = _responder_lifetime(Message.parse(msg2))
    assert int(Phase1Attribute.LIFE_DURATION) == 12 and notify.data.endswith(
        (3 * 3600).to_bytes(2, "big"))
    pair.initiator.handle_aggressive_2(msg2)
    assert pair.send(pair.initiator.aggressive_3()) == []
    assert pair.of_type(Phase1Established)


def test_failed_quick_mode_retransmission_gets_the_same_notify():
    pair = static_pair()
    _, data = pair.initiator.quick_mode_1(ids=VPNC_IDS)  # no static tunnel for these
    [first] = pair.send(data)
    [again] = pair.send(data)
    assert again == first
    message = pair.initiator.read_informational(again)
    assert message.first(Notification).notify_type == NotifyType.INVALID_ID_INFORMATION
    assert message.header.exchange_type == ExchangeType.INFORMATIONAL
    assert pair.responder.stats["error_INVALID_MESSAGE_ID"] == 0
    # the static selectors still work on a new message id
    pair.quick_mode(ids=STATIC_IDS)


# ------------------------------------------------ A4: one error family
@pytest.mark.parametrize("cls, notify", [
    (crypto_errors.InvalidKeyInformation, NotifyType.INVALID_KEY_INFORMATION),
    (crypto_errors.CiphertextMalformed, NotifyType.PAYLOAD_MALFORMED),
    (crypto_errors.InvalidHash, NotifyType.INVALID_HASH_INFORMATION),
    (crypto_errors.AuthenticationFailed, NotifyType.AUTHENTICATION_FAILED),
])
def test_crypto_errors_are_remote_protocol_errors(cls, notify):
    exc = cls("bad")
    assert isinstance(exc, crypto_errors.CryptoError)
    assert isinstance(exc, RemoteProtocolError) and isinstance(exc, ProtocolError)
    assert exc.notify_type == notify and exc.notify == int(notify) and exc.notify_peer
    assert str(exc).startswith("bad")


def test_unsupported_algorithm_is_local_never_sent():
    exc = crypto_errors.UnsupportedAlgorithm("cipher 99")
    assert isinstance(exc, LocalProtocolError) and isinstance(exc, KeyError)
    assert not exc.notify_peer and exc.notify is None
    assert str(exc) == "cipher 99"

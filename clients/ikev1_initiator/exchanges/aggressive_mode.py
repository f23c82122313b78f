"""Aggressive Mode (RFC 2409 §5): everything in message 1, HASH_R in 2, HASH_I in 3."""

from __future__ import annotations

from responder.ikev1.enums import ExchangeType, NotifyType
from responder.ikev1.message import Message
from responder.ikev1.payloads import Hash

from ..core import SessionCore
from ..hooks import Step
from ..states import InvalidTransition, PeerError, State
from . import phase1


def start(s: SessionCore, now: float) -> None:
    s.advance("start_aggressive")
    sa, *vids = phase1.sa_and_vids(s)
    payloads = [sa, *phase1.new_ke_and_nonce(s), phase1.identity(s), *vids]
    datagram, sent = s.emit(Step.AM1, ExchangeType.AGGRESSIVE, payloads)
    phase1.remember_sa_body(s, sent)
    s.expect_reply(datagram, now)


def receive(s: SessionCore, data: bytes, now: float) -> None:
    if s.state is not State.AM1_SENT:
        raise InvalidTransition(s.state, "aggressive_mode_message")
    message = Message.parse(data)
    s.cky_r = message.header.responder_cookie
    phase1.take_sa_choice(s, message)
    if s.p1.chosen.proposal.group != s.config.effective_ike_proposals()[0].group:
        # our KE was computed for the first transform's group (RFC 2409 §5.4)
        raise PeerError("server chose another DH group than our KE", NotifyType.NO_PROPOSAL_CHOSEN)
    phase1.take_ke_and_nonce(s, message)
    phase1.take_natd(s, message)
    phase1.derive_keys(s)
    phase1.verify_hash_r(s, message)
    s.advance("am2")
    s.reply_arrived()
    phase1.float_if_needed(s)
    payloads = [Hash(phase1.hash_i(s)), *phase1.natd(s), *phase1.initial_contact(s)]
    datagram, _ = s.emit(Step.AM3, ExchangeType.AGGRESSIVE, payloads, encrypt=True)
    s.remember_answer(data, [datagram])
    s.am3 = datagram
    phase1.complete(s, now)

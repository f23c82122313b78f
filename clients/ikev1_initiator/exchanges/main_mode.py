"""Main Mode (RFC 2409 §5): SA, then KE/nonce/NAT-D, then the protected ID and HASH."""

from __future__ import annotations

from responder.ikev1.enums import ExchangeType
from responder.ikev1.message import Header, Message
from responder.ikev1.payloads import Hash

from ..core import SessionCore
from ..hooks import Step
from ..states import InvalidTransition, State
from . import phase1


def start(s: SessionCore, now: float) -> None:
    s.advance("start_main")
    datagram, sent = s.emit(Step.MM1, ExchangeType.IDENTITY_PROTECTION, phase1.sa_and_vids(s))
    phase1.remember_sa_body(s, sent)
    s.expect_reply(datagram, now)


def receive(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    handler = HANDLERS.get(s.state)
    if handler is None:
        raise InvalidTransition(s.state, "main_mode_message")
    handler(s, header, data, now)


def _on_mm2(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    message = Message.parse(data)
    s.advance("mm2")
    s.cky_r = header.responder_cookie
    phase1.take_sa_choice(s, message)
    s.reply_arrived()
    payloads = phase1.new_ke_and_nonce(s) + phase1.natd(s)
    datagram, _ = s.emit(Step.MM3, ExchangeType.IDENTITY_PROTECTION, payloads)
    s.remember_answer(data, [datagram])
    s.expect_reply(datagram, now)


def _on_mm4(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    message = Message.parse(data)
    phase1.take_ke_and_nonce(s, message)
    phase1.take_natd(s, message)
    phase1.derive_keys(s)
    s.advance("mm4")
    s.reply_arrived()
    phase1.float_if_needed(s)
    identity = phase1.identity(s)
    payloads = [identity, Hash(phase1.hash_i(s)), *phase1.initial_contact(s)]
    datagram, _ = s.emit(Step.MM5, ExchangeType.IDENTITY_PROTECTION, payloads, encrypt=True)
    s.remember_answer(data, [datagram])
    s.expect_reply(datagram, now)


def _on_mm6(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    message, _ = s.decrypt(header, data)
    phase1.verify_hash_r(s, message)
    s.accept(header, data)
    s.advance("mm6")
    s.reply_arrived()
    phase1.complete(s, now)


#: the server's message each Main Mode state waits for
HANDLERS = {State.MM1_SENT: _on_mm2, State.MM3_SENT: _on_mm4, State.MM5_SENT: _on_mm6}

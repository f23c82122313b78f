"""What every exchange of an initiator session shares: its data, sending with
retransmission, opening protected messages, the state table, failing.

`SessionCore` holds one ISAKMP SA's state; the exchanges (`exchanges/`) are
functions over it, and `session.InitiatorSession` adds the public API and the
dispatch of received messages to them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict, deque
from dataclasses import dataclass

from responder.ikev1.crypto.dh import DHKeyPair
from responder.ikev1.crypto.iv import MessageCipher
from responder.ikev1.crypto.phase1 import Phase1Keys
from responder.ikev1.crypto.phase2 import verify_hash
from responder.ikev1.crypto.prf import HashFunction
from responder.ikev1.enums import ExchangeType, NotifyType, lookup
from responder.ikev1.errors import CodecError
from responder.ikev1.message import Header, Message
from responder.ikev1.natt import NatStatus
from responder.ikev1.natt_framing import NON_ESP_MARKER
from responder.ikev1.payloads import Hash, Payload
from responder.ikev1.vendor_ids import NattVersion

from .config import InitiatorConfig
from .hooks import NO_HOOK, MessageHook, Step
from .keying import decrypt_message, expected_hash1, informational_hash1, seal
from .results import ChildSa, InitiatorEvent, ReceivedModeConfig, SessionFailed, Timings
from .states import PHASE1, TRANSITIONS, Address, Datagram, InvalidTransition, PeerError, Rng, State
from .wire import NegotiatedIke

__all__ = ["NONCE_SIZE", "Phase1Data", "QuickModeData", "SessionCore"]

#: one logger for the session and its exchanges, named after the session module
log = logging.getLogger("clients.ikev1_initiator.session")

NONCE_SIZE = 32  # strongSwan's; RFC 2409 allows 8..256
#: replies remembered so a retransmitted server message gets the same answer
_ANSWER_CACHE_SIZE = 4


@dataclass
class Phase1Data:
    """Phase 1 material; `keys`/`cipher` exist from MM4 / AM2 on."""

    sa_body: bytes = b""
    id_body: bytes = b""
    dh: DHKeyPair | None = None
    ni_b: bytes = b""
    nr_b: bytes = b""
    g_xr: bytes = b""
    chosen: NegotiatedIke | None = None
    prf: HashFunction | None = None
    keys: Phase1Keys | None = None
    cipher: MessageCipher | None = None
    natt: NattVersion | None = None
    nat: NatStatus | None = None
    server_vids: tuple[bytes, ...] = ()
    server_identity: str = ""


@dataclass
class QuickModeData:
    message_id: int
    spi: bytes
    ni_b: bytes
    dh: DHKeyPair | None
    mode: int
    local_selector: str
    remote_selector: str


@dataclass
class Outstanding:
    """Our last request, resent until the answer arrives."""

    datagram: Datagram
    next_at: float
    interval: float
    tries_left: int


class SessionCore:
    """One ISAKMP SA's state and the operations its exchanges share."""

    def __init__(self, config: InitiatorConfig, *, local: Address,
                 local_natt: Address | None = None, rng: Rng = os.urandom,
                 hooks: MessageHook = NO_HOOK, name: str | None = None) -> None:
        self.config = config
        self.local = local
        self.local_natt = local_natt or (local[0], 4500)
        self.rng = rng
        self.hooks = hooks
        self.cky_i = self.new_cookie()
        self.cky_r = bytes(8)
        self.name = name or self.cky_i.hex()[:8]
        self.state = State.IDLE
        self.floated = False
        self.retransmits = 0
        self.completed = False
        self.timings = Timings()
        self.mode_config: ReceivedModeConfig | None = None
        self.children: list[ChildSa] = []  # live ones
        self.children_ever: list[ChildSa] = []  # for the result, also after Delete
        self.error: str | None = None
        self.error_notify: str | None = None
        self.p1 = Phase1Data()
        self.qm: QuickModeData | None = None
        #: AM msg 3 until the server proves it got it (a protected message);
        #: our responder does not retransmit AM msg 2, so we resend msg 3
        self.am3: Datagram | None = None
        self.modecfg_mid: int | None = None
        self.outstanding: Outstanding | None = None
        self.deadline: tuple[float, str] | None = None
        self.answers: OrderedDict[bytes, list[Datagram]] = OrderedDict()
        self.used_mids: set[int] = set()
        #: sequence number of our last R-U-THERE (RFC 3706 §5.4), None before the first
        self.dpd_sequence: int | None = None
        self.outbox: list[Datagram] = []
        self.event_queue: deque[InitiatorEvent] = deque()

    @property
    def server(self) -> Address:
        if self.floated:
            return (self.config.server, self.config.server_natt_port)
        return (self.config.server, self.config.server_port)

    # ------------------------------------------------------------ state table
    def advance(self, event: str) -> None:
        try:
            new_state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise InvalidTransition(self.state, event) from None
        log.debug("[%s] %s --%s--> %s", self.name, self.state.value, event, new_state.value)
        self.state = new_state
        if new_state is State.ESTABLISHED:
            self.completed = True

    # ------------------------------------------------------------ randomness
    def new_cookie(self) -> bytes:
        while True:
            cookie = self.rng(8)
            if cookie != bytes(8):
                return cookie

    def new_message_id(self) -> int:
        while True:
            mid = int.from_bytes(self.rng(4), "big")
            if mid and mid not in self.used_mids:
                self.used_mids.add(mid)
                return mid

    def new_spi(self) -> bytes:
        # RFC 4303 §2.1: SPIs 1..255 are reserved
        while True:
            spi = self.rng(4)
            if int.from_bytes(spi, "big") >= 256:
                return spi

    # ------------------------------------------------------------ sending
    def frame(self, data: bytes) -> Datagram:
        if self.floated:
            return Datagram(NON_ESP_MARKER + data, self.server, natt=True)
        return Datagram(data, self.server, natt=False)

    def emit(self, step: Step, exchange: int, payloads: list[Payload], *, message_id: int = 0,
             encrypt: bool = False) -> tuple[Datagram, list[Payload]]:
        """Hooks, serialise, encrypt, frame, queue. Returns what was sent."""
        payloads = self.hooks.payloads(step, payloads)
        cipher = None
        if encrypt:
            cipher = self.p1.cipher
            assert cipher is not None  # only called in keyed states
        data = seal(self.cky_i, self.cky_r, exchange, payloads, message_id=message_id,
                    cipher=cipher)
        datagram = self.frame(self.hooks.wire(step, data))
        self.outbox.append(datagram)
        return datagram, payloads

    def emit_protected(self, step: Step, exchange: int, message_id: int,
                       payloads: list[Payload]) -> Datagram:
        """HASH(1) = prf(SKEYID_a, M-ID | payloads) first, then the payloads, encrypted."""
        digest = informational_hash1(self.phase1_keys(), message_id, payloads)
        datagram, _ = self.emit(step, exchange, [Hash(digest), *payloads], message_id=message_id,
                                encrypt=True)
        return datagram

    def expect_reply(self, datagram: Datagram, now: float) -> None:
        settings = self.config.retransmit
        self.outstanding = Outstanding(datagram, now + settings.timeout, settings.timeout,
                                       settings.tries)

    def reply_arrived(self) -> None:
        self.outstanding = None

    def remember_answer(self, received: bytes, answers: list[Datagram]) -> None:
        self.answers[hashlib.sha256(received).digest()[:16]] = answers
        while len(self.answers) > _ANSWER_CACHE_SIZE:
            self.answers.popitem(last=False)

    def answer_retransmission(self, received: bytes) -> bool:
        answers = self.answers.get(hashlib.sha256(received).digest()[:16])
        if answers is None:
            return False
        log.debug("[%s] server retransmitted; resending our answer", self.name)
        self.outbox.extend(answers)
        return True

    # ------------------------------------------------------------ receiving
    def decrypt(self, header: Header, data: bytes) -> tuple[Message, bytes]:
        """Decrypt a protected message; the IV chain advances only via `accept`."""
        cipher = self.p1.cipher
        if cipher is None:
            raise PeerError("encrypted message before the keys exist", NotifyType.INVALID_FLAGS)
        message = Message.parse(data)
        if not header.encrypted:
            raise PeerError(f"{lookup(ExchangeType, header.exchange_type).name} not encrypted",
                            NotifyType.INVALID_FLAGS)
        return decrypt_message(cipher, message)

    def accept(self, header: Header, data: bytes) -> None:
        assert self.p1.cipher is not None
        if header.exchange_type != ExchangeType.INFORMATIONAL:
            self.p1.cipher.accept(header.message_id, data[28:])
        self.am3 = None  # the server has the keys: it processed AM msg 3

    def verify_hash1(self, message: Message, plaintext: bytes) -> None:
        """HASH(1) of Informational/Transaction: prf(SKEYID_a, M-ID | rest)."""
        received = message.payloads[0] if message.payloads else None
        if not isinstance(received, Hash):
            raise PeerError("protected message does not start with HASH",
                            NotifyType.INVALID_HASH_INFORMATION)
        expected = expected_hash1(self.phase1_keys(), message.header.message_id, plaintext)
        verify_hash(expected, received.data, "HASH(1)")

    def phase1_keys(self) -> Phase1Keys:
        if self.p1.keys is None:
            raise PeerError("no phase 1 keys yet")
        return self.p1.keys

    # ------------------------------------------------------------ errors
    def log_drop(self, reason: str, exc: Exception | None = None) -> None:
        log.debug("[%s] dropped datagram in state %s: %s%s", self.name, self.state.value,
                  reason, f" ({exc})" if exc else "")

    def refused(self, exc: Exception, now: float) -> None:
        """A message failed a check: fatal in phase 1, dropped afterwards."""
        # PeerError after HASH(2)/HASH(1) verified is authenticated: believe it
        authenticated_refusal = isinstance(exc, PeerError) and self.state in (
            State.QM_SENT, State.MODECFG_SENT, State.XAUTH_WAIT)
        if (self.state in PHASE1 and not isinstance(exc, CodecError)) or authenticated_refusal:
            notify = getattr(exc, "notify", None)
            self.fail(str(exc), now, notify)
            return
        log.warning("[%s] ignored server message in state %s: %s", self.name, self.state.value, exc)

    def fail(self, reason: str, now: float, notify: int | None = None) -> None:
        self.error = reason
        self.error_notify = lookup(NotifyType, notify).name if notify is not None else None
        log.warning("[%s] session failed in state %s: %s", self.name, self.state.value, reason)
        self.advance("fail")
        self.finish(now)
        self.event_queue.append(SessionFailed(reason, self.error_notify))

    def finish(self, now: float) -> None:
        self.timings.ended = now
        self.outstanding = None
        self.deadline = None

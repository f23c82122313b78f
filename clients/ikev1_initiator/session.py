"""The sans-I/O IKEv1 initiator session (aioquic / h11 style).

    session = InitiatorSession(config, local=("198.18.1.5", 500), rng=os.urandom)
    for d in session.start(now): send(d)             # Datagram(data, remote, natt)
    session.receive_datagram(data, now, natt=False)  # natt: it came on the NAT-T socket
    session.handle_timer(now)                        # when now >= session.get_timer()
    session.datagrams_to_send(); session.next_event(); session.result()
    session.close(now)                               # Delete for children and phase 1

No sockets, no clock reads, no global state, randomness from `rng(n)`.
One session = one ISAKMP SA and the exchanges on it, driven by a state table
(`TRANSITIONS`, data, as in h11's `_state.py`): a message that does not fit the
current state is an `InvalidTransition`, logged and dropped.

Order of a remote-access login, as the strongSwan client does it: phase 1
(Main or Aggressive Mode, NAT-D, float to 4500) -> the server's Xauth REQUEST
answered, SET acknowledged -> Mode-Config pull -> Quick Mode. Without Xauth
credentials the session goes straight on; without Mode-Config the selectors
come from the configuration (static tunnels).

Errors: peer faults during phase 1 (wrong HASH_R, unoffered transform, bad KE,
an error notify) fail the session; after phase 1 a message that does not
decrypt or verify is dropped (it may be forged), as strongSwan does.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator

from responder.ikev1.crypto.cipher import cipher_algorithm
from responder.ikev1.crypto.dh import DHKeyPair, dh_group
from responder.ikev1.crypto.errors import CryptoError
from responder.ikev1.crypto.export import wireshark_ikev1_decryption_line
from responder.ikev1.crypto.iv import IVStore, MessageCipher
from responder.ikev1.crypto.phase1 import Phase1Keys
from responder.ikev1.crypto.phase2 import (
    EspTransform as EspKeying,
    derive_esp_keys,
    informational_hash,
    quick_mode_hash1,
    quick_mode_hash2,
    quick_mode_hash3,
    verify_hash,
)
from responder.ikev1.crypto.prf import HashAlgorithm as Prf, hash_algorithm
from responder.ikev1.enums import (
    CfgType,
    ConfigAttribute,
    ExchangeType,
    HeaderFlag,
    NotifyType,
    ProtocolId,
    XauthStatus,
    lookup,
)
from responder.ikev1.errors import CodecError
from responder.ikev1.message import Header, Message, parse_header, serialize_with_body
from responder.ikev1.natt import NatStatus, build_natd_hashes, detect_nat, floats_to_4500, natd_payload_type
from responder.ikev1.natt_framing import NON_ESP_MARKER, Port4500Kind, classify_port4500
from responder.ikev1.payloads import (
    AttributePayload,
    DataAttribute,
    Delete,
    Hash,
    Identification,
    KeyExchange,
    NatDiscovery,
    Nonce,
    Notification,
    Payload,
    SecurityAssociation,
    VendorId,
    serialize_payloads,
)
from responder.ikev1.vendor_ids import NattVersion, peer_features, recognize

from .config import InitiatorConfig, Mode, NattMode
from .hooks import NO_HOOK, MessageHook, Step
from .results import (
    ChildSa,
    ChildSaDeleted,
    ChildSaUp,
    ConfigReceived,
    DpdAnswered,
    DpdRequest,
    InitiatorEvent,
    ReceivedModeConfig,
    Phase1Up,
    SessionClosed,
    SessionFailed,
    SessionResult,
    Timings,
    XauthDone,
)
from .wire import (
    NegotiatedIke,
    ProposalMismatch,
    encapsulation_mode,
    esp_sa,
    mode_config_from_attributes,
    payload_chain_after_first,
    phase1_sa,
    read_esp_choice,
    read_phase1_choice,
    request_attributes,
    selector_payload,
    selector_text,
    vendor_ids_for,
)

__all__ = [
    "Address",
    "Datagram",
    "State",
    "TRANSITIONS",
    "InitiatorError",
    "InvalidTransition",
    "PeerError",
    "InitiatorSession",
]

log = logging.getLogger(__name__)

Address = tuple[str, int]
Rng = Callable[[int], bytes]

NONCE_SIZE = 32  # strongSwan's; RFC 2409 allows 8..256
#: replies remembered so a retransmitted server message gets the same answer
_ANSWER_CACHE_SIZE = 4
#: Notify types below this are errors (RFC 2408 §3.14.1), the rest status
_FIRST_STATUS_NOTIFY = 8192


@dataclass(frozen=True)
class Datagram:
    """One UDP payload to send. `natt`: from the NAT-T socket, to the server's
    NAT-T port; `data` then already starts with the non-ESP marker."""

    data: bytes
    remote: Address
    natt: bool = False


# ============================================================== errors
class InitiatorError(Exception):
    """Base of the initiator's errors."""


class InvalidTransition(InitiatorError):
    """No (state, event) row in TRANSITIONS: an out-of-order message or call."""

    def __init__(self, state: "State", event: str) -> None:
        super().__init__(f"no transition from state {state.value!r} on event {event!r}")
        self.state = state
        self.event = event


class PeerError(InitiatorError):
    """The server sent something we refuse; `notify` names the fault."""

    def __init__(self, message: str, notify: NotifyType | int | None = None) -> None:
        super().__init__(message)
        self.notify = notify

    @property
    def notify_name(self) -> str | None:
        return lookup(NotifyType, self.notify).name if self.notify is not None else None


# ============================================================== states
class State(str, Enum):
    IDLE = "idle"
    MM1_SENT = "mm1_sent"
    MM3_SENT = "mm3_sent"
    MM5_SENT = "mm5_sent"
    AM1_SENT = "am1_sent"
    PHASE1_UP = "phase1_up"  # transient: decides what follows phase 1
    XAUTH_WAIT = "xauth_wait"  # for the server's REQUEST
    XAUTH_REPLIED = "xauth_replied"  # for its SET (status)
    XAUTH_DONE = "xauth_done"  # transient
    MODECFG_SENT = "modecfg_sent"
    CONFIG_DONE = "config_done"  # transient
    QM_SENT = "qm_sent"
    ESTABLISHED = "established"
    CLOSED = "closed"
    FAILED = "failed"


_TERMINAL = frozenset({State.CLOSED, State.FAILED})
#: states where the phase 1 keys exist and Delete can be sent
_KEYED = frozenset({State.PHASE1_UP, State.XAUTH_WAIT, State.XAUTH_REPLIED, State.XAUTH_DONE,
                    State.MODECFG_SENT, State.CONFIG_DONE, State.QM_SENT, State.ESTABLISHED})
_PHASE1 = frozenset({State.MM1_SENT, State.MM3_SENT, State.MM5_SENT, State.AM1_SENT})


def _transitions() -> dict[tuple[State, str], State]:
    table = {
        (State.IDLE, "start_main"): State.MM1_SENT,
        (State.IDLE, "start_aggressive"): State.AM1_SENT,
        (State.MM1_SENT, "mm2"): State.MM3_SENT,
        (State.MM3_SENT, "mm4"): State.MM5_SENT,
        (State.MM5_SENT, "mm6"): State.PHASE1_UP,
        (State.AM1_SENT, "am2"): State.PHASE1_UP,
        (State.PHASE1_UP, "await_xauth"): State.XAUTH_WAIT,
        (State.XAUTH_WAIT, "xauth_request"): State.XAUTH_REPLIED,
        # a server may ask again after a failed attempt (new message ID)
        (State.XAUTH_REPLIED, "xauth_request"): State.XAUTH_REPLIED,
        (State.XAUTH_REPLIED, "xauth_success"): State.XAUTH_DONE,
        (State.XAUTH_REPLIED, "xauth_failure"): State.FAILED,
        (State.MODECFG_SENT, "config_received"): State.CONFIG_DONE,
        (State.QM_SENT, "qm2"): State.ESTABLISHED,
        (State.ESTABLISHED, "start_quick_mode"): State.QM_SENT,
    }
    for state in (State.PHASE1_UP, State.XAUTH_DONE):
        table[(state, "request_config")] = State.MODECFG_SENT
    for state in (State.PHASE1_UP, State.XAUTH_DONE, State.CONFIG_DONE):
        table[(state, "start_quick_mode")] = State.QM_SENT
        table[(state, "phase1_only")] = State.ESTABLISHED
    for state in State:
        if state not in _TERMINAL:
            table[(state, "close")] = State.CLOSED
            table[(state, "peer_delete")] = State.CLOSED
            table[(state, "fail")] = State.FAILED
    return table


#: (state, event) -> next state; docs can be generated from it
TRANSITIONS: dict[tuple[State, str], State] = _transitions()


# ============================================================== per-SA data
@dataclass
class _Phase1:
    """Phase 1 material; `keys`/`cipher` exist from MM4 / AM2 on."""

    sa_body: bytes = b""
    id_body: bytes = b""
    dh: DHKeyPair | None = None
    ni_b: bytes = b""
    nr_b: bytes = b""
    g_xr: bytes = b""
    chosen: NegotiatedIke | None = None
    prf: Prf | None = None
    keys: Phase1Keys | None = None
    cipher: MessageCipher | None = None
    natt: NattVersion | None = None
    nat: NatStatus | None = None
    server_vids: tuple[bytes, ...] = ()
    server_identity: str = ""


@dataclass
class _QuickMode:
    message_id: int
    spi: bytes
    ni_b: bytes
    dh: DHKeyPair | None
    mode: int
    local_selector: str
    remote_selector: str


@dataclass
class _Outstanding:
    """Our last request, resent until the answer arrives."""

    datagram: Datagram
    next_at: float
    interval: float
    tries_left: int


# ============================================================== the session
class InitiatorSession:
    """One IKEv1 initiator: one ISAKMP SA and the exchanges on it."""

    def __init__(self, config: InitiatorConfig, *, local: Address,
                 local_natt: Address | None = None, rng: Rng = os.urandom,
                 hooks: MessageHook = NO_HOOK, name: str | None = None) -> None:
        self.config = config
        self.local = local
        self.local_natt = local_natt or (local[0], 4500)
        self._rng = rng
        self._hooks = hooks
        self.cky_i = self._new_cookie()
        self.cky_r = bytes(8)
        self.name = name or self.cky_i.hex()[:8]
        self.state = State.IDLE
        self.floated = False
        self.retransmits = 0
        self.completed = False
        self.timings = Timings()
        self.mode_config: ReceivedModeConfig | None = None
        self.children: list[ChildSa] = []  # live ones
        self._children_ever: list[ChildSa] = []  # for the result, also after Delete
        self.error: str | None = None
        self.error_notify: str | None = None
        self._p1 = _Phase1()
        self._qm: _QuickMode | None = None
        #: AM msg 3 until the server proves it got it (a protected message);
        #: our responder does not retransmit AM msg 2, so we resend msg 3
        self._am3: Datagram | None = None
        self._modecfg_mid: int | None = None
        self._outstanding: _Outstanding | None = None
        self._deadline: tuple[float, str] | None = None
        self._answers: OrderedDict[bytes, list[Datagram]] = OrderedDict()
        self._used_mids: set[int] = set()
        #: sequence number of our last R-U-THERE (RFC 3706 §5.4), None before the first
        self._dpd_sequence: int | None = None
        self._out: list[Datagram] = []
        self._events: deque[InitiatorEvent] = deque()

    # ------------------------------------------------------------ public API
    def start(self, now: float) -> list[Datagram]:
        """Send the first phase 1 message; returns the datagrams to send."""
        self.timings.started = now
        if self.config.mode is Mode.AGGRESSIVE:
            self._advance("start_aggressive")
            self._send_am1(now)
        else:
            self._advance("start_main")
            self._send_mm1(now)
        return self.datagrams_to_send()

    def receive_datagram(self, data: bytes, now: float, *, natt: bool = False) -> None:
        """One UDP payload from the server; `natt` when it came on the NAT-T socket."""
        message = self._unframe(data, natt)
        if message is None or self.state in _TERMINAL:
            return
        try:
            header = parse_header(message)
        except CodecError as exc:
            self._log_drop("malformed header", exc)
            return
        if header.initiator_cookie != self.cky_i:
            self._log_drop("not our cookie")
            return
        if self._answer_retransmission(message):
            return
        try:
            self._dispatch(header, message, now)
        except InvalidTransition as exc:
            self._log_drop("out of order", exc)
        except (PeerError, CryptoError, CodecError) as exc:
            self._refused(exc, now)

    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        times = []
        if self._outstanding is not None:
            times.append(self._outstanding.next_at)
        if self._deadline is not None:
            times.append(self._deadline[0])
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        if self.state in _TERMINAL:
            return
        if self._deadline is not None and now >= self._deadline[0]:
            self._fail(self._deadline[1], now)
            return
        outstanding = self._outstanding
        if outstanding is None or now < outstanding.next_at:
            return
        if outstanding.tries_left <= 0:
            self._fail(f"no answer in state {self.state.value} (retransmissions exhausted)", now)
            return
        outstanding.tries_left -= 1
        outstanding.interval *= self.config.retransmit.backoff
        outstanding.next_at = now + outstanding.interval
        self.retransmits += 1
        log.debug("[%s] retransmit in state %s", self.name, self.state.value)
        if self._am3 is not None and outstanding.datagram is not self._am3:
            self._out.append(self._am3)  # the request cannot succeed without it
        self._out.append(outstanding.datagram)

    def next_event(self) -> InitiatorEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[InitiatorEvent]:
        while self._events:
            yield self._events.popleft()

    def start_quick_mode(self, now: float) -> None:
        """Another Quick Mode on the established phase 1 (e.g. a rekey)."""
        self._send_qm1(now)

    def send_dpd(self, now: float) -> int:
        """Send one R-U-THERE (RFC 3706 §5.1) on the phase 1 SA; a matching
        R-U-THERE-ACK becomes a `DpdAnswered` event. Returns the sequence number."""
        if self.state not in _KEYED:
            raise InvalidTransition(self.state, "send_dpd")
        if self._dpd_sequence is None:
            self._dpd_sequence = int.from_bytes(self._rng(4), "big") & 0x7FFFFFFF or 1
        else:
            self._dpd_sequence = (self._dpd_sequence + 1) & 0xFFFFFFFF
        probe = Notification(NotifyType.R_U_THERE, spi=self.cky_i + self.cky_r,
                             data=self._dpd_sequence.to_bytes(4, "big"))
        self._emit_protected(Step.DPD_PROBE, ExchangeType.INFORMATIONAL, self._new_message_id(),
                             [probe], informational=True)
        return self._dpd_sequence

    def decryption_line(self) -> str | None:
        """The phase 1 keys as a line of Wireshark's IKEv1 decryption table (for
        reading a capture of this session); None before the keys exist."""
        if self._p1.keys is None:
            return None
        return wireshark_ikev1_decryption_line(self.cky_i, self._p1.keys.encryption_key)

    def close(self, now: float) -> None:
        """Delete every child SA and the phase 1 SA (if keyed), then stop."""
        if self.state in _TERMINAL:
            return
        if self.state in _KEYED:
            self._send_deletes()
        self._advance("close")
        self._finish(now)
        self._events.append(SessionClosed("local-close"))

    def abort(self, now: float, reason: str) -> None:
        """Give up (e.g. a driver-level timeout): Delete if keyed, then fail."""
        if self.state in _TERMINAL:
            return
        if self.state in _KEYED:
            self._send_deletes()
        self._fail(reason, now)

    @property
    def established(self) -> bool:
        return self.state is State.ESTABLISHED

    @property
    def finished(self) -> bool:
        return self.state in _TERMINAL

    @property
    def server(self) -> Address:
        if self.floated:
            return (self.config.server, self.config.server_natt_port)
        return (self.config.server, self.config.server_port)

    def result(self) -> SessionResult:
        return SessionResult(
            state=self.state.value, established=self.established, completed=self.completed,
            error=self.error,
            notify=self.error_notify, config=self.mode_config, children=list(self._children_ever),
            timings=self.timings, retransmits=self.retransmits, floated=self.floated,
            cookies=f"{self.cky_i.hex()}/{self.cky_r.hex()}")

    # ------------------------------------------------------------ state table
    def _advance(self, event: str) -> None:
        try:
            new_state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise InvalidTransition(self.state, event) from None
        log.debug("[%s] %s --%s--> %s", self.name, self.state.value, event, new_state.value)
        self.state = new_state
        if new_state is State.ESTABLISHED:
            self.completed = True

    # ------------------------------------------------------------ randomness
    def _new_cookie(self) -> bytes:
        while True:
            cookie = self._rng(8)
            if cookie != bytes(8):
                return cookie

    def _new_message_id(self) -> int:
        while True:
            mid = int.from_bytes(self._rng(4), "big")
            if mid and mid not in self._used_mids:
                self._used_mids.add(mid)
                return mid

    def _new_spi(self) -> bytes:
        # RFC 4303 §2.1: SPIs 1..255 are reserved
        while True:
            spi = self._rng(4)
            if int.from_bytes(spi, "big") >= 256:
                return spi

    # ------------------------------------------------------------ sending
    def _frame(self, data: bytes) -> Datagram:
        if self.floated:
            return Datagram(NON_ESP_MARKER + data, self.server, natt=True)
        return Datagram(data, self.server, natt=False)

    def _emit(self, step: Step, exchange: int, payloads: list[Payload], *, message_id: int = 0,
              encrypt: bool = False, informational: bool = False) -> tuple[Datagram, list[Payload]]:
        """Hooks, serialise, encrypt, frame, queue. Returns what was sent."""
        payloads = self._hooks.payloads(step, payloads)
        first, body = serialize_payloads(payloads)
        flags = 0
        if encrypt:
            cipher = self._p1.cipher
            assert cipher is not None  # only called in keyed states
            body = (cipher.encrypt_informational(message_id, body) if informational
                    else cipher.encrypt(message_id, body))
            flags = HeaderFlag.ENCRYPTION
        header = Header(self.cky_i, self.cky_r, exchange, flags, message_id)
        data = self._hooks.wire(step, serialize_with_body(header, first, body))
        datagram = self._frame(data)
        self._out.append(datagram)
        return datagram, payloads

    def _emit_protected(self, step: Step, exchange: int, message_id: int,
                        payloads: list[Payload], *, informational: bool = False) -> Datagram:
        """HASH(1) = prf(SKEYID_a, M-ID | payloads) first, then the payloads, encrypted."""
        _, chain = serialize_payloads(payloads)
        keys = self._keys()
        digest = informational_hash(keys.prf, keys.skeyid_a, message_id, chain)
        datagram, _ = self._emit(step, exchange, [Hash(digest), *payloads], message_id=message_id,
                                 encrypt=True, informational=informational)
        return datagram

    def _expect_reply(self, datagram: Datagram, now: float) -> None:
        settings = self.config.retransmit
        self._outstanding = _Outstanding(datagram, now + settings.timeout, settings.timeout,
                                         settings.tries)

    def _reply_arrived(self) -> None:
        self._outstanding = None

    def _remember_answer(self, received: bytes, answers: list[Datagram]) -> None:
        self._answers[hashlib.sha256(received).digest()[:16]] = answers
        while len(self._answers) > _ANSWER_CACHE_SIZE:
            self._answers.popitem(last=False)

    def _answer_retransmission(self, received: bytes) -> bool:
        answers = self._answers.get(hashlib.sha256(received).digest()[:16])
        if answers is None:
            return False
        log.debug("[%s] server retransmitted; resending our answer", self.name)
        self._out.extend(answers)
        return True

    # ------------------------------------------------------------ receiving
    def _unframe(self, data: bytes, natt: bool) -> bytes | None:
        if not natt:
            return data
        try:
            kind, content = classify_port4500(data)
        except CodecError as exc:
            self._log_drop("short datagram on the NAT-T port", exc)
            return None
        if kind is not Port4500Kind.IKE:
            return None  # ESP and keepalives are not ours to handle
        return content

    def _dispatch(self, header: Header, data: bytes, now: float) -> None:
        exchange = header.exchange_type
        if exchange == ExchangeType.INFORMATIONAL:
            self._on_informational(header, data, now)
        elif header.responder_cookie != self.cky_r and self.state not in (State.MM1_SENT, State.AM1_SENT):
            self._log_drop("wrong responder cookie")
        elif exchange == ExchangeType.IDENTITY_PROTECTION:
            self._on_main_mode(header, data, now)
        elif exchange == ExchangeType.AGGRESSIVE:
            self._on_aggressive_mode(data, now)
        elif exchange == ExchangeType.TRANSACTION:
            self._on_transaction(header, data, now)
        elif exchange == ExchangeType.QUICK_MODE:
            self._on_quick_mode(header, data, now)
        else:
            self._log_drop(f"exchange type {exchange}")

    def _decrypt(self, header: Header, data: bytes) -> tuple[Message, bytes]:
        """Decrypt a protected message; the IV chain advances only via `_accept`."""
        cipher = self._p1.cipher
        if cipher is None:
            raise PeerError("encrypted message before the keys exist", NotifyType.INVALID_FLAGS)
        message = Message.parse(data)
        if not header.encrypted:
            raise PeerError(f"{lookup(ExchangeType, header.exchange_type).name} not encrypted",
                            NotifyType.INVALID_FLAGS)
        mid = header.message_id
        if header.exchange_type == ExchangeType.INFORMATIONAL:
            plaintext = cipher.decrypt_informational(mid, message.body)
        else:
            plaintext = cipher.decrypt(mid, message.body)
        return message.payloads_from_plaintext(plaintext), plaintext

    def _accept(self, header: Header, data: bytes) -> None:
        assert self._p1.cipher is not None
        if header.exchange_type != ExchangeType.INFORMATIONAL:
            self._p1.cipher.accept(header.message_id, data[28:])
        self._am3 = None  # the server has the keys: it processed AM msg 3

    def _verify_hash1(self, message: Message, plaintext: bytes) -> None:
        """HASH(1) of Informational/Transaction: prf(SKEYID_a, M-ID | rest)."""
        received = message.payloads[0] if message.payloads else None
        if not isinstance(received, Hash):
            raise PeerError("protected message does not start with HASH", NotifyType.INVALID_HASH_INFORMATION)
        keys = self._keys()
        expected = informational_hash(keys.prf, keys.skeyid_a, message.header.message_id,
                                      payload_chain_after_first(plaintext))
        verify_hash(expected, received.data, "HASH(1)")

    def _keys(self) -> Phase1Keys:
        if self._p1.keys is None:
            raise PeerError("no phase 1 keys yet")
        return self._p1.keys

    # ------------------------------------------------------------ errors
    def _log_drop(self, reason: str, exc: Exception | None = None) -> None:
        log.debug("[%s] dropped datagram in state %s: %s%s", self.name, self.state.value,
                  reason, f" ({exc})" if exc else "")

    def _refused(self, exc: Exception, now: float) -> None:
        """A message failed a check: fatal in phase 1, dropped afterwards."""
        # PeerError after HASH(2)/HASH(1) verified is authenticated: believe it
        authenticated_refusal = isinstance(exc, PeerError) and self.state in (
            State.QM_SENT, State.MODECFG_SENT, State.XAUTH_WAIT)
        if (self.state in _PHASE1 and not isinstance(exc, CodecError)) or authenticated_refusal:
            notify = getattr(exc, "notify", None)
            self._fail(str(exc), now, notify)
            return
        log.warning("[%s] ignored server message in state %s: %s", self.name, self.state.value, exc)

    def _fail(self, reason: str, now: float, notify: int | None = None) -> None:
        self.error = reason
        self.error_notify = lookup(NotifyType, notify).name if notify is not None else None
        log.warning("[%s] session failed in state %s: %s", self.name, self.state.value, reason)
        self._advance("fail")
        self._finish(now)
        self._events.append(SessionFailed(reason, self.error_notify))

    def _finish(self, now: float) -> None:
        self.timings.ended = now
        self._outstanding = None
        self._deadline = None

    # ============================================================ phase 1
    def _sa_and_vids(self) -> list[Payload]:
        return [phase1_sa(self.config.effective_ike_proposals()),
                *[VendorId(v) for v in vendor_ids_for(self.config)]]

    def _remember_sa_body(self, sent: list[Payload]) -> None:
        # HASH_I covers the SA payload as sent, hooks included (RFC 2409 §5)
        sa = next((p for p in sent if isinstance(p, SecurityAssociation)), None)
        self._p1.sa_body = sa.serialize() if sa is not None else b""

    def _new_ke_and_nonce(self) -> list[Payload]:
        group = self.config.effective_ike_proposals()[0].group
        if self._p1.chosen is not None:
            group = self._p1.chosen.proposal.group
        self._p1.dh = dh_group(group).generate(self._rng)
        self._p1.ni_b = self._rng(NONCE_SIZE)
        return [KeyExchange(self._p1.dh.public_bytes), Nonce(self._p1.ni_b)]

    def _identity(self) -> Identification:
        identity = self.config.identity.payload()
        self._p1.id_body = identity.serialize()
        return identity

    def _take_sa_choice(self, message: Message) -> None:
        sa = message.first(SecurityAssociation)
        try:
            self._p1.chosen = read_phase1_choice(sa, self.config.effective_ike_proposals())
        except ProposalMismatch as exc:
            raise PeerError(str(exc), NotifyType.NO_PROPOSAL_CHOSEN) from None
        self._p1.prf = hash_algorithm(self._p1.chosen.proposal.hash)
        self._p1.server_vids = tuple(p.data for p in message.payloads_of(VendorId))
        offered = set(self.config.natt_versions)
        version = peer_features(self._p1.server_vids).natt_version
        self._p1.natt = version if version in offered else None

    def _take_ke_and_nonce(self, message: Message) -> None:
        ke, nonce = message.first(KeyExchange), message.first(Nonce)
        if ke is None or nonce is None:
            raise PeerError("KE or nonce missing", NotifyType.PAYLOAD_MALFORMED)
        self._p1.g_xr, self._p1.nr_b = ke.key_data, nonce.data

    def _derive_phase1_keys(self) -> None:
        p1 = self._p1
        assert p1.dh is not None and p1.chosen is not None and p1.prf is not None
        proposal = p1.chosen.proposal
        cipher = cipher_algorithm(proposal.encryption)
        p1.keys = Phase1Keys.derive_pre_shared_key(
            prf=p1.prf, cipher=cipher, key_size=cipher.key_size(proposal.key_length or None),
            psk=self.config.psk, ni_b=p1.ni_b, nr_b=p1.nr_b,
            shared_secret=p1.dh.compute_shared(p1.g_xr), cky_i=self.cky_i, cky_r=self.cky_r)
        iv = p1.keys.initial_iv(p1.dh.public_bytes, p1.g_xr)
        p1.cipher = MessageCipher(cipher, p1.keys.encryption_key,
                                  IVStore(p1.prf, cipher.block_size, iv))

    # ---- NAT-T
    def _natd_payloads(self) -> list[Payload]:
        p1 = self._p1
        if p1.natt is None or p1.prf is None:
            return []
        hashes = build_natd_hashes(p1.prf, self.cky_i, self.cky_r, local=self.local,
                                   remote=(self.config.server, self.config.server_port),
                                   force_encap=self.config.natt is NattMode.FORCE, rng=self._rng)
        payload_type = natd_payload_type(p1.natt)
        return [NatDiscovery(h, payload_type) for h in hashes]

    def _take_natd(self, message: Message) -> None:
        p1 = self._p1
        if p1.natt is None or p1.prf is None:
            return
        received = [p.hash_data for p in message.payloads_of(NatDiscovery)]
        p1.nat = detect_nat(p1.prf, self.cky_i, self.cky_r, received, local=self.local,
                            remote=(self.config.server, self.config.server_port),
                            force_encap=self.config.natt is NattMode.FORCE)

    def _float_if_needed(self) -> None:
        """RFC 3947 §4: move to port 4500 once a NAT is seen (or forced)."""
        p1 = self._p1
        nat_seen = p1.nat is not None and p1.nat.any
        if floats_to_4500(p1.natt) and (nat_seen or self.config.natt is NattMode.FORCE):
            self.floated = True

    def _initial_contact(self) -> list[Payload]:
        if not self.config.initial_contact:
            return []
        return [Notification(NotifyType.INITIAL_CONTACT, spi=self.cky_i + self.cky_r)]

    # ---- Main Mode
    def _send_mm1(self, now: float) -> None:
        datagram, sent = self._emit(Step.MM1, ExchangeType.IDENTITY_PROTECTION, self._sa_and_vids())
        self._remember_sa_body(sent)
        self._expect_reply(datagram, now)

    def _on_main_mode(self, header: Header, data: bytes, now: float) -> None:
        handlers = {State.MM1_SENT: self._on_mm2, State.MM3_SENT: self._on_mm4,
                    State.MM5_SENT: self._on_mm6}
        handler = handlers.get(self.state)
        if handler is None:
            raise InvalidTransition(self.state, "main_mode_message")
        handler(header, data, now)

    def _on_mm2(self, header: Header, data: bytes, now: float) -> None:
        message = Message.parse(data)
        self._advance("mm2")
        self.cky_r = header.responder_cookie
        self._take_sa_choice(message)
        self._reply_arrived()
        payloads = self._new_ke_and_nonce() + self._natd_payloads()
        datagram, _ = self._emit(Step.MM3, ExchangeType.IDENTITY_PROTECTION, payloads)
        self._remember_answer(data, [datagram])
        self._expect_reply(datagram, now)

    def _on_mm4(self, header: Header, data: bytes, now: float) -> None:
        message = Message.parse(data)
        self._take_ke_and_nonce(message)
        self._take_natd(message)
        self._derive_phase1_keys()
        self._advance("mm4")
        self._reply_arrived()
        self._float_if_needed()
        keys, p1 = self._keys(), self._p1
        identity = self._identity()
        hash_i = keys.hash_i(g_xi=p1.dh.public_bytes, g_xr=p1.g_xr, sai_b=p1.sa_body,
                             idii_b=p1.id_body)
        payloads = [identity, Hash(hash_i), *self._initial_contact()]
        datagram, _ = self._emit(Step.MM5, ExchangeType.IDENTITY_PROTECTION, payloads, encrypt=True)
        self._remember_answer(data, [datagram])
        self._expect_reply(datagram, now)

    def _on_mm6(self, header: Header, data: bytes, now: float) -> None:
        message, _ = self._decrypt(header, data)
        self._verify_hash_r(message)
        self._accept(header, data)
        self._advance("mm6")
        self._reply_arrived()
        self._phase1_complete(now)

    def _verify_hash_r(self, message: Message) -> None:
        identity, digest = message.first(Identification), message.first(Hash)
        if identity is None or digest is None:
            raise PeerError("IDir or HASH_R missing", NotifyType.PAYLOAD_MALFORMED)
        p1 = self._p1
        self._keys().verify_hash_r(digest.data, g_xi=p1.dh.public_bytes, g_xr=p1.g_xr,
                                   sai_b=p1.sa_body, idir_b=identity.serialize())
        p1.server_identity = str(identity)

    # ---- Aggressive Mode
    def _send_am1(self, now: float) -> None:
        sa, *vids = self._sa_and_vids()
        payloads = [sa, *self._new_ke_and_nonce(), self._identity(), *vids]
        datagram, sent = self._emit(Step.AM1, ExchangeType.AGGRESSIVE, payloads)
        self._remember_sa_body(sent)
        self._expect_reply(datagram, now)

    def _on_aggressive_mode(self, data: bytes, now: float) -> None:
        if self.state is not State.AM1_SENT:
            raise InvalidTransition(self.state, "aggressive_mode_message")
        message = Message.parse(data)
        self.cky_r = message.header.responder_cookie
        self._take_sa_choice(message)
        if self._p1.chosen.proposal.group != self.config.effective_ike_proposals()[0].group:
            # our KE was computed for the first transform's group (RFC 2409 §5.4)
            raise PeerError("server chose another DH group than our KE", NotifyType.NO_PROPOSAL_CHOSEN)
        self._take_ke_and_nonce(message)
        self._take_natd(message)
        self._derive_phase1_keys()
        self._verify_hash_r(message)
        self._advance("am2")
        self._reply_arrived()
        self._float_if_needed()
        p1 = self._p1
        hash_i = self._keys().hash_i(g_xi=p1.dh.public_bytes, g_xr=p1.g_xr, sai_b=p1.sa_body,
                                     idii_b=p1.id_body)
        payloads = [Hash(hash_i), *self._natd_payloads(), *self._initial_contact()]
        datagram, _ = self._emit(Step.AM3, ExchangeType.AGGRESSIVE, payloads, encrypt=True)
        self._remember_answer(data, [datagram])
        self._am3 = datagram
        self._phase1_complete(now)

    # ---- after phase 1
    def _phase1_complete(self, now: float) -> None:
        p1 = self._p1
        self.timings.phase1 = now
        names = []
        for vid in p1.server_vids:
            known = recognize(vid)
            names.append(known.name if known else vid.hex())
        self._events.append(Phase1Up(
            exchange=self.config.mode.value, transform=p1.chosen.describe(),
            natt_version=p1.natt.value if p1.natt else None,
            nat_detected=bool(p1.nat and p1.nat.any), floated=self.floated,
            server_vendor_ids=tuple(names)))
        log.info("[%s] phase 1 up (%s mode, %s%s)", self.name, self.config.mode.value,
                 p1.chosen.describe(), ", floated to 4500" if self.floated else "")
        if self.config.wants_xauth:
            self._advance("await_xauth")
            self._deadline = (now + self.config.xauth_wait_timeout,
                              "the server did not start Xauth")
            if self._am3 is not None:
                self._expect_reply(self._am3, now)
            return
        self._after_authentication(now)

    def _after_authentication(self, now: float) -> None:
        """Phase 1 (and Xauth, if any) done: Mode-Config, then Quick Mode."""
        if self.config.mode_config:
            self._send_modecfg_request(now)
        else:
            self._after_config(now)

    def _after_config(self, now: float) -> None:
        if self.config.quick_mode:
            self._send_qm1(now)
        else:
            self._advance("phase1_only")

    # ============================================================ Transaction
    def _on_transaction(self, header: Header, data: bytes, now: float) -> None:
        message, plaintext = self._decrypt(header, data)
        self._verify_hash1(message, plaintext)
        self._accept(header, data)
        attributes = message.first(AttributePayload)
        if attributes is None:
            raise PeerError("Transaction without attribute payload", NotifyType.PAYLOAD_MALFORMED)
        kind = attributes.cfg_type
        status = attributes.attribute(ConfigAttribute.XAUTH_STATUS)
        if kind == CfgType.REQUEST and attributes.attribute(ConfigAttribute.XAUTH_USER_NAME):
            self._on_xauth_request(header, data, attributes)
        elif kind == CfgType.SET and status is not None:
            self._on_xauth_status(header, data, attributes, status, now)
        elif kind == CfgType.SET:
            self._on_config_push(header, data, attributes, now)
        elif kind == CfgType.REPLY and header.message_id == self._modecfg_mid:
            self._on_config_reply(attributes, now)
        else:
            self._log_drop(f"Transaction {lookup(CfgType, kind).name} not expected")

    def _on_xauth_request(self, header: Header, data: bytes, request: AttributePayload) -> None:
        if not self.config.wants_xauth:
            raise PeerError("Xauth requested but no credentials configured")
        self._advance("xauth_request")
        self._deadline = None
        self._reply_arrived()
        reply = AttributePayload(CfgType.REPLY, request.identifier, self._xauth_answers(request))
        datagram = self._emit_protected(Step.XAUTH_REPLY, ExchangeType.TRANSACTION,
                                        header.message_id, [reply])
        self._remember_answer(data, [datagram])

    def _xauth_answers(self, request: AttributePayload) -> list[DataAttribute]:
        answers: list[DataAttribute] = []
        for attribute in request.attributes:
            if attribute.attr_type == ConfigAttribute.XAUTH_TYPE:
                answers.append(DataAttribute(attribute.attr_type, attribute.value))
            elif attribute.attr_type == ConfigAttribute.XAUTH_USER_NAME:
                answers.append(DataAttribute.tlv(attribute.attr_type,
                                                 (self.config.xauth_user or "").encode()))
            elif attribute.attr_type == ConfigAttribute.XAUTH_USER_PASSWORD:
                answers.append(DataAttribute.tlv(attribute.attr_type,
                                                 self.config.xauth_password or b""))
        return answers

    def _on_xauth_status(self, header: Header, data: bytes, attributes: AttributePayload,
                         status: DataAttribute, now: float) -> None:
        success = status.as_int() == XauthStatus.OK
        self._advance("xauth_success" if success else "xauth_failure")
        # strongSwan's ACK: the attribute echoed with zero length (draft-dukes §3.2)
        ack = AttributePayload(CfgType.ACK, attributes.identifier,
                               [DataAttribute.tlv(ConfigAttribute.XAUTH_STATUS, b"")])
        datagram = self._emit_protected(Step.XAUTH_ACK, ExchangeType.TRANSACTION,
                                        header.message_id, [ack])
        self._remember_answer(data, [datagram])
        self._events.append(XauthDone(success))
        if not success:
            self._fail_after_transition("Xauth rejected by the server", now)
            return
        self.timings.xauth = now
        self._after_authentication(now)

    def _fail_after_transition(self, reason: str, now: float) -> None:
        # the table already moved us to FAILED (xauth_failure); record why
        self.error = reason
        self._finish(now)
        self._events.append(SessionFailed(reason))
        log.warning("[%s] %s", self.name, reason)

    def _send_modecfg_request(self, now: float) -> None:
        self._advance("request_config")
        self._modecfg_mid = self._new_message_id()
        request = request_attributes(self.config.mode_config_request)
        datagram = self._emit_protected(Step.MODECFG_REQUEST, ExchangeType.TRANSACTION,
                                        self._modecfg_mid, [request])
        self._expect_reply(datagram, now)

    def _on_config_reply(self, attributes: AttributePayload, now: float) -> None:
        self._advance("config_received")
        self._reply_arrived()
        self._config_received(attributes, now)

    def _on_config_push(self, header: Header, data: bytes, attributes: AttributePayload,
                        now: float) -> None:
        ack = AttributePayload(CfgType.ACK, attributes.identifier,
                               [DataAttribute.tlv(a.attr_type, b"") for a in attributes.attributes])
        datagram = self._emit_protected(Step.MODECFG_ACK, ExchangeType.TRANSACTION,
                                        header.message_id, [ack])
        self._remember_answer(data, [datagram])
        if self.state is State.MODECFG_SENT:
            self._advance("config_received")
            self._reply_arrived()
            self._config_received(attributes, now)
        else:
            self.mode_config = mode_config_from_attributes(attributes.attributes)
            self._events.append(ConfigReceived(self.mode_config))

    def _config_received(self, attributes: AttributePayload, now: float) -> None:
        self.mode_config = mode_config_from_attributes(attributes.attributes)
        self.timings.mode_config = now
        self._events.append(ConfigReceived(self.mode_config))
        log.info("[%s] Mode-Config: address %s", self.name, self.mode_config.address)
        self._after_config(now)

    # ============================================================ Quick Mode
    def _local_selector(self) -> str:
        if self.config.local_selector:
            return self.config.local_selector
        if self.mode_config and self.mode_config.address:
            return f"{self.mode_config.address}/32"
        return f"{self.local[0]}/32"

    def _send_qm1(self, now: float) -> None:
        self._advance("start_quick_mode")
        p1, config = self._p1, self.config
        mode = encapsulation_mode(self.floated, p1.natt)
        qm = _QuickMode(self._new_message_id(), self._new_spi(), self._rng(NONCE_SIZE), None, mode,
                        self._local_selector(), config.remote_selector)
        sa = esp_sa(config.esp_proposals, qm.spi, mode=mode, pfs_group=config.pfs_group,
                    lifetime_seconds=config.esp_lifetime_seconds,
                    lifetime_kilobytes=config.esp_lifetime_kilobytes)
        payloads: list[Payload] = [sa, Nonce(qm.ni_b)]
        if config.pfs_group is not None:
            qm.dh = dh_group(config.pfs_group).generate(self._rng)
            payloads.append(KeyExchange(qm.dh.public_bytes))
        payloads += [selector_payload(qm.local_selector), selector_payload(qm.remote_selector)]
        _, chain = serialize_payloads(payloads)
        keys = self._keys()
        digest = quick_mode_hash1(keys.prf, keys.skeyid_a, qm.message_id, chain)
        datagram, _ = self._emit(Step.QM1, ExchangeType.QUICK_MODE, [Hash(digest), *payloads],
                                 message_id=qm.message_id, encrypt=True)
        self._qm = qm
        self._expect_reply(datagram, now)

    def _on_quick_mode(self, header: Header, data: bytes, now: float) -> None:
        qm = self._qm
        if self.state is not State.QM_SENT or qm is None or header.message_id != qm.message_id:
            raise InvalidTransition(self.state, "quick_mode_message")
        message, plaintext = self._decrypt(header, data)
        self._verify_hash2(qm, message, plaintext)
        try:
            choice = read_esp_choice(message.first(SecurityAssociation), self.config.esp_proposals,
                                     mode=qm.mode, pfs_group=self.config.pfs_group)
        except ProposalMismatch as exc:
            raise PeerError(str(exc), NotifyType.NO_PROPOSAL_CHOSEN) from None
        nonce = message.first(Nonce)
        if nonce is None:
            raise PeerError("Quick Mode reply without nonce", NotifyType.PAYLOAD_MALFORMED)
        child = self._derive_child(qm, choice, message, nonce.data)
        self._accept(header, data)
        self._advance("qm2")
        self._reply_arrived()
        keys = self._keys()
        digest = quick_mode_hash3(keys.prf, keys.skeyid_a, qm.message_id, qm.ni_b, nonce.data)
        datagram, _ = self._emit(Step.QM3, ExchangeType.QUICK_MODE, [Hash(digest)],
                                 message_id=qm.message_id, encrypt=True)
        self._remember_answer(data, [datagram])
        self._qm = None
        self.children.append(child)
        self._children_ever.append(child)
        self.timings.quick_mode = now
        self._events.append(ChildSaUp(child))
        log.info("[%s] child SA up: %s <-> %s, SPIs in %s out %s", self.name, child.local_selector,
                 child.remote_selector, child.inbound_spi.hex(), child.outbound_spi.hex())

    def _verify_hash2(self, qm: _QuickMode, message: Message, plaintext: bytes) -> None:
        received = message.payloads[0] if message.payloads else None
        if not isinstance(received, Hash):
            raise PeerError("Quick Mode reply without HASH(2)", NotifyType.INVALID_HASH_INFORMATION)
        keys = self._keys()
        expected = quick_mode_hash2(keys.prf, keys.skeyid_a, qm.message_id, qm.ni_b,
                                    payload_chain_after_first(plaintext))
        verify_hash(expected, received.data, "HASH(2)")

    def _derive_child(self, qm: _QuickMode, choice, message: Message, nr_b: bytes) -> ChildSa:
        pfs_secret = None
        if qm.dh is not None:
            ke = message.first(KeyExchange)
            if ke is None:
                raise PeerError("PFS requested but no KE in the reply", NotifyType.PAYLOAD_MALFORMED)
            pfs_secret = qm.dh.compute_shared(ke.key_data)
        proposal = choice.proposal
        keying = EspKeying.from_attributes(proposal.cipher, key_length_bits=proposal.key_length,
                                           auth_algorithm=proposal.auth)
        keys = self._keys()
        child_keys = derive_esp_keys(keys.prf, keys.skeyid_d, keying, inbound_spi=qm.spi,
                                     outbound_spi=choice.spi, ni_b=qm.ni_b, nr_b=nr_b,
                                     pfs_shared_secret=pfs_secret)
        ids = message.payloads_of(Identification)
        local, remote = qm.local_selector, qm.remote_selector
        if len(ids) >= 2:  # the server may narrow our selectors
            local, remote = selector_text(ids[0]), selector_text(ids[1])
        return ChildSa(message_id=qm.message_id, inbound_spi=qm.spi, outbound_spi=choice.spi,
                       cipher=proposal.cipher, key_length=proposal.key_length,
                       integrity=proposal.auth, encapsulation_mode=qm.mode,
                       local_selector=local, remote_selector=remote,
                       lifetime_seconds=choice.lifetime_seconds, pfs_group=choice.pfs_group,
                       keys=child_keys)

    # ============================================================ Informational
    def _on_informational(self, header: Header, data: bytes, now: float) -> None:
        if not header.encrypted:
            self._on_clear_notify(Message.parse(data), now)
            return
        message, plaintext = self._decrypt(header, data)
        self._verify_hash1(message, plaintext)
        for payload in message.payloads[1:]:
            if self.state in _TERMINAL:
                return
            if isinstance(payload, Notification):
                self._on_notify(payload, header, now)
            elif isinstance(payload, Delete):
                self._on_delete(payload, now)

    def _on_clear_notify(self, message: Message, now: float) -> None:
        # unauthenticated: believed only while phase 1 is still being negotiated
        for notify in message.payloads_of(Notification):
            if self.state in _PHASE1 and notify.notify_type < _FIRST_STATUS_NOTIFY:
                name = lookup(NotifyType, notify.notify_type).name
                self._fail(f"server refused phase 1: {name}", now, notify.notify_type)
                return
        self._log_drop("unprotected informational")

    def _on_notify(self, notify: Notification, header: Header, now: float) -> None:
        if notify.notify_type == NotifyType.R_U_THERE:
            ack = Notification(NotifyType.R_U_THERE_ACK, spi=notify.spi, data=notify.data)
            # RFC 3706 §5.1: the ACK is a new informational exchange
            self._emit_protected(Step.DPD_ACK, ExchangeType.INFORMATIONAL, self._new_message_id(),
                                 [ack], informational=True)
            self._events.append(DpdRequest(_sequence(notify.data)))
            return
        if notify.notify_type == NotifyType.R_U_THERE_ACK:
            sequence = _sequence(notify.data)
            if sequence is not None and sequence == self._dpd_sequence:
                self._events.append(DpdAnswered(sequence))
            return
        name = lookup(NotifyType, notify.notify_type).name
        if notify.notify_type < _FIRST_STATUS_NOTIFY and self.state is not State.ESTABLISHED:
            self._fail(f"server error notify {name} in state {self.state.value}", now,
                       notify.notify_type)
            return
        log.info("[%s] server notify %s", self.name, name)

    def _on_delete(self, delete: Delete, now: float) -> None:
        if delete.protocol_id == ProtocolId.ISAKMP:
            if self.cky_i + self.cky_r in delete.spis:
                self._peer_closed(now)
            return
        for child in list(self.children):
            if child.outbound_spi in delete.spis or child.inbound_spi in delete.spis:
                self.children.remove(child)
                self._events.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, True))

    def _peer_closed(self, now: float) -> None:
        for child in self.children:
            self._events.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, True))
        self.children.clear()
        self._advance("peer_delete")
        self._finish(now)
        self._events.append(SessionClosed("peer-delete"))
        log.info("[%s] server deleted the phase 1 SA", self.name)

    def _send_deletes(self) -> None:
        spis = [child.inbound_spi for child in self.children]
        if spis:
            self._emit_protected(Step.DELETE, ExchangeType.INFORMATIONAL, self._new_message_id(),
                                 [Delete(ProtocolId.IPSEC_ESP, spis)], informational=True)
        for child in self.children:
            self._events.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, False))
        self.children.clear()
        self._emit_protected(Step.DELETE, ExchangeType.INFORMATIONAL, self._new_message_id(),
                             [Delete(ProtocolId.ISAKMP, [self.cky_i + self.cky_r])],
                             informational=True)


def _sequence(data: bytes) -> int | None:
    """The 32-bit DPD sequence number of an R-U-THERE(-ACK) notify (RFC 3706 §5.1)."""
    return int.from_bytes(data[:4], "big") if len(data) >= 4 else None

"""The sans-I/O IKEv1 initiator session (aioquic / h11 style).

    session = InitiatorSession(config, local=("198.18.1.5", 500), rng=os.urandom)
    for d in session.start(now): send(d)             # Datagram(data, remote, natt)
    session.receive_datagram(data, now, natt=False)  # natt: it came on the NAT-T socket
    session.handle_timer(now)                        # when now >= session.get_timer()
    session.datagrams_to_send(); session.next_event(); session.result()
    session.close(now)                               # Delete for children and phase 1

No sockets, no clock reads, no global state, randomness from `rng(n)`.
One session = one ISAKMP SA and the exchanges on it, driven by a state table
(`states.TRANSITIONS`, data, as in h11's `_state.py`): a message that does not fit
the current state is an `InvalidTransition`, logged and dropped. The session's
data and shared operations are `core.SessionCore`; each exchange is a module of
`exchanges/` (main_mode, aggressive_mode, transaction, quick_mode, informational),
and this class adds the public API and routes received messages to them.

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

from typing import Iterator

from responder.ikev1.crypto.errors import CryptoError
from responder.ikev1.crypto.export import wireshark_ikev1_decryption_line
from responder.ikev1.enums import ExchangeType
from responder.ikev1.errors import CodecError
from responder.ikev1.message import Header, parse_header
from responder.ikev1.natt_framing import Port4500Kind, classify_port4500

from .config import Mode
from .core import SessionCore, log
from .exchanges import aggressive_mode, informational, main_mode, quick_mode, transaction
from .results import InitiatorEvent, SessionClosed, SessionResult
from .states import (
    KEYED,
    TERMINAL,
    TRANSITIONS,
    Address,
    Datagram,
    InitiatorError,
    InvalidTransition,
    PeerError,
    Rng,
    State,
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
    "Rng",
]


class InitiatorSession(SessionCore):
    """One IKEv1 initiator: one ISAKMP SA and the exchanges on it."""

    # ------------------------------------------------------------ public API
    def start(self, now: float) -> list[Datagram]:
        """Send the first phase 1 message; returns the datagrams to send."""
        self.timings.started = now
        if self.config.mode is Mode.AGGRESSIVE:
            aggressive_mode.start(self, now)
        else:
            main_mode.start(self, now)
        return self.datagrams_to_send()

    def receive_datagram(self, data: bytes, now: float, *, natt: bool = False) -> None:
        """One UDP payload from the server; `natt` when it came on the NAT-T socket."""
        message = self._unframe(data, natt)
        if message is None or self.state in TERMINAL:
            return
        try:
            header = parse_header(message)
        except CodecError as exc:
            self.log_drop("malformed header", exc)
            return
        if header.initiator_cookie != self.cky_i:
            self.log_drop("not our cookie")
            return
        if self.answer_retransmission(message):
            return
        try:
            self._dispatch(header, message, now)
        except InvalidTransition as exc:
            self.log_drop("out of order", exc)
        except (PeerError, CryptoError, CodecError) as exc:
            self.refused(exc, now)

    def datagrams_to_send(self) -> list[Datagram]:
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self) -> float | None:
        times = []
        if self.outstanding is not None:
            times.append(self.outstanding.next_at)
        if self.deadline is not None:
            times.append(self.deadline[0])
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        if self.state in TERMINAL:
            return
        if self.deadline is not None and now >= self.deadline[0]:
            self.fail(self.deadline[1], now)
            return
        outstanding = self.outstanding
        if outstanding is None or now < outstanding.next_at:
            return
        if outstanding.tries_left <= 0:
            self.fail(f"no answer in state {self.state.value} (retransmissions exhausted)", now)
            return
        outstanding.tries_left -= 1
        outstanding.interval *= self.config.retransmit.backoff
        outstanding.next_at = now + outstanding.interval
        self.retransmits += 1
        log.debug("[%s] retransmit in state %s", self.name, self.state.value)
        if self.am3 is not None and outstanding.datagram is not self.am3:
            self.outbox.append(self.am3)  # the request cannot succeed without it
        self.outbox.append(outstanding.datagram)

    def next_event(self) -> InitiatorEvent | None:
        return self.event_queue.popleft() if self.event_queue else None

    def events(self) -> Iterator[InitiatorEvent]:
        while self.event_queue:
            yield self.event_queue.popleft()

    def start_quick_mode(self, now: float) -> None:
        """Another Quick Mode on the established phase 1 (e.g. a rekey)."""
        quick_mode.start(self, now)

    def send_dpd(self, now: float) -> int:
        """Send one R-U-THERE (RFC 3706 §5.1) on the phase 1 SA; a matching
        R-U-THERE-ACK becomes a `DpdAnswered` event. Returns the sequence number."""
        return informational.send_dpd(self)

    def decryption_line(self) -> str | None:
        """The phase 1 keys as a line of Wireshark's IKEv1 decryption table (for
        reading a capture of this session); None before the keys exist."""
        if self.p1.keys is None:
            return None
        return wireshark_ikev1_decryption_line(self.cky_i, self.p1.keys.encryption_key)

    def close(self, now: float) -> None:
        """Delete every child SA and the phase 1 SA (if keyed), then stop."""
        if self.state in TERMINAL:
            return
        if self.state in KEYED:
            informational.send_deletes(self)
        self.advance("close")
        self.finish(now)
        self.event_queue.append(SessionClosed("local-close"))

    def abort(self, now: float, reason: str) -> None:
        """Give up (e.g. a driver-level timeout): Delete if keyed, then fail."""
        if self.state in TERMINAL:
            return
        if self.state in KEYED:
            informational.send_deletes(self)
        self.fail(reason, now)

    @property
    def established(self) -> bool:
        return self.state is State.ESTABLISHED

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def result(self) -> SessionResult:
        return SessionResult(
            state=self.state.value, established=self.established, completed=self.completed,
            error=self.error,
            notify=self.error_notify, config=self.mode_config, children=list(self.children_ever),
            timings=self.timings, retransmits=self.retransmits, floated=self.floated,
            cookies=f"{self.cky_i.hex()}/{self.cky_r.hex()}")

    # ------------------------------------------------------------ receiving
    def _unframe(self, data: bytes, natt: bool) -> bytes | None:
        if not natt:
            return data
        try:
            kind, content = classify_port4500(data)
        except CodecError as exc:
            self.log_drop("short datagram on the NAT-T port", exc)
            return None
        if kind is not Port4500Kind.IKE:
            return None  # ESP and keepalives are not ours to handle
        return content

    def _dispatch(self, header: Header, data: bytes, now: float) -> None:
        exchange = header.exchange_type
        if exchange == ExchangeType.INFORMATIONAL:
            informational.receive(self, header, data, now)
        elif header.responder_cookie != self.cky_r and self.state not in (State.MM1_SENT,
                                                                          State.AM1_SENT):
            self.log_drop("wrong responder cookie")
        elif exchange == ExchangeType.IDENTITY_PROTECTION:
            main_mode.receive(self, header, data, now)
        elif exchange == ExchangeType.AGGRESSIVE:
            aggressive_mode.receive(self, data, now)
        elif exchange == ExchangeType.TRANSACTION:
            transaction.receive(self, header, data, now)
        elif exchange == ExchangeType.QUICK_MODE:
            quick_mode.receive(self, header, data, now)
        else:
            self.log_drop(f"exchange type {exchange}")

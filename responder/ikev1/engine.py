"""The sans-I/O IKEv1 responder (aioquic / h11 style).

    responder.receive_datagram(data, local, remote, now)
    responder.handle_timer(now)            # when now >= responder.get_timer()
    responder.datagrams_to_send()          # -> [Datagram(data, local, remote)]
    responder.next_event()                 # -> Event | None

No sockets, no clock reads, no global state: one `Responder` per worker; all
randomness comes from the injected `rng(n) -> bytes`. Every datagram passes
one boundary (`_receive`) where codec, crypto and exchange errors become a
drop, an unprotected notify (before phase 1 completes) or a protected one
(after), and are counted in `stats`.

Exchanges are tasks chosen by exchange type (strongSwan task_manager_v1):
Main/Aggressive Mode, Quick Mode, Informational built in; further ones
(Transaction: Xauth, Mode-Config) plug in with `register_exchange`.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from .admission import AdmissionBook, TokenBucket, policy_refusal, unproven
from .enums import ExchangeType, NotifyType, ProtocolId, lookup
from .errors import CodecError, ProtocolError, RemoteProtocolError
from .events import Event, ExchangeFailed, Phase1Deleted, Phase2Deleted
from .exchanges import aggressive_mode, informational, main_mode, quick_mode
from .exchanges.common import (Dropped, InvalidTransition, accept, authenticated,
                               build_protected, decrypt, verify_hash1)
from .exchanges.quick_mode import DefaultPhase2Provider, Phase2Provider
from .ike_sa import IkeSa
from .message import Message, parse_header
from .natt_framing import Port4500Kind, add_non_esp_marker, classify_port4500
from .policy import ResponderPolicy

__all__ = ["Datagram", "Responder", "SaContext", "TransactionHandler", "Address",
           "IdentifierFactory", "random_cookie", "random_spi"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
Rng = Callable[[int], bytes]
#: makes one candidate identifier (responder cookie: 8 bytes, inbound SPI: 4
#: bytes) from the engine's rng; the engine keeps the rules (non-zero cookie,
#: SPI >= 256, unique) and asks again when a candidate breaks one.
IdentifierFactory = Callable[[Rng], bytes]


def random_cookie(rng: Rng) -> bytes:
    return rng(8)


def random_spi(rng: Rng) -> bytes:
    return rng(4)

#: Notifies we answer before phase 1 completes (unprotected, RFC 2408 §5);
#: everything else is only logged, so that a spoofed packet cannot make us
#: send much.
_PRE_PHASE1_NOTIFIES = {
    NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.AUTHENTICATION_FAILED,
    NotifyType.INVALID_HASH_INFORMATION, NotifyType.PAYLOAD_MALFORMED,
    NotifyType.INVALID_PAYLOAD_TYPE, NotifyType.INVALID_KEY_INFORMATION,
    NotifyType.INVALID_ID_INFORMATION, NotifyType.INVALID_EXCHANGE_TYPE,
    NotifyType.BAD_PROPOSAL_SYNTAX,
}


@dataclass(frozen=True)
class Datagram:
    data: bytes
    local: Address
    remote: Address


class _SaLogAdapter(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"[{self.extra['sa_id']}] {msg}", kwargs


class SaContext:
    """Per-call context for exchange tasks: policy, `now`, randomness, output.

    Transaction handlers (Xauth / Mode-Config) get one too, to send protected
    messages and to tell the engine that the transaction finished.
    """

    def __init__(self, responder: "Responder", now: float) -> None:
        self._responder = responder
        self.policy = responder.policy
        self.now = now
        #: message ID of the peer request being handled; protected messages sent
        #: on it are that request's reply and are cached for its retransmissions
        self.answering_message_id: int | None = None
        self.captured_replies: list[bytes] = []
        #: the message being handled decrypted, its HASH verified and it is no
        #: replay (`exchanges.common.authenticated`): only such a message may
        #: move the peer address, prove it alive or take a reply-cache slot
        self.authenticated = False

    def random(self, size: int) -> bytes:
        return self._responder._rng(size)

    def emit(self, event: Event) -> None:
        self._responder._events.append(event)

    def sa_log(self, sa: IkeSa) -> logging.LoggerAdapter:
        return _SaLogAdapter(log, {"sa_id": sa.sa_id})

    # ---- for registered exchanges (Transaction)
    def send_protected(self, sa: IkeSa, exchange: int, message_id: int, payloads: list,
                       *, retransmit: bool = False) -> None:
        """HASH(1) + payloads, encrypted, to the peer; optionally retransmitted
        with backoff until `request_answered` (our own requests, e.g. Xauth)."""
        data = build_protected(sa, exchange, message_id, payloads)
        self._responder._send(sa, data)
        if message_id == self.answering_message_id and not retransmit:
            self.captured_replies.append(data)
        if retransmit:
            self._responder._arm_retransmit(sa, message_id, data, self.now)

    def request_answered(self, sa: IkeSa, message_id: int) -> None:
        self._responder._drop_retransmit((sa.sa_id, message_id))

    def transaction_complete(self, sa: IkeSa) -> None:
        """Quick Mode is now allowed on a dynamic SA (policy.require_transaction)."""
        sa.transaction_done = True
        sa.transaction_deadline = None

    def delete_sa(self, sa: IkeSa, reason: str) -> None:
        self._responder._delete_phase1(sa, reason, notify_peer=True, ctx=self)

    def decrypt_and_verify(self, sa: IkeSa, message: Message) -> Message:
        """Decrypt a Transaction message and check its HASH(1) (RFC 2409 §5.7)
        and that its message ID is new on this SA; anything else is dropped
        by the engine (`Dropped`), unanswered."""
        decrypted, plaintext = decrypt(sa, message)
        verify_hash1(sa, decrypted, plaintext)  # refused with a notify, changes nothing
        authenticated(self, sa, message.header.message_id)
        accept(sa, message)
        return decrypted


class TransactionHandler(Protocol):
    """A task for a further exchange type (e.g. Transaction, type 6).

    `phase1_established` runs right after phase 1 (a server-initiated Xauth
    sends its REQUEST there); `handle` gets each message of that type with
    the raw (still encrypted) message.
    """

    def phase1_established(self, ctx: SaContext, sa: IkeSa) -> None: ...

    def handle(self, ctx: SaContext, sa: IkeSa, message: Message) -> None: ...


@dataclass
class _Retransmit:
    sa_id: str
    message_id: int
    data: bytes
    next_at: float
    interval: float
    tries_left: int
    #: position in `_retransmits` (dict order): due entries fire in this order
    order: int = 0
    #: what it is, i.e. what giving up means: "request" (ours, e.g. Xauth: the
    #: phase 1 SA goes), "quick_mode" (QM msg 2 until HASH(3): that Quick Mode goes)
    kind: str = "request"


@dataclass(slots=True)
class _SaBook:
    """The engine's bookkeeping for one SA: creation order, its entry in the
    timer heap and its pending retransmissions (its counts: `AdmissionBook`)."""

    seq: int
    #: the deadline of this SA's live heap entry: a lower bound of its real
    #: next deadline (a later deadline is found when the entry pops)
    indexed: float | None = None
    retransmits: set[int] = field(default_factory=set)


class Responder:
    """One IKEv1 responder instance (one per worker)."""

    def __init__(self, policy: ResponderPolicy, *, rng: Rng = os.urandom,
                 phase2_provider: Phase2Provider | None = None,
                 cookie_factory: IdentifierFactory = random_cookie,
                 spi_factory: IdentifierFactory = random_spi) -> None:
        """`cookie_factory` / `spi_factory` make candidate responder cookies and
        inbound SPIs from `rng` (e.g. the daemon encodes its worker index in
        them); the engine enforces non-zero / >= 256 and uniqueness."""
        self.policy = policy
        self._rng = rng
        self._cookie_factory = cookie_factory
        self._spi_factory = spi_factory
        self._phase2 = phase2_provider or DefaultPhase2Provider(policy.dynamic_esp)
        self._by_cookies: dict[tuple[bytes, bytes], IkeSa] = {}
        self._by_id: dict[str, IkeSa] = {}
        #: msg 1 retransmissions arrive with a zero responder cookie
        self._by_initiator: dict[tuple[bytes, Address], IkeSa] = {}
        self._initiator_key: dict[str, tuple[bytes, Address]] = {}
        self._inbound_spis: set[bytes] = set()
        self._responder_cookies: set[bytes] = set()
        self._handlers: dict[int, TransactionHandler] = {}
        self._retransmits: dict[tuple[str, int], _Retransmit] = {}
        self._out: list[Datagram] = []
        self._events: deque[Event] = deque()
        self._next_sa_number = 1
        self.stats: Counter[str] = Counter()
        # Timers and limits in O(log n) / O(1) per SA instead of scanning all
        # SAs: a heap of (deadline, seq, sa_id) with lazy deletion, counters
        # kept per SA in `_books`, and SAs whose watched fields changed
        # (IkeSa.WATCHED_FIELDS) or that handled a message in `_dirty`, synced
        # before the next timer or limit question.
        self._books: dict[str, _SaBook] = {}
        self._dirty: dict[str, IkeSa] = {}
        self._timer_heap: list[tuple[float, int, str]] = []
        self._retransmit_heap: list[tuple[float, int, tuple[str, int], _Retransmit]] = []
        self._pushes = 0
        self._retransmit_order = 0
        self._admission = AdmissionBook(policy.limits)
        self._notify_budget = TokenBucket(policy.limits.unauthenticated_notify_rate,
                                          policy.limits.unauthenticated_notify_burst)

    # ------------------------------------------------------------------ API
    def context(self, now: float) -> SaContext:
        """A context for calls into registered tasks from outside a datagram
        (e.g. the daemon feeding an AAA answer to the Transaction task)."""
        return SaContext(self, now)

    def register_exchange(self, exchange_type: int, handler: TransactionHandler) -> None:
        if exchange_type in (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE,
                             ExchangeType.QUICK_MODE, ExchangeType.INFORMATIONAL):
            raise ValueError(f"exchange type {exchange_type} is built in")
        self._handlers[int(exchange_type)] = handler

    def receive_datagram(self, data: bytes, local: Address, remote: Address,
                         now: float) -> None:
        """Feed one UDP payload as received on `local` from `remote`.

        On a port other than 500 the payload still carries the Non-ESP marker
        (RFC 3948 §2.2); ESP and keepalives arriving here are counted and
        dropped (the transport hands ESP to the data path itself).
        """
        if local[1] != 500:
            try:
                kind, data = classify_port4500(data)
            except CodecError:
                self.stats["dropped_short_4500"] += 1
                return
            if kind is not Port4500Kind.IKE:
                self.stats[f"dropped_{kind.value}"] += 1
                return
        self._receive(data, local, remote, now)

    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[Event]:
        while self._events:
            yield self._events.popleft()

    def get_timer(self) -> float | None:
        """Earliest time `handle_timer` must run (heap top: O(log n) amortised)."""
        self._sync_dirty()
        heap, books = self._timer_heap, self._books
        sa_time = None
        while heap:
            when, seq, sa_id = heap[0]
            book = books.get(sa_id)
            if book is None or book.indexed != when:
                heapq.heappop(heap)  # stale: SA gone or entry superseded
                continue
            actual = self._next_deadline(self._by_id[sa_id])
            if actual == when:
                sa_time = when
                break
            heapq.heappop(heap)  # the deadline moved later (or went): re-index
            book.indexed = None
            self._index(sa_id, book, actual)
        retransmit = self._retransmit_top()
        if retransmit is None:
            return sa_time
        return retransmit if sa_time is None else min(sa_time, retransmit)

    def handle_timer(self, now: float) -> None:
        """Run what is due at `now`; touches only the SAs and retransmissions
        that are due (SAs in creation order, then retransmissions in the order
        they were first armed)."""
        ctx = SaContext(self, now)
        self._sync_dirty()
        heap, books = self._timer_heap, self._books
        due: dict[str, tuple[int, IkeSa]] = {}
        while heap and heap[0][0] <= now:
            when, seq, sa_id = heapq.heappop(heap)
            book = books.get(sa_id)
            if book is None or book.indexed != when:
                continue
            book.indexed = None
            sa = self._by_id[sa_id]
            actual = self._next_deadline(sa)
            if actual is not None and actual <= now:
                due[sa_id] = (seq, sa)
            else:
                self._index(sa_id, book, actual)
        for _, sa in sorted(due.values(), key=lambda item: item[0]):
            if sa.sa_id in self._by_id:
                self._sa_timers(ctx, sa)
                self._mark_dirty(sa)
        rheap = self._retransmit_heap
        due_retransmits = []
        while rheap and rheap[0][0] <= now:
            when, _, key, entry = heapq.heappop(rheap)
            if self._retransmits.get(key) is entry and entry.next_at == when:
                due_retransmits.append(entry)
        for entry in sorted(due_retransmits, key=lambda e: e.order):
            key = (entry.sa_id, entry.message_id)
            if self._retransmits.get(key) is entry:  # an earlier one may have removed it
                self._retransmit(ctx, key, entry)
        self._sync_dirty()

    def note_peer_activity(self, sa_id: str, now: float) -> None:
        """The data path saw an authenticated ESP packet from this peer."""
        sa = self._by_id.get(sa_id)
        if sa is not None:
            informational.note_traffic(sa, now)

    def delete_phase1(self, sa_id: str, now: float = 0.0, reason: str = "local-delete") -> None:
        """Send Delete for every child, then for the ISAKMP SA; drop it."""
        sa = self._by_id.get(sa_id)
        if sa is not None:
            self._delete_phase1(sa, reason, notify_peer=True, ctx=SaContext(self, now))

    def delete_phase2(self, sa_id: str, child_id: int, now: float = 0.0,
                      reason: str = "local-delete") -> None:
        sa = self._by_id.get(sa_id)
        if sa is None or child_id not in sa.children:
            return
        ctx = SaContext(self, now)
        child = sa.children[child_id]
        self._send(sa, informational.build_delete(ctx, sa, ProtocolId.IPSEC_ESP,
                                                  [child.inbound_spi]))
        self._remove_child(sa, child_id, reason)
        self._mark_dirty(sa)

    def sa(self, sa_id: str) -> IkeSa | None:
        return self._by_id.get(sa_id)

    @property
    def sa_count(self) -> int:
        return len(self._by_id)

    # ------------------------------------------------------------ receiving
    def _receive(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        try:
            header = parse_header(data)
        except CodecError as exc:
            self._drop("malformed_header", remote, exc)
            return
        sa, message = self._lookup(header, data, local, remote, now)
        if sa is None:
            return
        self._mark_dirty(sa)  # children / Quick Modes may change: re-index
        cached = sa.cached_reply(data)
        if cached is not None:
            self._resend_cached(sa, cached, local, remote)
            return
        ctx = SaContext(self, now)
        try:
            if message is None:
                message = Message.parse(data)
            replies = self._dispatch(ctx, sa, message, local, remote)
        except InvalidTransition as exc:
            self._drop("out_of_order", remote, exc, sa)
            return
        except Dropped as exc:  # unauthenticated or replayed: proves nothing
            self._drop(exc.reason, remote, exc, sa)
            if exc.answer is not None and not sa.established:
                self.stats[f"error_{lookup(NotifyType, exc.answer).name}"] += 1
                self._send_unprotected(sa, exc.answer, local, remote, now)
            return
        except ProtocolError as exc:  # codec, crypto and exchange errors alike
            self._fail(ctx, sa, header.exchange_type, exc, local, remote, data)
            return
        if self._cacheable(ctx, header.exchange_type):
            sa.remember_reply(data, replies + ctx.captured_replies)
        for reply in replies:
            self._send(sa, reply)
        # Only now, with the last phase 1 reply (MM6 / AM2) already queued, may a
        # Transaction task start Xauth: a REQUEST that overtakes MM6 reaches a
        # client that cannot decrypt it yet.
        if header.exchange_type in (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE):
            self._after_phase1_step(ctx, sa)

    def _resend_cached(self, sa: IkeSa, cached: list[bytes], local: Address,
                       remote: Address) -> None:
        """A retransmitted request gets our cached reply again; until the peer
        sent message 3 (it may be a spoofed source) only
        `limits.max_unproven_resends` times per SA."""
        if unproven(sa.exchange, sa.state):
            if sa.unproven_resends >= self.policy.limits.max_unproven_resends:
                self._drop("unproven_resend_limit", remote, None, sa)
                return
            sa.unproven_resends += 1
        self.stats["retransmit_answered"] += 1
        for reply in cached:
            self._out.append(Datagram(self._frame(reply, local), local, remote))

    def _send_unprotected(self, sa: IkeSa, notify: int, local: Address, remote: Address,
                          now: float) -> None:
        """An error notify in clear (before phase 1), within the token bucket
        of `limits.unauthenticated_notify_rate` / `_burst`."""
        if not self._notify_budget.take(now):
            self.stats["notify_rate_limited"] += 1
            return
        reply = informational.unprotected_notify(sa, notify)
        self._out.append(Datagram(self._frame(reply, local), local, remote))

    @staticmethod
    def _cacheable(ctx: SaContext, exchange: int) -> bool:
        """Phase 1 requests (cleartext until MM5 / AM3) and verified messages
        take a reply-cache slot; junk must not push real entries out.
        Informationals are single messages: never cached."""
        if exchange == ExchangeType.INFORMATIONAL:
            return False
        return ctx.authenticated or exchange in (ExchangeType.IDENTITY_PROTECTION,
                                                 ExchangeType.AGGRESSIVE)

    def _lookup(self, header, data: bytes, local: Address, remote: Address,
                now: float) -> tuple[IkeSa | None, Message | None]:
        """The SA a datagram belongs to, and the message if parsing it was
        needed to decide (a message 1 that creates the SA)."""
        if header.responder_cookie == bytes(8):
            if header.exchange_type not in _FIRST_MESSAGE or header.message_id:
                self._drop("zero_cookie_not_phase1", remote)
                return None, None
            existing = self._by_initiator.get((header.initiator_cookie, remote))
            if existing is not None:
                return existing, None
            message, refused = self._first_message(header, data, remote)
            if refused:
                return None, None
            return self._new_sa(header, local, remote, now), message
        sa = self._by_cookies.get((header.initiator_cookie, header.responder_cookie))
        if sa is None:
            self._drop("unknown_cookies", remote)
        return sa, None

    def _first_message(self, header, data: bytes,
                       remote: Address) -> tuple[Message | None, bool]:
        """(message, refused): only its exchange's message 1 (SA payload, in
        clear) may create an SA. Anything else (a lone Fragment, KE + Nonce,
        the E flag set) would hold a half-open slot of its source until
        `limits.half_open_timeout`, never answered: dropped here. One that does
        not parse passes (message None): the error boundary answers it with
        its codec notify (PAYLOAD_MALFORMED, INVALID_PAYLOAD_TYPE) and removes
        the SA at once (`_fail`)."""
        try:
            message = Message.parse(data)
        except CodecError:
            return None, False
        classify, table = _FIRST_MESSAGE[header.exchange_type]
        if ("start", classify(message)) not in table.transitions:
            self._drop("not_first_message", remote)
            return None, True
        return message, False

    def _new_sa(self, header, local: Address, remote: Address, now: float) -> IkeSa | None:
        limits = self.policy.limits
        if not self._admit(header.exchange_type, remote, now):
            return None
        cky_r = self._new_cookie()
        seq = self._next_sa_number
        sa_id = f"ike{seq}"
        self._next_sa_number += 1
        exchange = "aggressive" if header.exchange_type == ExchangeType.AGGRESSIVE else "main"
        sa = IkeSa(sa_id=sa_id, cky_i=header.initiator_cookie, cky_r=cky_r, local=local,
                   remote=remote, exchange=exchange, state="start", created_at=now,
                   last_activity=now, half_open_deadline=now + limits.half_open_timeout)
        self._by_cookies[(sa.cky_i, cky_r)] = sa
        self._by_id[sa_id] = sa
        self._by_initiator[(sa.cky_i, remote)] = sa
        self._initiator_key[sa_id] = (sa.cky_i, remote)
        self._books[sa_id] = _SaBook(seq)
        self._admission.add(sa_id, remote[0])
        sa.on_change = self._mark_dirty
        self._mark_dirty(sa)
        self.stats["phase1_started"] += 1
        log.info("[%s] new %s mode phase 1 from %s:%d to %s:%d", sa_id, exchange, *remote, *local)
        return sa

    def _admit(self, exchange_type: int, remote: Address, now: float) -> bool:
        """A new SA from `remote`: refused by policy, dropped at a limit, or
        admitted (in place of an evicted unproven SA): admission.py."""
        self._sync_dirty()  # counts follow established / moved / proven SAs
        decision = policy_refusal(self.policy, exchange_type, remote[0]) \
            or self._admission.decide(remote[0])
        if decision.action == "drop":
            self._drop(decision.reason, remote)
            if decision.reason == "policy_denied":
                log.info("IKE policy rule denies phase 1 from %s", remote[0])
            return False
        if decision.action == "evict":
            self.stats[f"evicted_{decision.reason}"] += 1
            self._delete_phase1(self._by_id[decision.victim], f"evicted:{decision.reason}",
                                notify_peer=False, ctx=SaContext(self, now))
        return True

    def _new_cookie(self) -> bytes:
        while True:
            cookie = self._cookie_factory(self._rng)
            if len(cookie) != 8:
                raise ValueError(f"cookie_factory made {len(cookie)} bytes, 8 expected")
            if cookie != bytes(8) and cookie not in self._responder_cookies:
                self._responder_cookies.add(cookie)
                return cookie

    def new_spi(self) -> bytes:
        """A fresh inbound SPI: 256.. (RFC 4303 §2.1 reserves 1-255), unused."""
        while True:
            spi = self._spi_factory(self._rng)
            if len(spi) != 4:
                raise ValueError(f"spi_factory made {len(spi)} bytes, 4 expected")
            if int.from_bytes(spi, "big") >= 256 and spi not in self._inbound_spis:
                self._inbound_spis.add(spi)
                return spi

    def _dispatch(self, ctx: SaContext, sa: IkeSa, message: Message, local: Address,
                  remote: Address) -> list[bytes]:
        exchange = message.header.exchange_type
        route = EXCHANGE_ROUTES.get(exchange, REGISTERED_ROUTE)
        if route.phase1 is not None:
            self._check_phase1_exchange(sa, route.phase1)
        elif route.needs_phase1 and not sa.established:
            raise InvalidTransition(f"exchange {exchange}", sa.state, "before phase 1")
        return route.handle(self, ctx, sa, message, local, remote)

    def _main_mode(self, ctx: SaContext, sa: IkeSa, message: Message, local: Address,
                   remote: Address) -> list[bytes]:
        return main_mode.handle(ctx, sa, message, local, remote)

    def _aggressive_mode(self, ctx: SaContext, sa: IkeSa, message: Message, local: Address,
                         remote: Address) -> list[bytes]:
        # AM msg 2 is not resent by timer: its source is unproven (a spoofed one would
        # make us an amplifier); the initiator resends msg 1 and gets it from the
        # reply cache (_resend_cached)
        return aggressive_mode.handle(ctx, sa, message, local, remote)

    def _registered(self, ctx: SaContext, sa: IkeSa, message: Message, local: Address,
                    remote: Address) -> list[bytes]:
        exchange = message.header.exchange_type
        handler = self._handlers.get(int(exchange))
        if handler is None:
            raise RemoteProtocolError(NotifyType.INVALID_EXCHANGE_TYPE,
                                      f"exchange type {lookup(ExchangeType, exchange)} not supported")
        ctx.answering_message_id = message.header.message_id
        handler.handle(ctx, sa, message)
        if ctx.authenticated:
            self._authenticated_traffic(sa, local, remote, ctx.now)
        else:  # the task ignored it without decrypting (e.g. no Xauth on this SA)
            self._drop("unauthenticated", remote, None, sa)
        return []

    @staticmethod
    def _check_phase1_exchange(sa: IkeSa, kind: str) -> None:
        if sa.exchange != kind or sa.established:
            raise InvalidTransition(f"{kind}_mode", sa.state, "message on another exchange")

    def _after_phase1_step(self, ctx: SaContext, sa: IkeSa) -> None:
        if sa.established and sa.sa_id in self._initiator_key:
            self._forget_initiator_key(sa)
            handler = self._handlers.get(ExchangeType.TRANSACTION)
            if handler is not None and sa.dynamic:
                handler.phase1_established(ctx, sa)

    def _forget_initiator_key(self, sa: IkeSa) -> None:
        key = self._initiator_key.pop(sa.sa_id, None)
        if key is not None:
            self._by_initiator.pop(key, None)

    def _quick_mode(self, ctx: SaContext, sa: IkeSa, message: Message, local: Address,
                    remote: Address) -> list[bytes]:
        if sa.dynamic and self.policy.require_transaction and not sa.transaction_done:
            raise InvalidTransition("quick_mode", "waiting_for_transaction", "hash1")
        if len(sa.children) >= self.policy.limits.max_children_per_sa and \
                message.header.message_id not in sa.quick_modes:
            raise RemoteProtocolError(NotifyType.NO_PROPOSAL_CHOSEN, "too many child SAs")
        mid = message.header.message_id
        if mid not in sa.quick_modes and \
                len(sa.quick_modes) >= self.policy.limits.max_quick_modes_per_sa:
            raise Dropped("quick_mode_limit", f"{len(sa.quick_modes)} Quick Modes pending")
        replies = quick_mode.handle(ctx, sa, message, self._phase2, self.new_spi)
        self._authenticated_traffic(sa, local, remote, ctx.now)
        # QM msg 2 is resent until HASH(3) arrives (RFC 2409 §5.5)
        if mid in sa.quick_modes and replies:
            self._arm_retransmit(sa, mid, replies[0], ctx.now, kind="quick_mode")
        else:
            self._drop_retransmit((sa.sa_id, mid))
        return replies

    def _informational(self, ctx: SaContext, sa: IkeSa, message: Message, local: Address,
                       remote: Address) -> list[bytes]:
        result = informational.handle(ctx, sa, message)  # Dropped unless verified
        if result.alive:
            self._authenticated_traffic(sa, local, remote, ctx.now)
        self._events.extend(result.events)
        for spi in result.delete_spis:
            child = sa.child_by_spi(spi)
            if child is not None:
                self._remove_child(sa, child.child_id, "peer-delete")
        if result.delete_phase1:
            # nothing more is sent on an SA its peer deleted
            self._delete_phase1(sa, "peer-delete", notify_peer=False, ctx=ctx)
            return []
        return result.replies

    def _authenticated_traffic(self, sa: IkeSa, local: Address, remote: Address,
                               now: float) -> None:
        """An authenticated message: peer alive; follow a port float (RFC 3947 §4)."""
        informational.note_traffic(sa, now)
        if (local, remote) != (sa.local, sa.remote):
            log.info("[%s] peer moved %s:%d -> %s:%d", sa.sa_id, *sa.remote, *remote)
            sa.local, sa.remote = local, remote

    # ---------------------------------------------------------------- errors
    def _drop(self, reason: str, remote: Address, exc: Exception | None = None,
              sa: IkeSa | None = None) -> None:
        self.stats[f"dropped_{reason}"] += 1
        log.debug("%sdropped datagram from %s:%d: %s%s", f"[{sa.sa_id}] " if sa else "",
                  *remote, reason, f" ({exc})" if exc else "")

    def _fail(self, ctx: SaContext, sa: IkeSa, exchange: int, exc: Exception,
              local: Address, remote: Address, request: bytes = b"") -> None:
        """The one place where a refused message becomes a notify or a drop."""
        notify = _notify_of(exc)
        name = lookup(NotifyType, notify).name if notify else "none"
        self.stats[f"error_{name}"] += 1
        ctx.sa_log(sa).warning("%s from %s:%d refused: %s",
                               lookup(ExchangeType, exchange).name, *remote, exc)
        ctx.emit(ExchangeFailed(sa.sa_id, remote, lookup(ExchangeType, exchange).name,
                                name, str(exc)))
        phase1 = exchange in (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE)
        if not sa.established:
            if notify in _PRE_PHASE1_NOTIFIES:
                self._send_unprotected(sa, notify, local, remote, ctx.now)
            if phase1:
                self._delete_phase1(sa, f"failed:{name}", notify_peer=False, ctx=ctx)
            return
        if exchange == ExchangeType.INFORMATIONAL or notify is None:
            return  # never answer an informational (loops), nor local faults
        reply = informational.build_notify(ctx, sa, notify)
        if exchange == ExchangeType.QUICK_MODE and request and ctx.authenticated:
            # a verified QM msg 1 used up its message ID: its retransmission
            # gets the same refusal, not INVALID_MESSAGE_ID
            sa.remember_reply(request, [reply])
        self._send(sa, reply)

    # ------------------------------------------------------------- sending
    @staticmethod
    def _frame(data: bytes, local: Address) -> bytes:
        return add_non_esp_marker(data) if local[1] != 500 else data

    def _send(self, sa: IkeSa, data: bytes) -> None:
        self._out.append(Datagram(self._frame(data, sa.local), sa.local, sa.remote))

    def _arm_retransmit(self, sa: IkeSa, message_id: int, data: bytes, now: float,
                        kind: str = "request") -> None:
        policy = self.policy.retransmit
        key = (sa.sa_id, message_id)
        previous = self._retransmits.get(key)
        if previous is not None:
            order = previous.order  # replacing a key keeps its dict position
        else:
            self._retransmit_order += 1
            order = self._retransmit_order
        entry = _Retransmit(sa.sa_id, message_id, data, now + policy.timeout, policy.timeout,
                            policy.tries, order, kind)
        self._retransmits[key] = entry
        book = self._books.get(sa.sa_id)
        if book is not None:
            book.retransmits.add(message_id)
        self._push_retransmit(key, entry)

    def _push_retransmit(self, key: tuple[str, int], entry: _Retransmit) -> None:
        self._pushes += 1
        heapq.heappush(self._retransmit_heap, (entry.next_at, self._pushes, key, entry))
        if len(self._retransmit_heap) > 2 * len(self._retransmits) + 1024:
            self._retransmit_heap = [(e.next_at, i, k, e) for i, (k, e)
                                     in enumerate(self._retransmits.items())]
            heapq.heapify(self._retransmit_heap)

    def _drop_retransmit(self, key: tuple[str, int]) -> None:
        if self._retransmits.pop(key, None) is not None:
            book = self._books.get(key[0])
            if book is not None:
                book.retransmits.discard(key[1])

    def _retransmit_top(self) -> float | None:
        heap = self._retransmit_heap
        while heap:
            when, _, key, entry = heap[0]
            if self._retransmits.get(key) is entry and entry.next_at == when:
                return when
            heapq.heappop(heap)
        return None

    def _retransmit(self, ctx: SaContext, key: tuple[str, int], entry: _Retransmit) -> None:
        sa = self._by_id.get(entry.sa_id)
        if sa is None:
            self._drop_retransmit(key)
            return
        if entry.tries_left <= 0:
            self._drop_retransmit(key)
            self.stats[f"retransmit_exhausted_{entry.kind}"] += 1
            if entry.kind == "quick_mode":
                ctx.sa_log(sa).warning("quick mode %08x: no HASH(3) after %d retransmissions, "
                                       "dropped", entry.message_id, self.policy.retransmit.tries)
                self._forget_quick_mode(sa, entry.message_id)
                self._mark_dirty(sa)
                return
            ctx.sa_log(sa).warning("request %08x unanswered, giving up", entry.message_id)
            self._delete_phase1(sa, "retransmit-timeout", notify_peer=True, ctx=ctx)
            return
        entry.tries_left -= 1
        entry.interval *= self.policy.retransmit.backoff
        entry.next_at = ctx.now + entry.interval
        self._push_retransmit(key, entry)
        self._send(sa, entry.data)

    # ---------------------------------------------------------------- timers
    def _mark_dirty(self, sa: IkeSa) -> None:
        """IkeSa.on_change: re-count and re-index this SA before the next
        timer or limit question."""
        self._dirty[sa.sa_id] = sa

    def _sync_dirty(self) -> None:
        while self._dirty:
            _, sa = self._dirty.popitem()
            book = self._books.get(sa.sa_id)
            if book is None or self._by_id.get(sa.sa_id) is not sa:
                continue  # removed meanwhile
            self._admission.update(sa.sa_id, sa.remote[0], half_open=not sa.established,
                                   evictable=unproven(sa.exchange, sa.state))
            self._index(sa.sa_id, book, self._next_deadline(sa))

    def _index(self, sa_id: str, book: _SaBook, deadline: float | None) -> None:
        """Push `deadline` unless the SA's live entry already fires earlier."""
        if deadline is None or (book.indexed is not None and book.indexed <= deadline):
            return
        book.indexed = deadline
        heapq.heappush(self._timer_heap, (deadline, book.seq, sa_id))
        if len(self._timer_heap) > 2 * len(self._books) + 1024:  # many stale entries
            self._timer_heap = [(b.indexed, b.seq, i) for i, b in self._books.items()
                                if b.indexed is not None]
            heapq.heapify(self._timer_heap)

    def _next_deadline(self, sa: IkeSa) -> float | None:
        """min(_sa_deadlines(sa)) without building the list (runs per datagram)."""
        best = sa.half_open_deadline
        for t in (sa.expires_at, sa.transaction_deadline,
                  informational.dpd_next_time(self.policy, sa)):
            if t is not None and (best is None or t < best):
                best = t
        for child in sa.children.values():
            if best is None or child.expires_at < best:
                best = child.expires_at
        if sa.quick_modes:
            timeout = self.policy.limits.half_open_timeout
            for qm in sa.quick_modes.values():
                t = qm.started_at + timeout
                if best is None or t < best:
                    best = t
        return best

    def _sa_deadlines(self, sa: IkeSa) -> list[float | None]:
        times = [sa.half_open_deadline, sa.expires_at, sa.transaction_deadline,
                 informational.dpd_next_time(self.policy, sa)]
        times.extend(child.expires_at for child in sa.children.values())
        times.extend(qm.started_at + self.policy.limits.half_open_timeout
                     for qm in sa.quick_modes.values())
        return times

    def _sa_timers(self, ctx: SaContext, sa: IkeSa) -> None:
        now = ctx.now
        if sa.half_open_deadline is not None and now >= sa.half_open_deadline:
            self.stats["half_open_timeout"] += 1
            self._delete_phase1(sa, "half-open-timeout", notify_peer=False, ctx=ctx)
            return
        if sa.transaction_deadline is not None and now >= sa.transaction_deadline:
            self._delete_phase1(sa, "transaction-timeout", notify_peer=True, ctx=ctx)
            return
        if sa.expires_at is not None and now >= sa.expires_at:
            self._delete_phase1(sa, "expired", notify_peer=True, ctx=ctx)
            return
        for child in list(sa.children.values()):
            if now >= child.expires_at:
                self._send(sa, informational.build_delete(ctx, sa, ProtocolId.IPSEC_ESP,
                                                          [child.inbound_spi]))
                self._remove_child(sa, child.child_id, "expired")
        for mid, qm in list(sa.quick_modes.items()):
            if now >= qm.started_at + self.policy.limits.half_open_timeout:
                self._forget_quick_mode(sa, mid)  # peer never sent HASH(3)
        probes = informational.dpd_due(ctx, sa)
        if probes is None:
            self._delete_phase1(sa, "dpd", notify_peer=False, ctx=ctx)
            return
        for probe in probes:
            self._send(sa, probe)

    # -------------------------------------------------------------- removal
    def _forget_quick_mode(self, sa: IkeSa, message_id: int) -> None:
        """A Quick Mode whose HASH(3) never came: state, IV, SPI and resends go."""
        qm = sa.quick_modes.pop(message_id, None)
        if qm is None:
            return
        if sa.cipher is not None:
            sa.cipher.ivs.forget(message_id)
        if qm.inbound_spi:
            self._inbound_spis.discard(qm.inbound_spi)
        self._drop_retransmit((sa.sa_id, message_id))

    def _remove_child(self, sa: IkeSa, child_id: int, reason: str) -> None:
        child = sa.children.pop(child_id)
        self._inbound_spis.discard(child.inbound_spi)
        self._events.append(Phase2Deleted(sa.sa_id, child_id, child.inbound_spi,
                                          child.outbound_spi, reason))

    def _delete_phase1(self, sa: IkeSa, reason: str, *, notify_peer: bool,
                       ctx: SaContext) -> None:
        if sa.sa_id not in self._by_id:
            return
        if notify_peer and sa.established:
            spis = [c.inbound_spi for c in sa.children.values()]
            if spis:
                self._send(sa, informational.build_delete(ctx, sa, ProtocolId.IPSEC_ESP, spis))
            self._send(sa, informational.build_delete(ctx, sa, ProtocolId.ISAKMP,
                                                      [sa.cookies]))
        for child_id in list(sa.children):
            self._remove_child(sa, child_id, "phase1-deleted")
        for qm in sa.quick_modes.values():
            self._inbound_spis.discard(qm.inbound_spi)
        del self._by_id[sa.sa_id]
        self._by_cookies.pop((sa.cky_i, sa.cky_r), None)
        self._responder_cookies.discard(sa.cky_r)
        self._forget_initiator_key(sa)
        book = self._books.pop(sa.sa_id)
        self._admission.remove(sa.sa_id)
        for message_id in book.retransmits:
            self._retransmits.pop((sa.sa_id, message_id), None)
        self._dirty.pop(sa.sa_id, None)
        sa.on_change = None
        log.info("[%s] phase 1 removed: %s", sa.sa_id, reason)
        for handler in self._handlers.values():
            on_deleted = getattr(handler, "phase1_deleted", None)
            if on_deleted is not None:
                on_deleted(ctx, sa.sa_id, reason)
        if sa.established:
            self._events.append(Phase1Deleted(sa.sa_id, sa.remote, reason))


@dataclass(frozen=True)
class ExchangeRoute:
    """How the engine takes the messages of one exchange type."""

    #: Responder method: (self, ctx, sa, message, local, remote) -> datagrams
    handle: Callable[..., list[bytes]]
    #: the phase 1 exchange ("main", "aggressive") an SA must be on, not yet established
    phase1: str | None = None
    #: refused (InvalidTransition) on an SA whose phase 1 is not established
    needs_phase1: bool = True


#: exchange type -> its route (strongSwan task_manager_v1.c: exchange type -> tasks).
#: Any other type goes to the exchange registered for it (register_exchange:
#: Transaction), else it is answered INVALID-EXCHANGE-TYPE.
EXCHANGE_ROUTES: dict[int, ExchangeRoute] = {
    ExchangeType.IDENTITY_PROTECTION: ExchangeRoute(Responder._main_mode, phase1="main",
                                                     needs_phase1=False),
    ExchangeType.AGGRESSIVE: ExchangeRoute(Responder._aggressive_mode,
                                            phase1="aggressive", needs_phase1=False),
    ExchangeType.QUICK_MODE: ExchangeRoute(Responder._quick_mode),
    ExchangeType.INFORMATIONAL: ExchangeRoute(Responder._informational, needs_phase1=False),
}
REGISTERED_ROUTE = ExchangeRoute(Responder._registered)


#: exchange type -> how its messages are classified and its state table: a
#: message 1 is one whose event leaves the table's "start" state
_FIRST_MESSAGE = {
    ExchangeType.IDENTITY_PROTECTION: (main_mode.classify, main_mode.TABLE),
    ExchangeType.AGGRESSIVE: (aggressive_mode.classify, aggressive_mode.TABLE),
}


def _notify_of(exc: Exception) -> int | None:
    if isinstance(exc, ProtocolError):  # crypto errors too (crypto/errors.py)
        return exc.notify_type if exc.notify_peer else None
    return None


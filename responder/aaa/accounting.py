"""RADIUS accounting (RFC 2866): records per subscriber session, and a sender queue.

Two halves, split the sans-I/O way:

* :class:`AccountingSession` (no I/O, no clock): builds Start / Interim-Update / Stop
  attribute sets from what it is told (``now``, counters from the data path, the
  teardown event) and says when its next Interim-Update is due (``due(now)``).
* :class:`Accountant`: the daemon's one asyncio task that sends the records in order
  through a :class:`AccountingSender` (the RADIUS client), with retransmission and
  Acct-Delay-Time (RFC 2866 §5.2), a bounded queue, and counters. When no server
  answers, records stay queued and are retried with back-off: Stops are never dropped
  silently (only a full queue drops anything, Interim-Updates first, and that is
  counted and logged at error level).

Acct-Terminate-Cause (RFC 2866 §5.10) for each teardown event is
:data:`responder.subscriber.TERMINATE_CAUSE`, next to the teardown events it maps (the
choices that are not obvious are explained there); this module imports it, never the
other way round.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from responder.subscriber import TERMINATE_CAUSE, SubscriberEvent, TerminateCause

log = logging.getLogger(__name__)

IPv4 = ipaddress.IPv4Address
_2_32 = 1 << 32


class StatusType(enum.IntEnum):
    """RFC 2866 §5.1 Acct-Status-Type."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


@dataclass(frozen=True)
class Counters:
    """Data-path totals since the session started (64-bit; split into RFC 2869 §5.1/5.2
    Gigawords when encoded)."""

    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0


#: Attribute names as in responder/aaa/dictionary; values as pyrad encodes them.
Attributes = dict[str, object]


@dataclass
class AccountingRecord:
    """One Accounting-Request to send. ``created_at`` (monotonic) feeds Acct-Delay-Time."""

    session_id: str
    status: StatusType
    attributes: Attributes
    created_at: float
    attempts: int = 0


@dataclass
class AccountingSession:
    """The accounting view of one subscriber session."""

    session_id: str
    username: str
    framed_ip: IPv4 | None
    started_at: float
    nas_attributes: Attributes = field(default_factory=dict)
    class_: bytes | None = None
    #: seconds between Interim-Updates; None or 0: none (RFC 2869 §5.16 Acct-Interim-Interval)
    interim_interval: float | None = None
    authentic_radius: bool = True
    next_interim_at: float | None = field(init=False, default=None)
    stopped: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.interim_interval:
            self.next_interim_at = self.started_at + self.interim_interval

    def _common(self, status: StatusType, now: float, counters: Counters | None) -> Attributes:
        attrs: Attributes = {
            "Acct-Status-Type": int(status),
            "Acct-Session-Id": self.session_id,
            "User-Name": self.username,
            # RFC 2866 §5.6: 1 RADIUS, 2 Local
            "Acct-Authentic": 1 if self.authentic_radius else 2,
            **self.nas_attributes,
        }
        if self.framed_ip is not None:
            attrs["Framed-IP-Address"] = str(self.framed_ip)
        if self.class_ is not None:
            attrs["Class"] = self.class_     # RFC 2865 §5.25: echoed unmodified
        if status is not StatusType.START:
            attrs["Acct-Session-Time"] = max(0, int(now - self.started_at))
            attrs.update(encode_counters(counters or Counters()))
        return attrs

    def start(self, now: float) -> AccountingRecord:
        return AccountingRecord(self.session_id, StatusType.START,
                                self._common(StatusType.START, now, None), now)

    def due(self, now: float) -> bool:
        """True when an Interim-Update should be sent now."""
        return not self.stopped and self.next_interim_at is not None and now >= self.next_interim_at

    def interim(self, now: float, counters: Counters) -> AccountingRecord:
        # Schedule from the previous due time, not from now, so that a late tick does not
        # shift every later update; skip missed ones instead of sending a burst.
        if self.interim_interval and self.next_interim_at is not None:
            while self.next_interim_at <= now:
                self.next_interim_at += self.interim_interval
        return AccountingRecord(self.session_id, StatusType.INTERIM_UPDATE,
                                self._common(StatusType.INTERIM_UPDATE, now, counters), now)

    def stop(self, now: float, counters: Counters, cause: TerminateCause | SubscriberEvent) -> AccountingRecord:
        if isinstance(cause, SubscriberEvent):
            cause = TERMINATE_CAUSE[cause]
        self.stopped = True
        attrs = self._common(StatusType.STOP, now, counters)
        attrs["Acct-Terminate-Cause"] = int(cause)
        return AccountingRecord(self.session_id, StatusType.STOP, attrs, now)


def encode_counters(c: Counters) -> Attributes:
    """64-bit counters as RFC 2866 §5.3/5.4/5.5/5.6 values plus RFC 2869 Gigawords."""
    return {
        "Acct-Input-Octets": c.input_octets % _2_32,
        "Acct-Output-Octets": c.output_octets % _2_32,
        "Acct-Input-Gigawords": c.input_octets // _2_32,
        "Acct-Output-Gigawords": c.output_octets // _2_32,
        "Acct-Input-Packets": c.input_packets % _2_32,
        "Acct-Output-Packets": c.output_packets % _2_32,
    }


class AccountingSender(Protocol):
    """What the accountant needs from the RADIUS client: send one Accounting-Request
    (to the group's servers, with its own retransmission/failover), set Acct-Delay-Time
    from ``created_at`` on each transmission, return when a server answered; raise on
    failure (every server timed out)."""

    async def send_accounting(self, attributes: Attributes, created_at: float,
                              group: str | None = None) -> None: ...


@dataclass
class AccountingStats:
    queued: int = 0
    sent: int = 0
    failed_attempts: int = 0
    dropped_interim: int = 0
    dropped_start: int = 0
    dropped_stop: int = 0


class Accountant:
    """Owns the accounting sessions and the send queue; one asyncio task sends.

    Records leave in FIFO order (a session's Stop never overtakes its Start); when the
    head cannot be delivered the queue waits with exponential back-off and retries it.
    """

    def __init__(self, sender: AccountingSender, *, group: str | None = None,
                 max_queue: int = 10_000, retry_backoff: float = 1.0, max_backoff: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sender = sender
        self.group = group
        self.max_queue = max_queue
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.sessions: dict[str, AccountingSession] = {}
        self.counter_sources: dict[str, Callable[[], Counters]] = {}
        self.stats = AccountingStats()
        self._queue: collections.deque[AccountingRecord] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- sessions (called by the daemon's login / teardown code) --------------------------
    def start_session(self, session: AccountingSession,
                      counters: Callable[[], Counters] = Counters) -> None:
        """Register the session and queue its Start (after address assignment)."""
        self.sessions[session.session_id] = session
        self.counter_sources[session.session_id] = counters
        self.enqueue(session.start(session.started_at))

    def stop_session(self, session_id: str, cause: TerminateCause | SubscriberEvent,
                     now: float | None = None) -> None:
        """Queue the Stop with the final counters; the session is forgotten."""
        session = self.sessions.pop(session_id)
        counters = self.counter_sources.pop(session_id)()
        self.enqueue(session.stop(self.clock() if now is None else now, counters, cause))

    def tick(self, now: float) -> int:
        """Queue the Interim-Updates that are due; returns how many. Call from a timer."""
        queued_interim = {r.session_id for r in self._queue if r.status is StatusType.INTERIM_UPDATE}
        count = 0
        for session in self.sessions.values():
            if session.due(now):
                record = session.interim(now, self.counter_sources[session.session_id]())
                if session.session_id in queued_interim:
                    continue  # the previous one is still waiting; one per session is enough
                self.enqueue(record)
                count += 1
        return count

    def next_deadline(self) -> float | None:
        return min((s.next_interim_at for s in self.sessions.values()
                    if s.next_interim_at is not None), default=None)

    # -- queue --------------------------------------------------------------------------
    def enqueue(self, record: AccountingRecord) -> bool:
        if len(self._queue) >= self.max_queue and not self._make_room(record):
            return False
        self._queue.append(record)
        self.stats.queued += 1
        self._idle.clear()
        self._wakeup.set()
        return True

    def _make_room(self, record: AccountingRecord) -> bool:
        """Full queue: evict the oldest Interim-Update; else drop ``record`` loudly."""
        for old in self._queue:
            if old.status is StatusType.INTERIM_UPDATE:
                self._queue.remove(old)
                self.stats.dropped_interim += 1
                log.warning("accounting queue full (%d): dropped Interim-Update of %s",
                            self.max_queue, old.session_id)
                return True
        if record.status is StatusType.INTERIM_UPDATE:
            self.stats.dropped_interim += 1
        elif record.status is StatusType.START:
            self.stats.dropped_start += 1
        else:
            self.stats.dropped_stop += 1
        log.error("accounting queue full (%d records, no server answering?): DROPPED %s of "
                  "session %s", self.max_queue, record.status.name, record.session_id)
        return False

    def pending(self) -> int:
        return len(self._queue)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def run(self) -> None:
        """The sending task: ``task = asyncio.create_task(accountant.run())``; cancel to stop."""
        backoff = self.retry_backoff
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            record = self._queue[0]
            record.attempts += 1
            try:
                await self.sender.send_accounting(record.attributes, record.created_at, self.group)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep the record, retry
                self.stats.failed_attempts += 1
                log.warning("accounting %s of %s not delivered (attempt %d): %s; retry in %.1fs",
                            record.status.name, record.session_id, record.attempts, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.retry_backoff
            if self._queue and self._queue[0] is record:
                self._queue.popleft()
            self.stats.sent += 1

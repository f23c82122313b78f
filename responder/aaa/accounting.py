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
  counted and logged at error level). Records are journaled before they are queued
  and replayed after a restart (responder/aaa/journal.py); one that no server
  acknowledges within its limits goes to the dead letters, the others go on.

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

from responder.aaa.journal import AccountingJournal, DeadLetters
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
    """One Accounting-Request to send. ``created_at`` (monotonic) feeds Acct-Delay-Time;
    ``journal_id`` is its entry in the :class:`AccountingJournal` (None: not journaled)."""

    session_id: str
    status: StatusType
    attributes: Attributes
    created_at: float
    attempts: int = 0
    journal_id: int | None = None
    #: wall-clock time of ``created_at`` (a journal outlives the monotonic clock)
    created_wall: float | None = None


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


def nas_record(status: StatusType, boot_id: str, now: float,
               nas_attributes: Attributes) -> AccountingRecord:
    """Accounting-On (daemon start) or Accounting-Off (clean stop), RFC 2866 §5.1: the
    server closes every open session of this NAS. Acct-Session-Id is the boot id."""
    attrs: Attributes = {"Acct-Status-Type": int(status), "Acct-Session-Id": boot_id,
                         **nas_attributes}
    return AccountingRecord(boot_id, status, attrs, now)


def _encode_value(value: object) -> object:
    return {"hex": value.hex()} if isinstance(value, bytes) else value


def _decode_value(value: object) -> object:
    return bytes.fromhex(value["hex"]) if isinstance(value, dict) else value


def record_entry(record: AccountingRecord) -> dict:
    """A record as the journal and the dead letters keep it (JSON: bytes as hex)."""
    return {"session_id": record.session_id, "status": int(record.status),
            "created_wall": record.created_wall,
            "attributes": {k: _encode_value(v) for k, v in record.attributes.items()}}


def record_from_entry(entry: dict, journal_id: int, now: float, wall_now: float
                      ) -> AccountingRecord:
    """A journaled record back, its age kept: ``created_at`` is ``now`` minus the wall
    time since it was made (for Acct-Delay-Time and ``max_age``)."""
    created_wall = float(entry["created_wall"])
    return AccountingRecord(
        entry["session_id"], StatusType(entry["status"]),
        {k: _decode_value(v) for k, v in entry["attributes"].items()},
        created_at=now - max(0.0, wall_now - created_wall), journal_id=journal_id,
        created_wall=created_wall)


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
    replayed: int = 0
    dead_lettered: int = 0
    journal_errors: int = 0


class Accountant:
    """Owns the accounting sessions and the send queue; one asyncio task sends.

    Records leave in FIFO order (a session's Stop never overtakes its Start); when the
    head cannot be delivered the queue waits with exponential back-off and retries it.

    With a ``journal`` every record is written there before it is queued and leaves it
    only after its Accounting-Response; the journal's undelivered records are queued
    first, at construction (a restart, a crash). A record still undelivered after
    ``max_attempts`` sends or ``max_age`` seconds goes to ``dead_letters`` (and the log)
    and the queue goes on; None: retried forever. A failure of a type in
    ``unsent_errors`` (the client sent nothing: every server marked dead) is not an
    attempt: a record is not given up because of another record's timeouts.
    """

    def __init__(self, sender: AccountingSender, *, group: str | None = None,
                 max_queue: int = 10_000, retry_backoff: float = 1.0, max_backoff: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 journal: AccountingJournal | None = None,
                 dead_letters: DeadLetters | None = None,
                 max_attempts: int | None = None, max_age: float | None = None,
                 unsent_errors: tuple[type[BaseException], ...] = ()) -> None:
        self.sender = sender
        self.group = group
        self.max_queue = max_queue
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.wall_clock = wall_clock
        self.journal = journal
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts
        self.max_age = max_age
        self.unsent_errors = unsent_errors
        self.sessions: dict[str, AccountingSession] = {}
        self.counter_sources: dict[str, Callable[[], Counters]] = {}
        self.stats = AccountingStats()
        self._queue: collections.deque[AccountingRecord] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sync_scheduled = False
        self._replay_journal()

    def _replay_journal(self) -> None:
        if self.journal is None or not len(self.journal):
            return
        now, wall_now = self.clock(), self.wall_clock()
        for journal_id, entry in self.journal.pending():
            self._queue.append(record_from_entry(entry, journal_id, now, wall_now))
        self.stats.replayed = len(self._queue)
        self._idle.clear()
        self._wakeup.set()
        log.warning("accounting journal %s: %d undelivered records from an earlier run "
                    "queued again", self.journal.path, self.stats.replayed)

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

    def nas_status(self, status: StatusType, boot_id: str, nas_attributes: Attributes) -> None:
        """Queue Accounting-On (start) or Accounting-Off (clean stop) of this NAS."""
        self.enqueue(nas_record(status, boot_id, self.clock(), nas_attributes))

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
        if record.created_wall is None:
            record.created_wall = self.wall_clock() - max(0.0, self.clock() - record.created_at)
        self._journal_add(record)
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
                self._journal_done(old)
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

    def _journal_add(self, record: AccountingRecord) -> None:
        if self.journal is None:
            return
        try:
            record.journal_id = self.journal.add(record_entry(record))
        except OSError as exc:   # the record is still sent; only its durability is lost
            self.stats.journal_errors += 1
            log.error("accounting journal %s not written (%s): %s of %s kept in memory only",
                      self.journal.path, exc.strerror, record.status.name, record.session_id)
            return
        self._sync_soon()

    def _sync_soon(self) -> None:
        """One fsync for every record queued in this turn of the event loop."""
        if self._sync_scheduled or not self.journal.unsynced:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:      # no loop (tests, start-up): sync now
            self._sync_journal()
            return
        self._sync_scheduled = True
        loop.call_soon(self._sync_journal)

    def _sync_journal(self) -> None:
        self._sync_scheduled = False
        if self.journal is None:
            return
        try:
            self.journal.sync()
        except OSError as exc:
            self.stats.journal_errors += 1
            log.error("accounting journal %s not synced: %s", self.journal.path, exc.strerror)

    def _journal_done(self, record: AccountingRecord) -> None:
        if self.journal is None or record.journal_id is None:
            return
        try:
            self.journal.done(record.journal_id)
        except OSError as exc:   # the record may be sent once more after a restart
            self.stats.journal_errors += 1
            log.error("accounting journal %s: delivery of %s not noted (%s)",
                      self.journal.path, record.session_id, exc.strerror)

    def _exhausted(self, record: AccountingRecord) -> str | None:
        """Why ``record`` is given up (None: retry it)."""
        if self.max_attempts is not None and record.attempts >= self.max_attempts:
            return f"not acknowledged after {record.attempts} attempts"
        if self.max_age is not None and self.clock() - record.created_at >= self.max_age:
            return f"not acknowledged within {self.max_age:g} s"
        return None

    def _dead_letter(self, record: AccountingRecord, reason: str, error: Exception) -> None:
        self.stats.dead_lettered += 1
        log.error("accounting %s of session %s dead-lettered: %s (last error: %s)%s",
                  record.status.name, record.session_id, reason, error,
                  f"; kept in {self.dead_letters.path}" if self.dead_letters else "")
        if self.dead_letters is not None:
            try:
                self.dead_letters.write({"at": self.wall_clock(), "reason": reason,
                                         "error": str(error), "attempts": record.attempts,
                                         **record_entry(record)})
            except OSError as exc:
                log.error("dead-letter file %s not written: %s", self.dead_letters.path,
                          exc.strerror)
        self._journal_done(record)

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
            if self.journal is not None and self.journal.unsynced_add:
                self._sync_journal()     # on disk before it leaves
            record.attempts += 1
            try:
                await self.sender.send_accounting(record.attributes, record.created_at, self.group)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep the record, retry
                self.stats.failed_attempts += 1
                if isinstance(exc, self.unsent_errors):
                    record.attempts -= 1
                reason = self._exhausted(record)
                if reason is not None:
                    self._remove_head(record)
                    self._dead_letter(record, reason, exc)
                    continue
                log.warning("accounting %s of %s not delivered (attempt %d): %s; retry in %.1fs",
                            record.status.name, record.session_id, record.attempts, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.retry_backoff
            self._remove_head(record)
            self._journal_done(record)
            self.stats.sent += 1

    def _remove_head(self, record: AccountingRecord) -> None:
        if self._queue and self._queue[0] is record:
            self._queue.popleft()

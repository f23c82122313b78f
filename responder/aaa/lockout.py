"""Online password guessing: failure counters per user and per source address, back-off
delays and lockouts (pure logic: the clock is an argument, no I/O).

The supervisor holds the one :class:`LockoutTable` (a client's phase 1 SAs may land on
any worker); every worker holds a :class:`LockCopy` of the locks in force, fed by the
supervisor's ``lockout`` messages, and checks it before it asks AAA.

=====================  ======  ============================================================
setting                default what it does
=====================  ======  ============================================================
``enabled``            true    off: nothing is counted, every lock is lifted
``max_failures``       5       failures of one user name within ``window`` that lock it
``max_source_failures`` 20     failures from one source address within ``window`` that
                               lock the address (every user name behind it)
``window``             300 s   sliding window of the counters
``duration``           300 s   how long a lock lasts
``backoff_base``       1 s     delay before the n-th failure answer: base * 2^(n-1) ...
``backoff_max``        8 s     ... capped here; a refusal while locked waits the cap too
``max_entries``        10000   counters kept per kind; the least recently failed goes first
=====================  ======  ============================================================

A success resets the user's counter (not the source's: one valid account must not
reset an address that guesses other users' passwords). User names are compared
case-folded and without surrounding blanks, so ``Alice`` and ``alice `` share one
counter. Refusals while locked are not failures: they neither extend nor renew a lock.
Only a refusal of kind ``CREDENTIALS_REJECTED`` (responder/aaa/base.py) is a failure
here: an unreachable or failing AAA says nothing about the password and locks nobody out.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

__all__ = ["LockoutSettings", "LockoutTable", "LockCopy", "Verdict", "Lock", "USER", "SOURCE",
           "KINDS", "user_key", "lock_message", "unlock_message", "snapshot_message"]

USER, SOURCE = "user", "source"
KINDS = (USER, SOURCE)
#: a user name is counted by its first characters only (an attacker sends what it likes)
MAX_KEY_LENGTH = 128


@dataclass(frozen=True)
class LockoutSettings:
    enabled: bool = True
    max_failures: int = 5
    max_source_failures: int = 20
    window: float = 300.0
    duration: float = 300.0
    backoff_base: float = 1.0
    backoff_max: float = 8.0
    max_entries: int = 10_000

    def limit(self, kind: str) -> int:
        return self.max_failures if kind == USER else self.max_source_failures

    def backoff(self, failures: int) -> float:
        """The delay before the answer to the `failures`-th failure in the window."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_max, self.backoff_base * 2.0 ** min(failures - 1, 62))

    @property
    def locked_delay(self) -> float:
        return self.backoff(self.max_failures)


def user_key(username: str) -> str:
    return username.strip().casefold()[:MAX_KEY_LENGTH]


@dataclass(frozen=True)
class Lock:
    kind: str
    key: str
    until: float


@dataclass(frozen=True)
class Verdict:
    """What one failure leads to: the delay before its answer, locks it started."""

    delay: float
    locks: tuple[Lock, ...] = ()
    user_failures: int = 0
    source_failures: int = 0

    @property
    def locked(self) -> bool:
        return bool(self.locks)


@dataclass(slots=True)
class _Entry:
    #: failure times, oldest first (at most the kind's limit: a short list)
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0

    def prune(self, now: float, window: float) -> None:
        start = 0
        while start < len(self.failures) and self.failures[start] <= now - window:
            start += 1
        if start:
            del self.failures[:start]

    def expired(self, now: float, window: float) -> bool:
        self.prune(now, window)
        return not self.failures and self.locked_until <= now


class _Counters:
    """One kind's entries, least recently failed first (so the first entry is always
    the first to expire: a failure renews both its window and any lock)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.dropped = 0

    def fail(self, key: str, now: float, settings: LockoutSettings) -> tuple[int, Lock | None]:
        entry = self.entries.pop(key, None) or _Entry()
        self._make_room(now, settings)
        self.entries[key] = entry
        entry.prune(now, settings.window)
        if entry.locked_until > now:
            return len(entry.failures), None
        entry.failures.append(now)
        limit = settings.limit(self.kind)
        del entry.failures[:-limit]
        if len(entry.failures) < limit:
            return len(entry.failures), None
        entry.locked_until = now + settings.duration
        return len(entry.failures), Lock(self.kind, key, entry.locked_until)

    def _make_room(self, now: float, settings: LockoutSettings) -> None:
        while self.entries:
            key, oldest = next(iter(self.entries.items()))
            if oldest.expired(now, settings.window):
                del self.entries[key]
            elif len(self.entries) >= settings.max_entries:
                del self.entries[key]
                self.dropped += 1
            else:
                return

    def locked_until(self, key: str, now: float) -> float | None:
        entry = self.entries.get(key)
        if entry is None or entry.locked_until <= now:
            return None
        return entry.locked_until

    def forget(self, key: str) -> bool:
        return self.entries.pop(key, None) is not None

    def locks(self, now: float) -> Iterator[Lock]:
        for key, entry in self.entries.items():
            if entry.locked_until > now:
                yield Lock(self.kind, key, entry.locked_until)


class LockoutTable:
    """The supervisor's counters. Every method takes `now` (a monotonic clock)."""

    def __init__(self, settings: LockoutSettings | None = None) -> None:
        self.settings = settings or LockoutSettings()
        self._kinds = {kind: _Counters(kind) for kind in KINDS}
        self.failures = 0
        self.lockouts = {kind: 0 for kind in KINDS}

    def configure(self, settings: LockoutSettings) -> None:
        self.settings = settings
        if not settings.enabled:
            self.clear_all()

    def failed(self, username: str, source: str, now: float) -> Verdict:
        if not self.settings.enabled:
            return Verdict(0.0)
        self.failures += 1
        user_count, user_lock = self._kinds[USER].fail(user_key(username), now, self.settings)
        source_count, source_lock = self._kinds[SOURCE].fail(source, now, self.settings)
        locks = tuple(lock for lock in (user_lock, source_lock) if lock is not None)
        for lock in locks:
            self.lockouts[lock.kind] += 1
        return Verdict(self.settings.backoff(user_count), locks, user_count, source_count)

    def succeeded(self, username: str) -> bool:
        """The user's counter goes (a lock too: AAA only runs while it is not locked)."""
        return self._kinds[USER].forget(user_key(username))

    def locked(self, kind: str, key: str, now: float) -> float | None:
        """The end of the lock on `key`, or None."""
        if kind == USER:
            key = user_key(key)
        return self._kinds[kind].locked_until(key, now)

    def clear(self, kind: str, key: str) -> bool:
        if kind == USER:
            key = user_key(key)
        return self._kinds[kind].forget(key)

    def clear_all(self) -> int:
        count = sum(len(c.entries) for c in self._kinds.values())
        for counters in self._kinds.values():
            counters.entries.clear()
        return count

    def locks(self, now: float) -> list[Lock]:
        return [lock for counters in self._kinds.values() for lock in counters.locks(now)]

    def active(self, now: float) -> dict[str, int]:
        return {kind: sum(1 for _ in self._kinds[kind].locks(now)) for kind in KINDS}

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self._kinds.values())

    def rows(self, now: float) -> list[dict]:
        """Every counter still in its window or lock: key, kind, failures, seconds left."""
        rows = []
        for kind, counters in self._kinds.items():
            for key, entry in counters.entries.items():
                if entry.expired(now, self.settings.window):
                    continue
                remaining = max(0.0, entry.locked_until - now)
                rows.append({"key": key, "kind": kind, "failures": len(entry.failures),
                             "locked": remaining > 0, "remaining": round(remaining, 1)})
        return rows


# -- the supervisor -> worker messages (ipc.py) -------------------------------------------
def lock_message(locks: Iterable[Lock], now: float, delay: float) -> dict:
    """Locks as remaining seconds (the two processes' clocks need not agree)."""
    return {"op": "lockout", "lock": [[lock.kind, lock.key, round(lock.until - now, 3)]
                                      for lock in locks], "delay": delay}


def unlock_message(pairs: Iterable[tuple[str, str]]) -> dict:
    return {"op": "lockout", "unlock": [list(pair) for pair in pairs]}


def snapshot_message(locks: Iterable[Lock], now: float, delay: float) -> dict:
    """Every lock in force: the worker replaces its copy (a worker just started)."""
    return {**lock_message(locks, now, delay), "replace": True}


class LockCopy:
    """A worker's copy of the locks in force: asked before AAA, no round trip."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()
        #: the delay before a refusal while locked (the supervisor's setting)
        self.delay = LockoutSettings().locked_delay

    def apply(self, message: dict, now: float) -> None:
        if message.get("replace"):
            self._until.clear()
        if "delay" in message:
            self.delay = float(message["delay"])
        for kind, key in message.get("unlock", ()):
            if kind == "*":
                self._until.clear()
            else:
                self._until.pop((kind, key), None)
        for kind, key, remaining in message.get("lock", ()):
            self._add((str(kind), str(key)), now + float(remaining))

    def _add(self, pair: tuple[str, str], until: float) -> None:
        self._until.pop(pair, None)
        while len(self._until) >= self.max_entries:
            self._until.popitem(last=False)
        self._until[pair] = until

    def refusal(self, username: str, source: str, now: float) -> str | None:
        """"user-locked" / "source-locked" while a lock holds, else None."""
        for kind, key in ((USER, user_key(username)), (SOURCE, source)):
            until = self._until.get((kind, key))
            if until is None:
                continue
            if until > now:
                return f"{kind}-locked"
            del self._until[(kind, key)]
        return None

    def __len__(self) -> int:
        return len(self._until)

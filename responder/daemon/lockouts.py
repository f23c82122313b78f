"""Xauth brute-force defence across workers (the logic: responder/aaa/lockout.py).

=====================  ==================  =============================================
message (ipc.py)       direction           meaning
=====================  ==================  =============================================
``auth-failed``        worker -> sup.      request ``{user, source}`` after AAA refused a
                                           guess; reply ``{delay, locked}``: wait `delay`,
                                           then answer the client (no re-prompt if locked)
``auth-ok``            worker -> sup.      ``{user}``: AAA granted without an ``acquire``
                                           (a re-attach); ``acquire`` itself resets too
``lockout``            sup. -> workers     ``{lock: [[kind, key, seconds]], unlock:
                                           [[kind, key]], delay, replace}``
=====================  ==================  =============================================

The success path costs nothing extra: a worker checks its :class:`LockCopy` before
AAA, and the supervisor resets the user's counter when the ``acquire`` arrives.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable

from responder.aaa.base import AuthResult
from responder.aaa.lockout import (SOURCE, USER, LockCopy, LockoutSettings, LockoutTable,
                                   lock_message, snapshot_message, unlock_message, user_key)

log = logging.getLogger(__name__)

__all__ = ["LockoutCenter", "LoginGuard", "broadcaster"]


# -- the supervisor's side ---------------------------------------------------------------
class LockoutCenter:
    """The one table; broadcasts lock changes with `broadcast(message)` to every worker."""

    def __init__(self, settings: LockoutSettings,
                 broadcast: Callable[[dict], None] = lambda message: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.table = LockoutTable(settings)
        self.broadcast = broadcast
        self.clock = clock

    def configure(self, settings: LockoutSettings) -> None:
        """New settings (a reload): the workers get the locks in force (none when
        switched off) with the new delay."""
        self.table.configure(settings)
        self.broadcast(self.snapshot())

    def failed(self, message: dict) -> dict:
        user, source = str(message.get("user", "")), str(message.get("source", ""))
        now = self.clock()
        verdict = self.table.failed(user, source, now)
        for lock in verdict.locks:
            log.warning("lockout: %s %r locked for %.0f s after %d failed Xauth logins "
                        "(last: user %r from %s)", lock.kind, lock.key,
                        lock.until - now, verdict.user_failures if lock.kind == USER
                        else verdict.source_failures, user, source)
        if verdict.locks:
            self.broadcast(lock_message(verdict.locks, now, self.table.settings.locked_delay))
        return {"delay": verdict.delay, "locked": verdict.locked,
                "failures": verdict.user_failures}

    def succeeded(self, user: str | None) -> None:
        if user and self.table.succeeded(user):
            log.debug("lockout: counter of user %r reset by a login", user)

    def snapshot(self) -> dict:
        now = self.clock()
        return snapshot_message(self.table.locks(now), now, self.table.settings.locked_delay)

    def clear(self, *, user: str | None = None, source: str | None = None,
              everything: bool = False) -> int:
        if everything:
            count = self.table.clear_all()
            self.broadcast(unlock_message([("*", "*")]))
            log.info("lockout: every counter cleared (%d)", count)
            return count
        pairs = [(USER, user_key(user))] if user else []
        pairs += [(SOURCE, source)] if source else []
        count = sum(self.table.clear(kind, key) for kind, key in pairs)
        self.broadcast(unlock_message(pairs))
        log.info("lockout: cleared %s (%d)", ", ".join(f"{k} {v!r}" for k, v in pairs), count)
        return count

    def rows(self) -> list[dict]:
        now, wall = self.clock(), time.time()
        rows = self.table.rows(now)
        for row in rows:
            row["locked_until"] = (time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(wall + row["remaining"]))
                                   if row["locked"] else None)
        return sorted(rows, key=lambda r: (not r["locked"], r["kind"], r["key"]))


# -- a worker's side ----------------------------------------------------------------------
Report = Callable[[dict], Awaitable[dict]]


class LoginGuard:
    """Asked by the orchestrator around AAA. `report` sends ``auth-failed`` to the
    supervisor and returns its reply; `clock` is the worker's (monotonic) clock."""

    def __init__(self, report: Report, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 notify: Callable[[dict], None] = lambda message: None) -> None:
        self.report = report
        self.notify = notify
        self.clock = clock
        self.sleep = sleep
        self.copy = LockCopy()
        #: fallback delay when the supervisor does not answer
        self.fallback_delay = LockoutSettings().backoff_base

    def refusal(self, username: str, source: str) -> str | None:
        return self.copy.refusal(username, source, self.clock())

    async def hold_locked(self) -> None:
        await self.sleep(self.copy.delay)

    async def failed(self, username: str, source: str, result: AuthResult) -> bool:
        """After AAA refused: report a guess (``result.is_guess``: credentials rejected),
        wait the back-off. True if the user or the source is locked now (no re-prompt
        then)."""
        if not result.is_guess:
            return False
        try:
            reply = await self.report({"op": "auth-failed", "user": username, "source": source})
        except Exception as exc:  # noqa: BLE001 - supervisor gone or slow: still slow down
            log.warning("lockout: failure of %r from %s not counted: %s", username, source, exc)
            reply = {"delay": self.fallback_delay}
        await self.sleep(max(0.0, float(reply.get("delay", 0.0))))
        return bool(reply.get("locked"))

    def granted(self, username: str) -> None:
        self.notify({"op": "auth-ok", "user": username})

    def apply(self, message: dict) -> None:
        self.copy.apply(message, self.clock())


def broadcaster(channels: Callable[[], Iterable]) -> Callable[[dict], None]:
    """`broadcast(message)` to every open worker channel."""
    def broadcast(message: dict) -> None:
        for channel in channels():
            if channel is not None and not channel.closed:
                channel.notify(message)
    return broadcast

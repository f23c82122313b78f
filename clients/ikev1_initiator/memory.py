"""Initiator sessions against an in-memory responder, with a fake clock.

For unit tests and in-memory load measurement: no sockets. The responder is
anything shaped like `responder.ikev1.engine.Responder`:
`receive_datagram(data, local, remote, now)`, `datagrams_to_send()` returning
objects with `.data`, `.local`, `.remote`, and optionally `get_timer()` /
`handle_timer(now)`.

    link = MemoryLink(responder, server=("198.18.0.1", 500))
    link.add(session)            # session.start(link.now) is called here
    link.run_until(lambda: session.finished or session.established)

A scripted client that is no `InitiatorSession` (the step-by-step test initiator)
uses the responder side alone: `to_responder(data, source, destination)`,
`from_responder()` and `fire_responder_timers(until)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .session import Datagram, InitiatorSession

__all__ = ["MemoryLink", "ResponderLike", "Wire"]

log = logging.getLogger(__name__)

Address = tuple[str, int]


class ResponderLike(Protocol):
    def receive_datagram(self, data: bytes, local: Address, remote: Address, now: float) -> None: ...

    def datagrams_to_send(self) -> list[Any]: ...


@dataclass
class Wire:
    """One datagram seen on the simulated wire (for assertions and drops)."""

    data: bytes
    source: Address
    destination: Address


@dataclass
class MemoryLink:
    """Carries datagrams between sessions and one responder; drives timers."""

    responder: ResponderLike
    server: Address
    server_natt_port: int = 4500
    now: float = 1000.0
    #: return False to drop a datagram (loss tests)
    deliver: Callable[[Wire], bool] = field(default=lambda wire: True)
    sessions: dict[Address, InitiatorSession] = field(default_factory=dict)
    to_server: list[Wire] = field(default_factory=list)
    to_client: list[Wire] = field(default_factory=list)

    def add(self, session: InitiatorSession) -> None:
        self.sessions[session.local] = session
        self.sessions[session.local_natt] = session
        self._send(session, session.start(self.now))

    def _source(self, session: InitiatorSession, datagram: Datagram) -> Address:
        return session.local_natt if datagram.natt else session.local

    # ------------------------------------------------------------ the responder side
    def to_responder(self, data: bytes, source: Address, destination: Address) -> None:
        """One datagram to the responder (recorded; `deliver` may drop it)."""
        wire = Wire(data, source, destination)
        self.to_server.append(wire)
        if self.deliver(wire):
            self.responder.receive_datagram(data, destination, source, self.now)

    def from_responder(self) -> list[Any]:
        """What the responder sends now (recorded, not yet delivered anywhere)."""
        replies = self.responder.datagrams_to_send()
        self.to_client.extend(Wire(r.data, r.local, r.remote) for r in replies)
        return replies

    def fire_responder_timers(self, until: float) -> list[Any]:
        """Move the clock to `until`, firing the responder's timers on the way; returns
        what they made it send."""
        replies: list[Any] = []
        get_timer = getattr(self.responder, "get_timer", None)
        while get_timer is not None:
            timer = get_timer()
            if timer is None or timer > until:
                break
            self.now = max(self.now, timer)
            self.responder.handle_timer(self.now)
            replies += self.from_responder()
        self.now = until
        return replies

    # ------------------------------------------------------------ sessions
    def _send(self, session: InitiatorSession, datagrams: list[Datagram]) -> None:
        for datagram in datagrams:
            self.to_responder(datagram.data, self._source(session, datagram), datagram.remote)

    def pump(self) -> int:
        """Deliver until both sides are quiet; returns datagrams moved."""
        moved = 0
        while True:
            replies = self.from_responder()
            outgoing = [(s, s.datagrams_to_send()) for s in set(self.sessions.values())]
            outgoing = [(s, d) for s, d in outgoing if d]
            if not replies and not outgoing:
                return moved
            for reply in replies:
                moved += 1
                self._to_session(reply)
            for session, datagrams in outgoing:
                moved += len(datagrams)
                self._send(session, datagrams)

    def _to_session(self, reply: Any) -> None:
        session = self.sessions.get(reply.remote)
        if session is None or not self.deliver(Wire(reply.data, reply.local, reply.remote)):
            return
        natt = reply.local[1] == self.server_natt_port
        session.receive_datagram(reply.data, self.now, natt=natt)

    def next_timer(self) -> float | None:
        times = [s.get_timer() for s in set(self.sessions.values())]
        get_timer = getattr(self.responder, "get_timer", None)
        if get_timer is not None:
            times.append(get_timer())
        return min((t for t in times if t is not None), default=None)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer on the way."""
        target = self.now + seconds
        while True:
            self.pump()
            timer = self.next_timer()
            if timer is None or timer > target:
                break
            self.now = max(self.now, timer)
            for session in set(self.sessions.values()):
                session.handle_timer(self.now)
            handle_timer = getattr(self.responder, "handle_timer", None)
            if handle_timer is not None:
                handle_timer(self.now)
        self.now = target
        self.pump()

    def run_until(self, done: Callable[[], bool], *, limit: float = 120.0, step: float = 0.5) -> bool:
        """Pump and advance the clock in steps until `done()` or `limit` seconds."""
        deadline = self.now + limit
        self.pump()
        while not done():
            if self.now >= deadline:
                return False
            self.advance(step)
        return True

"""asyncio UDP driver: runs one or many `InitiatorSession`s over real sockets.

The only module here that owns sockets and a clock (aioquic's
`asyncio/protocol.py` is the model). Sessions share endpoints: one IKE socket
and one NAT-T socket per source address, datagrams demultiplexed by the
initiator cookie, so thousands of sessions need two sockets per source
address, not two per session.

    results = asyncio.run(run_sessions(configs, sources=["198.18.1.5"], rate=50))

Each session runs until it is established (then is held `hold` seconds,
answering DPD, and closed with Delete), fails, or hits `timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from responder.ikev1.message import COOKIE_SIZE
from responder.ikev1.natt_framing import Port4500Kind, classify_port4500
from responder.ikev1.errors import CodecError

from .config import InitiatorConfig
from .hooks import NO_HOOK, MessageHook
from .results import SessionResult
from .session import Datagram, InitiatorSession, Rng

__all__ = ["EndpointPool", "SessionRunner", "RunnerOutcome", "run_sessions", "run_session"]

log = logging.getLogger(__name__)

Address = tuple[str, int]


class UdpEndpoint(asyncio.DatagramProtocol):
    """One bound UDP socket shared by many sessions (keyed by initiator cookie)."""

    def __init__(self, natt: bool) -> None:
        self.natt = natt
        self.transport: asyncio.DatagramTransport | None = None
        self.runners: dict[bytes, "SessionRunner"] = {}

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (host, port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        cookie = self._cookie_of(data)
        runner = self.runners.get(cookie) if cookie else None
        if runner is not None:
            runner.on_datagram(data, self.natt)

    def _cookie_of(self, data: bytes) -> bytes | None:
        if not self.natt:
            return data[:COOKIE_SIZE] if len(data) >= COOKIE_SIZE else None
        try:
            kind, content = classify_port4500(data)
        except CodecError:
            return None
        if kind is not Port4500Kind.IKE or len(content) < COOKIE_SIZE:
            return None
        return content[:COOKIE_SIZE]

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error on %s: %s", self.address, exc)

    def send(self, data: bytes, remote: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, remote)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class EndpointPool:
    """Lazily bound (IKE, NAT-T) socket pairs, one pair per source address."""

    def __init__(self, ike_port: int = 0, natt_port: int = 0) -> None:
        self.ike_port = ike_port
        self.natt_port = natt_port
        self._pairs: dict[str, tuple[UdpEndpoint, UdpEndpoint]] = {}
        self._lock = asyncio.Lock()

    async def pair(self, source: str) -> tuple[UdpEndpoint, UdpEndpoint]:
        async with self._lock:
            if source not in self._pairs:
                ike = await self._bind(source, self.ike_port, natt=False)
                natt = await self._bind(source, self.natt_port, natt=True)
                self._pairs[source] = (ike, natt)
            return self._pairs[source]

    @staticmethod
    async def _bind(source: str, port: int, *, natt: bool) -> UdpEndpoint:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpEndpoint(natt), local_addr=(source, port))
        return protocol

    def close(self) -> None:
        for ike, natt in self._pairs.values():
            ike.close()
            natt.close()
        self._pairs.clear()


@dataclass
class RunnerOutcome:
    index: int
    name: str
    result: SessionResult
    timed_out: bool = False
    extra: dict = field(default_factory=dict)


class SessionRunner:
    """Drives one session: sends its datagrams, arms its timer, watches its state."""

    def __init__(self, session: InitiatorSession, ike: UdpEndpoint, natt: UdpEndpoint) -> None:
        self.session = session
        self._ike = ike
        self._natt = natt
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        ike.runners[session.cky_i] = self
        natt.runners[session.cky_i] = self

    def now(self) -> float:
        return self._loop.time()

    def start(self) -> None:
        self._send(self.session.start(self.now()))
        self._after_activity()

    def on_datagram(self, data: bytes, natt: bool) -> None:
        self.session.receive_datagram(data, self.now(), natt=natt)
        self._after_activity()

    def _on_timer(self) -> None:
        self._timer = None
        self.session.handle_timer(self.now())
        self._after_activity()

    def _send(self, datagrams: list[Datagram]) -> None:
        for datagram in datagrams:
            endpoint = self._natt if datagram.natt else self._ike
            endpoint.send(datagram.data, datagram.remote)

    def _after_activity(self) -> None:
        self._send(self.session.datagrams_to_send())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.session.get_timer()
        if when is not None and not self.session.finished:
            self._timer = self._loop.call_at(when, self._on_timer)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[InitiatorSession], bool]) -> None:
        while not predicate(self.session):
            self._changed.clear()
            await self._changed.wait()

    def flush(self) -> None:
        """Send what the session queued outside a datagram or timer (a DPD probe,
        another Quick Mode) and re-arm its timer."""
        self._after_activity()

    def close(self) -> None:
        self.session.close(self.now())
        self._after_activity()

    def abort(self, reason: str) -> None:
        self.session.abort(self.now(), reason)
        self._after_activity()

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._ike.runners.pop(self.session.cky_i, None)
        self._natt.runners.pop(self.session.cky_i, None)


def _settled(session: InitiatorSession) -> bool:
    return session.established or session.finished


async def run_session(index: int, config: InitiatorConfig, pool: EndpointPool, source: str, *,
                      hold: float = 0.0, timeout: float = 30.0, rng: Rng = os.urandom,
                      hooks: MessageHook = NO_HOOK) -> RunnerOutcome:
    """One session from `source`: up, hold, close. Never raises for protocol faults."""
    ike, natt = await pool.pair(source)
    session = InitiatorSession(config, local=ike.address, local_natt=natt.address, rng=rng,
                               hooks=hooks)
    runner = SessionRunner(session, ike, natt)
    timed_out = False
    try:
        runner.start()
        try:
            await asyncio.wait_for(runner.wait_for(_settled), timeout)
        except asyncio.TimeoutError:
            timed_out = True
            runner.abort(f"not established within {timeout:g} s")
        if session.established and hold > 0:
            # keep answering DPD; a server Delete ends the hold early
            try:
                await asyncio.wait_for(runner.wait_for(lambda s: s.finished), hold)
            except asyncio.TimeoutError:
                pass
        runner.close()
    finally:
        runner.detach()
    return RunnerOutcome(index, session.name, session.result(), timed_out)


async def run_sessions(configs: Sequence[InitiatorConfig], *, sources: Sequence[str],
                       rate: float | None = None, hold: float = 0.0, timeout: float = 30.0,
                       ike_port: int = 0, natt_port: int = 0, rng: Rng = os.urandom,
                       on_done: Callable[[RunnerOutcome], None] | None = None
                       ) -> list[RunnerOutcome]:
    """Start every config (at `rate` per second if given), from the sources in turn."""
    if not sources:
        raise ValueError("at least one source address is needed")
    pool = EndpointPool(ike_port, natt_port)
    tasks: list[asyncio.Task] = []

    async def one(index: int, config: InitiatorConfig) -> RunnerOutcome:
        outcome = await run_session(index, config, pool, sources[index % len(sources)],
                                    hold=hold, timeout=timeout, rng=rng)
        if on_done is not None:
            on_done(outcome)
        return outcome

    try:
        for index, config in enumerate(configs):
            tasks.append(asyncio.create_task(one(index, config)))
            if rate:
                await asyncio.sleep(1.0 / rate)
        outcomes = await asyncio.gather(*tasks)
        # let the last Delete datagrams leave before the sockets close
        await asyncio.sleep(0.05)
        return list(outcomes)
    finally:
        for task in tasks:
            task.cancel()
        pool.close()

"""Thin asyncio adapter around the sans-I/O `Responder` (aioquic asyncio/protocol.py).

It owns the UDP sockets (500 and 4500 on each given local address) and the
one timer; the engine owns everything else. On 4500 the first bytes decide
(RFC 3948 §2): a Non-ESP marker is IKE (given to the engine as received), a
lone 0xFF is a NAT keepalive (ignored), anything else is ESP and goes to the
`esp_handler` callback (the future userspace data path).

Time is `loop.time()` (monotonic); it is handed to the engine as `now`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

from .admission import FirstMessageGate
from .engine import Address, Responder
from .events import Event
from .natt_framing import Port4500Kind, classify_port4500
from .errors import CodecError

__all__ = ["ResponderTransport", "serve", "EspHandler", "EventHandler"]

log = logging.getLogger(__name__)

EspHandler = Callable[[bytes, Address, Address], None]
EventHandler = Callable[[Event], None]

IKE_PORT = 500
NATT_PORT = 4500


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: "ResponderTransport", local: Address) -> None:
        self._owner = owner
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._owner.datagram_received(data, self.local, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.warning("socket %s:%d error: %s", *self.local, exc)


class ResponderTransport:
    """Sockets + timer for one `Responder` (one per worker process)."""

    def __init__(self, responder: Responder, *, esp_handler: EspHandler | None = None,
                 event_handler: EventHandler | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.responder = responder
        self._esp_handler = esp_handler
        self._event_handler = event_handler
        self._loop = loop or asyncio.get_event_loop()
        self._endpoints: dict[Address, _Endpoint] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._gate: FirstMessageGate | None = None
        self._gate_limits = None

    # ------------------------------------------------------------ sockets
    async def open(self, addresses: Iterable[str], *, ike_port: int = IKE_PORT,
                   natt_port: int = NATT_PORT) -> None:
        for address in addresses:
            for port in (ike_port, natt_port):
                await self._bind((address, port))

    async def _bind(self, local: Address) -> None:
        endpoint = _Endpoint(self, local)
        await self._loop.create_datagram_endpoint(lambda: endpoint, local_addr=local)
        self._endpoints[local] = endpoint
        log.info("listening on %s:%d/udp", *local)

    def attach(self, local: Address, transport: asyncio.DatagramTransport) -> _Endpoint:
        """Use an already open transport (tests, or sockets passed in)."""
        endpoint = _Endpoint(self, local)
        endpoint.connection_made(transport)
        self._endpoints[local] = endpoint
        return endpoint

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for endpoint in self._endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._endpoints.clear()

    # ------------------------------------------------------------ input
    def datagram_received(self, data: bytes, local: Address, remote: Address) -> None:
        if local[1] != IKE_PORT:
            try:
                kind, content = classify_port4500(data)
            except CodecError:
                return
            if kind is Port4500Kind.KEEPALIVE:
                return
            if kind is Port4500Kind.ESP:
                if self._esp_handler is not None:
                    self._esp_handler(content, local, remote)
                return
            message = content
        else:
            message = data
        now = self._loop.time()
        if not self._first_message_gate().admit(message, remote[0], now):
            self.responder.stats["dropped_first_message_shed"] += 1
            return
        self.responder.receive_datagram(data, local, remote, now)
        self._after_engine()

    def _first_message_gate(self) -> FirstMessageGate:
        """The gate of the engine's current limits (a reload replaces them)."""
        limits = self.responder.policy.limits
        if self._gate_limits is not limits:
            self._gate, self._gate_limits = FirstMessageGate(limits), limits
        return self._gate

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.responder.handle_timer(self._loop.time())
        self._after_engine()

    # ------------------------------------------------------------ output
    def _after_engine(self) -> None:
        """Send what the engine produced, deliver events, re-arm the timer."""
        for datagram in self.responder.datagrams_to_send():
            endpoint = self._endpoints.get(datagram.local)
            if endpoint is None or endpoint.transport is None:
                log.warning("no socket for %s:%d, datagram dropped", *datagram.local)
                continue
            endpoint.transport.sendto(datagram.data, datagram.remote)
        for event in self.responder.events():
            if self._event_handler is not None:
                self._event_handler(event)
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = self.responder.get_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer) if when is not None else None

    def poke(self) -> None:
        """After a command (delete_phase1, note_peer_activity): flush output."""
        self._after_engine()


async def serve(responder: Responder, addresses: Iterable[str], *,
                esp_handler: EspHandler | None = None,
                event_handler: EventHandler | None = None,
                ike_port: int = IKE_PORT, natt_port: int = NATT_PORT) -> ResponderTransport:
    """Open 500/4500 on every address and run the responder; returns the
    transport (call `close()` to stop)."""
    transport = ResponderTransport(responder, esp_handler=esp_handler,
                                   event_handler=event_handler,
                                   loop=asyncio.get_running_loop())
    await transport.open(addresses, ike_port=ike_port, natt_port=natt_port)
    return transport

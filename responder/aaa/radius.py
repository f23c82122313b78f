"""RADIUS client (RFC 2865 authentication, RFC 2866 accounting) on asyncio, with pyrad
packets.

pyrad's own ``client_async`` keeps one socket and one 256-id space per server, retries
without failover and cannot change Acct-Delay-Time between retransmissions, so this
module has a small transport of its own and uses pyrad only to encode and verify
packets:

* :class:`RadiusTransport` owns UDP sockets (asyncio ``DatagramProtocol``). Identifiers
  are managed per socket; when all 256 of every socket are in use a new socket (source
  port) is opened, up to ``max_sockets``; beyond that requests wait, and beyond
  ``max_waiting`` waiters they fail at once (:class:`RadiusBusyError`): bounded.
  A reply is accepted only from the address the request went to and only if it
  verifies (Response Authenticator and Message-Authenticator, BlastRADIUS checks in
  pyrad's ``VerifyReply``); anything else is dropped and counted (RFC 2865 §3).
  An Access-Accept/Reject/Challenge without a Message-Authenticator is dropped too
  (counted as ``dropped_no_message_authenticator``) unless the server is configured
  with ``require_message_authenticator = False`` (BlastRADIUS, CVE-2024-3596).
* :class:`RadiusClient` knows server groups: tries each server with ``retries``
  retransmissions of ``timeout`` seconds, marks a server that never answered dead for
  the group's ``dead_time`` and fails over to the next one. While every server of a
  group is dead, requests fail at once (:class:`RadiusNoServer`, nothing is sent): a
  login is refused in no time instead of after timeout x retries per server. A server
  whose ``dead_time`` has passed is tried by the next request (the probe); requests
  that come while that probe is under way skip the server instead of waiting for it.
* :class:`RadiusBackend` is the AAA back end: PAP Access-Request with the NAS
  attributes, reply attributes into an :class:`AuthResult`.

Counters (:meth:`RadiusClient.counters`, for ``show statistics`` and the metrics): per
server (group, index; named by its address) the :data:`SERVER_COUNTERS`, per group the requests
refused while every server was dead, and the transport's own (drops by reason,
retransmissions, busy refusals).

Retransmission rules: an Access-Request is retransmitted unchanged (same Identifier and
Request Authenticator, RFC 5080 §2.2.1) to one server; another server gets a freshly
encoded packet (its own secret). An Accounting-Request gets a new Identifier on every
transmission because its Acct-Delay-Time changes (RFC 2866 §5.2).
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pyrad import packet as rpacket
from pyrad.dictionary import Dictionary

from responder.aaa.base import (AaaError, AuthRequest, AuthResult, IPv4, Refusal,
                               UnknownBackendError)

log = logging.getLogger(__name__)

DICTIONARY_PATH = Path(__file__).with_name("dictionary")


def load_dictionary(path: Path | str = DICTIONARY_PATH) -> Dictionary:
    return Dictionary(str(path))


class RadiusError(AaaError):
    """Base of the RADIUS client errors."""


class RadiusTimeout(RadiusError):
    """No server of the group answered."""


class RadiusNoServer(RadiusTimeout):
    """Every server of the group is marked dead: the request was not sent."""


class RadiusBusyError(RadiusError):
    """Too many requests waiting for an Identifier: the request was not sent."""


@dataclass(frozen=True)
class RadiusServer:
    address: str
    secret: bytes = field(repr=False)
    auth_port: int = 1812
    acct_port: int = 1813
    #: seconds to wait for an answer before retransmitting
    timeout: float = 3.0
    #: retransmissions after the first transmission
    retries: int = 2
    #: drop Access-Accept/Reject/Challenge without Message-Authenticator (CVE-2024-3596)
    require_message_authenticator: bool = True

    @property
    def label(self) -> str:
        return f"{self.address}"


#: per-server counters: requests sent to it (the first transmission), requests it left
#: unanswered after every retransmission, times it was marked dead, replies dropped for
#: want of a Message-Authenticator
SERVER_COUNTERS = ("requests", "timeouts", "dead_marks", "dropped_no_message_authenticator")


@dataclass(frozen=True)
class ServerGroup:
    name: str
    servers: tuple[RadiusServer, ...]
    #: seconds a server that did not answer is skipped ("revive time")
    dead_time: float = 60.0


# -- transport --------------------------------------------------------------------------------


class ReplyRefused(Exception):
    """Raised by a verifier for a reply that is authentic but not acceptable; the
    transport drops it and counts it under ``counter``."""

    def __init__(self, counter: str, why: str) -> None:
        self.counter = counter
        super().__init__(why)


@dataclass
class _Pending:
    destination: tuple[str, int]
    verify: Callable[[bytes], object | None]
    future: asyncio.Future


class _RadiusSocket(asyncio.DatagramProtocol):
    """One UDP socket and its 256 Identifiers."""

    def __init__(self, owner: "RadiusTransport") -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        # FIFO reuse: an id just freed is reused last, far from a late reply to it.
        self.free_ids: collections.deque[int] = collections.deque(range(256))
        self.pending: dict[int, _Pending] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) < 20:
            self.owner.stats["dropped_short"] += 1
            return
        pending = self.pending.get(data[1])
        if pending is None or pending.future.done():
            self.owner.stats["dropped_unexpected"] += 1
            return
        if (addr[0], addr[1]) != pending.destination:
            self.owner.stats["dropped_wrong_source"] += 1
            log.warning("RADIUS reply for id %d from %s:%d, expected %s:%d: dropped",
                        data[1], addr[0], addr[1], *pending.destination)
            return
        try:
            reply = pending.verify(data)
        except ReplyRefused as refused:
            self.owner.stats[refused.counter] += 1
            log.warning("RADIUS reply from %s:%d dropped: %s", *addr[:2], refused)
            return
        except Exception as exc:  # noqa: BLE001 - malformed packet from the network
            reply = None
            log.debug("RADIUS reply from %s undecodable: %s", addr[0], exc)
        if reply is None:
            self.owner.stats["dropped_unverified"] += 1
            log.warning("RADIUS reply from %s:%d failed verification (wrong secret?): dropped",
                        *addr[:2])
            return
        pending.future.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc.: let the timeout handle it (the server may come back).
        log.debug("RADIUS socket error: %s", exc)


class RadiusTransport:
    """UDP sockets for RADIUS requests; see the module doc."""

    def __init__(self, bind_address: str = "0.0.0.0", *, max_sockets: int = 8,
                 max_waiting: int = 4096) -> None:
        self.bind_address = bind_address
        self.max_sockets = max_sockets
        self.max_waiting = max_waiting
        self.stats: collections.Counter[str] = collections.Counter()
        self._sockets: list[_RadiusSocket] = []
        self._id_freed = asyncio.Condition()
        self._open_lock = asyncio.Lock()
        self._waiting = 0

    async def _open_socket(self) -> _RadiusSocket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.bind_address else socket.AF_INET
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _RadiusSocket(self), local_addr=(self.bind_address, 0), family=family)
        self._sockets.append(protocol)
        return protocol

    def _take_free_id(self) -> tuple[_RadiusSocket, int] | None:
        for sock in self._sockets:
            if sock.free_ids:
                return sock, sock.free_ids.popleft()
        return None

    async def _allocate_id(self) -> tuple[_RadiusSocket, int]:
        found = self._take_free_id()
        if found:
            return found
        async with self._open_lock:      # one opener at a time: max_sockets holds
            found = self._take_free_id()
            if found:
                return found
            if len(self._sockets) < self.max_sockets:
                sock = await self._open_socket()
                return sock, sock.free_ids.popleft()
        if self._waiting >= self.max_waiting:
            self.stats["refused_busy"] += 1
            raise RadiusBusyError(f"{self._waiting} RADIUS requests already wait for an "
                                  "Identifier")
        self._waiting += 1
        try:
            async with self._id_freed:
                while (found := self._take_free_id()) is None:
                    await self._id_freed.wait()
                return found
        finally:
            self._waiting -= 1

    async def _free_id(self, sock: _RadiusSocket, ident: int) -> None:
        sock.pending.pop(ident, None)
        sock.free_ids.append(ident)
        if self._waiting:
            async with self._id_freed:
                self._id_freed.notify()

    def outstanding(self) -> int:
        return sum(len(s.pending) for s in self._sockets)

    async def exchange(self, destination: tuple[str, int],
                       encode: Callable[[int], tuple[bytes, Callable[[bytes], object | None]]],
                       *, timeout: float, retries: int, new_id_each_time: bool = False) -> object:
        """Send a request and return the verified reply.

        ``encode(identifier)`` returns the raw packet and a verifier that turns a raw reply
        into a decoded reply (or None if it does not belong to the request). With
        ``new_id_each_time`` every retransmission is encoded anew with a new Identifier
        (accounting); otherwise the same bytes are resent. Raises ``TimeoutError``.
        """
        loop = asyncio.get_running_loop()
        sock, ident = await self._allocate_id()
        try:
            raw, verify = encode(ident)
            future = loop.create_future()
            sock.pending[ident] = _Pending(destination, verify, future)
            for attempt in range(retries + 1):
                if attempt and new_id_each_time:
                    await self._free_id(sock, ident)
                    sock, ident = await self._allocate_id()
                    raw, verify = encode(ident)
                    future = loop.create_future()
                    sock.pending[ident] = _Pending(destination, verify, future)
                if attempt:
                    self.stats["retransmissions"] += 1
                sock.transport.sendto(raw, destination)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), timeout)
                except asyncio.TimeoutError:
                    log.debug("RADIUS %s:%d id %d: no answer after %.1fs (attempt %d of %d)",
                              destination[0], destination[1], ident, timeout, attempt + 1,
                              retries + 1)
            raise TimeoutError(f"no answer from {destination[0]}:{destination[1]}")
        finally:
            await self._free_id(sock, ident)

    def close(self) -> None:
        for sock in self._sockets:
            if sock.transport is not None:
                sock.transport.close()
        self._sockets.clear()


# -- client with server groups ------------------------------------------------------------------


class RadiusClient:
    """Server groups, failover and dead-server marking on top of a transport."""

    def __init__(self, groups: list[ServerGroup], *, dictionary: Dictionary | None = None,
                 transport: RadiusTransport | None = None, default_group: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not groups:
            raise RadiusError("RADIUS client needs at least one server group")
        self.groups = {g.name: g for g in groups}
        self.default_group = default_group or groups[0].name
        self.dictionary = dictionary or load_dictionary()
        self.transport = transport or RadiusTransport()
        self.clock = clock
        #: (group, index) -> until when the server is skipped; kept past that time
        #: until the server answers, so that a passed entry means "probe due"
        self._dead_until: dict[tuple[str, int], float] = {}
        self._probing: set[tuple[str, int]] = set()
        #: (group, server index) -> SERVER_COUNTERS
        self.server_stats: dict[tuple[str, int], collections.Counter[str]] = {}
        #: group -> requests refused at once while every server was dead
        self.refused_no_server: collections.Counter[str] = collections.Counter()

    def _count(self, key: tuple[str, int], counter: str) -> None:
        self.server_stats.setdefault(key, collections.Counter())[counter] += 1

    def counters(self) -> dict:
        """JSON-ready: every configured server (zeros included) and the groups."""
        servers = []
        for group in self.groups.values():
            for index, (server, name) in enumerate(zip(group.servers, _server_names(group))):
                counted = self.server_stats.get((group.name, index), {})
                servers.append({"group": group.name, "server": name,
                                "dead": self.is_dead(group.name, index),
                                **{c: counted.get(c, 0) for c in SERVER_COUNTERS}})
        return {"servers": servers,
                "refused_no_server": {g: self.refused_no_server[g] for g in self.groups},
                "transport": dict(self.transport.stats)}

    def group(self, name: str | None) -> ServerGroup:
        try:
            return self.groups[name or self.default_group]
        except KeyError:
            raise UnknownBackendError(f"no RADIUS server group {name!r}") from None

    def _servers_to_try(self, group: ServerGroup) -> list[tuple[int, RadiusServer]]:
        return [(i, s) for i, s in enumerate(group.servers) if self._may_try(group.name, i)]

    def _may_try(self, group: str, index: int) -> bool:
        return not self.is_dead(group, index) and (group, index) not in self._probing

    def is_dead(self, group: str, index: int) -> bool:
        return self._dead_until.get((group, index), 0.0) > self.clock()

    async def _failover(self, group: ServerGroup, port_of: Callable[[RadiusServer], int],
                        encode_for: Callable[[RadiusServer], Callable], new_id_each_time: bool):
        tried = False
        for index, server in self._servers_to_try(group):
            key = (group.name, index)
            if not self._may_try(*key):     # marked dead or probed meanwhile
                continue
            tried = True
            probe = key in self._dead_until
            if probe:
                self._probing.add(key)
            self._count(key, "requests")
            try:
                reply = await self._exchange_with(server, port_of(server), encode_for,
                                                  new_id_each_time)
            except TimeoutError:
                self._count(key, "timeouts")
                self._mark_dead(group, key, server, port_of(server))
                continue
            finally:
                if probe:
                    self._probing.discard(key)
            if self._dead_until.pop(key, None) is not None:
                log.info("RADIUS server %s:%d (group %s) answers again", server.address,
                         port_of(server), group.name)
            return server, reply
        if not tried:
            self.transport.stats["refused_all_dead"] += 1
            self.refused_no_server[group.name] += 1
            raise RadiusNoServer(f"radius: no server answering (group {group.name})")
        raise RadiusTimeout(f"timeout: no RADIUS server answered (group {group.name})")

    async def _exchange_with(self, server: RadiusServer, port: int, encode_for: Callable,
                             new_id_each_time: bool):
        return await self.transport.exchange(
            (server.address, port), encode_for(server), timeout=server.timeout,
            retries=server.retries, new_id_each_time=new_id_each_time)

    def _mark_dead(self, group: ServerGroup, key: tuple[str, int], server: RadiusServer,
                   port: int) -> None:
        self._dead_until[key] = self.clock() + group.dead_time
        self._count(key, "dead_marks")
        log.warning("RADIUS server %s:%d (group %s) did not answer; marked dead for %.0fs, "
                    "failing over", server.address, port, group.name, group.dead_time)

    async def access_request(self, attributes: dict[str, object], password: bytes,
                             group: str | None = None) -> tuple[RadiusServer, rpacket.Packet]:
        """PAP Access-Request; returns (server that answered, verified reply)."""
        def encode_for(server: RadiusServer):
            def encode(ident: int):
                request = rpacket.AuthPacket(code=rpacket.AccessRequest, id=ident,
                                             secret=server.secret, dict=self.dictionary)
                for name, value in attributes.items():
                    request[name] = value
                # RFC 2865 §5.2 hiding; PwCrypt creates the Request Authenticator it uses
                request["User-Password"] = request.PwCrypt(password)
                # RFC 3579 §3.2 / BlastRADIUS (CVE-2024-3596): sign the request
                request.add_message_authenticator()
                raw = request.RequestPacket()
                verify = self._verifier(request, server.require_message_authenticator)
                return raw, self._counting_refusals(
                    (chosen.name, chosen.servers.index(server)), verify)
            return encode

        chosen = self.group(group)
        return await self._failover(chosen, lambda s: s.auth_port, encode_for, False)

    async def send_accounting(self, attributes: dict[str, object], created_at: float,
                              group: str | None = None) -> None:
        """One Accounting-Request (the :class:`AccountingSender` interface)."""
        def encode_for(server: RadiusServer):
            def encode(ident: int):
                request = rpacket.AcctPacket(code=rpacket.AccountingRequest, id=ident,
                                             secret=server.secret, dict=self.dictionary)
                for name, value in attributes.items():
                    request[name] = value
                # RFC 2866 §5.2: seconds the client has been trying to send this record
                request["Acct-Delay-Time"] = max(0, int(self.clock() - created_at))
                return request.RequestPacket(), self._verifier(request, False)
            return encode

        await self._failover(self.group(group), lambda s: s.acct_port, encode_for, True)

    def _counting_refusals(self, key: tuple[str, int], verify: Callable[[bytes], object]):
        """`verify`, counting the replies it refuses under the server `key` too."""
        def counting(raw: bytes):
            try:
                return verify(raw)
            except ReplyRefused as refused:
                self._count(key, refused.counter)
                raise
        return counting

    def _verifier(self, request: rpacket.Packet, enforce_ma: bool):
        def verify(raw: bytes):
            reply = request.CreateReply(packet=raw)
            if not request.VerifyReply(reply, raw):
                return None
            if enforce_ma and not _has_message_authenticator(raw):
                raise ReplyRefused("dropped_no_message_authenticator",
                                   f"code {raw[0]} without Message-Authenticator "
                                   "(require_message_authenticator)")
            return reply
        return verify

    def close(self) -> None:
        self.transport.close()


MESSAGE_AUTHENTICATOR = 80


def _server_names(group: ServerGroup) -> list[str]:
    """Each server's name in counters: its address, with the port where the group has
    that address twice."""
    addresses = collections.Counter(s.address for s in group.servers)
    return [s.address if addresses[s.address] == 1 else f"{s.address}:{s.auth_port}"
            for s in group.servers]


def _has_message_authenticator(raw: bytes) -> bool:
    """Whether the attributes of a raw packet include a Message-Authenticator (whose
    value pyrad's ``VerifyReply`` has checked if it is there)."""
    end = min(len(raw), int.from_bytes(raw[2:4], "big"))
    offset = 20
    while offset + 2 <= end:
        kind, length = raw[offset], raw[offset + 1]
        if kind == MESSAGE_AUTHENTICATOR:
            return True
        if length < 2:
            return False
        offset += length
    return False


# -- the AAA back end ------------------------------------------------------------------------


def _first(reply: rpacket.Packet, name: str):
    values = reply.get(name)
    return values[0] if values else None


def _ip(value) -> IPv4 | None:
    if value is None:
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        return None


def parse_access_accept(reply: rpacket.Packet, backend: str = "radius") -> AuthResult:
    """Authorization attributes of an Access-Accept (RFC 2865 and vendor 4874)."""
    framed_ip = _ip(_first(reply, "Framed-IP-Address"))
    # RFC 2865 §5.8: 255.255.255.254 "let the user choose", 255.255.255.255 "NAS assigns"
    # -- neither is an address; the pool decides.
    if framed_ip is not None and int(framed_ip) >= 0xFFFFFFFE:
        framed_ip = None
    class_ = _first(reply, "Class")
    return AuthResult(
        granted=True, backend=backend,
        framed_ip=framed_ip,
        framed_netmask=_ip(_first(reply, "Framed-IP-Netmask")),
        pool_name=_first(reply, "ERX-Address-Pool-Name"),
        virtual_router=_first(reply, "ERX-Virtual-Router-Name"),
        dns=(_ip(_first(reply, "ERX-Primary-Dns")), _ip(_first(reply, "ERX-Secondary-Dns"))),
        wins=(_ip(_first(reply, "ERX-Primary-Wins")), _ip(_first(reply, "ERX-Secondary-Wins"))),
        session_timeout=_first(reply, "Session-Timeout"),
        idle_timeout=_first(reply, "Idle-Timeout"),
        class_=bytes(class_) if class_ is not None else None,
        reply_message=_reply_message(reply))


def _reply_message(reply: rpacket.Packet) -> str | None:
    # RFC 2865 §5.18: several Reply-Message attributes are concatenated
    values = reply.get("Reply-Message")
    return "".join(values) if values else None


@dataclass(frozen=True)
class NasIdentity:
    """Attributes identifying this NAS in every request."""

    nas_ip: IPv4 | None = None
    nas_identifier: str | None = "dynipsec"


class RadiusBackend:
    """AAA back end "radius": PAP against a server group (domain map or default)."""

    def __init__(self, client: RadiusClient, nas: NasIdentity | None = None,
                 name: str = "radius") -> None:
        self.name = name
        self.client = client
        self.nas = nas or NasIdentity()

    def request_attributes(self, request: AuthRequest) -> dict[str, object]:
        n = request.nas
        attrs: dict[str, object] = {
            "User-Name": request.username,
            "Service-Type": n.service_type,
            "NAS-Port-Type": n.nas_port_type,
            # RFC 2865 §5.7: Framed-Protocol is for PPP/SLIP only -- not sent for IPsec
        }
        nas_ip = n.nas_ip or self.nas.nas_ip
        if nas_ip is not None:
            attrs["NAS-IP-Address"] = str(nas_ip)
        nas_id = n.nas_identifier or self.nas.nas_identifier
        if nas_id:
            attrs["NAS-Identifier"] = nas_id
        if n.nas_port is not None:
            attrs["NAS-Port"] = n.nas_port
        if n.calling_station_id:
            attrs["Calling-Station-Id"] = n.calling_station_id
        if n.called_station_id:
            attrs["Called-Station-Id"] = n.called_station_id
        return attrs

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        try:
            server, reply = await self.client.access_request(
                self.request_attributes(request), request.password, request.server_group)
        except RadiusTimeout as exc:
            return AuthResult.refused(str(exc), Refusal.AAA_UNAVAILABLE, backend=self.name)
        except RadiusBusyError as exc:
            return AuthResult.refused(f"RADIUS client overloaded: {exc}",
                                      Refusal.AAA_UNAVAILABLE, backend=self.name)
        if reply.code == rpacket.AccessAccept:
            return parse_access_accept(reply, self.name)
        message = _reply_message(reply)
        reason, refusal = _REFUSAL_OF_CODE.get(
            reply.code, ("unexpected RADIUS reply code {code} from {server}", Refusal.AAA_ERROR))
        reason = reason.format(code=reply.code, server=server.label)
        if message:
            reason += f": {message}"
        return AuthResult.refused(reason, refusal, backend=self.name, reply_message=message)


#: a refusing reply's code -> (reason for the log, refusal kind); any other code is an
#: AAA error
_REFUSAL_OF_CODE: dict[int, tuple[str, Refusal]] = {
    rpacket.AccessReject: ("Access-Reject from {server}", Refusal.CREDENTIALS_REJECTED),
    # Xauth has no room for a second round: a challenge is a refusal here.
    rpacket.AccessChallenge: ("Access-Challenge from {server} (not supported)", Refusal.POLICY),
}

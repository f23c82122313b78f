"""Dynamic Authorization Extensions (RFC 5176): Disconnect-Request and CoA-Request.

:class:`DaeProcessor` is sans-I/O: ``handle(raw, source, now) -> reply bytes | None``.
:class:`DaeListener` is the asyncio UDP adapter (port 3799 by default, RFC 5176 §3).
The sessions are found and acted on through a :class:`SessionDirectory`;
:class:`SubscriberDirectory` is the one over the :class:`SubscriberTable`.

Rules applied, in order:

1. Source address not a configured client -> silently dropped and counted (§3 / RFC
   2865 §3: requests from unknown clients are discarded).
2. Request Authenticator checked with the client's secret (§3.5, computed like an
   Accounting-Request's); a Message-Authenticator, if present, must verify (§3.5).
   Failures -> silently dropped and counted.
3. Replay protection (§3.4): Event-Timestamp is required (``require_event_timestamp``)
   and must be within ``replay_window`` seconds of our clock; missing or outside ->
   NAK 404 Invalid-Request, nothing done.
4. A request seen before (same client, Request Authenticator and Event-Timestamp; the
   authenticator covers Identifier and attributes) gets the answer of its first
   arrival again and is never acted on twice: a retransmission of a Disconnect is ACKed,
   not NAKed with 503 (§2.3), and a captured request replayed from another source port
   changes nothing. Entries live as long as their timestamp is acceptable; when the
   cache is full of live entries, new requests get NAK 506 Resources-Unavailable
   rather than forgetting one that could then be replayed.
5. NAS identification attributes that do not name this NAS -> NAK 403 (§3).
6. Attributes this NAS does not support in that request -> NAK 401; Service-Type
   Authorize-Only -> NAK 405 (we cannot send an Access-Request for it); no session
   identification attribute -> NAK 402 (§3, "Missing Attribute").
7. No matching session -> NAK 503 Session-Context-Not-Found (§3.6).
8. Disconnect: every matching session is torn down (reason radius-disconnect, so its
   accounting Stop says Admin-Reset, §3.6) -> Disconnect-ACK.
   CoA: Session-Timeout / Idle-Timeout applied to every matching session -> CoA-ACK.

Counters (:meth:`DaeProcessor.counters`, for ``show statistics`` and the metrics):
requests that verified, ACKs and NAKs by kind (``disconnect`` / ``coa``), NAKs by
Error-Cause (those of the replay rules too), replays answered from the cache, and the
silent drops and refusals by reason (``stats``).
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from pyrad import packet as rpacket
from pyrad.dictionary import Dictionary

from responder.aaa.radius import load_dictionary

log = logging.getLogger(__name__)

DAE_PORT = 3799

# RFC 5176 §3.6 Error-Cause values
RESIDUAL_CONTEXT_REMOVED = 201
UNSUPPORTED_ATTRIBUTE = 401
MISSING_ATTRIBUTE = 402
NAS_IDENTIFICATION_MISMATCH = 403
INVALID_REQUEST = 404
UNSUPPORTED_SERVICE = 405
INVALID_ATTRIBUTE_VALUE = 407
SESSION_CONTEXT_NOT_FOUND = 503
SESSION_CONTEXT_NOT_REMOVABLE = 504
RESOURCES_UNAVAILABLE = 506

SERVICE_TYPE_AUTHORIZE_ONLY = 17

#: the request kinds counted apart
DAE_KINDS = ("disconnect", "coa")

#: RFC 5176 §3: attributes that identify the NAS
NAS_IDENTIFICATION = frozenset({"NAS-IP-Address", "NAS-Identifier", "NAS-IPv6-Address"})
#: RFC 5176 §3: attributes that identify the session (those we can match on)
SESSION_IDENTIFICATION = frozenset({"User-Name", "Acct-Session-Id", "Framed-IP-Address",
                                    "NAS-Port", "Calling-Station-Id"})
#: allowed in any request, not used for matching (§3.5/§3.2 tables)
ALWAYS_ALLOWED = frozenset({"Message-Authenticator", "Proxy-State", "Event-Timestamp",
                            "State", "Service-Type"})
#: the authorization changes a CoA-Request may carry here
COA_CHANGES = frozenset({"Session-Timeout", "Idle-Timeout"})


@dataclass(frozen=True)
class SessionQuery:
    """Session identification attributes of a request; None = not given. A session
    matches if it matches ALL given ones (RFC 5176 §3)."""

    acct_session_id: str | None = None
    user_name: str | None = None
    framed_ip: ipaddress.IPv4Address | None = None
    nas_port: int | None = None
    calling_station_id: str | None = None


@dataclass(frozen=True)
class AuthorizationChange:
    session_timeout: int | None = None
    idle_timeout: int | None = None


class SessionDirectory(Protocol):
    """What the DAE needs from the subscriber side."""

    def find(self, query: SessionQuery) -> list[object]: ...

    def disconnect(self, session: object) -> None: ...

    def change(self, session: object, change: AuthorizationChange) -> None: ...


class SubscriberDirectory:
    """:class:`SessionDirectory` over a :class:`responder.subscriber.SubscriberTable`."""

    def __init__(self, table) -> None:
        self.table = table

    def find(self, query: SessionQuery) -> list[object]:
        subs = self.table.select(acct_session_id=query.acct_session_id, user=query.user_name,
                                 address=query.framed_ip)
        return [s for s in subs if s.live
                and (query.nas_port is None or s.id == query.nas_port)
                and (query.calling_station_id is None
                     or str(s.peer.address) == query.calling_station_id)]

    def disconnect(self, session) -> None:
        from responder.subscriber import SubscriberEvent
        session.teardown(SubscriberEvent.RADIUS_DISCONNECT)

    def change(self, session, change: AuthorizationChange) -> None:
        if change.session_timeout is not None:
            session.change_session_timeout(change.session_timeout)
        if change.idle_timeout is not None:
            session.change_idle_timeout(change.idle_timeout)


@dataclass(frozen=True)
class DaeClient:
    """A host allowed to send Disconnect/CoA requests, with its shared secret."""

    address: str
    secret: bytes = field(repr=False)
    name: str = ""


class _Nak(Exception):
    def __init__(self, error_cause: int, why: str) -> None:
        self.error_cause = error_cause
        super().__init__(why)


class ReplayCache:
    """Answers of requests already acted on, each kept until ``expires`` (wall clock);
    bounded: when full of live entries it refuses to take more."""

    def __init__(self, size: int) -> None:
        self.size = size
        #: key -> (expires, reply)
        self._entries: collections.OrderedDict[tuple, tuple[float, bytes]] = \
            collections.OrderedDict()

    def get(self, key: tuple, now: float) -> bytes | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] >= now else None

    def has_room(self, now: float) -> bool:
        if len(self._entries) >= self.size:
            self._expire(now)
        return len(self._entries) < self.size

    def put(self, key: tuple, reply: bytes, expires: float) -> None:
        self._entries[key] = (expires, reply)

    def _expire(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires < now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class DaeProcessor:
    """Sans-I/O RFC 5176 server side; see the module doc for the rules."""

    def __init__(self, clients: list[DaeClient], directory: SessionDirectory, *,
                 nas_ip: str | None = None, nas_identifier: str | None = None,
                 dictionary: Dictionary | None = None, replay_window: float = 300.0,
                 require_event_timestamp: bool = True, cache_size: int = 4096) -> None:
        self.clients = {ipaddress.ip_address(c.address): c for c in clients}
        self.directory = directory
        self.nas_ip = nas_ip
        self.nas_identifier = nas_identifier
        self.dictionary = dictionary or load_dictionary()
        self.replay_window = replay_window
        self.require_event_timestamp = require_event_timestamp
        self.stats: collections.Counter[str] = collections.Counter()
        #: kind ("disconnect" / "coa") -> verified requests, ACKs sent
        self.requests: collections.Counter[str] = collections.Counter()
        self.acks: collections.Counter[str] = collections.Counter()
        #: (kind, Error-Cause) -> NAKs sent
        self.naks: collections.Counter[tuple[str, int]] = collections.Counter()
        self.replay_cache = ReplayCache(cache_size)

    def counters(self) -> dict:
        """JSON-ready counters (Error-Cause values as strings: JSON object keys)."""
        naks: dict[str, dict[str, int]] = {kind: {} for kind in DAE_KINDS}
        for (kind, cause), count in sorted(self.naks.items()):
            naks[kind][str(cause)] = count
        return {"requests": {k: self.requests[k] for k in DAE_KINDS},
                "acks": {k: self.acks[k] for k in DAE_KINDS}, "naks": naks,
                "replays_answered_from_cache": self.stats["replays_answered_from_cache"],
                "other": {k: v for k, v in sorted(self.stats.items())
                          if k != "replays_answered_from_cache"}}

    def handle(self, raw: bytes, source: tuple[str, int], now: float) -> bytes | None:
        """``now`` is wall-clock time (seconds since the epoch) for Event-Timestamp."""
        client = self.clients.get(_parse_ip(source[0]))
        if client is None:
            self.stats["dropped_unknown_client"] += 1
            log.warning("DAE request from unknown client %s: dropped", source[0])
            return None
        request = self._decode(raw, client)
        if request is None:
            return None
        self.requests[_kind(request)] += 1
        stamp = _event_timestamp(request)
        refusal = self._replay_refusal(stamp, now)
        if refusal is not None:
            self.stats[refusal[0]] += 1
            log.warning("DAE request from %s: %s: NAK %d", client.address, refusal[1],
                        INVALID_REQUEST)
            return self._nak(request, INVALID_REQUEST)
        key = (client.address, raw[4:20], stamp)
        cached = self.replay_cache.get(key, now)
        if cached is not None:
            self.stats["replays_answered_from_cache"] += 1
            return cached
        if not self.replay_cache.has_room(now):
            self.stats["refused_replay_cache_full"] += 1
            log.warning("DAE request from %s: replay cache full (%d): NAK %d", client.address,
                        len(self.replay_cache), RESOURCES_UNAVAILABLE)
            return self._nak(request, RESOURCES_UNAVAILABLE)
        reply = self._answer(request, client)
        expires = (stamp if stamp is not None else now) + self.replay_window
        self.replay_cache.put(key, reply, expires)
        return reply

    def _decode(self, raw: bytes, client: DaeClient) -> rpacket.CoAPacket | None:
        try:
            request = rpacket.CoAPacket(packet=raw, secret=client.secret, dict=self.dictionary)
        except Exception as exc:  # noqa: BLE001 - malformed packet from the network
            self.stats["dropped_malformed"] += 1
            log.warning("DAE request from %s malformed: %s", client.address, exc)
            return None
        if request.code not in (rpacket.DisconnectRequest, rpacket.CoARequest):
            self.stats["dropped_wrong_code"] += 1
            return None
        if not request.VerifyCoARequest():
            self.stats["dropped_bad_authenticator"] += 1
            log.warning("DAE request from %s: bad Request Authenticator (secret?): dropped",
                        client.address)
            return None
        if request.message_authenticator and not request.verify_message_authenticator():
            self.stats["dropped_bad_message_authenticator"] += 1
            return None
        return request

    def _replay_refusal(self, stamp: float | None, now: float) -> tuple[str, str] | None:
        """(counter, why) when the Event-Timestamp rules refuse the request, else None."""
        if stamp is None:
            if self.require_event_timestamp:
                return "refused_no_event_timestamp", "no Event-Timestamp"
            return None
        if abs(now - stamp) > self.replay_window:
            return ("refused_stale_timestamp",
                    f"Event-Timestamp {now - stamp:+.0f}s off (window {self.replay_window:.0f}s)")
        return None

    def _nak(self, request: rpacket.CoAPacket, error_cause: int) -> bytes:
        self.naks[(_kind(request), error_cause)] += 1
        reply = request.CreateReply()
        reply.code = (rpacket.DisconnectNAK if request.code == rpacket.DisconnectRequest
                      else rpacket.CoANAK)
        reply["Error-Cause"] = error_cause
        return reply.ReplyPacket()

    def _answer(self, request: rpacket.CoAPacket, client: DaeClient) -> bytes:
        disconnect = request.code == rpacket.DisconnectRequest
        kind = "Disconnect" if disconnect else "CoA"
        try:
            self._check_nas_identity(request)
            change = self._check_attributes(request, disconnect)
            query = self._session_query(request)
            sessions = self.directory.find(query)
            if not sessions:
                raise _Nak(SESSION_CONTEXT_NOT_FOUND, f"no session matches {query}")
            for session in sessions:
                if disconnect:
                    self.directory.disconnect(session)
                else:
                    self.directory.change(session, change)
        except _Nak as nak:
            self.stats[f"{kind.lower()}_nak_{nak.error_cause}"] += 1
            log.info("%s-Request from %s: NAK %d (%s)", kind, client.address, nak.error_cause, nak)
            return self._nak(request, nak.error_cause)
        self.stats[f"{kind.lower()}_ack"] += 1
        self.acks[_kind(request)] += 1
        log.info("%s-Request from %s: ACK (%d session(s))", kind, client.address, len(sessions))
        return request.CreateReply().ReplyPacket()

    def _check_nas_identity(self, request: rpacket.Packet) -> None:
        nas_ip = request.get("NAS-IP-Address")
        if nas_ip and self.nas_ip and nas_ip[0] != self.nas_ip:
            raise _Nak(NAS_IDENTIFICATION_MISMATCH, f"NAS-IP-Address {nas_ip[0]} is not ours")
        nas_id = request.get("NAS-Identifier")
        if nas_id and self.nas_identifier and nas_id[0] != self.nas_identifier:
            raise _Nak(NAS_IDENTIFICATION_MISMATCH, f"NAS-Identifier {nas_id[0]!r} is not ours")

    def _check_attributes(self, request: rpacket.Packet, disconnect: bool) -> AuthorizationChange:
        allowed = NAS_IDENTIFICATION | SESSION_IDENTIFICATION | ALWAYS_ALLOWED
        if not disconnect:
            allowed |= COA_CHANGES
        names = [k if isinstance(k, str) else repr(k) for k in request.keys()]
        unsupported = [n for n in names if n not in allowed]
        if unsupported:
            raise _Nak(UNSUPPORTED_ATTRIBUTE, f"unsupported attribute(s) {unsupported}")
        service = request.get("Service-Type")
        if service and service[0] in (SERVICE_TYPE_AUTHORIZE_ONLY, "Authorize-Only"):
            raise _Nak(UNSUPPORTED_SERVICE, "Service-Type Authorize-Only is not supported")
        if not any(n in SESSION_IDENTIFICATION for n in names):
            raise _Nak(MISSING_ATTRIBUTE, "no session identification attribute")
        if disconnect:
            return AuthorizationChange()
        change = AuthorizationChange(
            session_timeout=_first(request, "Session-Timeout"),
            idle_timeout=_first(request, "Idle-Timeout"))
        if change.session_timeout is None and change.idle_timeout is None:
            raise _Nak(MISSING_ATTRIBUTE, "CoA-Request changes nothing this NAS supports")
        return change

    @staticmethod
    def _session_query(request: rpacket.Packet) -> SessionQuery:
        framed = _first(request, "Framed-IP-Address")
        return SessionQuery(
            acct_session_id=_first(request, "Acct-Session-Id"),
            user_name=_first(request, "User-Name"),
            framed_ip=ipaddress.IPv4Address(framed) if framed is not None else None,
            nas_port=_first(request, "NAS-Port"),
            calling_station_id=_first(request, "Calling-Station-Id"))


def _kind(request: rpacket.Packet) -> str:
    return "disconnect" if request.code == rpacket.DisconnectRequest else "coa"


def _first(request: rpacket.Packet, name: str):
    values = request.get(name)
    return values[0] if values else None


def _event_timestamp(request: rpacket.Packet) -> float | None:
    stamp = _first(request, "Event-Timestamp")
    if stamp is None:
        return None
    return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)


def _parse_ip(text: str):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class DaeListener(asyncio.DatagramProtocol):
    """asyncio adapter: ``await DaeListener.start(processor, "0.0.0.0", 3799)``."""

    def __init__(self, processor: DaeProcessor, wallclock: Callable[[], float] = time.time) -> None:
        self.processor = processor
        self.wallclock = wallclock
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def start(cls, processor: DaeProcessor, address: str = "0.0.0.0",
                    port: int = DAE_PORT, **kwargs) -> "DaeListener":
        loop = asyncio.get_running_loop()
        _, listener = await loop.create_datagram_endpoint(
            lambda: cls(processor, **kwargs), local_addr=(address, port))
        log.info("RFC 5176 listener on %s:%d", address, port)
        return listener

    def connection_made(self, transport) -> None:
        self.transport = transport

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            reply = self.processor.handle(data, addr, self.wallclock())
        except Exception:  # noqa: BLE001 - a bug must not kill the listener
            log.exception("DAE request from %s crashed the handler", addr[0])
            return
        if reply is not None:
            self.transport.sendto(reply, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

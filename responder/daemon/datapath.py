"""A worker's userspace ESP data path: subscriber TUN fds <-> ESP SAs <-> UDP 4500 / raw ESP.

Outbound: the VR routes a packet for the subscriber's address (/32 access route) into
its TUN device; the worker reads it from the fd (``loop.add_reader``), protects it with
the subscriber's newest outbound SA and sends it to the peer's current address (the
engine follows NAT port floats; we ask it at send time): ESP-in-UDP (RFC 3948) from
the local 4500 socket when the child is UDP-encapsulated, else raw ESP (IP protocol
50) from the worker's raw socket on that address (``send_raw``).

Inbound: the worker hands every ESP packet (ESP datagrams of port 4500 and raw
protocol-50 packets, responder/daemon/udpio.py) here; the SPI finds the subscriber
and its inbound SA, which checks ICV, replay window and that the inner source is the
subscriber's address; the inner packet is written to the subscriber's TUN fd and so
enters the VR. With ``vnet_hdr`` (the worker's TUN devices carry a virtio_net_hdr)
the inner packets of one socket batch are written by :meth:`DataPath.flush`, TCP
segments of one flow coalesced into one GSO frame (responder/daemon/tungso.py); the
ESP packets one TUN wakeup produced leave through ``send_many`` (UDP GSO). During a rekey the old inbound SA stays until the engine deletes the
old child, so packets in flight under the old SPI still decrypt.

Counters (per SA in :mod:`responder.esp.counters`) are summed per subscriber, including
those of SAs already deleted (rekeys), for accounting, the idle timeout and ``show
subscribers``; drops are counted per SA by reason and per worker in ``stats``
(``drop_<reason>``, ``show statistics``). Byte lifetimes: an SA past its hard byte
limit refuses packets (counted ``lifetime_expired``) and :meth:`DataPath.expired`
names its child so that the worker deletes it (the engine handles time lifetimes).
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Callable

from responder.aaa.accounting import Counters
from responder.esp import EspDrop, EspSAParams, InboundSA, OutboundSA, SpiTable
from responder.esp.counters import LifetimeState
from responder.esp.errors import DropReason
from responder.ikev1.events import Phase2Established

from .tungso import PLAIN, VNET_HDR_SIZE, coalesce

log = logging.getLogger(__name__)

__all__ = ["DataPath", "SubscriberPath", "ChildPath", "UnsupportedChild", "esp_params"]

Address = tuple[str, int]
#: send(esp_bytes, local, remote): one UDP datagram from our `local` socket
Sender = Callable[[bytes, Address, Address], None]
#: send_many([esp_bytes, ...], local, remote): several UDP datagrams to one peer
ManySender = Callable[[list[bytes], Address, Address], None]
#: send_raw(esp_bytes, local_ip, remote_ip): one IP protocol 50 packet
RawSender = Callable[[bytes, str, str], None]
#: (local, remote) of an IKE SA now, or None when it is gone
PeerLookup = Callable[[str], "tuple[Address, Address] | None"]

#: packets read from one TUN fd per readiness callback (fairness between subscribers)
TUN_BATCH = 64
TUN_READ_SIZE = 65535


class UnsupportedChild(Exception):
    """A child SA this data path cannot carry (raw ESP without a raw socket, unknown
    transform)."""


def esp_params(event: Phase2Established, inbound: bool, replay_window: int = 128) -> EspSAParams:
    """One direction of a Phase2Established as EspSAParams (responder/esp/sa.py)."""
    keys = event.inbound if inbound else event.outbound
    return EspSAParams(
        spi=int.from_bytes(keys.spi, "big"),
        enc_id=event.cipher,
        auth_id=event.integrity or None,
        key_bits=event.cipher_key_bits,
        enc_key=keys.encryption_key,
        auth_key=keys.integrity_key,
        salt=keys.salt,
        encap_udp=event.udp_encapsulated,
        lifetime_bytes=event.lifetime_kilobytes * 1024 if event.lifetime_kilobytes else None,
        # the engine expires the child (and tells us) at its lifetime; the SA's own hard
        # limit would only race with that, so it gets a little more
        lifetime_seconds=event.lifetime_seconds + 30 if event.lifetime_seconds else None,
        replay_window=replay_window,
    )


@dataclass(eq=False)
class ChildPath:
    child_id: int
    inbound: InboundSA
    outbound: OutboundSA


@dataclass(eq=False)
class SubscriberPath:
    key: str
    sa_id: str
    fd: int
    address: IPv4Address
    children: dict[int, ChildPath] = field(default_factory=dict)
    #: the outbound SA in use: the newest child's
    outbound: OutboundSA | None = None
    #: totals of children already removed
    done: Counters = field(default_factory=Counters)
    last_activity: float = 0.0
    last_peer_note: float = 0.0
    tun_errors: int = 0
    no_sa_drops: int = 0
    closed: bool = False
    #: inner packets of this batch, written by DataPath.flush (vnet_hdr mode)
    pending: list[bytes] = field(default_factory=list)

    def drops(self) -> dict[str, int]:
        """Drops by reason of the live children's SAs (both directions)."""
        out: dict[str, int] = {}
        for child in self.children.values():
            for sa in (child.inbound, child.outbound):
                for reason, n in sa.counters.drops.items():
                    out[reason.value] = out.get(reason.value, 0) + n
        return out

    def counters(self) -> Counters:
        """Input = from the subscriber (inbound SAs), output = towards it."""
        i_oct = self.done.input_octets + sum(c.inbound.counters.octets for c in self.children.values())
        i_pk = self.done.input_packets + sum(c.inbound.counters.packets for c in self.children.values())
        o_oct = self.done.output_octets + sum(c.outbound.counters.octets for c in self.children.values())
        o_pk = self.done.output_packets + sum(c.outbound.counters.packets for c in self.children.values())
        return Counters(input_octets=i_oct, output_octets=o_oct, input_packets=i_pk,
                        output_packets=o_pk)


class DataPath:
    def __init__(self, send: Sender, peer_of: PeerLookup, *,
                 loop: asyncio.AbstractEventLoop | None = None,
                 on_peer_activity: Callable[[str, float], None] | None = None,
                 replay_window: int = 128, send_raw: RawSender | None = None,
                 send_many: ManySender | None = None, vnet_hdr: bool = False) -> None:
        self._send = send
        self._send_many = send_many
        #: the TUN fds carry a virtio_net_hdr: packets of a batch are written by flush(),
        #: TCP segments of one flow coalesced (tungso.py)
        self.vnet_hdr = vnet_hdr
        self.coalesce_tcp = vnet_hdr
        self._dirty: list[SubscriberPath] = []
        self._send_raw = send_raw
        self._peer_of = peer_of
        self._loop = loop
        self._clock = loop.time if loop is not None else (lambda: 0.0)
        self._on_peer_activity = on_peer_activity
        self.replay_window = replay_window
        self.spis = SpiTable()
        self.subscribers: dict[str, SubscriberPath] = {}
        #: inbound SPI -> (subscriber, inbound SA): one dict lookup per packet
        self._by_spi: dict[int, tuple[SubscriberPath, InboundSA]] = {}
        self.stats: dict[str, int] = {"esp_in": 0, "esp_out": 0, "esp_dropped": 0,
                                      "unknown_spi": 0, "tun_in": 0, "tun_out": 0,
                                      "raw_in": 0, "raw_out": 0, "tun_wakeups": 0}

    def _now(self) -> float:
        return self._clock()

    def _count_drop(self, reason: DropReason) -> None:
        self.stats["esp_dropped"] += 1
        key = f"drop_{reason.value}"
        self.stats[key] = self.stats.get(key, 0) + 1

    # -- subscribers --------------------------------------------------------------------
    def add_subscriber(self, key: str, sa_id: str, fd: int, address: IPv4Address) -> SubscriberPath:
        path = SubscriberPath(key, sa_id, fd, IPv4Address(address), last_activity=self._now())
        self.subscribers[key] = path
        if self._loop is not None:
            self._loop.add_reader(fd, self._on_tun_readable, path)
        return path

    def remove_subscriber(self, key: str) -> Counters | None:
        """Stop reading its TUN fd and forget its SAs; returns the final counters.
        Call BEFORE the interface (fd) is closed."""
        path = self.subscribers.pop(key, None)
        if path is None:
            return None
        counters = path.counters()
        for child_id in list(path.children):
            self.remove_child(key, child_id)
        path.closed = True
        if self._loop is not None:
            self._loop.remove_reader(path.fd)
        return counters

    def counters(self, key: str) -> Counters:
        path = self.subscribers.get(key)
        return path.counters() if path else Counters()

    # -- child SAs ------------------------------------------------------------------------
    def add_child(self, key: str, event: Phase2Established) -> ChildPath:
        path = self.subscribers.get(key)
        if path is None:
            raise UnsupportedChild(f"subscriber {key} has no data path")
        if not event.udp_encapsulated and self._send_raw is None:
            raise UnsupportedChild("raw ESP (IP protocol 50) needs the worker's raw socket, "
                                   "which could not be opened; set ike.force_encap")
        now = self._now()
        try:
            inbound = InboundSA(esp_params(event, True, self.replay_window), now=now,
                                allowed_inner_source=path.address)
            outbound = OutboundSA(esp_params(event, False, self.replay_window), now=now)
        except Exception as exc:  # UnsupportedTransform, ValueError
            raise UnsupportedChild(str(exc)) from exc
        self.spis.add(inbound)
        child = ChildPath(event.child_id, inbound, outbound)
        path.children[event.child_id] = child
        path.outbound = outbound
        self._by_spi[inbound.spi] = (path, inbound)
        return child

    def remove_child(self, key: str, child_id: int) -> None:
        path = self.subscribers.get(key)
        if path is None:
            return
        child = path.children.pop(child_id, None)
        if child is None:
            return
        self.spis.remove(child.inbound.spi)
        self._by_spi.pop(child.inbound.spi, None)
        d = path.done
        path.done = Counters(
            input_octets=d.input_octets + child.inbound.counters.octets,
            output_octets=d.output_octets + child.outbound.counters.octets,
            input_packets=d.input_packets + child.inbound.counters.packets,
            output_packets=d.output_packets + child.outbound.counters.packets)
        if path.outbound is child.outbound:
            newest = max(path.children.values(), key=lambda c: c.child_id, default=None)
            path.outbound = newest.outbound if newest else None

    def expired(self, now: float) -> list[tuple[str, str, int]]:
        """(subscriber key, IKE SA id, child id) of children whose SAs passed a hard
        lifetime (bytes, or seconds past the engine's own expiry): to be deleted."""
        out = []
        for path in self.subscribers.values():
            for child in path.children.values():
                if (child.inbound.lifetime_state(now) is LifetimeState.HARD_EXPIRED
                        or child.outbound.lifetime_state(now) is LifetimeState.HARD_EXPIRED):
                    out.append((path.key, path.sa_id, child.child_id))
        return out

    # -- packets ------------------------------------------------------------------------
    def _on_tun_readable(self, path: SubscriberPath) -> None:
        """Read until EAGAIN (at most TUN_BATCH), protect each packet, then send the
        batch at once: to one peer, so equal-sized ESP datagrams go as one UDP GSO
        send (``send_many``)."""
        self.stats["tun_wakeups"] += 1
        out: list[bytes] = []
        for _ in range(TUN_BATCH):
            try:
                packet = os.read(path.fd, TUN_READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                path.tun_errors += 1
                log.warning("subscriber %s: TUN read failed (%s); not reading it any more",
                            path.key, exc)
                if self._loop is not None and not path.closed:
                    self._loop.remove_reader(path.fd)
                    path.closed = True
                break
            if self.vnet_hdr:
                packet = packet[VNET_HDR_SIZE:]
            esp = self._protect(path, packet)
            if esp is not None:
                out.append(esp)
        if out:
            self._emit(path, out)

    def send_to_subscriber(self, path: SubscriberPath, packet: bytes) -> bool:
        """Protect one inner packet from the VR and send it to the peer."""
        esp = self._protect(path, packet)
        return esp is not None and self._emit(path, [esp])

    def _protect(self, path: SubscriberPath, packet: bytes) -> bytes | None:
        self.stats["tun_in"] += 1
        outbound = path.outbound
        if outbound is None:
            path.no_sa_drops += 1
            return None
        try:
            return outbound.encapsulate(packet)
        except EspDrop as drop:
            self._count_drop(drop.reason)
            return None

    def _emit(self, path: SubscriberPath, packets: list[bytes]) -> bool:
        """Send ESP packets of `path`'s outbound SA to the peer's current address."""
        peer = self._peer_of(path.sa_id)
        outbound = path.outbound
        if peer is None or outbound is None:
            path.no_sa_drops += len(packets)
            return False
        local, remote = peer
        if outbound.params.encap_udp:
            local = (local[0], local[1] if local[1] != 500 else 4500)
            if len(packets) > 1 and self._send_many is not None:
                self._send_many(packets, local, remote)
            else:
                for esp in packets:
                    self._send(esp, local, remote)
        else:
            for esp in packets:
                self._send_raw(esp, local[0], remote[0])  # type: ignore[misc]
            self.stats["raw_out"] += len(packets)
        self.stats["esp_out"] += len(packets)
        path.last_activity = self._now()
        return True

    def esp_received(self, esp: bytes, local: Address, remote: Address) -> bytes | None:
        """One ESP packet (SPI onwards) from UDP 4500 or raw protocol 50 (local port 0).
        Returns the inner packet written to the TUN (None when dropped)."""
        entry = self._by_spi.get(int.from_bytes(esp[:4], "big")) if len(esp) >= 8 else None
        if entry is None:
            self.stats["unknown_spi"] += 1
            return None
        path, sa = entry
        try:
            inner = sa.decapsulate(esp)
        except EspDrop as drop:
            self._count_drop(drop.reason)
            return None
        self.stats["esp_in"] += 1
        if not local[1]:
            self.stats["raw_in"] += 1
        now = self._now()
        path.last_activity = now
        if self._on_peer_activity is not None and now - path.last_peer_note >= 1.0:
            path.last_peer_note = now
            self._on_peer_activity(path.sa_id, now)
        if self.vnet_hdr:
            if not path.pending:
                self._dirty.append(path)
            path.pending.append(inner)
            return inner
        try:
            os.write(path.fd, inner)
            self.stats["tun_out"] += 1
        except OSError as exc:
            path.tun_errors += 1
            log.debug("subscriber %s: TUN write failed: %s", path.key, exc)
            return None
        return inner

    def flush(self) -> None:
        """Write what this batch of ESP packets produced (vnet_hdr mode): one write per
        run of coalescable TCP segments of a flow, one per other packet."""
        dirty, self._dirty = self._dirty, []
        stats = self.stats
        for path in dirty:
            packets, path.pending = path.pending, []
            if path.closed:
                continue
            frames = coalesce(packets) if self.coalesce_tcp else [PLAIN + p for p in packets]
            for frame in frames:
                try:
                    os.write(path.fd, frame)
                except OSError as exc:
                    path.tun_errors += 1
                    if frame[1] and self.coalesce_tcp:
                        self.coalesce_tcp = False
                        log.warning("TUN refused a coalesced TCP frame (%s): writing packet "
                                    "by packet from now on", exc)
                    else:
                        log.debug("subscriber %s: TUN write failed: %s", path.key, exc)
            stats["tun_out"] += len(packets)
            stats["tun_writes"] = stats.get("tun_writes", 0) + len(frames)

    def describe_children(self) -> list[dict]:
        rows = []
        for path in self.subscribers.values():
            for child in path.children.values():
                rows.append({
                    "subscriber": path.key, "ike_sa": path.sa_id, "child": child.child_id,
                    "spi_in": f"{child.inbound.spi:08x}", "spi_out": f"{child.outbound.spi:08x}",
                    "transform": child.inbound.transform.name,
                    "in_packets": child.inbound.counters.packets,
                    "in_octets": child.inbound.counters.octets,
                    "out_packets": child.outbound.counters.packets,
                    "out_octets": child.outbound.counters.octets,
                    "in_drops": child.inbound.counters.dropped,
                    "drops": {"in": {r.value: n for r, n in child.inbound.counters.drops.items()},
                              "out": {r.value: n for r, n in child.outbound.counters.drops.items()}},
                    "encapsulation": "udp" if child.inbound.params.encap_udp else "raw",
                })
        return rows

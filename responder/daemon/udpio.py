"""A worker's packet sockets, read in batches: UDP 500/4500 and raw ESP (protocol 50).

asyncio's datagram transport reads ONE datagram per readiness callback, so every ESP
packet costs a full event-loop turn (epoll_wait, handle scheduling). Profiled under
iperf3 that was ~25 % of a worker. These sockets drain up to ``BATCH`` packets per
wakeup (until EAGAIN) and send directly with ``sendto`` (no transport buffering: a
full socket buffer drops the datagram and counts it; IKE retransmits, ESP is lossy).
A batch of ESP datagrams to one peer (one TUN wakeup's worth) goes out with UDP GSO
(``UDP_SEGMENT``): equal-sized datagrams in one ``sendmsg``.

:class:`DatagramSocket` keeps the subset of ``asyncio.DatagramTransport`` that the
IKE transport uses (``sendto``, ``close``), so ``ResponderTransport.attach`` takes it.

:class:`RawEspSocket` is ESP over IP protocol 50 (RFC 4303 without RFC 3948) for
peers that are not behind a NAT and do not force encapsulation: one raw socket per
listen address, bound to it (so the kernel's source address is right and only packets
for that address arrive), with the worker's SPI filter (steering.raw_esp_program).
Received packets carry the IPv4 header, which is stripped here.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from typing import Callable

from .steering import attach_filter, raw_esp_program

log = logging.getLogger(__name__)

__all__ = ["DatagramSocket", "RawEspSocket", "BATCH", "IPPROTO_ESP"]

#: packets read per readiness callback (fairness with the TUN fds and IKE timers)
BATCH = 64
MAX_DATAGRAM = 65535
IPPROTO_ESP = 50
#: UDP GSO (linux/udp.h): one sendmsg, the kernel cuts it into datagrams of this size
SOL_UDP = 17
UDP_SEGMENT = 103
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000

Address = tuple[str, int]
#: on_datagram(data, local, remote)
Receiver = Callable[[bytes, Address, Address], None]


class DatagramSocket:
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, local: Address,
                 on_datagram: Receiver, batch: int = BATCH,
                 on_batch_end: Callable[[], None] | None = None) -> None:
        sock.setblocking(False)
        self._loop = loop
        self.sock = sock
        self.local = local
        self._on_datagram = on_datagram
        self._batch = batch
        self._on_batch_end = on_batch_end
        self.send_drops = 0
        self.errors = 0
        #: readiness callbacks and datagrams read (average batch = received / wakeups)
        self.wakeups = 0
        self.received = 0
        #: UDP GSO for send_batch; switched off by the first refusal
        self.gso = True
        self.gso_sends = 0
        self._closed = False
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        deliver = self._on_datagram
        local = self.local
        self.wakeups += 1
        for _ in range(self._batch):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP error queued on the socket
                self.errors += 1
                log.debug("socket %s:%d: %s", *local, exc)
                continue
            self.received += 1
            try:
                deliver(data, local, addr)
            except Exception:  # noqa: BLE001 - one bad packet must not stop the socket
                log.exception("socket %s:%d: handling a datagram from %s failed", *local, addr)
        if self._on_batch_end is not None:
            self._on_batch_end()

    def sendto(self, data: bytes, addr: Address) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.send_drops += 1
        except OSError as exc:
            self.errors += 1
            log.debug("socket %s:%d: send to %s failed: %s", *self.local, addr, exc)

    def send_batch(self, packets: list[bytes], addr: Address) -> None:
        """Several datagrams to one address. Runs of equal size (the last of a run may
        be shorter) leave as one UDP GSO sendmsg (UDP_SEGMENT): one trip through
        routing, netfilter and the bridge instead of one per datagram."""
        if not self.gso:
            for data in packets:
                self.sendto(data, addr)
            return
        i, n = 0, len(packets)
        while i < n:
            size = len(packets[i])
            total, j = size, i + 1
            while j < n and j - i < GSO_MAX_SEGMENTS:
                length = len(packets[j])
                if length > size or total + length > GSO_MAX_BYTES:
                    break
                total += length
                j += 1
                if length < size:
                    break
            if j - i == 1:
                self.sendto(packets[i], addr)
            else:
                self._send_segments(packets[i:j], size, addr)
            i = j

    def _send_segments(self, run: list[bytes], size: int, addr: Address) -> None:
        try:
            self.sock.sendmsg([b"".join(run)], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))],
                              0, addr)
            self.gso_sends += 1
        except (BlockingIOError, InterruptedError):
            self.send_drops += len(run)
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                log.info("socket %s:%d: no UDP GSO (%s); sending datagram by datagram",
                         *self.local, exc)
                self.gso = False
                for data in run:
                    self.sendto(data, addr)
            else:
                self.errors += 1
                log.debug("socket %s:%d: send to %s failed: %s", *self.local, addr, exc)

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


class RawEspSocket(DatagramSocket):
    """ESP as IP protocol 50 on one local address; `on_esp(esp, local, remote)` gets
    the ESP packet (from the SPI on) with local = (address, 0), remote = (source, 0)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, on_esp: Receiver, *,
                 index: int = 0, workers: int = 1, batch: int = BATCH,
                 on_batch_end: Callable[[], None] | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_ESP)
        try:
            if workers > 1:
                attach_filter(sock, raw_esp_program(index, workers))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.bind((address, 0))
        except BaseException:
            sock.close()
            raise
        self._on_esp = on_esp
        super().__init__(loop, sock, (address, 0), self._strip, batch, on_batch_end)

    def _strip(self, packet: bytes, local: Address, addr: Address) -> None:
        header = (packet[0] & 0x0F) * 4 if packet else 0
        if header < 20 or len(packet) <= header:
            self.errors += 1
            return
        self._on_esp(packet[header:], local, (addr[0], 0))

    def send_esp(self, esp: bytes, remote_ip: str) -> None:
        self.sendto(esp, (remote_ip, 0))

"""TCP segment coalescing for TUN writes (IFF_VNET_HDR), sans-I/O.

Each ``write()`` to a TUN device runs the whole receive path in the VR namespace for
one packet (routing, forwarding, the veth to the intranet, the server's TCP): profiled
under iperf3 it was the largest single cost of a worker. A TUN opened with
``IFF_VNET_HDR`` takes a 10-byte ``virtio_net_hdr`` before each packet, and with
``gso_type = VIRTIO_NET_HDR_GSO_TCPV4`` one write may carry several TCP segments of one
flow as one large packet, like GRO makes on a NIC: the kernel forwards it once and
cuts it into ``gso_size`` segments only where needed (the receiving TCP takes it whole).

:func:`coalesce` turns the inner packets one batch of ESP produced for a subscriber
into the frames to write: consecutive in-order segments of the same TCP flow with
identical headers except sequence number, IP id, lengths and checksums, flags ACK
(PSH only on the last), equal payload sizes (the last may be shorter), become one
frame whose TCP checksum is left to the kernel (``NEEDS_CSUM``: the field holds the
pseudo-header sum); everything else is written as it came, behind a zero header.
"""
from __future__ import annotations

import struct

__all__ = ["VNET_HDR_SIZE", "PLAIN", "coalesce", "frame"]

VNET_HDR_SIZE = 10
#: virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (host order)
_VNET = struct.Struct("=BBHHHH")
PLAIN = bytes(VNET_HDR_SIZE)
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_TCPV4 = 1
TCP_ACK, TCP_PSH = 0x10, 0x08
MAX_FRAME = 65535 - 200
_H10 = struct.Struct("!10H")


def frame(packet: bytes) -> bytes:
    """One packet as it came, behind a zero virtio header."""
    return PLAIN + packet


def _segment_header(p: bytes) -> int:
    """Header length (IPv4 + TCP) of a packet that may be coalesced, else 0."""
    if len(p) < 40 or p[0] != 0x45 or p[9] != 6 or (p[6] & 0x3F) or p[7]:
        return 0  # not IPv4 without options, not TCP, or a fragment
    flags = p[33]
    if flags != TCP_ACK and flags != TCP_ACK | TCP_PSH:
        return 0
    end = 20 + (p[32] >> 4) * 4
    if end < 40 or len(p) <= end:
        return 0  # no payload
    return end


def _same_flow(a: bytes, b: bytes, end: int) -> bool:
    # everything but total length (2:4), id (4:6), IP checksum (10:12), seq (24:28),
    # flags (33) and TCP checksum (36:38) must be the same
    return (a[0:2] == b[0:2] and a[6:10] == b[6:10] and a[12:24] == b[12:24]
            and a[28:33] == b[28:33] and a[34:36] == b[34:36] and a[38:end] == b[38:end])


def _ip_checksum(header: bytearray) -> int:
    s = sum(_H10.unpack_from(header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _merged(run: list[bytes], end: int) -> bytes:
    first = run[0]
    gso_size = len(first) - end
    payload = b"".join([p[end:] for p in run])
    header = bytearray(first[:end])
    total = end + len(payload)
    struct.pack_into("!H", header, 2, total)
    header[10:12] = b"\0\0"
    struct.pack_into("!H", header, 10, _ip_checksum(header[:20]))
    header[33] = run[-1][33]  # PSH of the last segment (the kernel keeps it on the last)
    # NEEDS_CSUM: the TCP checksum field holds the pseudo-header sum, not inverted
    s = sum(_H10.unpack_from(header)[6:10]) + 6 + (total - 20)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", header, 36, s)
    vnet = _VNET.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, end, gso_size, 20, 16)
    return vnet + bytes(header) + payload


def coalesce(packets: list[bytes]) -> list[bytes]:
    """The frames (virtio header + packet) to write for `packets`, in order."""
    out: list[bytes] = []
    i, n = 0, len(packets)
    while i < n:
        p = packets[i]
        end = _segment_header(p)
        if not end or p[33] & TCP_PSH or i + 1 == n:
            out.append(PLAIN + p)
            i += 1
            continue
        size = len(p) - end
        seq = int.from_bytes(p[24:28], "big") + size
        total = len(p)
        j = i + 1
        while j < n:
            q = packets[j]
            q_size = len(q) - end
            if (_segment_header(q) != end or q_size > size or total + q_size > MAX_FRAME
                    or int.from_bytes(q[24:28], "big") != seq & 0xFFFFFFFF
                    or not _same_flow(p, q, end)):
                break
            seq += q_size
            total += q_size
            j += 1
            if q_size < size or q[33] & TCP_PSH:
                break
        if j - i == 1:
            out.append(PLAIN + p)
        else:
            out.append(_merged(packets[i:j], end))
        i = j
    return out

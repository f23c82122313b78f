"""TCP segment coalescing for TUN writes (responder/daemon/tungso.py)."""
from __future__ import annotations

import struct

from scapy.layers.inet import ICMP, IP, TCP

from responder.daemon.tungso import PLAIN, VNET_HDR_SIZE, coalesce

MSS = 1348


def segment(seq: int, size: int = MSS, flags: str = "A", ack: int = 1000, ip_id: int = 1,
            src: str = "10.99.1.5", sport: int = 40000) -> bytes:
    pkt = IP(src=src, dst="10.50.0.10", id=ip_id, flags="DF") / TCP(
        sport=sport, dport=5201, seq=seq, ack=ack, flags=flags, window=500,
        options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / (bytes([seq % 251]) * size)
    return bytes(pkt)


def resegment(frame: bytes) -> list[bytes]:
    """What the kernel makes of a coalesced frame: payloads in gso_size pieces."""
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = struct.unpack_from("=BBHHHH", frame)
    packet = frame[VNET_HDR_SIZE:]
    payload = packet[hdr_len:]
    return [payload[i:i + gso_size] for i in range(0, len(payload), gso_size)]


def test_a_flow_in_order_becomes_one_frame():
    segs = [segment(1 + i * MSS, ip_id=i) for i in range(5)] + [segment(1 + 5 * MSS, 100, "PA")]
    frames = coalesce(segs)
    assert len(frames) == 1
    frame = frames[0]
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = struct.unpack_from("=BBHHHH", frame)
    assert (flags, gso_type, gso_size, csum_start, csum_offset) == (1, 1, MSS, 20, 16)
    ip = IP(frame[VNET_HDR_SIZE:])
    assert hdr_len == 20 + ip[TCP].dataofs * 4
    assert ip.len == len(frame) - VNET_HDR_SIZE and ip.id == 0 and ip[TCP].seq == 1
    assert ip[TCP].flags == "PA"
    # the IP header checksum is valid for the big packet
    assert IP(bytes(IP(frame[VNET_HDR_SIZE:]))).chksum == ip.chksum
    fresh = IP(frame[VNET_HDR_SIZE:])
    del fresh.chksum
    assert IP(bytes(fresh)).chksum == ip.chksum
    # the TCP checksum field holds the pseudo-header sum (src, dst, proto, TCP length)
    words = struct.unpack("!4H", frame[VNET_HDR_SIZE + 12:VNET_HDR_SIZE + 20])
    s = sum(words) + 6 + ip.len - 20
    s = (s & 0xFFFF) + (s >> 16)
    assert ip[TCP].chksum == (s & 0xFFFF) + (s >> 16)
    assert b"".join(resegment(frame)) == b"".join(bytes(IP(s)[TCP].payload) for s in segs)


def test_what_cannot_be_merged_goes_alone():
    a = segment(1)
    gap = segment(1 + 2 * MSS)                       # not contiguous
    other_ack = segment(1 + 3 * MSS, ack=2000)       # header differs
    syn = segment(1 + 4 * MSS, flags="S")            # not a plain ACK segment
    icmp = bytes(IP(src="10.99.1.5", dst="10.50.0.10") / ICMP())
    frames = coalesce([a, gap, other_ack, syn, icmp])
    assert frames == [PLAIN + p for p in (a, gap, other_ack, syn, icmp)]


def test_runs_end_at_a_short_segment_psh_or_another_flow():
    s = [segment(1 + i * MSS) for i in range(2)]
    short = segment(1 + 2 * MSS, 10)
    after = segment(1 + 2 * MSS + 10)
    other_flow = segment(1, sport=40001)
    frames = coalesce(s + [short, after, other_flow])
    assert len(frames) == 3
    assert len(resegment(frames[0])) == 3 and frames[1] == PLAIN + after
    assert frames[2] == PLAIN + other_flow
    psh = [segment(1, flags="PA"), segment(1 + MSS)]
    assert coalesce(psh) == [PLAIN + p for p in psh]


def test_frames_stay_below_64k():
    segs = [segment(1 + i * MSS, ip_id=i) for i in range(60)]
    frames = coalesce(segs)
    assert len(frames) >= 2
    assert all(len(f) - VNET_HDR_SIZE <= 65535 for f in frames)
    assert sum(len(resegment(f)) if f[1] else 1 for f in frames) == 60

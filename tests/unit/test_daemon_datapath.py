"""The worker's data path pieces: raw ESP steering (interpreter and kernel),
batched sockets, raw/UDP output by the child's encapsulation, drops by reason in the
statistics and per SA, byte lifetimes."""
from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

import pytest

from responder.daemon.datapath import DataPath
from responder.daemon.steering import raw_esp_program, run_program
from responder.daemon.udpio import DatagramSocket, RawEspSocket
from responder.esp.transforms import lookup_transform
from tests.unit.esp_helpers import SUBSCRIBER, flip_bit, icmp_echo, sa_pair

GCM = lookup_transform(20, None, 128)
CBC = lookup_transform(12, 2, 128)


def ipv4_header(protocol: int = 50, ihl: int = 5) -> bytes:
    options = bytes(4 * (ihl - 5))
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 0, 0, 0, 64, protocol, 0,
                       bytes(4), bytes(4)) + options


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("ihl", [5, 7])
def test_raw_esp_program_keeps_own_spis(workers, ihl):
    for _ in range(50):
        spi = int.from_bytes(os.urandom(4), "big")
        packet = ipv4_header(ihl=ihl) + spi.to_bytes(4, "big") + os.urandom(40)
        kept = [index for index in range(workers)
                if run_program(raw_esp_program(index, workers), packet)]
        assert kept == [spi % workers]
    assert run_program(raw_esp_program(0, 2), ipv4_header()[:19]) == 0  # short: dropped
    with pytest.raises(ValueError):
        raw_esp_program(2, 2)


@pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need root")
def test_raw_esp_sockets_split_by_spi_in_the_kernel():
    loop = asyncio.new_event_loop()
    got: dict[int, list[bytes]] = {0: [], 1: []}
    try:
        socks = [RawEspSocket(loop, "127.0.0.1",
                              lambda esp, local, remote, i=i: got[i].append(esp),
                              index=i, workers=2) for i in range(2)]
        sent = [(spi.to_bytes(4, "big") + bytes(20)) for spi in range(1000, 1010)]
        for esp in sent:
            socks[0].send_esp(esp, "127.0.0.1")
        loop.run_until_complete(asyncio.sleep(0.05))
        for s in socks:
            s._readable()
            s.close()
    finally:
        loop.close()
    assert got[0] == [e for e in sent if int.from_bytes(e[:4], "big") % 2 == 0]
    assert got[1] == [e for e in sent if int.from_bytes(e[:4], "big") % 2 == 1]


def test_datagram_socket_drains_in_one_wakeup():
    loop = asyncio.new_event_loop()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got = []
    try:
        ds = DatagramSocket(loop, rx, rx.getsockname(), lambda d, l, r: got.append(d), batch=8)
        for i in range(10):
            tx.sendto(bytes([i]) * 10, rx.getsockname())
        ds._readable()
        assert len(got) == 8  # one batch
        ds._readable()
        assert len(got) == 10
        ds.sendto(b"x", tx.getsockname())
        assert tx.recv(10) == b"x"
        ds.close()
        assert ds.is_closing()
    finally:
        tx.close()
        loop.close()


@dataclass
class _Keys:
    spi: bytes
    encryption_key: bytes
    integrity_key: bytes
    salt: bytes


def _child_event(child_id: int, out_sa, in_sa, udp: bool, kilobytes=None):
    """A Phase2Established-shaped object from the helpers' SA pair (same keys)."""
    p_in, p_out = in_sa.params, out_sa.params

    class Event:
        pass

    e = Event()
    e.child_id = child_id
    e.cipher, e.integrity = p_in.enc_id, p_in.auth_id
    e.cipher_key_bits = p_in.key_bits
    e.inbound = _Keys(p_in.spi.to_bytes(4, "big"), p_in.enc_key, p_in.auth_key, p_in.salt)
    e.outbound = _Keys(p_out.spi.to_bytes(4, "big"), p_out.enc_key, p_out.auth_key, p_out.salt)
    e.udp_encapsulated = udp
    e.lifetime_kilobytes = kilobytes
    e.lifetime_seconds = 3600
    return e


def _rig(udp: bool, kilobytes=None):
    sent, raw = [], []
    dp = DataPath(lambda data, local, remote: sent.append((data, local, remote)),
                  lambda sa_id: (("198.18.0.1", 500), ("198.18.1.5", 500)),
                  send_raw=lambda data, local, remote: raw.append((data, local, remote)))
    r, w = os.pipe()
    path = dp.add_subscriber("0:1", "sa1", w, IPv4Address(SUBSCRIBER))
    client_out, _ = sa_pair(GCM, spi=0x1000)  # client -> us: our inbound SA has its keys
    _, client_in = sa_pair(GCM, spi=0x2000)
    from responder.esp import InboundSA, OutboundSA
    ours_in = InboundSA(client_out.params)
    ours_out = OutboundSA(client_in.params)
    dp.add_child("0:1", _child_event(1, ours_out, ours_in, udp, kilobytes))
    return dp, path, client_out, client_in, sent, raw, (r, w)


@pytest.mark.parametrize("udp", [True, False])
def test_output_follows_the_childs_encapsulation(udp):
    dp, path, client_out, client_in, sent, raw, fds = _rig(udp)
    try:
        assert dp.send_to_subscriber(path, icmp_echo(dst=IPv4Address("10.50.0.10"), src=IPv4Address("10.50.0.10")))
        if udp:
            assert len(sent) == 1 and not raw and sent[0][1] == ("198.18.0.1", 4500)
            esp = sent[0][0]
        else:
            assert len(raw) == 1 and not sent and raw[0][1:] == ("198.18.0.1", "198.18.1.5")
            esp = raw[0][0]
        assert client_in.decapsulate(esp)
        inner = icmp_echo()
        assert dp.esp_received(client_out.encapsulate(inner), ("198.18.0.1", 0 if not udp else 4500),
                               ("198.18.1.5", 0)) == inner
        assert os.read(fds[0], 2000) == inner
        assert dp.describe_children()[0]["encapsulation"] == ("udp" if udp else "raw")
    finally:
        os.close(fds[0]), os.close(fds[1])


def test_drops_by_reason_in_statistics_and_per_sa():
    dp, path, client_out, _, _, _, fds = _rig(True)
    try:
        local, remote = ("198.18.0.1", 4500), ("198.18.1.5", 4500)
        esp = client_out.encapsulate(icmp_echo())
        assert dp.esp_received(esp, local, remote) is not None
        assert dp.esp_received(esp, local, remote) is None  # replay
        later = client_out.encapsulate(icmp_echo())
        assert dp.esp_received(flip_bit(later, len(later) - 1), local, remote) is None  # bad ICV
        assert dp.esp_received(client_out.encapsulate(icmp_echo(src=IPv4Address("10.99.0.99"))),
                               local, remote) is None  # not the subscriber's address
        assert dp.esp_received(b"\x00\x00\x99\x99" + bytes(40), local, remote) is None
        assert dp.stats["drop_replay"] == 1 and dp.stats["drop_bad_icv"] == 1
        assert dp.stats["drop_bad_inner_source"] == 1 and dp.stats["unknown_spi"] == 1
        assert dp.describe_children()[0]["drops"]["in"] == {
            "replay": 1, "bad_icv": 1, "bad_inner_source": 1}
        assert path.drops() == {"replay": 1, "bad_icv": 1, "bad_inner_source": 1}
        assert dp.counters("0:1").input_packets == 1
    finally:
        os.close(fds[0]), os.close(fds[1])


def test_byte_lifetime_refuses_and_names_the_child():
    dp, path, client_out, _, sent, _, fds = _rig(True, kilobytes=1)
    try:
        assert dp.expired(0.0) == []
        big = icmp_echo(src=IPv4Address("10.50.0.10"), size=600)
        assert dp.send_to_subscriber(path, big)
        assert dp.send_to_subscriber(path, big)  # 1256 octets >= 1024: now expired
        assert not dp.send_to_subscriber(path, big)
        assert dp.stats["drop_lifetime_expired"] == 1
        assert dp.expired(0.0) == [("0:1", "sa1", 1)]
    finally:
        os.close(fds[0]), os.close(fds[1])


def test_send_batch_uses_udp_gso_for_equal_sizes():
    loop = asyncio.new_event_loop()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    try:
        ds = DatagramSocket(loop, tx, tx.getsockname(), lambda *a: None)
        packets = [bytes([i]) * 100 for i in range(5)] + [b"short"] + [b"y" * 300, b"z" * 40]
        ds.send_batch(packets, rx.getsockname())
        got = []
        while True:
            try:
                got.append(rx.recv(2000))
            except BlockingIOError:
                break
        assert got == packets  # the receiver (no UDP_GRO) sees every datagram as sent
        assert ds.gso_sends == 2 or not ds.gso  # [5 x 100 + "short"], [300, 40]
        ds.close()
    finally:
        rx.close()
        loop.close()


def test_tun_batch_goes_to_send_many():
    dp, path, _, client_in, sent, _, fds = _rig(True)
    many = []
    dp._send_many = lambda packets, local, remote: many.append((packets, local, remote))
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        path.fd = r
        for _ in range(3):
            os.write(w, icmp_echo(src=IPv4Address("10.50.0.10"), dst=SUBSCRIBER))
        # a pipe merges writes; read size = one packet
        import responder.daemon.datapath as datapath_module
        size = len(icmp_echo())
        old = datapath_module.TUN_READ_SIZE
        datapath_module.TUN_READ_SIZE = size
        try:
            dp._on_tun_readable(path)
        finally:
            datapath_module.TUN_READ_SIZE = old
        assert len(many) == 1 and len(many[0][0]) == 3 and many[0][1] == ("198.18.0.1", 4500)
        assert all(client_in.decapsulate(esp) for esp in many[0][0])
        assert dp.stats["tun_wakeups"] == 1 and dp.stats["esp_out"] == 3
    finally:
        os.close(r), os.close(w)
        os.close(fds[0]), os.close(fds[1])


def test_raw_child_needs_the_raw_socket():
    from responder.daemon.datapath import UnsupportedChild
    dp = DataPath(lambda *a: None, lambda sa_id: None)
    r, w = os.pipe()
    try:
        dp.add_subscriber("0:1", "sa1", w, IPv4Address(SUBSCRIBER))
        out, inb = sa_pair(GCM, spi=0x3000)
        with pytest.raises(UnsupportedChild):
            dp.add_child("0:1", _child_event(1, out, inb, udp=False))
        dp.add_child("0:1", _child_event(2, out, inb, udp=True))
    finally:
        os.close(r), os.close(w)


def test_vnet_mode_writes_at_flush_with_a_header():
    dp, path, client_out, _, _, _, fds = _rig(True)
    dp.vnet_hdr = dp.coalesce_tcp = True
    try:
        inner = icmp_echo()
        assert dp.esp_received(client_out.encapsulate(inner), ("198.18.0.1", 4500),
                               ("198.18.1.5", 4500)) == inner
        os.set_blocking(fds[0], False)
        with pytest.raises(BlockingIOError):
            os.read(fds[0], 2000)  # nothing before the batch ends
        dp.flush()
        assert os.read(fds[0], 2000) == bytes(10) + inner
        assert dp.stats["tun_out"] == 1 and dp.stats["tun_writes"] == 1
    finally:
        os.close(fds[0]), os.close(fds[1])

"""The SO_REUSEPORT steering program: the interpreter, and the kernel on loopback."""
from __future__ import annotations

import os
import random
import select
import socket
import time

import pytest

from responder.daemon.steering import (attach_program, cookie_for_worker, ike_program,
                                       make_reuseport_socket, natt_program, run_program,
                                       spi_for_worker, worker_of_cookie, worker_of_spi)

MARKER = bytes(4)


def rng_from(seed: int):
    r = random.Random(seed)
    return lambda n: bytes(r.getrandbits(8) for _ in range(n))


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_spis_and_cookies_carry_the_worker_index(workers):
    rng = rng_from(workers)
    for index in range(workers):
        for _ in range(50):
            spi = spi_for_worker(rng, index, workers)
            assert len(spi) == 4 and int.from_bytes(spi, "big") >= 256
            assert worker_of_spi(spi, workers) == index
            cookie = cookie_for_worker(rng, index, workers)
            assert len(cookie) == 8 and cookie != bytes(8)
            assert worker_of_cookie(cookie, workers) == index


def test_programs_on_the_interpreter():
    n = 3
    for _ in range(100):
        cookie = os.urandom(8)
        ike = cookie + os.urandom(20)
        want = int.from_bytes(cookie[:4], "big") % n
        assert run_program(ike_program(n), ike) == want
        # same SA after the float to 4500: same worker
        assert run_program(natt_program(n), MARKER + ike) == want
        spi = spi_for_worker(os.urandom, 2, n)
        assert run_program(natt_program(n), spi + os.urandom(40)) == 2
    # a NAT keepalive (one 0xFF byte) is too short for a load: socket 0
    assert run_program(natt_program(n), b"\xff") == 0


def test_worker_count_bounds():
    with pytest.raises(ValueError):
        ike_program(0)
    with pytest.raises(ValueError):
        natt_program(65)


def _receive_all(socks, timeout=1.0) -> list[tuple[int, bytes]]:
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select(socks, [], [], 0.05)
        if not ready and got:
            break
        for sock in ready:
            while True:
                try:
                    got.append((socks.index(sock), sock.recv(2048)))
                except BlockingIOError:
                    break
    return got


@pytest.mark.parametrize("program,natt", [(ike_program, False), (natt_program, True)])
def test_kernel_steers_by_cookie_and_spi(program, natt):
    """The real kernel (SO_ATTACH_REUSEPORT_CBPF sees the UDP payload at offset 0)."""
    n = 3
    first = make_reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    socks = [first] + [make_reuseport_socket("127.0.0.1", port) for _ in range(n - 1)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        attach_program(first, program(n))
        sent = 0
        for i in range(60):
            cookie = os.urandom(8)
            payload = (MARKER if natt else b"") + cookie + os.urandom(24)
            sender.sendto(payload, ("127.0.0.1", port))
            sent += 1
            if natt:
                sender.sendto(spi_for_worker(os.urandom, i % n, n) + os.urandom(40),
                              ("127.0.0.1", port))
                sent += 1
        got = _receive_all(socks)
        assert len(got) == sent
        for index, data in got:
            if data[:4] == MARKER:
                assert index == worker_of_cookie(data[4:12], n)
            elif natt:
                assert index == worker_of_spi(data[:4], n)
            else:
                assert index == worker_of_cookie(data[:8], n)
        assert len({index for index, _ in got}) == n  # everyone got some
    finally:
        sender.close()
        for sock in socks:
            sock.close()

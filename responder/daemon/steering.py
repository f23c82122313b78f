"""Steering datagrams to workers: SO_REUSEPORT groups + a classic BPF program.

All workers read the same UDP ports (500 and 4500 on each listen address). The
supervisor creates every socket itself, in worker order, with ``SO_REUSEPORT``, so
that socket *i* of each group is worker *i*'s; it keeps its own copies open, so a
dead worker's slot stays in the group and the restarted worker inherits the same
socket (the kernel would otherwise move the last socket into the freed slot and the
indices would shift). The cBPF program (``SO_ATTACH_REUSEPORT_CBPF``) sees the UDP
payload at offset 0 and returns the index of the socket that gets the datagram:

* port 500 (IKE): the first 4 bytes of the initiator cookie, modulo the number of
  workers. The initiator cookie is in every message of an IKE SA (RFC 2408 §3.1),
  so all of an SA's messages reach the worker that answered its first one;
* port 4500, Non-ESP marker (4 zero bytes, RFC 3948 §2.2): the same, read after the
  marker — so the port float 500 -> 4500 and NAT rebinding stay on the worker;
* port 4500, ESP: the SPI, modulo the number of workers. The SPI is ours (we chose
  it in Quick Mode), and each worker chooses only SPIs with ``spi % workers ==
  index`` (:func:`spi_for_worker`). Responder cookies carry the index the same way
  (:func:`cookie_for_worker`; not needed for steering, handy when reading captures).

A datagram too short for a load (a NAT-keepalive 0xFF) ends the program with 0:
worker 0 gets it and ignores it. Nothing here runs per packet in Python.

Raw ESP (IP protocol 50) has no reuseport group: every raw socket bound to the
address gets a copy of every packet. Each worker's raw socket carries a socket
filter (``SO_ATTACH_FILTER``, :func:`raw_esp_program`) that sees the IPv4 header,
skips it (``ldxb 4*([0]&0xf)``) and keeps only SPIs with ``spi % workers ==
index``; the kernel drops the other workers' packets before any wakeup (a demux in
Python would wake every worker for every packet and cost one recv each).
"""
from __future__ import annotations

import ctypes
import socket
import struct
from typing import Callable

__all__ = [
    "SO_ATTACH_REUSEPORT_CBPF",
    "ike_program",
    "natt_program",
    "attach_program",
    "make_reuseport_socket",
    "cookie_for_worker",
    "spi_for_worker",
    "worker_of_cookie",
    "worker_of_spi",
    "run_program",
    "raw_esp_program",
    "attach_filter",
]

SO_ATTACH_REUSEPORT_CBPF = 51

# classic BPF opcodes (linux/filter.h, linux/bpf_common.h)
BPF_LD, BPF_ALU, BPF_JMP, BPF_RET = 0x00, 0x04, 0x05, 0x06
BPF_W, BPF_ABS = 0x00, 0x20
BPF_K, BPF_A = 0x00, 0x10
BPF_MOD = 0x90
BPF_JEQ = 0x10

BPF_LDX, BPF_B, BPF_IND, BPF_MSH = 0x01, 0x10, 0x40, 0xa0
SO_ATTACH_FILTER = 26

LD_W_ABS = BPF_LD | BPF_W | BPF_ABS
LD_W_IND = BPF_LD | BPF_W | BPF_IND
LDX_B_MSH = BPF_LDX | BPF_B | BPF_MSH
MOD_K = BPF_ALU | BPF_MOD | BPF_K
JEQ_K = BPF_JMP | BPF_JEQ | BPF_K
RET_A = BPF_RET | BPF_A
RET_K = BPF_RET | BPF_K

Instruction = tuple[int, int, int, int]  # (code, jt, jf, k)


def _check_workers(workers: int) -> None:
    if not 1 <= workers <= 64:
        raise ValueError(f"{workers} workers: steering supports 1-64")


def ike_program(workers: int) -> list[Instruction]:
    """Port 500: initiator cookie (bytes 0-3) mod workers."""
    _check_workers(workers)
    return [(LD_W_ABS, 0, 0, 0), (MOD_K, 0, 0, workers), (RET_A, 0, 0, 0)]


def natt_program(workers: int) -> list[Instruction]:
    """Port 4500: after a Non-ESP marker the initiator cookie, else the SPI, mod workers."""
    _check_workers(workers)
    return [
        (LD_W_ABS, 0, 0, 0),        # A = first word: 0 (marker) or the SPI
        (JEQ_K, 0, 2, 0),           # marker? fall through : skip to the SPI case
        (LD_W_ABS, 0, 0, 4),        # A = initiator cookie, first 4 bytes
        (MOD_K, 0, 0, workers),
        (MOD_K, 0, 0, workers),     # ESP: A = SPI mod workers (harmless twice for IKE)
        (RET_A, 0, 0, 0),
    ]


def raw_esp_program(index: int, workers: int) -> list[Instruction]:
    """Raw ESP socket filter: accept (whole packet) iff SPI % workers == index.
    The packet starts with the IPv4 header; the SPI follows it."""
    _check_workers(workers)
    if not 0 <= index < workers:
        raise ValueError(f"worker index {index} out of 0..{workers - 1}")
    return [
        (LDX_B_MSH, 0, 0, 0),       # X = 4 * (IHL)
        (LD_W_IND, 0, 0, 0),        # A = SPI (first word after the IPv4 header)
        (MOD_K, 0, 0, workers),
        (JEQ_K, 0, 1, index),
        (RET_K, 0, 0, 0x40000),     # ours: keep the whole packet
        (RET_K, 0, 0, 0),           # another worker's: drop
    ]


def attach_filter(sock: socket.socket, program: list[Instruction]) -> None:
    """SO_ATTACH_FILTER: a classic BPF socket filter on one socket."""
    filters = ctypes.create_string_buffer(_pack(program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(filters))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _pack(program: list[Instruction]) -> bytes:
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in program)


def attach_program(sock: socket.socket, program: list[Instruction]) -> None:
    """SO_ATTACH_REUSEPORT_CBPF on one socket of the group (applies to the group)."""
    filters = ctypes.create_string_buffer(_pack(program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HL", len(program), ctypes.addressof(filters))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def make_reuseport_socket(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket with SO_REUSEPORT, bound to (address, port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# -- identifiers that carry the worker index -------------------------------------------
def _with_residue(rng: Callable[[int], bytes], size: int, index: int, workers: int,
                  minimum: int = 1) -> bytes:
    """Random `size` bytes whose first 4 bytes (big-endian) are = index (mod workers),
    >= minimum. Keeps all other randomness: only the residue is forced."""
    while True:
        raw = bytearray(rng(size))
        value = int.from_bytes(raw[:4], "big")
        value -= value % workers
        value += index
        if value > 0xFFFFFFFF:
            value -= workers
        if value < minimum:
            continue
        raw[:4] = value.to_bytes(4, "big")
        return bytes(raw)


def spi_for_worker(rng: Callable[[int], bytes], index: int, workers: int) -> bytes:
    """A 4-byte SPI >= 256 (RFC 4303 §2.1) with spi % workers == index."""
    return _with_residue(rng, 4, index, workers, minimum=256)


def cookie_for_worker(rng: Callable[[int], bytes], index: int, workers: int) -> bytes:
    """An 8-byte non-zero responder cookie whose first word % workers == index."""
    return _with_residue(rng, 8, index, workers, minimum=1)


def worker_of_spi(spi: bytes | int, workers: int) -> int:
    value = spi if isinstance(spi, int) else int.from_bytes(spi[:4], "big")
    return value % workers


def worker_of_cookie(cookie: bytes, workers: int) -> int:
    return int.from_bytes(cookie[:4], "big") % workers


# -- a tiny interpreter, for tests (what the kernel will do) -----------------------------
def run_program(program: list[Instruction], payload: bytes) -> int:
    """Evaluate the cBPF subset used here on `payload`; an out-of-bounds load
    returns 0 as the kernel does."""
    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code in (LD_W_ABS, LD_W_IND):
            at = k + (x if code == LD_W_IND else 0)
            if at + 4 > len(payload):
                return 0
            a = int.from_bytes(payload[at:at + 4], "big")
        elif code == LDX_B_MSH:
            if k >= len(payload):
                return 0
            x = 4 * (payload[k] & 0x0F)
        elif code == RET_K:
            return k
        elif code == MOD_K:
            a %= k
        elif code == JEQ_K:
            pc += jt if a == k else jf
        elif code == RET_A:
            return a
        else:
            raise ValueError(f"opcode {code:#x} not in the interpreter")

"""Shared builders for the ESP tests: SA pairs for every transform, inner packets."""
from __future__ import annotations

import itertools
from ipaddress import IPv4Address

from scapy.layers.inet import ICMP, IP

from responder.esp import EspSAParams, InboundSA, OutboundSA
from responder.esp.transforms import EspCipherSuite

SUBSCRIBER = IPv4Address("10.99.0.7")
SERVER = IPv4Address("192.168.50.10")
SPI = 0x0000C0DE


def counting_rng():
    """Deterministic 'random' bytes, different on every call (for IVs in tests)."""
    counter = itertools.count(1)

    def rng(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return rng


def key_material(transform: EspCipherSuite, seed: int = 1) -> tuple[bytes, bytes, bytes]:
    def filled(size: int, offset: int) -> bytes:
        return bytes((seed * 31 + offset + i) & 0xFF for i in range(size))

    return (filled(transform.enc_key_size, 0), filled(transform.auth_key_size, 100),
            filled(transform.salt_size, 200))


def params_for(transform: EspCipherSuite, *, spi: int = SPI, **overrides) -> EspSAParams:
    enc_key, auth_key, salt = key_material(transform)
    values = dict(spi=spi, enc_id=transform.enc_id, auth_id=transform.auth_id,
                  key_bits=transform.key_bits, enc_key=enc_key, auth_key=auth_key, salt=salt,
                  encap_udp=True)
    values.update(overrides)
    return EspSAParams(**values)


def sa_pair(transform: EspCipherSuite, *, now: float = 0.0, allowed_source=None, **overrides):
    params = params_for(transform, **overrides)
    outbound = OutboundSA(params, now=now, rng=counting_rng())
    inbound = InboundSA(params, now=now, allowed_inner_source=allowed_source)
    return outbound, inbound


def icmp_echo(src: IPv4Address = SUBSCRIBER, dst: IPv4Address = SERVER, size: int = 56) -> bytes:
    return bytes(IP(src=str(src), dst=str(dst)) / ICMP(id=7, seq=1) / (b"x" * size))


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 1 << bit
    return bytes(changed)

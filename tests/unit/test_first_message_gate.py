"""The receiving socket sheds message 1s past a rate before the engine parses them.

Answering a message 1 is the engine's most expensive unauthenticated work (parse,
proposal match, reply; Aggressive Mode: a DH), so a spoofed flood faster than the
engine can answer would take the CPU honest logins need. Past
`first_messages_per_s` a message 1 passes only on its prefix's own budget: the
flood's prefixes are held to theirs, a peer from another prefix still gets in, and
an SA in progress (any message with a responder cookie) is never slowed down.
"""

from __future__ import annotations

import asyncio
import struct

from responder.ikev1.admission import MAX_GATED_PREFIXES, FirstMessageGate
from responder.ikev1.engine import Responder
from responder.ikev1.natt_framing import NON_ESP_MARKER
from responder.ikev1.policy import Limits, PresharedKey, ResponderPolicy
from responder.ikev1.transport import ResponderTransport

from tests.unit.test_hostile_ikescan import main_mode_probe

LIMITS = Limits(first_messages_per_s=100.0, first_messages_per_prefix_per_s=5.0)


def mm1(n: int) -> bytes:
    return main_mode_probe(cookie=struct.pack("!Q", 0x6000_0000 + n))


def flood(gate: FirstMessageGate, count: int, source, now: float = 0.0) -> int:
    return sum(gate.admit(mm1(n), source(n), now) for n in range(count))


def test_a_flood_past_the_rate_is_held_to_its_prefix_budget():
    gate = FirstMessageGate(LIMITS)
    # free burst (2 x 100) then the prefix's own burst (2 x 5)
    assert flood(gate, 5000, lambda n: f"10.1.2.{n % 250}") == 200 + 10


def test_a_peer_of_another_prefix_gets_in_during_the_flood():
    gate = FirstMessageGate(LIMITS)
    flood(gate, 5000, lambda n: f"10.1.{n % 16}.{n % 250}")
    assert not gate.admit(mm1(9000), "10.1.3.9", 0.0)          # a flooding prefix: shed
    assert gate.admit(mm1(9001), "192.0.2.10", 0.0)            # someone else: through


def test_budgets_refill_with_time():
    gate = FirstMessageGate(LIMITS)
    flood(gate, 1000, lambda n: "10.1.2.3")
    assert not gate.admit(mm1(1), "10.1.2.3", 0.0)
    assert gate.admit(mm1(2), "10.1.2.3", 1.0)


def test_messages_of_an_sa_in_progress_always_pass():
    gate = FirstMessageGate(LIMITS)
    flood(gate, 1000, lambda n: "10.1.2.3")
    third = bytearray(mm1(1))
    third[8:16] = b"\x11" * 8                               # the responder's cookie
    assert all(gate.admit(bytes(third), "10.1.2.3", 0.0) for _ in range(100))


def test_rate_zero_is_no_gate():
    gate = FirstMessageGate(Limits(first_messages_per_s=0))
    assert flood(gate, 3000, lambda n: "10.1.2.3") == 3000


def test_prefix_buckets_are_bounded():
    gate = FirstMessageGate(LIMITS)
    flood(gate, MAX_GATED_PREFIXES * 3, lambda n: f"10.{n // 250 % 250}.{n % 250}.1")
    assert len(gate._prefixes) == MAX_GATED_PREFIXES


class _Socket:
    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))

    def close(self):
        pass


def test_the_transport_sheds_unparsed_and_counts_on_both_ports():
    policy = ResponderPolicy(psks=(PresharedKey(b"k"),), limits=LIMITS)

    async def main():
        responder = Responder(policy)
        loop = asyncio.get_running_loop()
        loop.time = lambda: 1000.0             # one instant: no budget refills meanwhile
        transport = ResponderTransport(responder, loop=loop)
        sockets = {port: _Socket() for port in (500, 4500)}
        for port, sock in sockets.items():
            transport.attach(("198.18.0.1", port), sock)
        for n in range(300):
            transport.datagram_received(mm1(n), ("198.18.0.1", 500),
                                        (f"10.9.9.{n % 250}", 500))
        for n in range(300, 320):
            transport.datagram_received(NON_ESP_MARKER + mm1(n), ("198.18.0.1", 4500),
                                        (f"10.9.9.{n % 250}", 4500))
        transport.close()
        return responder
    responder = asyncio.run(main())
    assert responder.stats["dropped_first_message_shed"] == 320 - 210
    assert responder.stats["phase1_started"] == 210

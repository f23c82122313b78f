"""Spoofed floods of message 1 and what a spoofed source may get from us.

A full half-open table no longer locks honest peers out: a new message 1
takes the slot of the oldest SA that never got message 3, from the prefix
holding the most of them. Nothing is resent by timer to an unproven source
(AM msg 2), cached replies to it are bounded, and error notifies in clear
are rate limited. The engine runs in memory with a fake clock.
"""

from __future__ import annotations

import struct

from responder.ikev1.admission import AdmissionBook, TokenBucket, prefix_of
from responder.ikev1.enums import IdType
from responder.ikev1.events import Phase1Established
from responder.ikev1.message import Message
from responder.ikev1.payloads import Identification, KeyExchange, Nonce
from responder.ikev1.policy import Identity, Limits, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.stepwise import StepInitiator, seeded_rng
from clients.ikev1_initiator.pair import PSK, SERVER, make_pair
from tests.unit.test_hostile_cve import notify_types, raw
from tests.unit.test_hostile_ikescan import AM, ike_scan_sa, main_mode_probe

GROUP = Identity(IdType.KEY_ID, "vpngroup")


def aggressive_probe(cookie: bytes) -> bytes:
    """AM message 1 for the group that has a key (as a flood tool knowing it sends)."""
    return raw(cookie, bytes(8), AM, [ike_scan_sa(), KeyExchange(bytes([0x5A]) * 128),
                                      Nonce(bytes(range(20))), Identification.key_id("vpngroup")])


def spoof_mm1(pair, address: str, n: int) -> list[bytes]:
    """A Main Mode message 1 as a flood tool sends it: new cookie, forged source."""
    data = main_mode_probe(cookie=struct.pack("!Q", 0x5000_0000 + n))
    pair.responder.receive_datagram(data, SERVER, (address, 500), pair.now)
    return pair.collect()


def distinct(n: int) -> str:
    """The n-th forged source: each one a host of its own /24."""
    return f"10.{n // 250}.{n % 250}.7"


def honest(pair, address: str, seed: int) -> StepInitiator:
    return StepInitiator(PSK, seeded_rng(seed), local=(address, 500), remote=SERVER)


def send_as(pair, initiator: StepInitiator, data: bytes) -> list[bytes]:
    return pair.send(data, local=SERVER, remote=initiator.local)


def main_mode_1(pair, initiator: StepInitiator) -> None:
    [reply] = send_as(pair, initiator, initiator.main_mode_1())
    initiator.handle_main_mode_2(reply)


def main_mode_rest(pair, initiator: StepInitiator) -> None:
    [reply] = send_as(pair, initiator, initiator.main_mode_3())
    initiator.handle_main_mode_4(reply)
    [reply] = send_as(pair, initiator, initiator.main_mode_5())
    initiator.handle_main_mode_6(reply)


def established_peers(pair) -> set[str]:
    return {event.peer[0] for event in pair.of_type(Phase1Established)}


# ------------------------------------------------------------- eviction
def test_honest_main_mode_login_succeeds_after_1000_spoofed_message_1s():
    pair = make_pair()
    r = pair.responder
    limit = r.policy.limits.max_half_open
    assert limit == 1000
    for n in range(limit):
        assert len(spoof_mm1(pair, distinct(n), n)) == 1
    assert r.sa_count == limit
    client = honest(pair, "198.18.1.2", 7)
    main_mode_1(pair, client)  # takes the oldest spoofed SA's slot
    for n in range(limit, limit + limit // 2):  # the flood goes on for a round trip
        spoof_mm1(pair, distinct(n), n)
    pair.now += 0.05
    main_mode_rest(pair, client)
    assert established_peers(pair) == {"198.18.1.2"}
    assert r.stats["evicted_half_open_limit"] == limit // 2 + 1
    assert r.stats["dropped_half_open_limit"] == 0
    assert r.sa_count == limit


def test_a_flood_from_one_prefix_evicts_its_own_half_open_sas_first():
    limits = Limits(max_half_open=50, max_half_open_per_peer=1000, max_sas_per_peer=1000,
                    max_half_open_per_prefix=1000)
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), limits=limits))
    r = pair.responder
    early = [honest(pair, f"198.18.{n + 1}.2", 100 + n) for n in range(10)]
    for client in early:
        main_mode_1(pair, client)
    for n in range(300):  # one /24, many hosts
        pair.now += 0.001
        spoof_mm1(pair, f"10.9.9.{n % 250 + 1}", n)
    late = honest(pair, "198.18.200.2", 99)
    main_mode_1(pair, late)
    assert r.stats["evicted_half_open_limit"] == 300 - 40 + 1
    for client in [*early, late]:
        main_mode_rest(pair, client)
    assert established_peers(pair) == {c.local[0] for c in [*early, late]}


def test_the_per_prefix_limit_keeps_a_prefix_to_its_share():
    limits = Limits(max_half_open_per_peer=1000, max_half_open_per_prefix=20)
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), limits=limits))
    r = pair.responder
    for n in range(200):
        assert len(spoof_mm1(pair, f"10.9.9.{n % 250 + 1}", n)) == 1
    assert r.sa_count == 20
    assert r.stats["evicted_half_open_prefix_limit"] == 180
    for n in range(30):  # other prefixes are not touched by it
        spoof_mm1(pair, distinct(n), 1000 + n)
    assert r.sa_count == 50 and r.stats["evicted_half_open_limit"] == 0


def test_sas_whose_peer_sent_message_3_are_never_evicted():
    limits = Limits(max_half_open=3)
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), limits=limits))
    r = pair.responder
    clients = [honest(pair, f"198.18.{n + 1}.2", 200 + n) for n in range(3)]
    for client in clients:
        main_mode_1(pair, client)
        [reply] = send_as(pair, client, client.main_mode_3())
        client.handle_main_mode_4(reply)
    assert spoof_mm1(pair, distinct(1), 1) == []
    assert r.stats["dropped_half_open_limit"] == 1 and r.stats["evicted_half_open_limit"] == 0
    for client in clients:
        [reply] = send_as(pair, client, client.main_mode_5())
        client.handle_main_mode_6(reply)
    assert len(established_peers(pair)) == 3


def test_the_per_peer_limit_still_drops():
    pair = make_pair()
    r = pair.responder
    limit = r.policy.limits.max_half_open_per_peer
    answered = sum(len(spoof_mm1(pair, "10.1.1.1", n)) for n in range(limit + 4))
    assert answered == limit and r.stats["dropped_half_open_peer_limit"] == 4
    assert r.stats["evicted_half_open_prefix_limit"] == 0


# ---------------------------------------------------------- no amplification
def am_policy(**limits) -> ResponderPolicy:
    return ResponderPolicy(psks=(PresharedKey(PSK, identity=GROUP),),
                           limits=Limits(half_open_timeout=60.0, **limits))


def test_aggressive_mode_message_2_is_never_resent_by_timer():
    pair = make_pair(am_policy())
    r = pair.responder
    [am2] = pair.send(aggressive_probe(cookie=b"spoofAM1"))
    assert Message.parse(am2).header.exchange_type == AM
    assert pair.advance(59) == []
    assert not r._retransmits
    assert pair.advance(2) == [] and r.sa_count == 0
    assert not any(key.startswith("retransmit_exhausted") for key in r.stats)


def test_a_repeated_message_1_gets_the_cached_reply_a_bounded_number_of_times():
    pair = make_pair(am_policy(max_unproven_resends=2))
    r = pair.responder
    probe = aggressive_probe(cookie=b"spoofAM2")
    [am2] = pair.send(probe)
    out = [pair.send(probe) for _ in range(5)]
    assert out == [[am2], [am2], [], [], []]
    assert r.stats["dropped_unproven_resend_limit"] == 3
    mm = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),),
                                   limits=Limits(max_unproven_resends=1)))
    [mm2] = mm.send(main_mode_probe(cookie=b"spoofMM1"))
    assert [mm.send(main_mode_probe(cookie=b"spoofMM1")) for _ in range(3)] == [[mm2], [], []]


def test_an_honest_aggressive_mode_peer_that_lost_message_2_still_gets_in():
    pair = make_pair(am_policy(), initiator_kwargs=dict(
        identity=Identification(IdType.KEY_ID, b"vpngroup")))
    i = pair.initiator
    am1 = i.aggressive_1()
    pair.send(am1)  # lost on the way back
    pair.now += 4
    [am2] = pair.send(am1)
    i.handle_aggressive_2(am2)
    assert pair.send(i.aggressive_3()) == []
    assert pair.of_type(Phase1Established)


def test_resends_after_message_3_are_not_bounded():
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),),
                                     limits=Limits(max_unproven_resends=0)))
    i = pair.initiator
    [mm2] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(mm2)
    mm3 = i.main_mode_3()
    [mm4] = pair.send(mm3)
    assert [pair.send(mm3) for _ in range(3)] == [[mm4]] * 3


# ------------------------------------------------------ rate-limited notifies
def test_error_notifies_to_unauthenticated_sources_are_rate_limited():
    limits = Limits(unauthenticated_notify_rate=2.0, unauthenticated_notify_burst=5)
    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), limits=limits))
    r = pair.responder
    refused = main_mode_probe(transforms=[(1, 1, 1, 1)])  # DES-MD5 only

    def flood(count: int, base: int) -> int:
        sent = 0
        for n in range(count):
            data = refused[:0] + struct.pack("!Q", base + n) + refused[8:]
            r.receive_datagram(data, SERVER, (distinct(base + n), 500), pair.now)
            sent += len(notify_types(pair.collect()))
        return sent

    assert flood(50, 0) == 5
    assert r.stats["notify_rate_limited"] == 45
    assert r.stats["error_NO_PROPOSAL_CHOSEN"] == 50 and r.sa_count == 0
    pair.now += 1.0
    assert flood(10, 100) == 2
    pair.now += 100.0
    assert flood(10, 200) == 5  # never more than the burst saved up


# ------------------------------------------------------------ the book itself
def test_prefixes_are_slash_24_and_slash_64_by_default():
    limits = Limits()
    book = AdmissionBook(limits)
    assert book.prefix("192.0.2.1") == book.prefix("192.0.2.254") != book.prefix("192.0.3.1")
    assert book.prefix("2001:db8:0:1::1") == book.prefix("2001:db8:0:1:ffff::9")
    assert book.prefix("2001:db8:0:1::1") != book.prefix("2001:db8:0:2::1")
    assert prefix_of("192.0.2.1", 16, 64) == prefix_of("192.0.77.1", 16, 64)
    assert prefix_of("not-an-address", 24, 64) == "not-an-address"


def test_ties_between_prefixes_go_to_the_one_that_grew_first():
    book = AdmissionBook(Limits(max_half_open=4))
    for sa_id, peer in (("a", "10.0.1.1"), ("b", "10.0.2.1"), ("c", "10.0.1.2"),
                        ("d", "10.0.2.2")):
        book.add(sa_id, peer)
    decision = book.decide("10.0.3.1")
    assert (decision.action, decision.victim) == ("evict", "a")
    book.update("a", "10.0.1.1", half_open=True, evictable=False)  # a sent message 3
    assert book.decide("10.0.3.1").victim == "b"


def test_token_bucket_refills_at_its_rate_up_to_its_burst():
    bucket = TokenBucket(rate=10.0, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1) and not bucket.take(0.1)
    assert [bucket.take(50.0) for _ in range(4)] == [True, True, True, False]


# --------------------------------------------------------------- exported counts
def test_admission_counters_are_exported_to_prometheus(tmp_path):
    from prometheus_client import generate_latest

    from responder.config import parse_config
    from responder.daemon.supervisor import Supervisor
    from tests.unit.test_daemon_operations import BASE

    sup = Supervisor(parse_config({**BASE, "metrics": {"enabled": True}}), str(tmp_path / "c"))
    sup.metrics.worker_stats = [{"ike_sas": 1, "engine": {
        "evicted_half_open_limit": 7, "dropped_half_open_peer_limit": 2,
        "notify_rate_limited": 3, "phase1_started": 9}}]
    text = generate_latest(sup.metrics.registry).decode()
    for counter, value in (("evicted_half_open_limit", 7), ("dropped_half_open_peer_limit", 2),
                           ("notify_rate_limited", 3)):
        assert f'dynipsec_ike_admission_total{{counter="{counter}",worker="0"}} {value}.0' in text
    assert 'counter="phase1_started"' not in text

"""ESP SAs: round trips, tampering, replay, padding, next header, inner source, lifetimes."""
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from responder.esp import (TRANSFORMS, DropReason, EspDrop, EspSAParams, InboundSA, LifetimeState,
                           OutboundSA, check_inner_source)
from responder.esp.sa import _PADDING

from .esp_helpers import SERVER, SPI, SUBSCRIBER, counting_rng, flip_bit, icmp_echo, params_for, sa_pair

ALL = list(TRANSFORMS.values())
IDS = [t.name for t in ALL]
GCM = TRANSFORMS[(20, None, 128)]
CBC = TRANSFORMS[(12, 2, 128)]


def drop_reason(inbound, packet, **kwargs):
    with pytest.raises(EspDrop) as caught:
        inbound.decapsulate(packet, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize("transform", ALL, ids=IDS)
@pytest.mark.parametrize("size", [0, 1, 13, 56, 1372])
def test_round_trip(transform, size):
    outbound, inbound = sa_pair(transform)
    inner = icmp_echo(size=size)
    packet = outbound.encapsulate(inner)
    assert struct.unpack("!II", packet[:8]) == (SPI, 1)
    ciphertext_length = len(packet) - 8 - transform.iv_size - transform.icv_size
    assert ciphertext_length % transform.pad_alignment == 0
    assert inbound.decapsulate(packet) == inner
    assert (inbound.counters.packets, inbound.counters.octets) == (1, len(inner))
    assert (outbound.counters.packets, outbound.counters.octets) == (1, len(inner))


@pytest.mark.parametrize("transform", ALL, ids=IDS)
@pytest.mark.parametrize("where", ["spi", "seq", "iv", "ciphertext", "icv"])
def test_tampered_packet_is_bad_icv(transform, where):
    outbound, inbound = sa_pair(transform)
    packet = outbound.encapsulate(icmp_echo())
    iv_end = 8 + transform.iv_size
    index = {"spi": 3, "seq": 7, "iv": iv_end - 1, "ciphertext": iv_end + 5, "icv": len(packet) - 1}[where]
    tampered = flip_bit(packet, index, bit=1)  # sequence 1 -> 3: inside the window, not 0
    if where == "spi":
        # The SA sees a foreign SPI first; with the SPI matching, the ICV must still fail.
        assert drop_reason(inbound, tampered) is DropReason.UNKNOWN_SPI
        other = InboundSA(params_for(transform, spi=SPI ^ 2))
        assert drop_reason(other, tampered) is DropReason.BAD_ICV
        return
    assert drop_reason(inbound, tampered) is DropReason.BAD_ICV
    assert inbound.counters.drops[DropReason.BAD_ICV] == 1
    # A forged packet must not move the window: the genuine one is still accepted.
    assert inbound.decapsulate(packet) == icmp_echo()


@pytest.mark.parametrize("transform", ALL, ids=IDS)
def test_replayed_packet_is_dropped(transform):
    outbound, inbound = sa_pair(transform)
    packet = outbound.encapsulate(icmp_echo())
    inbound.decapsulate(packet)
    assert drop_reason(inbound, packet) is DropReason.REPLAY
    assert inbound.counters.drops[DropReason.REPLAY] == 1
    assert inbound.counters.packets == 1


def test_old_packet_left_of_window_is_too_old_and_out_of_order_accepted_once():
    outbound, inbound = sa_pair(GCM, replay_window=64)
    packets = [outbound.encapsulate(icmp_echo(size=i)) for i in range(100)]
    inbound.decapsulate(packets[99])  # sequence 100: window now covers 37..100
    assert drop_reason(inbound, packets[0]) is DropReason.TOO_OLD  # sequence 1
    assert drop_reason(inbound, packets[35]) is DropReason.TOO_OLD  # sequence 36
    assert inbound.decapsulate(packets[36]) == icmp_echo(size=36)  # sequence 37, in window
    assert drop_reason(inbound, packets[36]) is DropReason.REPLAY
    for i in reversed(range(60, 99)):
        assert inbound.decapsulate(packets[i]) == icmp_echo(size=i)
    assert inbound.counters.drops == {DropReason.TOO_OLD: 2, DropReason.REPLAY: 1}


def _sealed_with_plaintext(transform, plaintext, seq=1):
    """An ESP packet whose (already padded) plaintext is chosen by the test."""
    outbound, inbound = sa_pair(transform)
    header = struct.pack("!II", SPI, seq)
    iv = bytes(range(transform.iv_size))
    if transform.cipher.aead:
        return header + iv + outbound._cipher.encrypt(iv, plaintext, header), inbound
    body = header + iv + outbound._cipher.encrypt(iv, plaintext, b"")
    return body + outbound._integrity.icv(body), inbound


def _with_trailer(transform, inner, padding, pad_length, next_header):
    plaintext = inner + padding + bytes((pad_length, next_header))
    assert len(plaintext) % transform.pad_alignment == 0, "test must build aligned plaintext"
    return plaintext


@pytest.mark.parametrize("transform", [CBC, GCM, TRANSFORMS[(3, 1, 192)]], ids=lambda t: t.name)
def test_padding_errors(transform):
    inner = icmp_echo(size=0)  # 28 bytes
    need = -(len(inner) + 2) % transform.pad_alignment + transform.pad_alignment
    good = _PADDING[:need]
    wrong_contents = bytes(need)
    packet, inbound = _sealed_with_plaintext(transform, _with_trailer(transform, inner, wrong_contents, need, 4))
    assert drop_reason(inbound, packet) is DropReason.BAD_PADDING
    packet, inbound = _sealed_with_plaintext(transform, _with_trailer(transform, inner, good, 250, 4))
    assert drop_reason(inbound, packet) is DropReason.BAD_PADDING
    # Authenticated, so the window moved: the same sequence number is now a replay.
    assert drop_reason(inbound, packet) is DropReason.REPLAY
    packet, inbound = _sealed_with_plaintext(transform, _with_trailer(transform, inner, good, need, 4))
    assert inbound.decapsulate(packet) == inner


def test_cbc_ciphertext_not_block_aligned_is_bad_padding():
    outbound, inbound = sa_pair(CBC)
    header = struct.pack("!II", SPI, 1)
    body = header + bytes(16) + bytes(20)  # 20 bytes is not a multiple of 16
    assert drop_reason(inbound, body + outbound._integrity.icv(body)) is DropReason.BAD_PADDING


@pytest.mark.parametrize("transform", [CBC, GCM], ids=lambda t: t.name)
def test_next_header_other_than_ipv4_is_dropped_and_dummy_is_counted(transform):
    inner = icmp_echo(size=2)  # 30 bytes + 2 = 32: aligned with no padding
    packet, inbound = _sealed_with_plaintext(transform, _with_trailer(transform, inner, b"", 0, 41))
    assert drop_reason(inbound, packet) is DropReason.BAD_NEXT_HEADER
    packet, inbound = _sealed_with_plaintext(transform, _with_trailer(transform, inner, b"", 0, 59))
    assert drop_reason(inbound, packet) is DropReason.DUMMY_PACKET
    assert inbound.counters.drops[DropReason.DUMMY_PACKET] == 1
    assert inbound.counters.packets == 0


def test_tfc_padding_after_inner_packet_is_removed():
    inner = icmp_echo(size=0)  # 28 bytes, plus 2 bytes of TFC padding, plus trailer = 32
    packet, inbound = _sealed_with_plaintext(GCM, _with_trailer(GCM, inner + b"\0\0", b"", 0, 4))
    assert inbound.decapsulate(packet) == inner


def test_inner_packet_that_is_not_ipv4_is_dropped():
    packet, inbound = _sealed_with_plaintext(GCM, _with_trailer(GCM, b"\x60" + bytes(29), b"", 0, 4))
    assert drop_reason(inbound, packet) is DropReason.BAD_INNER_PACKET


@pytest.mark.parametrize("transform", [CBC, GCM], ids=lambda t: t.name)
@pytest.mark.parametrize("size", [0, 7, 8, 35])
def test_short_packets_are_dropped(transform, size):
    _, inbound = sa_pair(transform)
    packet = (struct.pack("!II", SPI, 1) + bytes(64))[:size]
    assert drop_reason(inbound, packet) is DropReason.SHORT_PACKET


def test_inner_source_other_than_subscriber_is_dropped_and_counted():
    outbound, inbound = sa_pair(GCM, allowed_source=SUBSCRIBER)
    assert inbound.decapsulate(outbound.encapsulate(icmp_echo())) == icmp_echo()
    spoofed = icmp_echo(src=SERVER, dst=SUBSCRIBER)
    assert drop_reason(inbound, outbound.encapsulate(spoofed)) is DropReason.BAD_INNER_SOURCE
    assert inbound.counters.drops[DropReason.BAD_INNER_SOURCE] == 1
    check_inner_source(icmp_echo(), SUBSCRIBER)
    with pytest.raises(EspDrop) as caught:
        check_inner_source(spoofed, SUBSCRIBER)
    assert caught.value.reason is DropReason.BAD_INNER_SOURCE


def test_lifetime_by_bytes_soft_then_hard():
    inner = icmp_echo(size=72)  # 100 bytes
    outbound, inbound = sa_pair(CBC, lifetime_bytes=300, soft_lifetime_ratio=0.5)
    packets = [outbound.encapsulate(inner) for _ in range(3)]
    assert outbound.lifetime_state(now=0) is LifetimeState.HARD_EXPIRED
    with pytest.raises(EspDrop) as caught:
        outbound.encapsulate(inner)
    assert caught.value.reason is DropReason.LIFETIME_EXPIRED
    inbound.decapsulate(packets[0])
    assert inbound.lifetime_state(now=0) is LifetimeState.ACTIVE
    inbound.decapsulate(packets[1])
    assert inbound.lifetime_state(now=0) is LifetimeState.SOFT_EXPIRED
    inbound.decapsulate(packets[2])
    assert drop_reason(inbound, outbound_packet_after_expiry(inbound)) is DropReason.LIFETIME_EXPIRED
    assert inbound.counters.drops[DropReason.LIFETIME_EXPIRED] == 1


def outbound_packet_after_expiry(inbound):
    fresh = OutboundSA(inbound.params, rng=counting_rng())
    fresh.next_sequence = 10
    return fresh.encapsulate(icmp_echo())


def test_lifetime_by_time_uses_the_now_passed_in():
    outbound, inbound = sa_pair(GCM, now=1000.0, lifetime_seconds=100)
    assert outbound.lifetime.next_deadline(1000.0) == 1090.0
    assert outbound.lifetime_state(1089.0) is LifetimeState.ACTIVE
    assert outbound.lifetime_state(1090.0) is LifetimeState.SOFT_EXPIRED
    packet = outbound.encapsulate(icmp_echo(), now=1099.0)
    assert inbound.decapsulate(packet, now=1099.9) == icmp_echo()
    with pytest.raises(EspDrop):
        outbound.encapsulate(icmp_echo(), now=1100.0)
    assert drop_reason(inbound, packet, now=1100.0) is DropReason.LIFETIME_EXPIRED


def test_sequence_number_never_wraps():
    outbound, _ = sa_pair(GCM)
    outbound.next_sequence = 0xFFFFFFFF
    outbound.encapsulate(icmp_echo())
    with pytest.raises(EspDrop) as caught:
        outbound.encapsulate(icmp_echo())
    assert caught.value.reason is DropReason.SEQUENCE_EXHAUSTED


def test_gcm_iv_is_the_sequence_counter_and_cbc_iv_comes_from_rng():
    outbound, _ = sa_pair(GCM)
    outbound.encapsulate(icmp_echo())
    assert outbound.encapsulate(icmp_echo())[8:16] == (2).to_bytes(8, "big")
    # CBC: IV = E_K(random block XOR previous ciphertext block), the first one after a zero block.
    cbc = OutboundSA(params_for(CBC), rng=lambda n: b"\xaa" * n)
    first, second = cbc.encapsulate(icmp_echo())[8:24], cbc.encapsulate(icmp_echo())[8:24]
    ecb = Cipher(algorithms.AES(params_for(CBC).enc_key), modes.ECB()).encryptor()
    assert first == ecb.update(b"\xaa" * 16)
    assert second != first  # same random block, different IV: chained through the stream
    again = OutboundSA(params_for(CBC), rng=lambda n: b"\xaa" * n)
    assert again.encapsulate(icmp_echo())[8:24] == first  # the injected rng decides


def test_params_refuse_reserved_spi_and_mismatched_keys():
    with pytest.raises(ValueError):
        params_for(CBC, spi=255)
    with pytest.raises(ValueError):
        InboundSA(params_for(GCM, auth_key=b"\x01" * 20))
    with pytest.raises(ValueError):
        InboundSA(params_for(CBC, auth_key=b"\x01" * 19))
    assert isinstance(params_for(CBC), EspSAParams)

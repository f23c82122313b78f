"""Anti-replay window, SPI demultiplexing and the port-4500 framing helpers."""
import pytest

from responder.esp import DropReason, EspDrop, ReplayWindow, SpiTable, SpiTableError, Udp4500Kind
from responder.esp.packet import classify_udp_4500, ike_from_udp_4500, ike_to_udp_4500, strip_outer_ipv4
from responder.esp.transforms import TRANSFORMS

from .esp_helpers import icmp_echo, sa_pair

GCM = TRANSFORMS[(20, None, 256)]


def accept(window, seq):
    reason = window.check(seq)
    if reason is None:
        window.update(seq)
    return reason


def test_window_default_size_and_edges():
    window = ReplayWindow()
    assert window.size == 128
    assert accept(window, 0) is DropReason.TOO_OLD
    assert accept(window, 200) is None
    assert accept(window, 73) is None  # 200 - 73 = 127: the oldest slot
    assert accept(window, 72) is DropReason.TOO_OLD
    assert accept(window, 73) is DropReason.REPLAY
    assert accept(window, 200) is DropReason.REPLAY


def test_window_large_jump_clears_history():
    window = ReplayWindow(32)
    for seq in range(1, 33):
        assert accept(window, seq) is None
    assert accept(window, 1000) is None
    assert accept(window, 999) is None
    assert accept(window, 968) is DropReason.TOO_OLD
    assert accept(window, 969) is None


def test_window_handles_32_bit_top():
    window = ReplayWindow(64)
    assert accept(window, 0xFFFFFFFF) is None
    assert accept(window, 0xFFFFFFFF) is DropReason.REPLAY
    assert accept(window, 0xFFFFFFFF - 63) is None


def test_window_refuses_tiny_sizes():
    with pytest.raises(ValueError):
        ReplayWindow(16)


def test_check_does_not_move_the_window():
    window = ReplayWindow()
    assert window.check(5) is None
    assert window.highest == 0


def test_spi_table_demux_rekey_and_unknown_spi():
    table = SpiTable(capacity=2)
    old_out, old_in = sa_pair(GCM, spi=0x1001)
    new_out, new_in = sa_pair(GCM, spi=0x1002)
    table.add(old_in)
    table.add(new_in)
    # During a rekey both SPIs decrypt.
    assert table.decapsulate(old_out.encapsulate(icmp_echo())) == (old_in, icmp_echo())
    assert table.decapsulate(new_out.encapsulate(icmp_echo())) == (new_in, icmp_echo())
    assert table.remove(0x1001) is old_in
    assert table.remove(0x1001) is None
    with pytest.raises(EspDrop) as caught:
        table.decapsulate(old_out.encapsulate(icmp_echo()))
    assert caught.value.reason is DropReason.UNKNOWN_SPI
    assert table.unknown_spi_drops == 1
    with pytest.raises(EspDrop) as caught:
        table.decapsulate(b"\x00\x00")
    assert caught.value.reason is DropReason.SHORT_PACKET


def test_spi_table_is_bounded_and_refuses_duplicates():
    table = SpiTable(capacity=1)
    table.add(sa_pair(GCM, spi=0x2001)[1])
    with pytest.raises(SpiTableError):
        table.add(sa_pair(GCM, spi=0x2001)[1])
    with pytest.raises(SpiTableError):
        table.add(sa_pair(GCM, spi=0x2002)[1])
    assert len(table) == 1 and 0x2001 in table


def test_spi_allocation_skips_reserved_and_used_values():
    table = SpiTable()
    table.add(sa_pair(GCM, spi=0x100)[1])
    values = iter([b"\x00\x00\x00\x05", b"\x00\x00\x01\x00", b"\x00\x00\x01\x01"])
    assert table.allocate_spi(lambda n: next(values)) == 0x101
    with pytest.raises(SpiTableError):
        table.allocate_spi(lambda n: b"\x00\x00\x00\x01")
    assert table.allocate_spi() >= 256


def test_port_4500_classification():
    ike = bytes(28)
    assert classify_udp_4500(b"\xff") is Udp4500Kind.NAT_KEEPALIVE
    assert classify_udp_4500(ike_to_udp_4500(b"\x01" * 28)) is Udp4500Kind.IKE
    assert ike_from_udp_4500(ike_to_udp_4500(ike)) == ike
    assert classify_udp_4500(b"\x00\x00\x10\x01" + bytes(40)) is Udp4500Kind.ESP
    assert classify_udp_4500(b"\x00\x00\x10") is Udp4500Kind.INVALID
    assert classify_udp_4500(b"") is Udp4500Kind.INVALID


def test_strip_outer_ipv4_of_raw_esp():
    outer = bytes.fromhex("45000020000000004032" + "0000" + "c6336401" + "cb007105") + b"ESP!"
    source, esp = strip_outer_ipv4(outer)
    assert str(source) == "198.51.100.1" and esp == b"ESP!"

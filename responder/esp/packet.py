"""Wire helpers around ESP: header fields, UDP-encapsulation framing, IPv4 headers.

Nothing here decrypts; these are the cheap checks the I/O adapter runs before it
hands a packet to an SA (demultiplexing by SPI, telling IKE from ESP on port 4500,
taking the outer IPv4 header off raw protocol-50 packets).

RFC 3948 on UDP port 4500 (the IKE engine has its own copy of the IKE side in
``responder.ikev1.natt_framing``; this module stays free of IKE imports):

* ESP-in-UDP has no marker: the UDP payload starts with the SPI, never 0 (§2.1);
* IKE is prefixed by the 4-byte non-ESP marker, all zero (§2.2);
* a single 0xFF byte is a NAT-keepalive, to be ignored (§2.3).
"""
from __future__ import annotations

import struct
from enum import Enum
from ipaddress import IPv4Address

from .errors import DropReason, EspDrop

ESP_HEADER = struct.Struct("!II")  # SPI, sequence number (RFC 4303 §2)
ESP_HEADER_SIZE = ESP_HEADER.size
NON_ESP_MARKER = bytes(4)
NAT_KEEPALIVE = b"\xff"

IPPROTO_ESP = 50
NEXT_HEADER_IPV4 = 4  # tunnel mode, inner IPv4 (RFC 4303 §2.6)
NEXT_HEADER_NONE = 59  # "no next header": a TFC dummy packet (RFC 4303 §2.6)
IPV4_MIN_HEADER = 20


class Udp4500Kind(Enum):
    ESP = "esp"
    IKE = "ike"
    NAT_KEEPALIVE = "nat_keepalive"
    INVALID = "invalid"


def classify_udp_4500(payload: bytes) -> Udp4500Kind:
    """What a UDP payload received on port 4500 carries (RFC 3948 §2)."""
    if payload == NAT_KEEPALIVE:
        return Udp4500Kind.NAT_KEEPALIVE
    if len(payload) < ESP_HEADER_SIZE:
        # Neither an IKE header (28 bytes after the marker) nor SPI + sequence number.
        return Udp4500Kind.INVALID
    if payload[:4] == NON_ESP_MARKER:
        return Udp4500Kind.IKE
    return Udp4500Kind.ESP


def ike_from_udp_4500(payload: bytes) -> bytes:
    """The ISAKMP message in an IKE datagram on port 4500 (marker removed)."""
    return payload[len(NON_ESP_MARKER):]


def ike_to_udp_4500(ike_message: bytes) -> bytes:
    """Prefix an ISAKMP message with the non-ESP marker for port 4500."""
    return NON_ESP_MARKER + ike_message


def esp_spi(esp_packet: bytes) -> int:
    """The SPI of an ESP packet; raises EspDrop(short_packet) if there is no header."""
    if len(esp_packet) < ESP_HEADER_SIZE:
        raise EspDrop(DropReason.SHORT_PACKET, f"{len(esp_packet)} bytes, no ESP header")
    return int.from_bytes(esp_packet[:4], "big")


def strip_outer_ipv4(raw_packet: bytes) -> tuple[IPv4Address, bytes]:
    """Outer source and ESP payload of a packet read from a raw IPPROTO_ESP socket.

    Linux raw IPv4 sockets deliver the IP header too; its length is IHL * 4.
    """
    ihl = ipv4_header_length(raw_packet)
    return IPv4Address(raw_packet[12:16]), raw_packet[ihl:]


def ipv4_header_length(packet: bytes) -> int:
    """Header length of an IPv4 packet; raises EspDrop(bad_inner_packet) if it is not one."""
    if len(packet) < IPV4_MIN_HEADER or packet[0] >> 4 != 4:
        raise EspDrop(DropReason.BAD_INNER_PACKET, "not an IPv4 packet")
    ihl = (packet[0] & 0x0F) * 4
    if ihl < IPV4_MIN_HEADER or ihl > len(packet):
        raise EspDrop(DropReason.BAD_INNER_PACKET, f"IPv4 header length {ihl}")
    return ihl


def ipv4_total_length(packet: bytes) -> int:
    return int.from_bytes(packet[2:4], "big")


def ipv4_source(packet: bytes) -> bytes:
    """The 4 source-address bytes of an IPv4 packet (header already validated)."""
    return packet[12:16]


def ipv4_destination(packet: bytes) -> bytes:
    return packet[16:20]

"""Datagram framing on the NAT-T port 4500 (RFC 3948 §2.2-2.3, RFC 3947 §4).

On port 4500 three kinds of datagram share one socket:

* IKE: prefixed by the 4-byte non-ESP marker (all zero, where an ESP packet
  has its SPI, and SPI 0 is reserved - RFC 3948 §2.2);
* ESP: starts with a non-zero SPI;
* NAT-keepalive: a single 0xFF byte (RFC 3948 §2.3), to be ignored.

Port 500 carries bare ISAKMP messages and needs none of this.
"""

from __future__ import annotations

from enum import Enum

from .errors import DecodeError

__all__ = [
    "NON_ESP_MARKER",
    "NATT_KEEPALIVE",
    "Port4500Kind",
    "classify_port4500",
    "strip_non_esp_marker",
    "add_non_esp_marker",
    "is_nat_keepalive",
]

NON_ESP_MARKER = bytes(4)
NATT_KEEPALIVE = b"\xff"


class Port4500Kind(Enum):
    IKE = "ike"
    ESP = "esp"
    KEEPALIVE = "keepalive"


def is_nat_keepalive(datagram: bytes) -> bool:
    return datagram == NATT_KEEPALIVE


def classify_port4500(datagram: bytes) -> tuple[Port4500Kind, bytes]:
    """Return the kind of a port-4500 datagram and its content.

    For IKE the content is the ISAKMP message without the marker; for ESP the
    whole datagram (SPI first); for a keepalive, empty bytes. Anything else
    shorter than a marker/SPI raises `DecodeError` (drop it).
    """
    if is_nat_keepalive(datagram):
        return Port4500Kind.KEEPALIVE, b""
    if len(datagram) < len(NON_ESP_MARKER):
        raise DecodeError(f"{len(datagram)}-byte datagram on port 4500: neither IKE, ESP nor keepalive")
    if datagram[: len(NON_ESP_MARKER)] == NON_ESP_MARKER:
        return Port4500Kind.IKE, bytes(datagram[len(NON_ESP_MARKER) :])
    return Port4500Kind.ESP, bytes(datagram)


def strip_non_esp_marker(datagram: bytes) -> bytes:
    """The ISAKMP message inside a port-4500 IKE datagram."""
    kind, content = classify_port4500(datagram)
    if kind is not Port4500Kind.IKE:
        raise DecodeError(f"port-4500 datagram is {kind.value}, not IKE (no non-ESP marker)")
    return content


def add_non_esp_marker(message: bytes) -> bytes:
    """Prefix an ISAKMP message for sending on port 4500."""
    return NON_ESP_MARKER + message

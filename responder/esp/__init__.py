"""Userspace ESP (RFC 4303 tunnel mode, RFC 3948 UDP encapsulation, RFC 4106 AES-GCM).

Sans-I/O: SAs take and return bytes; the responder's data-path adapter owns the
sockets and TUN file descriptors. Independent of the IKE engine: SAs are built from
plain values (:class:`EspSAParams`).
"""
from .counters import Lifetime, LifetimeState, SaCounters
from .errors import DropReason, EspDrop
from .packet import Udp4500Kind, classify_udp_4500
from .replay import ReplayWindow
from .sa import EspSAParams, InboundSA, OutboundSA, check_inner_source
from .spitable import SpiTable, SpiTableError
from .transforms import TRANSFORMS, EspCipherSuite, UnsupportedTransform, lookup_transform

__all__ = [
    "DropReason",
    "EspDrop",
    "EspCipherSuite",
    "EspSAParams",
    "InboundSA",
    "Lifetime",
    "LifetimeState",
    "OutboundSA",
    "ReplayWindow",
    "SaCounters",
    "SpiTable",
    "SpiTableError",
    "TRANSFORMS",
    "Udp4500Kind",
    "UnsupportedTransform",
    "check_inner_source",
    "classify_udp_4500",
    "lookup_transform",
]

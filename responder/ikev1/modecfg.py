"""Mode-Config (draft-dukes-ike-mode-cfg-02) with Cisco Unity attributes.

Pure data and codec: the subscriber's configuration (`ModeConfig`, decided
by the daemon when AAA grants access), which attributes answer a client's
CFG_REQUEST, what a push CFG_SET carries, and decoding for tests and logs.
The Transaction task (exchanges/transaction.py) drives the exchange.

Encodings (checked against the strongSwan gateway captures and vpnc's
parser, do_config_to_env in vpnc.c):
* addresses, netmask, DNS, NBNS (WINS): 4-byte variable attributes; several
  servers = the attribute repeated (mode-cfg-02 §3.3 allows multiple);
* UNITY_SPLIT_INCLUDE: ONE attribute, 14 bytes per network: address(4)
  mask(4) then 6 zero bytes (Cisco reads protocol / source port / destination
  port there; strongSwan's unity plugin and vpnc leave them zero);
* UNITY_PFS and UNITY_SAVE_PASSWD: basic (TV) attributes - vpnc rejects the
  whole configuration if PFS comes as a variable attribute;
* strings (banner, default domain, application version): raw bytes, no NUL.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .enums import ConfigAttribute, lookup
from .errors import MalformedAttribute
from .exchanges.common import StateTable
from .payloads import AttributePayload, DataAttribute
from .xauth import is_xauth_attribute

__all__ = [
    "MODECFG_TABLE",
    "ModeConfig",
    "SPLIT_ENTRY_SIZE",
    "encode_split_include",
    "decode_split_include",
    "requested_types",
    "reply_attributes",
    "push_attributes",
    "supported_types",
    "decode_attribute",
    "decode_payload",
    "is_modecfg_payload",
]

IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network

#: Per-SA Mode-Config progress. "reply_sent" in "done" = a client that asks
#: again (a new REQUEST) is answered again without a second ModeConfigDone.
MODECFG_TABLE = StateTable("modecfg", {
    ("waiting", "reply_sent"): "done",
    ("waiting", "set_sent"): "pushing",
    ("pushing", "reply_sent"): "done",  # client pulled while our SET was out
    ("pushing", "ack"): "done",
    ("done", "reply_sent"): "done",
    ("done", "ack"): "done",
})

SPLIT_ENTRY_SIZE = 14


def _ip(value) -> IPv4:
    return ipaddress.IPv4Address(value)


def _ips(values) -> tuple[IPv4, ...]:
    return tuple(_ip(v) for v in values or ())


def _nets(values) -> tuple[Net4, ...]:
    return tuple(ipaddress.IPv4Network(v) for v in values or ())


@dataclass(frozen=True)
class ModeConfig:
    """What one subscriber receives. Strings are accepted and normalised, so
    the daemon can write ModeConfig("10.99.0.1", "255.255.255.255",
    dns=["10.50.0.53", "10.50.0.54"])."""

    address: IPv4
    netmask: IPv4 | None = None
    dns: tuple[IPv4, ...] = ()
    wins: tuple[IPv4, ...] = ()
    split_include: tuple[Net4, ...] = ()
    default_domain: str | None = None
    split_dns: tuple[str, ...] = ()
    banner: str | None = None
    save_password: bool = False
    #: Cisco UNITY_PFS: tell the client whether to use PFS in Quick Mode
    pfs: bool | None = None
    #: seconds (mode-cfg-02 INTERNAL_ADDRESS_EXPIRY)
    address_expiry: int | None = None
    extra: tuple[DataAttribute, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "address", _ip(self.address))
        if self.netmask is not None:
            set_(self, "netmask", _ip(self.netmask))
        set_(self, "dns", _ips(self.dns))
        set_(self, "wins", _ips(self.wins))
        set_(self, "split_include", _nets(self.split_include))
        set_(self, "split_dns", tuple(self.split_dns or ()))
        set_(self, "extra", tuple(self.extra or ()))


# ---------------------------------------------------------------- encoding
def _tlv(attr_type: int, value: bytes) -> DataAttribute:
    return DataAttribute.tlv(attr_type, value)


def _text(attr_type: int, text: str | None) -> list[DataAttribute]:
    return [_tlv(attr_type, text.encode())] if text else []


def encode_split_include(networks: Iterable[Net4]) -> bytes:
    return b"".join(net.network_address.packed + net.netmask.packed + bytes(6)
                    for net in networks)


def decode_split_include(value: bytes) -> tuple[Net4, ...]:
    if len(value) % SPLIT_ENTRY_SIZE:
        raise MalformedAttribute(f"UNITY_SPLIT_INCLUDE of {len(value)} bytes, "
                                 f"not a multiple of {SPLIT_ENTRY_SIZE}")
    entries = (value[i:i + SPLIT_ENTRY_SIZE] for i in range(0, len(value), SPLIT_ENTRY_SIZE))
    try:
        return tuple(ipaddress.IPv4Network((IPv4(e[:4]), str(IPv4(e[4:8]))), strict=False)
                     for e in entries)
    except ValueError as exc:
        raise MalformedAttribute(f"UNITY_SPLIT_INCLUDE: {exc}") from None


Encoder = Callable[[ModeConfig, str], list[DataAttribute]]

A = ConfigAttribute

#: What we can answer, in the order a push SET lists them. Each encoder gets
#: the subscriber's config and our application version string and returns
#: zero or more attributes (zero = "we have no value": not answered).
ENCODERS: dict[int, Encoder] = {
    A.INTERNAL_IP4_ADDRESS: lambda c, _: [_tlv(A.INTERNAL_IP4_ADDRESS, c.address.packed)],
    A.INTERNAL_IP4_NETMASK: lambda c, _: (
        [_tlv(A.INTERNAL_IP4_NETMASK, c.netmask.packed)] if c.netmask else []),
    A.INTERNAL_IP4_DNS: lambda c, _: [_tlv(A.INTERNAL_IP4_DNS, ip.packed) for ip in c.dns],
    A.INTERNAL_IP4_NBNS: lambda c, _: [_tlv(A.INTERNAL_IP4_NBNS, ip.packed) for ip in c.wins],
    A.INTERNAL_ADDRESS_EXPIRY: lambda c, _: (
        [_tlv(A.INTERNAL_ADDRESS_EXPIRY, c.address_expiry.to_bytes(4, "big"))]
        if c.address_expiry is not None else []),
    A.INTERNAL_IP4_SUBNET: lambda c, _: [
        _tlv(A.INTERNAL_IP4_SUBNET, n.network_address.packed + n.netmask.packed)
        for n in c.split_include],
    A.UNITY_BANNER: lambda c, _: _text(A.UNITY_BANNER, c.banner),
    A.UNITY_SAVE_PASSWD: lambda c, _: [DataAttribute.tv(A.UNITY_SAVE_PASSWD, int(c.save_password))],
    A.UNITY_DEF_DOMAIN: lambda c, _: _text(A.UNITY_DEF_DOMAIN, c.default_domain),
    A.UNITY_SPLIT_DNS_NAME: lambda c, _: _text(A.UNITY_SPLIT_DNS_NAME, ",".join(c.split_dns)),
    A.UNITY_SPLIT_INCLUDE: lambda c, _: (
        [_tlv(A.UNITY_SPLIT_INCLUDE, encode_split_include(c.split_include))]
        if c.split_include else []),
    A.UNITY_PFS: lambda c, _: [DataAttribute.tv(A.UNITY_PFS, int(c.pfs))] if c.pfs is not None else [],
    # only as answers: they describe us, not the subscriber
    A.APPLICATION_VERSION: lambda _, version: _text(A.APPLICATION_VERSION, version),
    A.SUPPORTED_ATTRIBUTES: lambda _, __: [_tlv(A.SUPPORTED_ATTRIBUTES, b"".join(
        int(t).to_bytes(2, "big") for t in supported_types()))],
}

#: Attributes that answer a question about us; never pushed.
_ANSWER_ONLY = frozenset({A.APPLICATION_VERSION, A.SUPPORTED_ATTRIBUTES})


def supported_types() -> list[int]:
    return [int(t) for t in ENCODERS]


def requested_types(payload: AttributePayload) -> list[int]:
    """Attribute types of a CFG_REQUEST, first occurrence order. A value in
    the request is a hint (mode-cfg-02 §3.2: "requested value"); we answer
    with ours anyway, as address assignment is AAA's decision."""
    seen: dict[int, None] = {}
    for attribute in payload.attributes:
        seen.setdefault(int(attribute.attr_type), None)
    return list(seen)


def reply_attributes(requested: Sequence[int], config: ModeConfig, application_version: str,
                     *, answer_unrequested: bool = False) -> list[DataAttribute]:
    """CFG_REPLY body: the requested attributes we have a value for, in the
    order asked. mode-cfg-02 §3.2 leaves the choice to the responder; we
    answer only what was asked, unless `answer_unrequested`, which
    is what the strongSwan gateway does (its REPLY to strongSwan's ADDRESS +
    DNS request also carries NBNS, banner, domain and split-include).
    Unknown or unsupported types are silently left out."""
    order = list(requested)
    if answer_unrequested:
        order += [t for t in ENCODERS if t not in requested and t not in _ANSWER_ONLY]
    attributes: list[DataAttribute] = []
    for attr_type in order:
        encoder = ENCODERS.get(attr_type)
        if encoder is not None:
            attributes += encoder(config, application_version)
    return attributes + [a for a in config.extra if a.attr_type in requested]


def push_attributes(config: ModeConfig) -> list[DataAttribute]:
    """CFG_SET body (push mode): everything we have about the subscriber."""
    attributes: list[DataAttribute] = []
    for attr_type, encoder in ENCODERS.items():
        if attr_type not in _ANSWER_ONLY:
            attributes += encoder(config, "")
    return attributes + list(config.extra)


# ---------------------------------------------------------------- decoding
_ADDRESS_TYPES = frozenset({A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_NETMASK, A.INTERNAL_IP4_DNS,
                            A.INTERNAL_IP4_NBNS, A.INTERNAL_IP4_DHCP})
_TEXT_TYPES = frozenset({A.APPLICATION_VERSION, A.UNITY_BANNER, A.UNITY_DEF_DOMAIN,
                         A.UNITY_SPLIT_DNS_NAME, A.UNITY_DDNS_HOSTNAME, A.XAUTH_USER_NAME,
                         A.XAUTH_MESSAGE, A.XAUTH_DOMAIN, A.XAUTH_CHALLENGE})


def decode_attribute(attribute: DataAttribute):
    """(registry name, Python value) of one configuration attribute.

    Empty variable attributes decode to None ("please send a value").
    Passwords decode to bytes and are the caller's to keep out of logs.
    """
    name = lookup(ConfigAttribute, attribute.attr_type)
    value = attribute.value
    if isinstance(value, int):
        return name, value
    if not value:
        return name, None
    if name in _ADDRESS_TYPES:
        if len(value) != 4:
            raise MalformedAttribute(f"{name.name}: {len(value)} bytes, 4 expected")
        return name, IPv4(value)
    if name == A.UNITY_SPLIT_INCLUDE:
        return name, decode_split_include(value)
    if name == A.INTERNAL_IP4_SUBNET and len(value) == 8:
        return name, ipaddress.IPv4Network((IPv4(value[:4]), str(IPv4(value[4:]))), strict=False)
    if name in _TEXT_TYPES:
        return name, value.decode("utf-8", "replace")
    if name in (A.XAUTH_STATUS, A.XAUTH_TYPE, A.UNITY_PFS, A.UNITY_SAVE_PASSWD,
                A.INTERNAL_ADDRESS_EXPIRY):
        return name, attribute.as_int()
    return name, bytes(value)


def decode_payload(payload: AttributePayload) -> list[tuple[object, object]]:
    return [decode_attribute(a) for a in payload.attributes]


def is_modecfg_payload(payload: AttributePayload) -> bool:
    """Mode-Config family: no Xauth attribute in it (an empty payload counts
    as Mode-Config: e.g. an empty ACK of a push SET)."""
    return not any(is_xauth_attribute(a.attr_type) for a in payload.attributes)

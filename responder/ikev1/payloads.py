"""ISAKMP payloads (RFC 2408 §3.4-3.15, RFC 3947, Mode-Config/Xauth drafts).

Each payload is a dataclass plus a declared `LAYOUT`: a tuple of field
descriptors read in order by one generic parser and written in order by one
generic serialiser (in the spirit of scapy's `fields_desc` and strongSwan's
encoding rule tables). No payload has hand-written parsing code; only the
few structural field kinds below know about bytes.

The generic payload header (Next Payload, RESERVED, Payload Length; RFC 2408
§3.2) is handled in exactly one place, `_pull_generic_header` /
`_push_generic_header`, for top-level payloads and for the proposals and
transforms nested inside an SA payload alike.

Values that index a registry decode through `enums.lookup`, so unknown numbers
become `UnknownValue` instead of failing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Iterable, Protocol

from .buffer import Buffer
from .enums import (
    CertEncoding,
    CfgType,
    Doi,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
    lookup,
    transform_id_registry,
)
from .errors import (
    BadProposalSyntax,
    CodecError,
    EncodeError,
    InvalidIdInformation,
    InvalidPayloadType,
    MalformedAttribute,
    PayloadChainError,
    PayloadMalformed,
    TooManyPayloads,
)

__all__ = [
    "GENERIC_HEADER_SIZE",
    "DEFAULT_MAX_PAYLOADS",
    "DataAttribute",
    "Payload",
    "SecurityAssociation",
    "Proposal",
    "Transform",
    "KeyExchange",
    "Identification",
    "Certificate",
    "CertificateRequest",
    "Hash",
    "Signature",
    "Nonce",
    "Notification",
    "Delete",
    "VendorId",
    "AttributePayload",
    "NatDiscovery",
    "NatOriginalAddress",
    "Fragment",
    "UnknownPayload",
    "PAYLOAD_CLASSES",
    "parse_payloads",
    "parse_payload_chain",
    "serialize_payloads",
]

#: Next Payload (1) + RESERVED (1) + Payload Length (2), RFC 2408 §3.2.
GENERIC_HEADER_SIZE = 4
#: Bound on top-level payloads per message; real peers send < 20 (vpnc: 13).
DEFAULT_MAX_PAYLOADS = 64
_MAX_PAYLOAD_LENGTH = 0xFFFF

# ===========================================================================
# Data attributes (RFC 2408 §3.3)
# ===========================================================================

_AF_BIT = 0x8000  # Attribute Format: 1 = TV (basic), 0 = TLV (variable)


@dataclass
class DataAttribute:
    """One SA or configuration attribute.

    A TV attribute (AF bit set) has an `int` value of 16 bits; a TLV attribute
    has a `bytes` value of any length up to 65535 (possibly empty, as in a
    Mode-Config REQUEST asking for INTERNAL_IP4_ADDRESS). The wire form is kept
    exactly: an int value is always written TV, a bytes value always TLV.
    """

    attr_type: int
    value: int | bytes

    @property
    def is_tv(self) -> bool:
        return isinstance(self.value, int)

    @classmethod
    def tv(cls, attr_type: int, value: int) -> "DataAttribute":
        return cls(int(attr_type), int(value))

    @classmethod
    def tlv(cls, attr_type: int, value: bytes) -> "DataAttribute":
        return cls(int(attr_type), bytes(value))

    @classmethod
    def from_int(cls, attr_type: int, value: int) -> "DataAttribute":
        """TV when the value fits 16 bits, else a TLV of at least 4 bytes.

        This is how life durations are sent (RFC 2409 App. A "Life Duration"
        is variable; strongSwan and vpnc use a 4-byte TLV above 0xFFFF).
        """
        value = int(value)
        if value < 0:
            raise EncodeError(f"attribute {attr_type}: negative value {value}")
        if value <= 0xFFFF:
            return cls.tv(attr_type, value)
        size = max(4, (value.bit_length() + 7) // 8)
        return cls.tlv(attr_type, value.to_bytes(size, "big"))

    def as_int(self) -> int:
        """The value as an unsigned integer, whatever the wire form."""
        if isinstance(self.value, int):
            return self.value
        if not self.value:
            raise MalformedAttribute(f"attribute {self.attr_type}: empty value, integer expected")
        return int.from_bytes(self.value, "big")

    def named_type(self, registry: type[IntEnum]) -> Any:
        """`attr_type` looked up in the registry of the surrounding context."""
        return lookup(registry, self.attr_type)

    @classmethod
    def pull(cls, buf: Buffer) -> "DataAttribute":
        start = buf.position
        type_field = buf.pull_uint16()
        if type_field & _AF_BIT:
            return cls(type_field & ~_AF_BIT, buf.pull_uint16())
        length = buf.pull_uint16()
        if length > buf.remaining:
            raise MalformedAttribute(
                f"TLV attribute {type_field} length {length} overruns its payload "
                f"({buf.remaining} bytes left)",
                offset=start,
            )
        return cls(type_field, buf.pull_bytes(length))

    def push(self, buf: Buffer) -> None:
        if not 0 <= self.attr_type < _AF_BIT:
            raise EncodeError(f"attribute type {self.attr_type} does not fit 15 bits")
        if isinstance(self.value, int):
            buf.push_uint16(self.attr_type | _AF_BIT)
            buf.push_uint16(self.value)
            return
        if len(self.value) > 0xFFFF:
            raise EncodeError(f"attribute {self.attr_type}: value of {len(self.value)} bytes")
        buf.push_uint16(self.attr_type)
        buf.push_uint16(len(self.value))
        buf.push_bytes(self.value)


def _find_attribute(attributes: Iterable[DataAttribute], attr_type: int) -> DataAttribute | None:
    for attribute in attributes:
        if attribute.attr_type == attr_type:
            return attribute
    return None


# ===========================================================================
# Field descriptors: the vocabulary of the layouts
# ===========================================================================
# During parsing, descriptors share a `values` dict: plain keys become
# dataclass fields, keys starting with "#" are wire-only (sizes and counts)
# and are checked against what was actually read.


class _Field(Protocol):
    def pull(self, buf: Buffer, values: dict[str, Any]) -> None: ...

    def push(self, buf: Buffer, payload: Any) -> None: ...


_PULL_UINT = {1: Buffer.pull_uint8, 2: Buffer.pull_uint16, 4: Buffer.pull_uint32}
_PUSH_UINT = {1: Buffer.push_uint8, 2: Buffer.push_uint16, 4: Buffer.push_uint32}


@dataclass(frozen=True)
class UInt:
    """Unsigned integer of `size` bytes, optionally decoded via a registry."""

    name: str
    size: int
    registry: type[IntEnum] | None = None

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        raw = _PULL_UINT[self.size](buf)
        values[self.name] = lookup(self.registry, raw) if self.registry else raw

    def push(self, buf: Buffer, payload: Any) -> None:
        _PUSH_UINT[self.size](buf, getattr(payload, self.name))


@dataclass(frozen=True)
class Reserved:
    """RESERVED octets: written as zero, ignored on receipt (RFC 2408 §3)."""

    size: int

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        buf.pull_bytes(self.size)

    def push(self, buf: Buffer, payload: Any) -> None:
        buf.push_bytes(bytes(self.size))


@dataclass(frozen=True)
class SizeOf:
    """A size field giving the byte length of `target` (e.g. SPI Size)."""

    target: str
    size: int

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        values["#size:" + self.target] = _PULL_UINT[self.size](buf)

    def push(self, buf: Buffer, payload: Any) -> None:
        _PUSH_UINT[self.size](buf, len(getattr(payload, self.target)))


@dataclass(frozen=True)
class ItemSizeOf:
    """A size field giving the byte length of each item of list `target`."""

    target: str
    size: int

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        values["#size:" + self.target] = _PULL_UINT[self.size](buf)

    def push(self, buf: Buffer, payload: Any) -> None:
        items = getattr(payload, self.target)
        sizes = {len(item) for item in items}
        if len(sizes) > 1:
            raise EncodeError(f"{self.target}: items of different sizes {sorted(sizes)}")
        _PUSH_UINT[self.size](buf, sizes.pop() if sizes else 0)


@dataclass(frozen=True)
class CountOf:
    """A count field giving the number of items in list `target`."""

    target: str
    size: int

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        values["#count:" + self.target] = _PULL_UINT[self.size](buf)

    def push(self, buf: Buffer, payload: Any) -> None:
        _PUSH_UINT[self.size](buf, len(getattr(payload, self.target)))


@dataclass(frozen=True)
class SizedBytes:
    """Bytes whose length was given by an earlier `SizeOf` field."""

    name: str

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        size = values["#size:" + self.name]
        if size > buf.remaining:
            raise PayloadMalformed(
                f"{self.name} size {size} exceeds the {buf.remaining} bytes left",
                offset=buf.position,
            )
        values[self.name] = buf.pull_bytes(size)

    def push(self, buf: Buffer, payload: Any) -> None:
        buf.push_bytes(getattr(payload, self.name))


@dataclass(frozen=True)
class RestBytes:
    """All remaining bytes of the payload body."""

    name: str

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        values[self.name] = buf.pull_rest()

    def push(self, buf: Buffer, payload: Any) -> None:
        buf.push_bytes(getattr(payload, self.name))


@dataclass(frozen=True)
class SizedItems:
    """The rest as `count` items of `size` bytes each (Delete SPIs, §3.15)."""

    name: str

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        size, count = values["#size:" + self.name], values["#count:" + self.name]
        if size * count != buf.remaining:
            raise PayloadMalformed(
                f"{count} {self.name} of {size} bytes need {size * count} bytes, "
                f"{buf.remaining} present",
                offset=buf.position,
            )
        values[self.name] = [buf.pull_bytes(size) for _ in range(count)]

    def push(self, buf: Buffer, payload: Any) -> None:
        for item in getattr(payload, self.name):
            buf.push_bytes(item)


@dataclass(frozen=True)
class Attributes:
    """The rest as a list of data attributes (§3.3)."""

    name: str

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        attributes = []
        while not buf.eof():
            attributes.append(DataAttribute.pull(buf))
        values[self.name] = attributes

    def push(self, buf: Buffer, payload: Any) -> None:
        for attribute in getattr(payload, self.name):
            attribute.push(buf)


@dataclass(frozen=True)
class NestedChain:
    """The rest as a chain of nested payloads of one type (proposals in an SA,
    transforms in a proposal), each with its own generic header. If a
    `CountOf` field names the same list, the count must match (§3.5)."""

    name: str
    item: str  # class name, resolved lazily: the classes are defined below

    def _item_class(self) -> type["Payload"]:
        return globals()[self.item]

    def pull(self, buf: Buffer, values: dict[str, Any]) -> None:
        items = _parse_nested_chain(buf.pull_rest(), self._item_class())
        expected = values.get("#count:" + self.name)
        if expected is not None and expected != len(items):
            raise BadProposalSyntax(
                f"{self.name}: count field says {expected}, {len(items)} present"
            )
        values[self.name] = items

    def push(self, buf: Buffer, payload: Any) -> None:
        items = getattr(payload, self.name)
        item_type = self._item_class().payload_type
        for index, item in enumerate(items):
            last = index == len(items) - 1
            _push_payload(buf, PayloadType.NONE if last else item_type, item.serialize())


# ===========================================================================
# Payload base class and the generic header
# ===========================================================================


class Payload:
    """Base of all payloads: parse/serialise the body by walking `LAYOUT`."""

    payload_type: ClassVar[PayloadType]
    LAYOUT: ClassVar[tuple[_Field, ...]]
    #: True when one class serves several payload numbers (NAT-D 20/130 ...):
    #: the number then is an instance field named `payload_type`.
    TYPE_IS_FIELD: ClassVar[bool] = False

    @classmethod
    def parse(cls, body: bytes, payload_type: int | None = None) -> "Payload":
        """Decode a payload body (the bytes after the generic header)."""
        buf = Buffer(body)
        values: dict[str, Any] = {}
        for spec in cls.LAYOUT:
            spec.pull(buf, values)
        if not buf.eof():
            raise PayloadMalformed(f"{buf.remaining} unexpected bytes", offset=buf.position)
        kwargs = {k: v for k, v in values.items() if not k.startswith("#")}
        if cls.TYPE_IS_FIELD and payload_type is not None:
            kwargs["payload_type"] = lookup(PayloadType, payload_type)
        return cls(**kwargs)

    def serialize(self) -> bytes:
        """Encode the payload body (without the generic header)."""
        buf = Buffer()
        for spec in self.LAYOUT:
            spec.push(buf, self)
        return buf.data


def _pull_generic_header(
    buf: Buffer, error: type[CodecError] = PayloadMalformed
) -> tuple[int, int]:
    """Read Next Payload, RESERVED, Payload Length; return (next, body length).

    The RESERVED octet is ignored on receipt (RFC 2408 §3.2 only says "set to
    0"); IKEv1 has no critical bit, so there is nothing else to interpret.
    """
    start = buf.position
    if buf.remaining < GENERIC_HEADER_SIZE:
        raise error(
            f"{buf.remaining} bytes left, too short for a payload header", offset=start
        )
    next_type = buf.pull_uint8()
    buf.pull_uint8()
    length = buf.pull_uint16()
    if length < GENERIC_HEADER_SIZE:
        raise error(f"payload length {length} is below the 4-byte header", offset=start)
    if length - GENERIC_HEADER_SIZE > buf.remaining:
        raise error(
            f"payload length {length} overruns the enclosing data "
            f"({buf.remaining + GENERIC_HEADER_SIZE} bytes available)",
            offset=start,
        )
    return next_type, length - GENERIC_HEADER_SIZE


def _push_payload(buf: Buffer, next_type: int, body: bytes) -> None:
    length = GENERIC_HEADER_SIZE + len(body)
    if length > _MAX_PAYLOAD_LENGTH:
        raise EncodeError(f"payload of {length} bytes exceeds the 16-bit length field")
    buf.push_uint8(next_type)
    buf.push_uint8(0)
    buf.push_uint16(length)
    buf.push_bytes(body)


def _parse_nested_chain(data: bytes, item_class: type[Payload]) -> list[Any]:
    """Proposals inside an SA, or transforms inside a proposal (§3.5, §3.6).

    Each item's Next Payload must be the item's own type, or NONE on the last
    one; the last item must end exactly where the parent payload ends.
    """
    buf = Buffer(data)
    items: list[Any] = []
    item_type = item_class.payload_type
    while not buf.eof():
        start = buf.position
        next_type, body_length = _pull_generic_header(buf, BadProposalSyntax)
        try:
            items.append(item_class.parse(buf.pull_bytes(body_length)))
        except CodecError as exc:
            exc.add_context(f"{item_class.__name__} #{len(items) + 1} at offset {start}")
            raise
        if next_type == PayloadType.NONE:
            if not buf.eof():
                raise BadProposalSyntax(
                    f"{item_class.__name__} chain ends with {buf.remaining} bytes of "
                    "the parent payload left",
                    offset=buf.position,
                )
        elif next_type != item_type:
            raise BadProposalSyntax(
                f"{item_class.__name__} followed by Next Payload {next_type}, "
                f"expected {item_type} or 0",
                offset=start,
            )
        elif buf.eof():
            raise BadProposalSyntax(
                f"{item_class.__name__} chain announces another item past the end "
                "of the parent payload",
                offset=start,
            )
    return items


# ===========================================================================
# The payloads
# ===========================================================================


@dataclass
class Transform(Payload):
    """Transform payload (RFC 2408 §3.6). `transform_id` is raw: its registry
    depends on the enclosing proposal's protocol (see `Proposal.named_transform_id`)."""

    payload_type: ClassVar[PayloadType] = PayloadType.TRANSFORM
    number: int
    transform_id: int
    attributes: list[DataAttribute] = field(default_factory=list)

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("number", 1),
        UInt("transform_id", 1),
        Reserved(2),
        Attributes("attributes"),
    )

    def attribute(self, attr_type: int) -> DataAttribute | None:
        """The first attribute of that type, or None."""
        return _find_attribute(self.attributes, attr_type)


@dataclass
class Proposal(Payload):
    """Proposal payload (RFC 2408 §3.5)."""

    payload_type: ClassVar[PayloadType] = PayloadType.PROPOSAL
    number: int
    protocol_id: int
    spi: bytes = b""
    transforms: list[Transform] = field(default_factory=list)

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("number", 1),
        UInt("protocol_id", 1, ProtocolId),
        SizeOf("spi", 1),
        CountOf("transforms", 1),
        SizedBytes("spi"),
        NestedChain("transforms", "Transform"),
    )

    def named_transform_id(self, transform: Transform) -> Any:
        """The transform's ID in the registry of this proposal's protocol."""
        registry = transform_id_registry(self.protocol_id)
        if registry is None:
            return transform.transform_id
        return lookup(registry, transform.transform_id)


@dataclass
class SecurityAssociation(Payload):
    """SA payload (RFC 2408 §3.4) with the IPsec DOI 4-byte situation (RFC 2407 §4.6.1).

    Labeled-domain situations (SIT_SECRECY / SIT_INTEGRITY) are not supported:
    their extra fields would be read as proposals and rejected.
    """

    payload_type: ClassVar[PayloadType] = PayloadType.SA
    doi: int = Doi.IPSEC
    situation: int = 1  # SIT_IDENTITY_ONLY
    proposals: list[Proposal] = field(default_factory=list)

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("doi", 4, Doi),
        UInt("situation", 4),
        NestedChain("proposals", "Proposal"),
    )


@dataclass
class KeyExchange(Payload):
    """Key Exchange payload (RFC 2408 §3.7): the public DH value."""

    payload_type: ClassVar[PayloadType] = PayloadType.KEY_EXCHANGE
    key_data: bytes
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("key_data"),)


IdValue = (
    ipaddress.IPv4Address
    | ipaddress.IPv6Address
    | ipaddress.IPv4Network
    | ipaddress.IPv6Network
    | tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
    | tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]
    | str
    | bytes
)


@dataclass
class Identification(Payload):
    """Identification payload with the IPsec DOI fields (RFC 2407 §4.6.2):
    ID type, IP protocol ID, port, identification data."""

    payload_type: ClassVar[PayloadType] = PayloadType.IDENTIFICATION
    id_type: int
    data: bytes
    protocol: int = 0
    port: int = 0

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("id_type", 1, IdType),
        UInt("protocol", 1),
        UInt("port", 2),
        RestBytes("data"),
    )

    # ---- constructors, one per ID type we use (RFC 2407 §4.6.2.2-.12)
    @classmethod
    def ipv4_address(cls, address: str | ipaddress.IPv4Address, **kw: int) -> "Identification":
        return cls(IdType.IPV4_ADDR, ipaddress.IPv4Address(address).packed, **kw)

    @classmethod
    def ipv6_address(cls, address: str | ipaddress.IPv6Address, **kw: int) -> "Identification":
        return cls(IdType.IPV6_ADDR, ipaddress.IPv6Address(address).packed, **kw)

    @classmethod
    def ipv4_subnet(cls, network: str | ipaddress.IPv4Network, **kw: int) -> "Identification":
        net = ipaddress.IPv4Network(network)
        return cls(IdType.IPV4_ADDR_SUBNET, net.network_address.packed + net.netmask.packed, **kw)

    @classmethod
    def ipv6_subnet(cls, network: str | ipaddress.IPv6Network, **kw: int) -> "Identification":
        net = ipaddress.IPv6Network(network)
        return cls(IdType.IPV6_ADDR_SUBNET, net.network_address.packed + net.netmask.packed, **kw)

    @classmethod
    def ipv4_range(cls, first: str, last: str, **kw: int) -> "Identification":
        data = ipaddress.IPv4Address(first).packed + ipaddress.IPv4Address(last).packed
        return cls(IdType.IPV4_ADDR_RANGE, data, **kw)

    @classmethod
    def fqdn(cls, name: str, **kw: int) -> "Identification":
        return cls(IdType.FQDN, name.encode("ascii"), **kw)

    @classmethod
    def user_fqdn(cls, name: str, **kw: int) -> "Identification":
        return cls(IdType.USER_FQDN, name.encode("utf-8"), **kw)

    @classmethod
    def key_id(cls, key_id: bytes | str, **kw: int) -> "Identification":
        raw = key_id.encode("utf-8") if isinstance(key_id, str) else key_id
        return cls(IdType.KEY_ID, raw, **kw)

    # ---- rendering
    def value(self) -> IdValue:
        """The identification data as a Python value, checked against its type.

        Addresses and networks become `ipaddress` objects, ranges a tuple,
        FQDN/USER_FQDN text; KEY_ID, DER_ASN1_DN/GN and unknown types stay bytes.
        Raises `InvalidIdInformation` when the data does not fit the type.
        """
        renderer = _ID_RENDERERS.get(int(self.id_type))
        if renderer is None:
            return self.data
        try:
            return renderer(self.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidIdInformation(
                f"{lookup(IdType, self.id_type).name} data {self.data.hex()} invalid: {exc}"
            ) from None

    def __str__(self) -> str:
        try:
            shown = self.value()
        except InvalidIdInformation:
            shown = self.data
        if isinstance(shown, tuple):
            shown = f"{shown[0]}-{shown[1]}"
        elif isinstance(shown, bytes):
            shown = shown.hex()
        return f"{lookup(IdType, self.id_type).name}:{shown}"


def _exact(size: int, data: bytes) -> bytes:
    if len(data) != size:
        raise ValueError(f"{len(data)} bytes, {size} expected")
    return data


def _subnet4(data: bytes) -> ipaddress.IPv4Network:
    _exact(8, data)
    # strict=False: host bits beyond the mask are legal on the wire; they
    # are dropped, as strongSwan's traffic selectors do.
    return ipaddress.IPv4Network((bytes(data[:4]), str(ipaddress.IPv4Address(data[4:]))), strict=False)


def _subnet6(data: bytes) -> ipaddress.IPv6Network:
    _exact(32, data)
    mask = int.from_bytes(data[16:], "big")
    prefix = bin(mask).count("1")
    if mask != ((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1):
        raise ValueError("non-contiguous netmask")
    return ipaddress.IPv6Network((bytes(data[:16]), prefix), strict=False)


def _range4(data: bytes) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    _exact(8, data)
    return ipaddress.IPv4Address(data[:4]), ipaddress.IPv4Address(data[4:])


def _range6(data: bytes) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]:
    _exact(32, data)
    return ipaddress.IPv6Address(data[:16]), ipaddress.IPv6Address(data[16:])


_ID_RENDERERS = {
    IdType.IPV4_ADDR: lambda d: ipaddress.IPv4Address(_exact(4, d)),
    IdType.IPV6_ADDR: lambda d: ipaddress.IPv6Address(_exact(16, d)),
    IdType.IPV4_ADDR_SUBNET: _subnet4,
    IdType.IPV6_ADDR_SUBNET: _subnet6,
    IdType.IPV4_ADDR_RANGE: _range4,
    IdType.IPV6_ADDR_RANGE: _range6,
    IdType.FQDN: lambda d: d.decode("ascii"),
    IdType.USER_FQDN: lambda d: d.decode("utf-8"),
}


@dataclass
class Certificate(Payload):
    """Certificate payload (RFC 2408 §3.9)."""

    payload_type: ClassVar[PayloadType] = PayloadType.CERTIFICATE
    encoding: int
    data: bytes
    LAYOUT: ClassVar[tuple[_Field, ...]] = (UInt("encoding", 1, CertEncoding), RestBytes("data"))


@dataclass
class CertificateRequest(Payload):
    """Certificate Request payload (RFC 2408 §3.10)."""

    payload_type: ClassVar[PayloadType] = PayloadType.CERTIFICATE_REQUEST
    encoding: int
    authority: bytes = b""
    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("encoding", 1, CertEncoding),
        RestBytes("authority"),
    )


@dataclass
class Hash(Payload):
    """Hash payload (RFC 2408 §3.11)."""

    payload_type: ClassVar[PayloadType] = PayloadType.HASH
    data: bytes
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("data"),)


@dataclass
class Signature(Payload):
    """Signature payload (RFC 2408 §3.12)."""

    payload_type: ClassVar[PayloadType] = PayloadType.SIGNATURE
    data: bytes
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("data"),)


@dataclass
class Nonce(Payload):
    """Nonce payload (RFC 2408 §3.13)."""

    payload_type: ClassVar[PayloadType] = PayloadType.NONCE
    data: bytes
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("data"),)


@dataclass
class Notification(Payload):
    """Notification payload (RFC 2408 §3.14)."""

    payload_type: ClassVar[PayloadType] = PayloadType.NOTIFICATION
    notify_type: int
    doi: int = Doi.IPSEC
    protocol_id: int = ProtocolId.ISAKMP
    spi: bytes = b""
    data: bytes = b""

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("doi", 4, Doi),
        UInt("protocol_id", 1, ProtocolId),
        SizeOf("spi", 1),
        UInt("notify_type", 2, NotifyType),
        SizedBytes("spi"),
        RestBytes("data"),
    )


@dataclass
class Delete(Payload):
    """Delete payload (RFC 2408 §3.15). All SPIs have the same size: 16 bytes
    (the cookie pair) for ISAKMP SAs, 4 for AH/ESP."""

    payload_type: ClassVar[PayloadType] = PayloadType.DELETE
    protocol_id: int
    spis: list[bytes]
    doi: int = Doi.IPSEC

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("doi", 4, Doi),
        UInt("protocol_id", 1, ProtocolId),
        ItemSizeOf("spis", 1),
        CountOf("spis", 2),
        SizedItems("spis"),
    )


@dataclass
class VendorId(Payload):
    """Vendor ID payload (RFC 2408 §3.16); see `vendor_ids` for meanings."""

    payload_type: ClassVar[PayloadType] = PayloadType.VENDOR_ID
    data: bytes
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("data"),)


@dataclass
class AttributePayload(Payload):
    """Attribute payload of the Transaction exchange (draft-dukes-ike-mode-cfg-02
    §3.2), carrying Mode-Config and Xauth attributes (`ConfigAttribute`)."""

    payload_type: ClassVar[PayloadType] = PayloadType.ATTRIBUTE
    cfg_type: int
    identifier: int = 0
    attributes: list[DataAttribute] = field(default_factory=list)

    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("cfg_type", 1, CfgType),
        Reserved(1),
        UInt("identifier", 2),
        Attributes("attributes"),
    )

    def attribute(self, attr_type: int) -> DataAttribute | None:
        """The first attribute of that type, or None."""
        return _find_attribute(self.attributes, attr_type)


@dataclass
class NatDiscovery(Payload):
    """NAT-D (RFC 3947 §3.2: 20; drafts: 130): HASH(CKY-I | CKY-R | IP | Port)."""

    hash_data: bytes
    payload_type: PayloadType = PayloadType.NAT_D
    TYPE_IS_FIELD: ClassVar[bool] = True
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("hash_data"),)


@dataclass
class NatOriginalAddress(Payload):
    """NAT-OA (RFC 3947 §5.2: 21; drafts: 131): ID type, 3 reserved, address."""

    id_type: int
    address: bytes
    payload_type: PayloadType = PayloadType.NAT_OA
    TYPE_IS_FIELD: ClassVar[bool] = True
    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("id_type", 1, IdType),
        Reserved(3),
        RestBytes("address"),
    )

    @classmethod
    def for_address(
        cls, address: str, payload_type: PayloadType = PayloadType.NAT_OA
    ) -> "NatOriginalAddress":
        ip = ipaddress.ip_address(address)
        id_type = IdType.IPV4_ADDR if ip.version == 4 else IdType.IPV6_ADDR
        return cls(id_type, ip.packed, payload_type)

    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        value = Identification(self.id_type, self.address).value()
        if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            raise InvalidIdInformation(f"NAT-OA with ID type {self.id_type}")
        return value


@dataclass
class Fragment(Payload):
    """IKEv1 fragment (Cisco/strongSwan, type 132): fragment ID (2), number (1),
    flags (1, bit 0 = last fragment), data. Always the only payload."""

    payload_type: ClassVar[PayloadType] = PayloadType.FRAGMENT
    fragment_id: int
    number: int
    data: bytes
    flags: int = 0

    LAST_FRAGMENT: ClassVar[int] = 0x01
    LAYOUT: ClassVar[tuple[_Field, ...]] = (
        UInt("fragment_id", 2),
        UInt("number", 1),
        UInt("flags", 1),
        RestBytes("data"),
    )

    @property
    def is_last(self) -> bool:
        return bool(self.flags & self.LAST_FRAGMENT)


@dataclass
class UnknownPayload(Payload):
    """A payload whose type we do not process, kept as raw bytes
    (only produced when the caller passes ``allow_unknown=True``)."""

    payload_type: int
    body: bytes
    TYPE_IS_FIELD: ClassVar[bool] = True
    LAYOUT: ClassVar[tuple[_Field, ...]] = (RestBytes("body"),)


#: Payloads allowed at the top level of a message, by Next Payload value.
PAYLOAD_CLASSES: dict[int, type[Payload]] = {
    PayloadType.SA: SecurityAssociation,
    PayloadType.KEY_EXCHANGE: KeyExchange,
    PayloadType.IDENTIFICATION: Identification,
    PayloadType.CERTIFICATE: Certificate,
    PayloadType.CERTIFICATE_REQUEST: CertificateRequest,
    PayloadType.HASH: Hash,
    PayloadType.SIGNATURE: Signature,
    PayloadType.NONCE: Nonce,
    PayloadType.NOTIFICATION: Notification,
    PayloadType.DELETE: Delete,
    PayloadType.VENDOR_ID: VendorId,
    PayloadType.ATTRIBUTE: AttributePayload,
    PayloadType.NAT_D: NatDiscovery,
    PayloadType.NAT_OA: NatOriginalAddress,
    PayloadType.NAT_D_DRAFT: NatDiscovery,
    PayloadType.NAT_OA_DRAFT: NatOriginalAddress,
    PayloadType.FRAGMENT: Fragment,
}


# ===========================================================================
# Top-level payload chains
# ===========================================================================


def _class_for(payload_type: int, allow_unknown: bool, offset: int) -> type[Payload]:
    cls = PAYLOAD_CLASSES.get(payload_type)
    if cls is not None:
        return cls
    if allow_unknown:
        return UnknownPayload
    # PROPOSAL/TRANSFORM outside an SA, GDOI payloads and unassigned numbers.
    raise InvalidPayloadType(
        f"Next Payload {lookup(PayloadType, payload_type)} not allowed in a message",
        offset=offset,
    )


def parse_payload_chain(
    first_payload_type: int,
    data: bytes,
    *,
    trailing_allowed: bool,
    allow_unknown: bool = False,
    max_payloads: int = DEFAULT_MAX_PAYLOADS,
) -> list[Payload]:
    """Walk the Next Payload chain over `data` (RFC 2408 §3.2).

    The chain must not announce a payload beyond the data ("ends late").
    Bytes after the last payload ("ends early") are an error unless
    `trailing_allowed` - the case of decrypted bodies, which carry padding.
    Offsets in errors are relative to `data`.
    """
    buf = Buffer(data)
    payloads: list[Payload] = []
    next_type = first_payload_type
    while next_type != PayloadType.NONE:
        start = buf.position
        if len(payloads) >= max_payloads:
            raise TooManyPayloads(f"more than {max_payloads} payloads", offset=start)
        if buf.eof():
            raise PayloadChainError(
                f"Next Payload {lookup(PayloadType, next_type)} announced, "
                "but the message ends",
                offset=start,
            )
        cls = _class_for(next_type, allow_unknown, start)
        following, body_length = _pull_generic_header(buf)
        try:
            payloads.append(cls.parse(buf.pull_bytes(body_length), next_type))
        except CodecError as exc:
            exc.add_context(f"{cls.__name__} payload #{len(payloads) + 1} at offset {start}")
            raise
        next_type = following
    if not trailing_allowed and not buf.eof():
        raise PayloadChainError(
            f"payload chain ends with {buf.remaining} bytes of the message left",
            offset=buf.position,
        )
    return payloads


def parse_payloads(
    first_payload_type: int,
    plaintext: bytes,
    *,
    allow_unknown: bool = False,
    max_payloads: int = DEFAULT_MAX_PAYLOADS,
) -> list[Payload]:
    """Parse a decrypted message body.

    Bytes after the last payload are padding to the cipher block size and are
    ignored (RFC 2409 §5.3; their content is not specified, strongSwan sends
    zeros, others random bytes ending in the pad length).
    """
    return parse_payload_chain(
        first_payload_type,
        plaintext,
        trailing_allowed=True,
        allow_unknown=allow_unknown,
        max_payloads=max_payloads,
    )


def serialize_payloads(payloads: Iterable[Payload]) -> tuple[PayloadType | int, bytes]:
    """Chain payloads: return (first payload type, body bytes).

    Each payload's generic header gets the type of the one after it, the last
    one NONE (RFC 2408 §3.2). The first type goes into the ISAKMP header.
    """
    items = list(payloads)
    buf = Buffer()
    for index, payload in enumerate(items):
        following = items[index + 1].payload_type if index + 1 < len(items) else PayloadType.NONE
        _push_payload(buf, following, payload.serialize())
    first = items[0].payload_type if items else PayloadType.NONE
    return first, buf.data


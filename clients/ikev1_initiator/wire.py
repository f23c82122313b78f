"""Pure builders and readers of the initiator's payloads (no session state).

Attribute orders follow the strongSwan client of the reference captures
(tests/vectors/ss-main.json): phase 1 ENC, KEY_LENGTH, HASH, GROUP, AUTH,
LIFE_TYPE, LIFE_DURATION; vendor IDs XAUTH, DPD, Unity, NAT-T (RFC first).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from responder.ikev1.enums import (
    CfgType,
    ConfigAttribute,
    EncapsulationMode,
    IpsecAttribute,
    LifeType,
    Phase1Attribute,
    ProtocolId,
)
from responder.ikev1.payloads import (
    AttributePayload,
    DataAttribute,
    Identification,
    Proposal,
    SecurityAssociation,
    Transform,
)
from responder.ikev1.vendor_ids import CISCO_UNITY, DPD, XAUTH, NattVersion, natt_vendor_id

from .config import EspOffer, IkeOffer, InitiatorConfig
from .results import ReceivedModeConfig

__all__ = [
    "NegotiatedIke",
    "vendor_ids_for",
    "esp_transform",
    "ike_transform",
    "isakmp_sa",
    "phase1_sa",
    "read_phase1_choice",
    "esp_sa",
    "read_esp_choice",
    "selector_payload",
    "selector_text",
    "payload_chain_after_first",
    "mode_config_from_attributes",
    "ProposalMismatch",
    "EspChoice",
    "encapsulation_mode",
    "request_attributes",
]


class ProposalMismatch(ValueError):
    """The server chose something we did not offer."""


# ---------------------------------------------------------------- vendor IDs
def vendor_ids_for(config: InitiatorConfig) -> list[bytes]:
    """Our vendor IDs in strongSwan's order."""
    vids: list[bytes] = []
    if config.send_xauth_vid:
        vids.append(XAUTH.data)
    if config.send_dpd_vid:
        vids.append(DPD.data)
    if config.send_unity_vid:
        vids.append(CISCO_UNITY.data)
    vids += [natt_vendor_id(version) for version in config.natt_versions]
    vids += list(config.extra_vendor_ids)
    return vids


# ---------------------------------------------------------------- phase 1 SA
def ike_transform(number: int, proposal: IkeOffer) -> Transform:
    """One phase 1 transform (RFC 2409 Appendix A attributes, lifetime in seconds)."""
    attributes = [DataAttribute.tv(Phase1Attribute.ENCRYPTION_ALGORITHM, proposal.encryption)]
    if proposal.key_length:
        attributes.append(DataAttribute.tv(Phase1Attribute.KEY_LENGTH, proposal.key_length))
    attributes += [
        DataAttribute.tv(Phase1Attribute.HASH_ALGORITHM, proposal.hash),
        DataAttribute.tv(Phase1Attribute.GROUP_DESCRIPTION, proposal.group),
        DataAttribute.tv(Phase1Attribute.AUTHENTICATION_METHOD, proposal.auth_method),
        DataAttribute.tv(Phase1Attribute.LIFE_TYPE, LifeType.SECONDS),
        DataAttribute.from_int(Phase1Attribute.LIFE_DURATION, proposal.lifetime_seconds),
    ]
    return Transform(number=number, transform_id=1, attributes=attributes)


def isakmp_sa(transforms: list[Transform]) -> SecurityAssociation:
    """One ISAKMP proposal holding the given transforms."""
    return SecurityAssociation(proposals=[Proposal(1, ProtocolId.ISAKMP, b"", transforms)])


def phase1_sa(proposals: tuple[IkeOffer, ...]) -> SecurityAssociation:
    """One ISAKMP proposal holding one transform per offered IkeOffer."""
    return isakmp_sa([ike_transform(i + 1, p) for i, p in enumerate(proposals)])


@dataclass(frozen=True)
class NegotiatedIke:
    """The phase 1 transform the server chose (one of ours)."""

    proposal: IkeOffer
    lifetime_seconds: int | None

    def describe(self) -> str:
        p = self.proposal
        key = f"-{p.key_length}" if p.key_length else ""
        return f"enc={p.encryption}{key} hash={p.hash} group={p.group} auth={p.auth_method}"


def _int_attribute(transform: Transform, attr_type: int) -> int | None:
    attribute = transform.attribute(attr_type)
    return attribute.as_int() if attribute is not None else None


def _single_transform(sa: SecurityAssociation | None, protocol: int) -> tuple[Proposal, Transform]:
    if sa is None or len(sa.proposals) != 1 or len(sa.proposals[0].transforms) != 1:
        raise ProposalMismatch("the server must answer with exactly one proposal and transform")
    proposal = sa.proposals[0]
    if proposal.protocol_id != protocol:
        raise ProposalMismatch(f"server proposal has protocol {proposal.protocol_id}")
    return proposal, proposal.transforms[0]


def read_phase1_choice(sa: SecurityAssociation | None,
                       offered: tuple[IkeOffer, ...]) -> NegotiatedIke:
    """Which of our phase 1 transforms the server's SA payload accepted."""
    _, transform = _single_transform(sa, ProtocolId.ISAKMP)
    chosen = (
        _int_attribute(transform, Phase1Attribute.ENCRYPTION_ALGORITHM),
        _int_attribute(transform, Phase1Attribute.KEY_LENGTH),
        _int_attribute(transform, Phase1Attribute.HASH_ALGORITHM),
        _int_attribute(transform, Phase1Attribute.GROUP_DESCRIPTION),
        _int_attribute(transform, Phase1Attribute.AUTHENTICATION_METHOD),
    )
    for proposal in offered:
        ours = (proposal.encryption, proposal.key_length or None, proposal.hash,
                proposal.group, proposal.auth_method)
        if chosen == ours:
            lifetime = _int_attribute(transform, Phase1Attribute.LIFE_DURATION)
            return NegotiatedIke(proposal, lifetime)
    raise ProposalMismatch(f"server chose phase 1 transform {chosen}, which we did not offer")


# ---------------------------------------------------------------- Quick Mode SA
def encapsulation_mode(udp: bool, natt: NattVersion | None) -> int:
    """Tunnel, or UDP-encapsulated tunnel in the numbering of the NAT-T version."""
    if not udp:
        return EncapsulationMode.TUNNEL
    if natt is not None and not natt.is_rfc:
        return EncapsulationMode.UDP_TUNNEL_DRAFT
    return EncapsulationMode.UDP_TUNNEL


def esp_transform(number: int, proposal: EspOffer, *, mode: int, pfs_group: int | None,
                  lifetime_seconds: int | None, lifetime_kilobytes: int | None) -> Transform:
    """One ESP transform (RFC 2407 §4.5 attributes); no lifetime without `lifetime_seconds`."""
    attributes = []
    if lifetime_seconds is not None:
        attributes += [DataAttribute.tv(IpsecAttribute.SA_LIFE_TYPE, LifeType.SECONDS),
                       DataAttribute.from_int(IpsecAttribute.SA_LIFE_DURATION, lifetime_seconds)]
    if lifetime_kilobytes:
        attributes += [DataAttribute.tv(IpsecAttribute.SA_LIFE_TYPE, LifeType.KILOBYTES),
                       DataAttribute.from_int(IpsecAttribute.SA_LIFE_DURATION, lifetime_kilobytes)]
    if pfs_group is not None:
        attributes.append(DataAttribute.tv(IpsecAttribute.GROUP_DESCRIPTION, pfs_group))
    attributes.append(DataAttribute.tv(IpsecAttribute.ENCAPSULATION_MODE, mode))
    if proposal.auth is not None:
        attributes.append(DataAttribute.tv(IpsecAttribute.AUTHENTICATION_ALGORITHM, proposal.auth))
    if proposal.key_length:
        attributes.append(DataAttribute.tv(IpsecAttribute.KEY_LENGTH, proposal.key_length))
    return Transform(number=number, transform_id=proposal.cipher, attributes=attributes)


def esp_sa(proposals: tuple[EspOffer, ...], spi: bytes, *, mode: int, pfs_group: int | None,
           lifetime_seconds: int, lifetime_kilobytes: int | None) -> SecurityAssociation:
    """One ESP proposal (our inbound SPI) with one transform per EspOffer."""
    transforms = [
        esp_transform(i + 1, p, mode=mode, pfs_group=pfs_group,
                       lifetime_seconds=lifetime_seconds, lifetime_kilobytes=lifetime_kilobytes)
        for i, p in enumerate(proposals)
    ]
    return SecurityAssociation(proposals=[Proposal(1, ProtocolId.IPSEC_ESP, spi, transforms)])


@dataclass(frozen=True)
class EspChoice:
    proposal: EspOffer
    spi: bytes
    mode: int
    pfs_group: int | None
    lifetime_seconds: int | None


def read_esp_choice(sa: SecurityAssociation | None, offered: tuple[EspOffer, ...],
                    *, mode: int, pfs_group: int | None) -> EspChoice:
    """The server's ESP choice, checked against what we proposed."""
    proposal, transform = _single_transform(sa, ProtocolId.IPSEC_ESP)
    if len(proposal.spi) != 4:
        raise ProposalMismatch(f"server ESP SPI of {len(proposal.spi)} bytes")
    key_length = _int_attribute(transform, IpsecAttribute.KEY_LENGTH)
    auth = _int_attribute(transform, IpsecAttribute.AUTHENTICATION_ALGORITHM)
    match = next((p for p in offered
                  if (p.cipher, p.key_length or None, p.auth) == (transform.transform_id, key_length, auth)),
                 None)
    if match is None:
        raise ProposalMismatch(
            f"server chose ESP {transform.transform_id}/{key_length}/{auth}, not offered")
    chosen_mode = _int_attribute(transform, IpsecAttribute.ENCAPSULATION_MODE)
    if chosen_mode is not None and chosen_mode != mode:
        raise ProposalMismatch(f"server chose encapsulation mode {chosen_mode}, we offered {mode}")
    chosen_group = _int_attribute(transform, IpsecAttribute.GROUP_DESCRIPTION)
    if chosen_group != pfs_group:
        raise ProposalMismatch(f"server chose PFS group {chosen_group}, we offered {pfs_group}")
    return EspChoice(match, bytes(proposal.spi), mode, pfs_group,
                     _int_attribute(transform, IpsecAttribute.SA_LIFE_DURATION))


# ---------------------------------------------------------------- selectors
def selector_payload(text: str) -> Identification:
    """A /32 as ID_IPV4_ADDR (what strongSwan sends for a virtual IP), else a subnet."""
    network = ipaddress.IPv4Network(text, strict=False)
    if network.prefixlen == 32:
        return Identification.ipv4_address(network.network_address)
    return Identification.ipv4_subnet(network)


def selector_text(identification: Identification) -> str:
    value = identification.value()
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return f"{value}/{value.max_prefixlen}"
    if isinstance(value, tuple):
        return f"{value[0]}-{value[1]}"
    return str(value)


# ---------------------------------------------------------------- hashing helpers
def payload_chain_after_first(plaintext: bytes) -> bytes:
    """The payloads after the first one (the HASH), without padding.

    Only called on plaintext the codec already parsed, so the chain is valid;
    RFC 2409 §5.5 hashes exactly these bytes, generic headers included.
    """
    first_length = int.from_bytes(plaintext[2:4], "big")
    offset = 0
    while True:
        next_type = plaintext[offset]
        offset += int.from_bytes(plaintext[offset + 2:offset + 4], "big")
        if next_type == 0:
            return plaintext[first_length:offset]


# ---------------------------------------------------------------- Mode-Config
def _ipv4(value: bytes | int) -> str | None:
    if isinstance(value, bytes) and len(value) == 4:
        return str(ipaddress.IPv4Address(value))
    return None


def mode_config_from_attributes(attributes: list[DataAttribute]) -> ReceivedModeConfig:
    """Address, netmask, DNS and WINS servers, plus every attribute raw."""
    raw: dict[int, list] = {}
    for attribute in attributes:
        shown = attribute.value.hex() if isinstance(attribute.value, bytes) else attribute.value
        raw.setdefault(int(attribute.attr_type), []).append(shown)

    def addresses(attr_type: int) -> tuple[str, ...]:
        found = (_ipv4(a.value) for a in attributes if a.attr_type == attr_type)
        return tuple(a for a in found if a)

    address = addresses(ConfigAttribute.INTERNAL_IP4_ADDRESS)
    netmask = addresses(ConfigAttribute.INTERNAL_IP4_NETMASK)
    return ReceivedModeConfig(
        address=address[0] if address else None,
        netmask=netmask[0] if netmask else None,
        dns=addresses(ConfigAttribute.INTERNAL_IP4_DNS),
        wins=addresses(ConfigAttribute.INTERNAL_IP4_NBNS),
        raw=raw,
    )


def request_attributes(types: tuple[int, ...]) -> AttributePayload:
    """A Mode-Config REQUEST: each attribute empty (draft-dukes §3.2)."""
    return AttributePayload(CfgType.REQUEST, 0, [DataAttribute.tlv(t, b"") for t in types])

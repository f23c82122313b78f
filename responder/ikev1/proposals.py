"""Choosing one phase 1 transform and one ESP proposal from what a peer offers.

Works on a small codec-independent view of the SA payload (`OfferedProposal`,
`OfferedTransform`); `exchanges/common.py` builds it from decoded payloads.

Rules (RFC 2408 §4.2, RFC 2409 §5, RFC 2407 §4.5):

* The initiator lists proposals and transforms in its order of preference; the
  responder takes the first acceptable one and answers with exactly that
  transform, attributes unchanged (RFC 2409 §5: "the responder MUST NOT modify
  the attributes"). A lifetime longer than ours is therefore echoed as is; we
  use the shorter one locally and tell the peer with RESPONDER-LIFETIME
  (RFC 2407 §4.6.3.1) where that notify exists (phase 2).
* A transform with any attribute we do not know or do not support is skipped,
  never fatal: vpnc offers encryption algorithm 0, a responder must move on.
* Proposals sharing a number form an AND bundle (RFC 2408 §4.2, e.g. AH+ESP);
  we do ESP only, so such bundles are skipped as a whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

from .algorithms import DH_GROUPS_BY_NUMBER
from .crypto.cipher import cipher_algorithm
from .crypto.dh import dh_group
from .crypto.errors import UnsupportedAlgorithm
from .crypto.phase2 import NegotiatedEspTransform
from .crypto.prf import hash_algorithm
from .enums import (
    EncapsulationMode,
    IpsecAttribute,
    IsakmpTransformId,
    LifeType,
    NotifyType,
    Phase1Attribute,
    ProtocolId,
)
from .errors import RemoteProtocolError
from .policy import EspPolicy, EspTransformSpec, IkeTransform, Phase1Policy

__all__ = [
    "OfferedTransform",
    "OfferedProposal",
    "Phase1Choice",
    "EspChoice",
    "NoProposalChosen",
    "choose_phase1",
    "choose_esp",
]

log = logging.getLogger(__name__)

Attribute = tuple[int, int | bytes]


@dataclass(frozen=True)
class OfferedTransform:
    number: int
    transform_id: int
    attributes: tuple[Attribute, ...]
    raw: object = None  # the decoded payload, echoed in the reply

    def int_attributes(self) -> list[tuple[int, int]]:
        return [(t, v if isinstance(v, int) else int.from_bytes(v, "big"))
                for t, v in self.attributes]


@dataclass(frozen=True)
class OfferedProposal:
    number: int
    protocol: int
    spi: bytes
    transforms: tuple[OfferedTransform, ...]
    raw: object = None


class NoProposalChosen(RemoteProtocolError):
    """RFC 2408 §5.4: none of the proposals is acceptable."""

    def __init__(self, message: str) -> None:
        super().__init__(NotifyType.NO_PROPOSAL_CHOSEN, message)


class _Skip(Exception):
    """This transform is not acceptable; the reason is logged at debug level."""


# ---------------------------------------------------------------------------
# Lifetimes (RFC 2409 App. A / RFC 2407 §4.5: Life Type then Life Duration)
# ---------------------------------------------------------------------------


def _lifetimes(pairs: Sequence[tuple[int, int]], type_attr: int, duration_attr: int
               ) -> tuple[int | None, int | None]:
    """(seconds, kilobytes); a duration must follow its type (RFC 2407 §4.5)."""
    seconds = kilobytes = None
    current_type: int | None = None
    for attr, value in pairs:
        if attr == type_attr:
            current_type = value
        elif attr == duration_attr:
            if current_type == LifeType.SECONDS:
                seconds = value
            elif current_type == LifeType.KILOBYTES:
                kilobytes = value
            else:
                raise _Skip("life duration without a valid life type")
            current_type = None
    return seconds, kilobytes


# ---------------------------------------------------------------------------
# Phase 1
# ---------------------------------------------------------------------------

_PHASE1_KNOWN = {a.value for a in Phase1Attribute}


@dataclass(frozen=True)
class Phase1Choice:
    proposal: OfferedProposal
    transform: OfferedTransform
    ike: IkeTransform
    #: lifetime we enforce: min(ours, peer's)
    lifetime_seconds: int
    #: the peer proposed a longer lifetime than ours: tell it with a
    #: RESPONDER-LIFETIME notify (RFC 2407 §4.6.3.1)
    responder_lifetime: bool = False


def parse_ike_transform(transform: OfferedTransform) -> IkeTransform:
    if transform.transform_id != IsakmpTransformId.KEY_IKE:
        raise _Skip(f"transform id {transform.transform_id} is not KEY_IKE")
    pairs = transform.int_attributes()
    values: dict[int, int] = {}
    for attr, value in pairs:
        if attr not in _PHASE1_KNOWN:
            raise _Skip(f"unknown phase 1 attribute {attr}")
        if attr not in (Phase1Attribute.LIFE_TYPE, Phase1Attribute.LIFE_DURATION):
            values[attr] = value
    for unsupported in (Phase1Attribute.PRF, Phase1Attribute.GROUP_PRIME,
                        Phase1Attribute.GROUP_TYPE, Phase1Attribute.FIELD_SIZE):
        if unsupported in values:
            raise _Skip(f"attribute {Phase1Attribute(unsupported).name} not supported")
    try:
        ike = IkeTransform(
            encryption=values[Phase1Attribute.ENCRYPTION_ALGORITHM],
            key_length=values.get(Phase1Attribute.KEY_LENGTH),
            hash=values[Phase1Attribute.HASH_ALGORITHM],
            group=values[Phase1Attribute.GROUP_DESCRIPTION],
            auth_method=values[Phase1Attribute.AUTHENTICATION_METHOD],
        )
    except KeyError as missing:
        raise _Skip(f"mandatory attribute {missing} missing") from None
    seconds, kilobytes = _lifetimes(pairs, Phase1Attribute.LIFE_TYPE,
                                    Phase1Attribute.LIFE_DURATION)
    _check_ike_supported(ike)
    return IkeTransform(ike.encryption, ike.key_length, ike.hash, ike.group, ike.auth_method,
                        seconds, kilobytes)


def _check_ike_supported(ike: IkeTransform) -> None:
    """The registry must list it (vpnc's encryption 0 ends here)."""
    try:
        cipher_algorithm(ike.encryption).key_size(ike.key_length)
        hash_algorithm(ike.hash)
        _check_group_supported(ike.group)
    except UnsupportedAlgorithm as exc:
        raise _Skip(str(exc)) from None


def _check_group_supported(group: int) -> None:
    """A DH group of the registry, implemented by the crypto layer."""
    if group not in DH_GROUPS_BY_NUMBER:
        raise UnsupportedAlgorithm(f"DH group {group} not supported")
    dh_group(group)


def choose_phase1(proposals: Sequence[OfferedProposal], policy: Phase1Policy,
                  *, ke_length: int | None = None) -> Phase1Choice:
    """First acceptable transform in the peer's order (RFC 2409 §5).

    `ke_length`: Aggressive Mode sends KE in message 1, so the chosen
    transform's group must produce public values of that size (RFC 2409 §5.4;
    all AM transforms share one group, the KE payload does not name it).
    """
    for proposal in proposals:
        if proposal.protocol != ProtocolId.ISAKMP:
            log.debug("phase 1 proposal %d: protocol %s skipped", proposal.number,
                      proposal.protocol)
            continue
        for transform in proposal.transforms:
            try:
                ike = parse_ike_transform(transform)
            except _Skip as why:
                log.debug("phase 1 transform %d skipped: %s", transform.number, why)
                continue
            if not policy.allows(ike):
                log.debug("phase 1 transform %d (%s) not allowed by policy",
                          transform.number, ike.describe())
                continue
            if ke_length is not None and dh_group(ike.group).public_size != ke_length:
                log.debug("phase 1 transform %d: group %d does not fit the %d-byte KE",
                          transform.number, ike.group, ke_length)
                continue
            lifetime = min(policy.lifetime_seconds, ike.lifetime_seconds or policy.lifetime_seconds)
            shortened = ike.lifetime_seconds is not None and ike.lifetime_seconds > lifetime
            return Phase1Choice(proposal, transform, ike, lifetime, shortened)
    raise NoProposalChosen("no acceptable phase 1 transform")


# ---------------------------------------------------------------------------
# Phase 2 (ESP)
# ---------------------------------------------------------------------------

_ESP_KNOWN = {a.value for a in IpsecAttribute}


@dataclass(frozen=True)
class EspChoice:
    proposal: OfferedProposal
    transform: OfferedTransform
    esp: EspTransformSpec
    encapsulation_mode: int
    pfs_group: int | None
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    #: set when we shorten the peer's lifetime: send RESPONDER-LIFETIME
    responder_lifetime: bool
    #: what to cut out of KEYMAT (crypto layer)
    keying: NegotiatedEspTransform

    @property
    def peer_spi(self) -> bytes:
        return self.proposal.spi

    @property
    def udp_encapsulated(self) -> bool:
        return self.encapsulation_mode in (
            EncapsulationMode.UDP_TUNNEL, EncapsulationMode.UDP_TRANSPORT,
            EncapsulationMode.UDP_TUNNEL_DRAFT, EncapsulationMode.UDP_TRANSPORT_DRAFT)


def _parse_esp_transform(transform: OfferedTransform, allowed_modes: Iterable[int]
                         ) -> tuple[EspTransformSpec, NegotiatedEspTransform, int, int | None,
                                    int | None, int | None]:
    pairs = transform.int_attributes()
    values: dict[int, int] = {}
    for attr, value in pairs:
        if attr not in _ESP_KNOWN:
            raise _Skip(f"unknown IPsec attribute {attr}")
        values[attr] = value
    auth = values.get(IpsecAttribute.AUTHENTICATION_ALGORITHM)
    key_length = values.get(IpsecAttribute.KEY_LENGTH)
    try:
        keying = NegotiatedEspTransform.from_attributes(
            transform.transform_id, key_length_bits=key_length, auth_algorithm=auth)
    except UnsupportedAlgorithm as exc:
        raise _Skip(str(exc)) from None
    # RFC 2407 §4.5: encapsulation mode defaults are host-specific; take tunnel
    mode = values.get(IpsecAttribute.ENCAPSULATION_MODE, EncapsulationMode.TUNNEL)
    if mode not in allowed_modes:
        raise _Skip(f"encapsulation mode {mode} not allowed here")
    for unsupported in (IpsecAttribute.COMPRESS_DICTIONARY_SIZE,
                        IpsecAttribute.COMPRESS_PRIVATE_ALGORITHM, IpsecAttribute.KEY_ROUNDS):
        if unsupported in values:
            raise _Skip(f"attribute {IpsecAttribute(unsupported).name} not supported")
    if values.get(IpsecAttribute.EXTENDED_SEQUENCE_NUMBER):
        raise _Skip("extended sequence numbers not supported")
    seconds, kilobytes = _lifetimes(pairs, IpsecAttribute.SA_LIFE_TYPE,
                                    IpsecAttribute.SA_LIFE_DURATION)
    esp = EspTransformSpec(transform.transform_id, key_length, auth)
    return esp, keying, mode, values.get(IpsecAttribute.GROUP_DESCRIPTION), seconds, kilobytes


def _bundles(proposals: Sequence[OfferedProposal]) -> list[list[OfferedProposal]]:
    groups: dict[int, list[OfferedProposal]] = {}
    for proposal in proposals:
        groups.setdefault(proposal.number, []).append(proposal)
    return list(groups.values())


def choose_esp(proposals: Sequence[OfferedProposal], policy: EspPolicy, *,
               allowed_modes: Iterable[int], pfs: bool) -> EspChoice:
    """First acceptable single-ESP proposal, in the peer's order.

    `pfs`: the Quick Mode carries a KE payload. Then the transform must name
    a Group Description (RFC 2409 §5.5), and without KE it must not; it must
    be the policy's PFS group when the policy requires one.
    """
    modes = tuple(allowed_modes)
    for bundle in _bundles(proposals):
        if len(bundle) != 1 or bundle[0].protocol != ProtocolId.IPSEC_ESP:
            log.debug("proposal %d: only single ESP proposals are supported", bundle[0].number)
            continue
        proposal = bundle[0]
        if len(proposal.spi) != 4:
            log.debug("proposal %d: ESP SPI must be 4 bytes", proposal.number)
            continue
        for transform in proposal.transforms:
            try:
                return _esp_choice(proposal, transform, policy, modes, pfs)
            except _Skip as why:
                log.debug("ESP proposal %d transform %d skipped: %s", proposal.number,
                          transform.number, why)
    raise NoProposalChosen("no acceptable ESP proposal")


def _esp_choice(proposal: OfferedProposal, transform: OfferedTransform, policy: EspPolicy,
                modes: tuple[int, ...], pfs: bool) -> EspChoice:
    esp, keying, mode, group, seconds, kilobytes = _parse_esp_transform(transform, modes)
    if esp not in policy.transforms:
        raise _Skip(f"{esp.describe()} not in the tunnel's ESP transforms")
    if (group is not None) != pfs:
        raise _Skip(f"PFS group {group} but KE payload {'present' if pfs else 'absent'}")
    if policy.pfs_group is not None and group != policy.pfs_group:
        raise _Skip(f"PFS group {group} required {policy.pfs_group}")
    if group is not None:
        if group not in policy.pfs_groups_accepted:
            raise _Skip(f"PFS group {group} not accepted")
        try:
            _check_group_supported(group)
        except UnsupportedAlgorithm as exc:
            raise _Skip(str(exc)) from None
    our_seconds, our_kb = policy.lifetime_seconds, policy.lifetime_kilobytes
    # RFC 2407 §4.5.4 / §4.6.3.1: a peer lifetime above ours (or none, which
    # means 28800 s by default) is kept in the reply but announced shorter.
    peer_seconds = seconds if seconds is not None else 28800
    shorter_seconds = peer_seconds > our_seconds
    shorter_kb = our_kb is not None and (kilobytes is None or kilobytes > our_kb)
    return EspChoice(
        proposal=proposal,
        transform=transform,
        esp=esp,
        encapsulation_mode=mode,
        pfs_group=group,
        lifetime_seconds=min(peer_seconds, our_seconds),
        lifetime_kilobytes=min(x for x in (kilobytes, our_kb) if x is not None)
        if (kilobytes or our_kb) else None,
        responder_lifetime=shorter_seconds or shorter_kb,
        keying=keying,
    )

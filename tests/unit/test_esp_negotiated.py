"""From an offered ESP transform to packets: what Quick Mode negotiates, the data path carries.

Each case goes the way a child SA does in the responder: proposal matching picks the
offer, keying cuts both directions out of KEYMAT, the keys become EspSAParams as the
daemon's data path builds them (enc_id / auth_id / key_bits from the agreed numbers),
and a packet makes a round trip through the OutboundSA and InboundSA.
"""
from __future__ import annotations

import pytest

from responder.config import algorithms as config
from responder.esp import EspSAParams, InboundSA, OutboundSA
from responder.ikev1 import proposals
from responder.ikev1.crypto import derive_esp_keys, hash_algorithm
from responder.ikev1.enums import EncapsulationMode, IpsecAttribute, ProtocolId
from responder.ikev1.policy import EspPolicy, EspTransformSpec

from .esp_helpers import counting_rng, icmp_echo

NI, NR = b"\x11" * 16, b"\x22" * 16
INBOUND_SPI, OUTBOUND_SPI = b"\x00\x00\x20\x01", b"\x00\x00\x30\x02"


def _config_specs() -> list[EspTransformSpec]:
    return [EspTransformSpec(p.cipher, p.key_length, p.integrity)
            for p in map(config.parse_esp_transform, config.known_esp_transforms())]


#: Every transform config can name, and the RFC 4868 ones spelled out: keying cut them
#: from KEYMAT before the data path could carry them.
SPECS = _config_specs() + [EspTransformSpec(12, 256, 6), EspTransformSpec(12, 128, 7)]


def _offer(spec: EspTransformSpec) -> proposals.OfferedProposal:
    attributes = [(IpsecAttribute.ENCAPSULATION_MODE, EncapsulationMode.UDP_TUNNEL)]
    if spec.key_length is not None:
        attributes.append((IpsecAttribute.KEY_LENGTH, spec.key_length))
    if spec.auth is not None:
        attributes.append((IpsecAttribute.AUTHENTICATION_ALGORITHM, spec.auth))
    transform = proposals.OfferedTransform(1, spec.cipher, tuple(attributes))
    return proposals.OfferedProposal(1, ProtocolId.IPSEC_ESP, OUTBOUND_SPI, (transform,))


def _params(spec: EspTransformSpec, keys) -> EspSAParams:
    return EspSAParams(spi=int.from_bytes(keys.spi, "big"), enc_id=spec.cipher,
                       auth_id=spec.auth or None, key_bits=spec.key_length,
                       enc_key=keys.encryption_key, auth_key=keys.integrity_key, salt=keys.salt,
                       encap_udp=True)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_a_negotiated_transform_carries_packets(spec):
    choice = proposals.choose_esp([_offer(spec)], EspPolicy(transforms=(spec,)),
                                  allowed_modes=(EncapsulationMode.UDP_TUNNEL,), pfs=False)
    keys = derive_esp_keys(hash_algorithm(2), b"d" * 20, choice.keying, inbound_spi=INBOUND_SPI,
                           outbound_spi=choice.peer_spi, ni_b=NI, nr_b=NR)
    # The peer's outbound SA is our inbound one: same keys, our SPI.
    peer_out = OutboundSA(_params(choice.esp, keys.inbound), rng=counting_rng())
    ours_in = InboundSA(_params(choice.esp, keys.inbound))
    ours_out = OutboundSA(_params(choice.esp, keys.outbound), rng=counting_rng())
    peer_in = InboundSA(_params(choice.esp, keys.outbound))
    inner = icmp_echo()
    assert ours_in.decapsulate(peer_out.encapsulate(inner)) == inner
    assert peer_in.decapsulate(ours_out.encapsulate(inner)) == inner
    assert ours_in.transform.icv_size == (ours_in.transform.integrity.icv_size
                                          if spec.auth else ours_in.transform.cipher.icv_size)

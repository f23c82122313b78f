"""Quick Mode responder, RFC 2409 §5.5 (with RFC 3947 §5 NAT-OA / UDP modes).

    msg 1  HDR*, HASH(1), SA, Ni, [KE], [IDci, IDcr], [NAT-OA*]
        -> msg 2  HDR*, HASH(2), SA, Nr, [KE], [IDci, IDcr], [N(RESPONDER-LIFETIME)]
    msg 3  HDR*, HASH(3)                      -> child SA established

Static vs dynamic (SPEC "Recognition"): a dynamic phase 1 (peer sent the
Xauth VID) negotiates only dynamic phase 2, whose ESP proposals and
selector check come from the subscriber layer (`Phase2Provider`); any other
phase 1 only matches a configured static tunnel by peer address and
selectors. A new Quick Mode on the same phase 1 is a rekey: the old child
stays until it is deleted or expires.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Protocol

from ..crypto.dh import dh_group
from ..crypto.errors import InvalidKeyInformation
from ..crypto.phase2 import derive_esp_keys, quick_mode_hash3, verify_hash
from ..buffer import Buffer
from ..enums import ExchangeType, IpsecAttribute, LifeType, NotifyType, ProtocolId
from ..events import EspKeyMaterial, Phase2Established
from ..ike_sa import ChildSa, IkeSa, QuickModeState
from ..message import Message
from ..natt import accepted_encapsulation_modes
from ..payloads import (
    DataAttribute,
    Hash,
    Identification,
    KeyExchange,
    NatOriginalAddress,
    Nonce,
    Notification,
    Proposal,
    SecurityAssociation,
)
from ..policy import EspPolicy, Selector, StaticTunnel
from ..proposals import EspChoice, choose_esp
from .common import (
    ExchangeContext,
    StateTable,
    accept,
    authenticated,
    build_encrypted,
    check_nonce,
    decrypt,
    hash_payloads,
    offered_proposals,
    protocol_error,
    raw_body,
    require_payloads,
    verify_hash1,
)

__all__ = ["TABLE", "handle", "Phase2Provider", "DefaultPhase2Provider"]

TABLE = StateTable("quick_mode", {
    ("start", "hash1"): "reply_sent",
    ("reply_sent", "hash3"): "done",
})

NONCE_SIZE = 32


class Phase2Provider(Protocol):
    """Subscriber-layer hook for dynamic phase 2 (tunnel profile, Mode-Config)."""

    def esp_policy(self, sa: IkeSa) -> EspPolicy: ...

    def selectors_allowed(self, sa: IkeSa, remote: Selector, local: Selector) -> bool:
        """e.g. IDci must be the subscriber's assigned address."""
        ...


@dataclass
class DefaultPhase2Provider:
    """Until the subscriber layer exists: the policy's dynamic ESP proposals,
    any selectors."""

    esp: EspPolicy
    check: Callable[[IkeSa, Selector, Selector], bool] | None = None

    def esp_policy(self, sa: IkeSa) -> EspPolicy:
        return self.esp

    def selectors_allowed(self, sa: IkeSa, remote: Selector, local: Selector) -> bool:
        return self.check(sa, remote, local) if self.check else True


# ---------------------------------------------------------------------------


def classify(qm: QuickModeState | None) -> str:
    return "hash1" if qm is None else "hash3"


def handle(ctx: ExchangeContext, sa: IkeSa, message: Message, provider: Phase2Provider,
           spi_allocator: Callable[[], bytes]) -> list[bytes]:
    mid = message.header.message_id
    if mid == 0:
        raise protocol_error(NotifyType.INVALID_MESSAGE_ID, "Quick Mode with message id 0")
    qm = sa.quick_modes.get(mid)
    state = qm.state if qm else "start"
    event = classify(qm)
    new_state = TABLE.next(state, event)
    if qm is None:
        qm = QuickModeState(mid, "start", ctx.now)
        replies = _on_hash1(ctx, sa, message, qm, provider, spi_allocator)
        qm.state = new_state
        sa.quick_modes[mid] = qm
        return replies
    _on_hash3(ctx, sa, message, qm)
    qm.state = new_state
    del sa.quick_modes[mid]
    return []


def _selector(payload: Identification | None, fallback: str) -> Selector:
    if payload is None:
        return Selector(ipaddress.ip_network(fallback))
    try:
        value = payload.value()
    except Exception as exc:  # codec raises InvalidIdInformation
        raise protocol_error(NotifyType.INVALID_ID_INFORMATION, str(exc)) from None
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        network = ipaddress.ip_network(value)
    elif isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        network = value
    else:
        raise protocol_error(NotifyType.INVALID_ID_INFORMATION,
                             f"{payload} is not an address or subnet selector")
    return Selector(network, int(payload.protocol), int(payload.port))


def _find_static_tunnel(ctx: ExchangeContext, sa: IkeSa, remote: Selector,
                        local: Selector) -> StaticTunnel:
    for tunnel in ctx.policy.static_tunnels_for(sa.remote[0]):
        if tunnel.remote_selector.covers(remote) and tunnel.local_selector.covers(local):
            return tunnel
    raise protocol_error(NotifyType.INVALID_ID_INFORMATION,
                         f"no static tunnel for {sa.remote[0]} with {remote} <-> {local}")


def _esp_policy_for(ctx: ExchangeContext, sa: IkeSa, remote: Selector, local: Selector,
                    provider: Phase2Provider) -> EspPolicy:
    if sa.dynamic:
        if not provider.selectors_allowed(sa, remote, local):
            raise protocol_error(NotifyType.INVALID_ID_INFORMATION,
                                 f"selectors {remote} <-> {local} not allowed for this subscriber")
        return provider.esp_policy(sa)
    return _find_static_tunnel(ctx, sa, remote, local).esp


def _on_hash1(ctx: ExchangeContext, sa: IkeSa, message: Message, qm: QuickModeState,
              provider: Phase2Provider, spi_allocator: Callable[[], bytes]) -> list[bytes]:
    if qm.message_id in sa.seen_message_ids:  # a check only: uses up nothing
        raise protocol_error(NotifyType.INVALID_MESSAGE_ID,
                             f"message id {qm.message_id:#x} reused")
    decrypted, plaintext = decrypt(sa, message)
    verify_hash1(sa, decrypted, plaintext)
    # only a verified msg 1 uses up its message ID: junk carrying the ID of a
    # Quick Mode the peer is about to send must not block the real one
    authenticated(ctx, sa, qm.message_id)
    accept(sa, message)
    require_payloads(decrypted, "quick mode msg 1",
                     exactly_one=(Hash, SecurityAssociation, Nonce), at_most_one=(KeyExchange,),
                     allowed=(Identification, NatOriginalAddress, Notification))
    ids = decrypted.payloads_of(Identification)
    if len(ids) not in (0, 2):
        raise protocol_error(NotifyType.INVALID_ID_INFORMATION, f"{len(ids)} ID payloads")
    remote_sel = _selector(ids[0] if ids else None, sa.remote[0])
    local_sel = _selector(ids[1] if ids else None, sa.local[0])
    esp_policy = _esp_policy_for(ctx, sa, remote_sel, local_sel, provider)
    ke = decrypted.first(KeyExchange)
    modes = accepted_encapsulation_modes(sa.natt_version, sa.nat)
    choice = choose_esp(offered_proposals(decrypted.first(SecurityAssociation)), esp_policy,
                        allowed_modes=modes, pfs=ke is not None)
    if len(choice.peer_spi) != 4 or int.from_bytes(choice.peer_spi, "big") < 256:
        # RFC 4303 §2.1: 1-255 are reserved, 0 is never an SA
        raise protocol_error(NotifyType.INVALID_SPI, f"ESP SPI {choice.peer_spi.hex()}")
    qm.choice = choice
    qm.ni_b = check_nonce(raw_body(decrypted.header.next_payload, plaintext, 10))
    qm.nr_b = ctx.random(NONCE_SIZE)
    qm.inbound_spi = spi_allocator()
    qm.remote_selector, qm.local_selector = remote_sel, local_sel
    payloads = [_reply_sa(decrypted.first(SecurityAssociation), choice, qm.inbound_spi),
                Nonce(qm.nr_b)]
    if ke is not None:
        payloads.append(KeyExchange(_pfs(ctx, qm, choice, ke.key_data)))
    payloads += ids  # echo IDci/IDcr exactly (vpnc's 0.0.0.0/0 included)
    if choice.responder_lifetime:
        payloads.append(_responder_lifetime(choice))
    ctx.sa_log(sa).info("quick mode %08x: %s %s <-> %s, %s", qm.message_id,
                        choice.esp.describe(), remote_sel, local_sel,
                        "PFS group %d" % choice.pfs_group if choice.pfs_group else "no PFS")
    digest = hash_payloads(sa, qm.message_id, payloads, prefix=qm.ni_b)
    return [build_encrypted(sa, ExchangeType.QUICK_MODE, qm.message_id, [digest, *payloads])]


def _pfs(ctx: ExchangeContext, qm: QuickModeState, choice: EspChoice, peer_ke: bytes) -> bytes:
    assert choice.pfs_group is not None
    group = dh_group(choice.pfs_group)
    if len(peer_ke) != group.public_size:
        raise InvalidKeyInformation(f"QM KE of {len(peer_ke)} bytes for {group.name}")
    pair = group.generate(ctx.random)
    qm.pfs_shared_secret = pair.compute_shared(peer_ke)
    return pair.public_bytes


def _reply_sa(offered: SecurityAssociation, choice: EspChoice, spi: bytes) -> SecurityAssociation:
    """One proposal, one transform, attributes as offered, our SPI."""
    proposal = choice.proposal.raw
    return SecurityAssociation(doi=offered.doi, situation=offered.situation, proposals=[
        Proposal(number=proposal.number, protocol_id=ProtocolId.IPSEC_ESP, spi=spi,
                 transforms=[choice.transform.raw])])


def _responder_lifetime(choice: EspChoice) -> Notification:
    """RFC 2407 §4.6.3.1: our shorter lifetime, SPI of the peer's proposal."""
    attributes = [DataAttribute.tv(IpsecAttribute.SA_LIFE_TYPE, LifeType.SECONDS),
                  DataAttribute.from_int(IpsecAttribute.SA_LIFE_DURATION,
                                         choice.lifetime_seconds)]
    if choice.lifetime_kilobytes is not None:
        attributes += [DataAttribute.tv(IpsecAttribute.SA_LIFE_TYPE, LifeType.KILOBYTES),
                       DataAttribute.from_int(IpsecAttribute.SA_LIFE_DURATION,
                                              choice.lifetime_kilobytes)]
    data = b"".join(_attribute_bytes(a) for a in attributes)
    return Notification(NotifyType.RESPONDER_LIFETIME, protocol_id=ProtocolId.IPSEC_ESP,
                        spi=choice.peer_spi, data=data)


def _attribute_bytes(attribute: DataAttribute) -> bytes:
    buf = Buffer()
    attribute.push(buf)
    return buf.data


def _on_hash3(ctx: ExchangeContext, sa: IkeSa, message: Message, qm: QuickModeState) -> None:
    decrypted, _ = decrypt(sa, message)
    require_payloads(decrypted, "quick mode msg 3", exactly_one=(Hash,))
    assert sa.keys is not None and qm.choice is not None
    expected = quick_mode_hash3(sa.keys.prf, sa.keys.skeyid_a, qm.message_id, qm.ni_b, qm.nr_b)
    verify_hash(expected, decrypted.first(Hash).data, "HASH(3)")  # junk: the QM lives on
    authenticated(ctx, sa)
    sa.cipher.ivs.forget(qm.message_id)
    _install_child(ctx, sa, qm)


def _install_child(ctx: ExchangeContext, sa: IkeSa, qm: QuickModeState) -> None:
    choice = qm.choice
    assert choice is not None and sa.keys is not None
    keys = derive_esp_keys(sa.keys.prf, sa.keys.skeyid_d, choice.keying,
                           inbound_spi=qm.inbound_spi, outbound_spi=choice.peer_spi,
                           ni_b=qm.ni_b, nr_b=qm.nr_b, pfs_shared_secret=qm.pfs_shared_secret)
    rekey_of = next((c.child_id for c in sa.children.values()
                     if c.remote_selector == qm.remote_selector
                     and c.local_selector == qm.local_selector), None)
    child = ChildSa(child_id=sa.next_child_id(), message_id=qm.message_id,
                    inbound_spi=qm.inbound_spi, outbound_spi=choice.peer_spi,
                    remote_selector=qm.remote_selector, local_selector=qm.local_selector,
                    choice=choice, established_at=ctx.now,
                    expires_at=ctx.now + choice.lifetime_seconds, dynamic=sa.dynamic)
    sa.children[child.child_id] = child
    ctx.sa_log(sa).info("child %d established: in %s out %s%s", child.child_id,
                        qm.inbound_spi.hex(), choice.peer_spi.hex(),
                        f" (rekey of child {rekey_of})" if rekey_of else "")

    def material(k) -> EspKeyMaterial:
        return EspKeyMaterial(k.spi, k.encryption_key, k.integrity_key, k.salt)

    ctx.emit(Phase2Established(
        sa_id=sa.sa_id, child_id=child.child_id, peer=sa.remote, local=sa.local,
        remote_selector=qm.remote_selector, local_selector=qm.local_selector,
        cipher=choice.esp.cipher, cipher_key_bits=choice.esp.key_length,
        integrity=choice.esp.auth or 0, inbound=material(keys.inbound),
        outbound=material(keys.outbound), encapsulation_mode=choice.encapsulation_mode,
        udp_encapsulated=choice.udp_encapsulated, pfs_group=choice.pfs_group,
        lifetime_seconds=choice.lifetime_seconds, lifetime_kilobytes=choice.lifetime_kilobytes,
        dynamic=sa.dynamic, rekey_of=rekey_of))

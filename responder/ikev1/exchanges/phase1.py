"""Pieces shared by the two phase 1 exchanges (Main and Aggressive Mode).

The dispatch of a message to its step, vendor IDs (recognition, our answer),
transform choice, nonces, DH and SKEYID derivation (RFC 2409 §5), HASH_I and
HASH_R, NAT-D (RFC 3947 §3), our identity and the moment the SA becomes
established.
"""

from __future__ import annotations

from typing import Callable, Mapping

from ..crypto.cipher import cipher_algorithm
from ..crypto.dh import dh_group
from ..crypto.errors import InvalidKeyInformation
from ..crypto.export import wireshark_ikev1_decryption_line
from ..crypto.iv import IVStore, MessageCipher
from ..crypto.phase1 import Phase1Keys
from ..crypto.prf import hash_algorithm
from ..buffer import Buffer
from ..enums import IdType, LifeType, NotifyType, Phase1Attribute, ProtocolId
from ..events import InitialContact, KeyExport, Phase1Established
from ..ike_sa import IkeSa
from ..message import Message
from ..natt import build_natd_hashes, detect_nat, natd_payload_type
from ..payloads import (
    DataAttribute,
    Hash,
    Identification,
    KeyExchange,
    NatDiscovery,
    Nonce,
    Notification,
    Proposal,
    SecurityAssociation,
    VendorId,
)
from ..policy import Identity
from ..proposals import choose_phase1
from ..vendor_ids import CISCO_UNITY, DPD, XAUTH, natt_vendor_id, peer_features
from ..errors import CodecError
from ..errors import RemoteProtocolError
from .common import (Dropped, ExchangeContext, check_nonce, StateTable, decrypt, offered_proposals,
                     protocol_error)

__all__ = [
    "NONCE_SIZE",
    "run_step",
    "note_vendor_ids",
    "our_vendor_ids",
    "choose_transform",
    "check_ke",
    "derive_keys",
    "take_nonces_and_derive_keys",
    "verify_hash_i",
    "our_identity_and_hash_r",
    "natd_payloads",
    "process_natd",
    "our_identity_payload",
    "peer_identity",
    "establish",
    "decrypt_final",
    "authenticate_final",
    "responder_lifetime",
]

NONCE_SIZE = 32

Address = tuple[str, int]
Step = Callable[[ExchangeContext, IkeSa, Message, Address, Address], list[bytes]]


def run_step(table: StateTable, classify: Callable[[Message], str], steps: Mapping[str, Step],
             ctx: ExchangeContext, sa: IkeSa, message: Message,
             local: Address, remote: Address) -> list[bytes]:
    """Classify the message, check the transition in the exchange's table, run
    the step; the SA moves to the table's next state unless the step
    established it."""
    event = classify(message)
    new_state = table.next(sa.state, event)
    replies = steps[event](ctx, sa, message, local, remote)
    if sa.state != "established":
        sa.state = new_state
    return replies


def note_vendor_ids(sa: IkeSa, message: Message) -> None:
    """Remember the peer's VIDs; the first message fixes the features."""
    vids = [p.data for p in message.payloads_of(VendorId)]
    sa.peer_vendor_ids.extend(vids)
    if not sa.established and sa.state == "start":
        sa.features = peer_features(vids)
        sa.natt_version = sa.features.natt_version


def our_vendor_ids(ctx: ExchangeContext, sa: IkeSa) -> list[VendorId]:
    """Xauth, DPD, Unity (only if the peer sent it), the NAT-T VID we chose.

    No fragmentation VID: we do not implement IKEv1 fragmentation.
    """
    vids = [VendorId(XAUTH.data), VendorId(DPD.data)]
    if sa.features.unity and ctx.policy.send_unity:
        vids.append(VendorId(CISCO_UNITY.data))
    if sa.natt_version is not None:
        vids.append(VendorId(natt_vendor_id(sa.natt_version)))
    return vids


def choose_transform(ctx: ExchangeContext, sa: IkeSa, sa_payload: SecurityAssociation,
                     sa_body: bytes, ke_length: int | None = None) -> SecurityAssociation:
    """Pick a transform, remember SAi_b, and build our SA payload (one
    proposal, one transform, attributes as offered: RFC 2409 §5)."""
    choice = choose_phase1(offered_proposals(sa_payload), ctx.policy.phase1, ke_length=ke_length)
    sa.choice = choice
    sa.sai_b = sa_body
    proposal = choice.proposal.raw
    return SecurityAssociation(
        doi=sa_payload.doi, situation=sa_payload.situation,
        proposals=[Proposal(number=proposal.number, protocol_id=ProtocolId.ISAKMP, spi=b"",
                            transforms=[choice.transform.raw])])


def check_ke(sa: IkeSa, ke: KeyExchange) -> None:
    assert sa.choice is not None
    group = dh_group(sa.choice.ike.group)
    if len(ke.key_data) != group.public_size:
        raise InvalidKeyInformation(
            f"KE of {len(ke.key_data)} bytes for {group.name} ({group.public_size} expected)")


def derive_keys(ctx: ExchangeContext, sa: IkeSa, peer_ke: bytes, psk: bytes) -> None:
    """Our DH pair, g^xy, SKEYID and friends, the phase 1 IV (RFC 2409 §5, App. B)."""
    assert sa.choice is not None
    ike = sa.choice.ike
    group = dh_group(ike.group)
    sa.dh = group.generate(ctx.random)
    sa.g_xi, sa.g_xr = peer_ke, sa.dh.public_bytes
    shared = sa.dh.compute_shared(peer_ke)
    prf = hash_algorithm(ike.hash)
    cipher = cipher_algorithm(ike.encryption)
    keys = Phase1Keys.derive_pre_shared_key(
        prf=prf, cipher=cipher, key_size=cipher.key_size(ike.key_length), psk=psk,
        ni_b=sa.ni_b, nr_b=sa.nr_b, shared_secret=shared, cky_i=sa.cky_i, cky_r=sa.cky_r)
    sa.keys = keys
    sa.cipher = MessageCipher(cipher, keys.encryption_key,
                              IVStore(prf, cipher.block_size, keys.initial_iv(sa.g_xi, sa.g_xr)))


def take_nonces_and_derive_keys(ctx: ExchangeContext, sa: IkeSa, message: Message,
                                ke: KeyExchange, psk: bytes) -> None:
    """Keep the PSK and the peer's nonce, draw ours, then derive_keys."""
    sa.psk = psk
    sa.ni_b = check_nonce(message.first(Nonce).data)
    sa.nr_b = ctx.random(NONCE_SIZE)
    derive_keys(ctx, sa, ke.key_data, psk)


def verify_hash_i(sa: IkeSa, message: Message, idii_b: bytes) -> None:
    """Check the peer's HASH_I (RFC 2409 §5.4) over its identity payload body."""
    assert sa.keys is not None
    sa.keys.verify_hash_i(message.first(Hash).data, g_xi=sa.g_xi, g_xr=sa.g_xr,
                          sai_b=sa.sai_b, idii_b=idii_b)


def our_identity_and_hash_r(ctx: ExchangeContext, sa: IkeSa) -> tuple[Identification, Hash]:
    """Our identity payload and the HASH_R computed over it (RFC 2409 §5.4)."""
    assert sa.keys is not None
    our_id = our_identity_payload(ctx, sa)
    hash_r = sa.keys.hash_r(g_xi=sa.g_xi, g_xr=sa.g_xr, sai_b=sa.sai_b, idir_b=our_id.serialize())
    return our_id, Hash(hash_r)


def responder_lifetime(sa: IkeSa) -> list[Notification]:
    """RESPONDER-LIFETIME (RFC 2407 §4.6.3.1) when we shortened the peer's
    phase 1 lifetime: protocol ISAKMP, SPI = the cookie pair, our lifetime as
    SA attributes. Sent in our last phase 1 message (MM msg 6 / AM msg 2)."""
    assert sa.choice is not None
    if not sa.choice.responder_lifetime:
        return []
    buf = Buffer()
    for attribute in (DataAttribute.tv(Phase1Attribute.LIFE_TYPE, LifeType.SECONDS),
                      DataAttribute.from_int(Phase1Attribute.LIFE_DURATION,
                                             sa.choice.lifetime_seconds)):
        attribute.push(buf)
    return [Notification(NotifyType.RESPONDER_LIFETIME, protocol_id=ProtocolId.ISAKMP,
                         spi=sa.cookies, data=buf.data)]


def natd_payloads(ctx: ExchangeContext, sa: IkeSa) -> list[NatDiscovery]:
    if sa.natt_version is None:
        return []
    assert sa.choice is not None
    hashes = build_natd_hashes(hash_algorithm(sa.choice.ike.hash), sa.cky_i, sa.cky_r,
                               local=sa.local, remote=sa.remote,
                               force_encap=ctx.policy.force_encap, rng=ctx.random)
    kind = natd_payload_type(sa.natt_version)
    return [NatDiscovery(h, kind) for h in hashes]


def process_natd(ctx: ExchangeContext, sa: IkeSa, message: Message,
                 local: tuple[str, int], remote: tuple[str, int]) -> None:
    """RFC 3947 §3.2 detection on the addresses this message used."""
    if sa.natt_version is None:
        return
    received = [p.hash_data for p in message.payloads_of(NatDiscovery)]
    if not received:
        return
    assert sa.choice is not None
    sa.nat = detect_nat(hash_algorithm(sa.choice.ike.hash), sa.cky_i, sa.cky_r, received,
                        local=local, remote=remote, force_encap=ctx.policy.force_encap)
    ctx.sa_log(sa).info("NAT-D: local behind NAT %s%s, peer behind NAT %s",
                        sa.nat.local_behind_nat, " (faked)" if sa.nat.faked else "",
                        sa.nat.peer_behind_nat)


def our_identity_payload(ctx: ExchangeContext, sa: IkeSa) -> Identification:
    identity = ctx.policy.local_identity
    if identity is None:
        return Identification.ipv4_address(sa.local[0]) if ":" not in sa.local[0] \
            else Identification.ipv6_address(sa.local[0])
    return Identification(identity.id_type, identity.to_payload_data())


def peer_identity(payload: Identification) -> Identity:
    try:
        return Identity.from_payload(int(payload.id_type), payload.data)
    except ValueError as exc:
        raise protocol_error(NotifyType.INVALID_ID_INFORMATION, f"bad identity: {exc}") from None


def check_identity_allowed(ctx: ExchangeContext, sa: IkeSa, identity: Identity) -> None:
    if not ctx.policy.identity_allowed(sa.remote[0], identity):
        raise protocol_error(NotifyType.AUTHENTICATION_FAILED,
                             f"IKE policy rule denies {identity} from {sa.remote[0]}")


def decrypt_final(sa: IkeSa, message: Message) -> tuple[Message, bytes]:
    """Decrypt MM msg 5 / AM msg 3. With a wrong pre-shared key the plaintext
    is garbage and fails to parse (RFC 2409 §5: the keys are derived from the
    PSK)."""
    return decrypt(sa, message)


def authenticate_final(ctx: ExchangeContext, sa: IkeSa, step: Callable[[], Message]) -> Message:
    """Run the checks of MM msg 5 / AM msg 3 up to HASH_I. Until HASH_I
    verifies, the message may come from anyone who saw the cookies: a failure
    is `Dropped` (counted as dropped_phase1_unauthenticated, no notify) and
    the half-open SA waits for the real message until its timeout."""
    try:
        decrypted = step()
    except RemoteProtocolError as exc:
        ctx.sa_log(sa).warning("%s mode final message does not authenticate (wrong "
                               "pre-shared key?), dropped: %s", sa.exchange, exc)
        raise Dropped("phase1_unauthenticated", str(exc),
                      answer=NotifyType.AUTHENTICATION_FAILED) from None
    ctx.authenticated = True
    return decrypted


def establish(ctx: ExchangeContext, sa: IkeSa, message: Message) -> None:
    assert sa.choice is not None and sa.identity is not None and sa.keys is not None
    sa.state = "established"
    sa.established_at = ctx.now
    sa.half_open_deadline = None
    sa.expires_at = ctx.now + sa.choice.lifetime_seconds
    sa.last_activity = ctx.now
    if sa.dynamic and ctx.policy.require_transaction:
        sa.transaction_deadline = ctx.now + ctx.policy.limits.transaction_timeout
    log = ctx.sa_log(sa)
    log.info("phase 1 %s established with %s (%s), %s, %s", sa.exchange, sa.remote,
             sa.identity, sa.choice.ike.describe(), "dynamic" if sa.dynamic else "static")
    features = sa.features
    ctx.emit(Phase1Established(
        sa_id=sa.sa_id, peer=sa.remote, local=sa.local, identity=sa.identity,
        dynamic=sa.dynamic, xauth_required=sa.xauth_required, exchange=sa.exchange,
        transform=sa.choice.ike.describe(),
        vendor_features=frozenset(name for name, on in (
            ("xauth", features.xauth), ("dpd", features.dpd), ("unity", features.unity),
            ("fragmentation", features.fragmentation)) if on),
        natt_version=sa.natt_version.value if sa.natt_version else "none",
        local_behind_nat=bool(sa.nat and sa.nat.local_behind_nat),
        peer_behind_nat=bool(sa.nat and sa.nat.peer_behind_nat),
        lifetime_seconds=sa.choice.lifetime_seconds))
    if ctx.policy.export_keys:
        ctx.emit(KeyExport(sa.sa_id, wireshark_ikev1_decryption_line(
            sa.cky_i, sa.keys.encryption_key)))
    for notify in message.payloads_of(Notification):
        if notify.notify_type == NotifyType.INITIAL_CONTACT:
            ctx.emit(InitialContact(sa.sa_id, sa.remote, sa.identity))
    # the DH private value and nonces are not needed any more
    sa.dh = None


def default_id_type(address: str) -> int:
    return IdType.IPV6_ADDR if ":" in address else IdType.IPV4_ADDR

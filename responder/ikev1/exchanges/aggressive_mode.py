"""Aggressive Mode responder, RFC 2409 §5 / §5.4 (PSK), RFC 3947 §3.2.

    msg 1  HDR, SA, KE, Ni, IDii, VID*
        -> msg 2  HDR, SA, KE, Nr, IDir, VID*, [NAT-D, NAT-D], HASH_R, [N(R-L)]
    msg 3  HDR[*], HASH_I, [NAT-D, NAT-D], [N(INITIAL-CONTACT)], VID*

The identity arrives in message 1, so the pre-shared key is chosen by it (a
vpnc group name as ID_KEY_ID). The exchange exposes HASH_R to anyone who
asks: an offline dictionary attack on the PSK, so it is allowed but warned
about (SPEC "User authentication"). Message 3 may be encrypted (vpnc does) or
not (RFC 2409 leaves it open).
"""

from __future__ import annotations

from ..enums import ExchangeType, NotifyType, PayloadType
from ..ike_sa import IkeSa
from ..message import Message
from ..payloads import (
    Hash,
    Identification,
    KeyExchange,
    NatDiscovery,
    Nonce,
    Notification,
    SecurityAssociation,
    VendorId,
)
from .common import (
    ExchangeContext,
    StateTable,
    accept,
    build_cleartext,
    protocol_error,
    raw_body,
    require_payloads,
)
from .phase1 import (
    decrypt_final,
    check_identity_allowed,
    choose_transform,
    derive_keys,
    establish,
    natd_payloads,
    note_vendor_ids,
    our_identity_payload,
    our_vendor_ids,
    peer_identity,
    process_natd,
    responder_lifetime,
)

__all__ = ["TABLE", "handle", "classify"]

TABLE = StateTable("aggressive_mode", {
    ("start", "sa_ke_id"): "auth_sent",
    ("auth_sent", "hash"): "established",
})

NONCE_SIZE = 32


def classify(message: Message) -> str:
    if not message.encrypted and message.first(SecurityAssociation) is not None:
        return "sa_ke_id"
    return "hash"


def handle(ctx: ExchangeContext, sa: IkeSa, message: Message,
           local: tuple[str, int], remote: tuple[str, int]) -> list[bytes]:
    event = classify(message)
    new_state = TABLE.next(sa.state, event)
    replies = _HANDLERS[event](ctx, sa, message, local, remote)
    if sa.state != "established":
        sa.state = new_state
    return replies


def _on_first(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    require_payloads(message, "aggressive mode msg 1",
                     exactly_one=(SecurityAssociation, KeyExchange, Nonce, Identification),
                     allowed=(VendorId,))
    log = ctx.sa_log(sa)
    note_vendor_ids(sa, message)
    id_payload = message.first(Identification)
    sa.identity = peer_identity(id_payload)
    check_identity_allowed(ctx, sa, sa.identity)
    psk = ctx.policy.psk_for_identity(sa.identity, local[0], remote[0])
    if psk is None:
        raise protocol_error(NotifyType.AUTHENTICATION_FAILED,
                             f"no pre-shared key for identity {sa.identity}")
    log.warning("aggressive mode with a pre-shared key for %s: HASH_R allows an offline "
                "attack on the key", sa.identity)
    ke = message.first(KeyExchange)
    sa_body = raw_body(message.header.next_payload, message.body, PayloadType.SA)
    our_sa = choose_transform(ctx, sa, message.first(SecurityAssociation), sa_body,
                              ke_length=len(ke.key_data))
    log.info("aggressive mode: chose %s", sa.choice.ike.describe())
    sa.psk = psk
    sa.ni_b = message.first(Nonce).data
    sa.nr_b = ctx.random(NONCE_SIZE)
    derive_keys(ctx, sa, ke.key_data, psk)
    our_id = our_identity_payload(ctx, sa)
    assert sa.keys is not None
    hash_r = sa.keys.hash_r(g_xi=sa.g_xi, g_xr=sa.g_xr, sai_b=sa.sai_b, idir_b=our_id.serialize())
    # kept for HASH_I in message 3
    sa.id_payload_body = raw_body(message.header.next_payload, message.body,
                                  PayloadType.IDENTIFICATION)
    payloads = [our_sa, KeyExchange(sa.g_xr), Nonce(sa.nr_b), our_id,
                *our_vendor_ids(ctx, sa), *natd_payloads(ctx, sa), Hash(hash_r),
                *responder_lifetime(sa)]
    return [build_cleartext(sa, ExchangeType.AGGRESSIVE, 0, payloads)]


def _on_hash(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    if message.encrypted:
        decrypted, _ = decrypt_final(sa, message)
    else:
        decrypted = message
    require_payloads(decrypted, "aggressive mode msg 3", exactly_one=(Hash,),
                     allowed=(NatDiscovery, Notification, VendorId))
    assert sa.keys is not None
    sa.keys.verify_hash_i(decrypted.first(Hash).data, g_xi=sa.g_xi, g_xr=sa.g_xr,
                          sai_b=sa.sai_b, idii_b=sa.id_payload_body)
    if message.encrypted:
        accept(sa, message)
    note_vendor_ids(sa, decrypted)
    # RFC 3947 §3.2: the initiator's NAT-D come in message 3. Compare them with
    # the addresses of message 1/2 (the float to 4500 happens with this one).
    process_natd(ctx, sa, decrypted, sa.local, sa.remote)
    sa.local, sa.remote = local, remote
    establish(ctx, sa, decrypted)
    return []


_HANDLERS = {"sa_ke_id": _on_first, "hash": _on_hash}

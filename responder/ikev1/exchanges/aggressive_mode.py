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
    check_identity_allowed,
    choose_transform,
    authenticate_final,
    decrypt_final,
    establish,
    our_identity_and_hash_r,
    peer_identity,
    responder_lifetime,
    run_step,
    take_nonces_and_derive_keys,
    verify_hash_i,
)
from . import phase1_tasks

__all__ = ["TABLE", "handle", "classify"]

TABLE = StateTable("aggressive_mode", {
    ("start", "sa_ke_id"): "auth_sent",
    ("auth_sent", "hash"): "established",
})


def classify(message: Message) -> str:
    if not message.encrypted and message.first(SecurityAssociation) is not None:
        return "sa_ke_id"
    return "hash"


def handle(ctx: ExchangeContext, sa: IkeSa, message: Message,
           local: tuple[str, int], remote: tuple[str, int]) -> list[bytes]:
    return run_step(TABLE, classify, _HANDLERS, ctx, sa, message, local, remote)


def _on_first(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    require_payloads(message, "aggressive mode msg 1",
                     exactly_one=(SecurityAssociation, KeyExchange, Nonce, Identification),
                     allowed=(VendorId,))
    log = ctx.sa_log(sa)
    phase1_tasks.read(("aggressive_mode", "sa_ke_id"), ctx, sa, message, local, remote)
    id_payload = message.first(Identification)
    sa.identity = peer_identity(id_payload)
    check_identity_allowed(ctx, sa, sa.identity)
    psk = ctx.policy.psk_for_identity(sa.identity, local[0], remote[0],
                                      fallback=ctx.policy.aggressive_address_keys)
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
    take_nonces_and_derive_keys(ctx, sa, message, ke, psk)
    our_id, hash_r = our_identity_and_hash_r(ctx, sa)
    # kept for HASH_I in message 3
    sa.id_payload_body = raw_body(message.header.next_payload, message.body,
                                  PayloadType.IDENTIFICATION)
    payloads = [our_sa, KeyExchange(sa.g_xr), Nonce(sa.nr_b), our_id,
                *phase1_tasks.payloads(("aggressive_mode", "sa_ke_id"), ctx, sa), hash_r,
                *responder_lifetime(sa)]
    return [build_cleartext(sa, ExchangeType.AGGRESSIVE, 0, payloads)]


def _on_hash(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    def check() -> Message:
        decrypted = decrypt_final(sa, message)[0] if message.encrypted else message
        require_payloads(decrypted, "aggressive mode msg 3", exactly_one=(Hash,),
                         allowed=(NatDiscovery, Notification, VendorId))
        verify_hash_i(sa, decrypted, sa.id_payload_body)
        return decrypted

    decrypted = authenticate_final(ctx, sa, check)
    if message.encrypted:
        accept(sa, message)
    # RFC 3947 §3.2: the initiator's NAT-D come in message 3. Compare them with
    # the addresses of message 1/2 (the float to 4500 happens with this one).
    phase1_tasks.read(("aggressive_mode", "hash"), ctx, sa, decrypted, sa.local, sa.remote)
    sa.local, sa.remote = local, remote
    establish(ctx, sa, decrypted)
    return []


_HANDLERS = {"sa_ke_id": _on_first, "hash": _on_hash}

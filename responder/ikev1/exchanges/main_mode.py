"""Main Mode (Identity Protection) responder, RFC 2409 §5 / §5.4 (PSK).

    msg 1  HDR, SA, VID*                      ->  msg 2  HDR, SA, VID*
    msg 3  HDR, KE, Ni, [NAT-D, NAT-D]        ->  msg 4  HDR, KE, Nr, [NAT-D, NAT-D]
    msg 5  HDR*, IDii, HASH_I, [N(IC)]        ->  msg 6  HDR*, IDir, HASH_R, [N(R-L)]

N(R-L): RESPONDER-LIFETIME when we shorten the peer's proposed lifetime.

The pre-shared key is chosen by addresses at message 3 (the identity is only
known, encrypted, in message 5: RFC 2409 §5.4).
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
    build_encrypted,
    protocol_error,
    raw_body,
    require_payloads,
)
from .phase1 import (
    check_identity_allowed,
    check_ke,
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

TABLE = StateTable("main_mode", {
    ("start", "sa"): "sa_sent",
    ("sa_sent", "ke_nonce"): "ke_sent",
    ("ke_sent", "id_hash"): "established",
})


def classify(message: Message) -> str:
    if message.encrypted:
        return "id_hash"
    if message.first(SecurityAssociation) is not None:
        return "sa"
    if message.first(KeyExchange) is not None:
        return "ke_nonce"
    return "unknown"


def handle(ctx: ExchangeContext, sa: IkeSa, message: Message,
           local: tuple[str, int], remote: tuple[str, int]) -> list[bytes]:
    return run_step(TABLE, classify, _HANDLERS, ctx, sa, message, local, remote)


def _on_sa(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    require_payloads(message, "main mode msg 1", exactly_one=(SecurityAssociation,),
                     allowed=(VendorId,))
    phase1_tasks.read(("main_mode", "sa"), ctx, sa, message, local, remote)
    sa_body = raw_body(message.header.next_payload, message.body, PayloadType.SA)
    our_sa = choose_transform(ctx, sa, message.first(SecurityAssociation), sa_body)
    ctx.sa_log(sa).info("main mode: chose %s", sa.choice.ike.describe())
    return [build_cleartext(sa, ExchangeType.IDENTITY_PROTECTION, 0,
                            [our_sa, *phase1_tasks.payloads(("main_mode", "sa"), ctx, sa)])]


def _on_ke(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    require_payloads(message, "main mode msg 3", exactly_one=(KeyExchange, Nonce),
                     allowed=(NatDiscovery, VendorId))
    ke = message.first(KeyExchange)
    check_ke(sa, ke)
    psk = ctx.policy.psk_for_addresses(local[0], remote[0])
    if psk is None:
        raise protocol_error(NotifyType.AUTHENTICATION_FAILED,
                             f"no pre-shared key for {local[0]} <- {remote[0]}")
    take_nonces_and_derive_keys(ctx, sa, message, ke, psk)
    phase1_tasks.read(("main_mode", "ke_nonce"), ctx, sa, message, local, remote)
    payloads = [KeyExchange(sa.g_xr), Nonce(sa.nr_b),
                *phase1_tasks.payloads(("main_mode", "ke_nonce"), ctx, sa)]
    return [build_cleartext(sa, ExchangeType.IDENTITY_PROTECTION, 0, payloads)]


def _on_id_hash(ctx: ExchangeContext, sa: IkeSa, message: Message, local, remote) -> list[bytes]:
    def check() -> Message:
        decrypted, plaintext = decrypt_final(sa, message)
        require_payloads(decrypted, "main mode msg 5", exactly_one=(Identification, Hash),
                         allowed=(Notification, VendorId))
        idii_b = raw_body(decrypted.header.next_payload, plaintext, PayloadType.IDENTIFICATION)
        verify_hash_i(sa, decrypted, idii_b)
        return decrypted

    decrypted = authenticate_final(ctx, sa, check)
    accept(sa, message)
    sa.identity = peer_identity(decrypted.first(Identification))
    check_identity_allowed(ctx, sa, sa.identity)
    phase1_tasks.read(("main_mode", "id_hash"), ctx, sa, decrypted, local, remote)
    our_id, hash_r = our_identity_and_hash_r(ctx, sa)
    # RFC 3947 §4: the peer may have floated to 4500 with this message
    sa.local, sa.remote = local, remote
    reply = build_encrypted(sa, ExchangeType.IDENTITY_PROTECTION, 0,
                            [our_id, hash_r, *responder_lifetime(sa)])
    establish(ctx, sa, decrypted)
    return [reply]


_HANDLERS = {"sa": _on_sa, "ke_nonce": _on_ke, "id_hash": _on_id_hash}

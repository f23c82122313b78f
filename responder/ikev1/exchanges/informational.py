"""Informational exchange (RFC 2408 §4.8, RFC 2409 §5.7) and DPD (RFC 3706).

Received, after phase 1: HDR*, HASH(1), N/D. The hash is verified before
anything is looked at; a bad one, one in clear or before phase 1, and one
whose message ID this SA already received (a replay) are `Dropped` (answering
could loop, and acting on them would let anyone delete or move an SA).
Handled: Delete of the ISAKMP SA (cookie pair as SPI) or of ESP SAs (either
SPI of a pair: vpnc lists both), INITIAL-CONTACT, R-U-THERE (answered with
R-U-THERE-ACK echoing the sequence number, only when the peer sent the DPD
vendor ID, RFC 3706 §5.2), R-U-THERE-ACK (clears our probe when the sequence
number matches, §5.3), error notifies (logged).

Sent: each message is its own exchange with a fresh random message id.
DPD's own "state machine" is the table below, on the IKE SA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..enums import ExchangeType, NotifyType, ProtocolId, lookup
from ..events import Event, InitialContact, PeerDead
from ..ike_sa import IkeSa
from ..message import Message
from ..payloads import Delete, Hash, Notification, Payload
from .common import (
    ExchangeContext,
    Dropped,
    StateTable,
    authenticated,
    build_cleartext,
    build_protected,
    require_payloads,
    verified_decrypt,
)

__all__ = ["DPD_TABLE", "PeerRequests", "handle", "build_notify", "build_delete",
           "build_dpd", "dpd_due", "unprotected_notify"]

#: RFC 3706 §5.3/§5.5 as a table on the IKE SA (field `dpd_outstanding`).
DPD_TABLE = StateTable("dpd", {
    ("idle", "idle_timeout"): "probing",
    ("idle", "ack"): "idle",  # stale ack: ignored
    ("probing", "ack"): "idle",
    ("probing", "idle_timeout"): "probing",  # another R-U-THERE (strongSwan: every interval)
    ("probing", "dead_timeout"): "dead",
    ("idle", "traffic"): "idle",
    ("probing", "traffic"): "idle",
})


@dataclass
class PeerRequests:
    """What the peer asked for in one informational message."""

    delete_phase1: bool = False
    delete_spis: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)
    #: it did something only the live peer would ask for now (a fresh
    #: R-U-THERE, the ACK of our probe, a Delete of something that exists):
    #: a sign of life, and the peer's current address. Other notifies do not
    #: count, so that old ones played back (once their message ID has left the
    #: window) cannot keep a dead SA alive or move it.
    alive: bool = False


def dpd_state(sa: IkeSa) -> str:
    return "probing" if sa.dpd_outstanding is not None else "idle"


def dpd_move(sa: IkeSa, event: str) -> str:
    """DPD_TABLE decides: the new state of the SA after `event` (InvalidTransition if
    the table has no row). Back to "idle" forgets the outstanding probe; "probing" is
    entered by the caller sending one, "dead" by the caller removing the SA."""
    new = DPD_TABLE.next(dpd_state(sa), event)
    if new == "idle":
        sa.dpd_outstanding = None
        sa.dpd_sent_at = None
    return new


def handle(ctx: ExchangeContext, sa: IkeSa, message: Message) -> PeerRequests:
    """Process one received informational; the engine applies the result."""
    result = PeerRequests()
    log = ctx.sa_log(sa)
    if not message.encrypted:
        # RFC 2408 §5: unauthenticated notifies cannot change state
        for notify in message.payloads_of(Notification):
            log.warning("unprotected notify %s from %s ignored",
                        lookup(NotifyType, notify.notify_type).name, sa.remote)
        raise Dropped("unauthenticated", "informational in clear")
    if not sa.established:
        raise Dropped("unauthenticated", "protected informational before phase 1 completed")
    decrypted, _ = verified_decrypt(sa, message)
    authenticated(ctx, sa, message.header.message_id, seen=sa.seen_informational_ids)
    require_payloads(decrypted, "informational", exactly_one=(Hash,),
                     allowed=(Notification, Delete))
    for payload in decrypted.payloads[1:]:
        handler = _PAYLOAD_HANDLERS.get(type(payload))
        if handler is not None:
            handler(ctx, sa, payload, result)
        if result.delete_phase1:
            # the SA this message came on is gone: what follows would act on
            # (or answer on) a deleted SA (the pattern of CVE-2023-38712)
            break
    return result


def _on_notify(ctx: ExchangeContext, sa: IkeSa, notify: Notification,
               result: PeerRequests) -> None:
    log = ctx.sa_log(sa)
    kind = notify.notify_type
    if kind == NotifyType.R_U_THERE:
        _take_peer_sequence(sa, notify)
        result.alive = True
        if not sa.dpd_supported:
            log.info("R-U-THERE from a peer without the DPD vendor ID: not answered")
            return
        result.replies.append(build_dpd(ctx, sa, NotifyType.R_U_THERE_ACK, notify.data))
    elif kind == NotifyType.R_U_THERE_ACK:
        _on_dpd_ack(ctx, sa, notify)
        result.alive = True
    elif kind == NotifyType.INITIAL_CONTACT:
        result.events.append(InitialContact(sa.sa_id, sa.remote, sa.identity))
    else:
        log.warning("notify %s from peer (spi %s)", lookup(NotifyType, kind).name,
                    notify.spi.hex())


def _sequence(notify: Notification) -> int | None:
    return int.from_bytes(notify.data[:4], "big") if len(notify.data) >= 4 else None


def _take_peer_sequence(sa: IkeSa, notify: Notification) -> None:
    """RFC 3706 §7: the receiver checks the R-U-THERE sequence number; one
    not newer than the last accepted (serial arithmetic, it may wrap) is a
    replay of a message whose ID has left the window."""
    sequence = _sequence(notify)
    if sequence is None:
        raise Dropped("dpd_malformed", "R-U-THERE without a 32-bit sequence number")
    last = sa.dpd_peer_sequence
    if last is not None and not 0 < (sequence - last) % 2**32 < 2**31:
        raise Dropped("dpd_replay", f"R-U-THERE {sequence} not newer than {last}")
    sa.dpd_peer_sequence = sequence


def _on_dpd_ack(ctx: ExchangeContext, sa: IkeSa, notify: Notification) -> None:
    """Only the answer to our outstanding probe counts; any other ACK (late,
    or played back) proves nothing."""
    sequence = _sequence(notify)
    if notify.spi != sa.cookies or sequence != sa.dpd_outstanding:
        raise Dropped("dpd_stale_ack", f"R-U-THERE-ACK {sequence} does not match probe "
                      f"{sa.dpd_outstanding}")
    dpd_move(sa, "ack")


def _on_delete(ctx: ExchangeContext, sa: IkeSa, delete: Delete, result: PeerRequests) -> None:
    if delete.protocol_id == ProtocolId.ISAKMP:
        if any(spi == sa.cookies for spi in delete.spis):
            result.delete_phase1 = True
            result.alive = True
        else:
            ctx.sa_log(sa).warning("ISAKMP delete for other cookies ignored")
    elif delete.protocol_id == ProtocolId.IPSEC_ESP:
        result.delete_spis.extend(delete.spis)
        result.alive = result.alive or any(sa.child_by_spi(spi) for spi in delete.spis)
    else:
        ctx.sa_log(sa).info("delete for protocol %s ignored", delete.protocol_id)


#: payload class -> its handler (require_payloads admits only these after HASH)
_PAYLOAD_HANDLERS = {Notification: _on_notify, Delete: _on_delete}


# ---------------------------------------------------------------------------
# Building our informationals
# ---------------------------------------------------------------------------


def _message_id(ctx: ExchangeContext) -> int:
    while True:
        mid = int.from_bytes(ctx.random(4), "big")
        if mid:
            return mid


def build_protected_informational(ctx: ExchangeContext, sa: IkeSa,
                                  payloads: list[Payload]) -> bytes:
    return build_protected(sa, ExchangeType.INFORMATIONAL, _message_id(ctx), payloads)


def build_notify(ctx: ExchangeContext, sa: IkeSa, notify_type: int, *,
                 protocol: int = ProtocolId.ISAKMP, spi: bytes | None = None,
                 data: bytes = b"") -> bytes:
    notify = Notification(notify_type, protocol_id=protocol,
                          spi=sa.cookies if spi is None else spi, data=data)
    return build_protected_informational(ctx, sa, [notify])


def unprotected_notify(sa: IkeSa, notify_type: int, data: bytes = b"") -> bytes:
    """Before phase 1 completes there are no keys (RFC 2408 §5)."""
    notify = Notification(notify_type, protocol_id=ProtocolId.ISAKMP, spi=sa.cookies, data=data)
    return build_cleartext(sa, ExchangeType.INFORMATIONAL, 0, [notify])


def build_delete(ctx: ExchangeContext, sa: IkeSa, protocol: int, spis: list[bytes]) -> bytes:
    return build_protected_informational(ctx, sa, [Delete(protocol_id=protocol, spis=spis)])


def build_dpd(ctx: ExchangeContext, sa: IkeSa, kind: int, sequence: bytes) -> bytes:
    """R-U-THERE / -ACK: SPI = cookie pair, data = 32-bit sequence (RFC 3706 §5.1)."""
    return build_notify(ctx, sa, kind, spi=sa.cookies, data=sequence)


def dpd_due(ctx: ExchangeContext, sa: IkeSa) -> list[bytes] | None:
    """Timer step of RFC 3706 §5.5. Returns datagrams to send, or None when
    the peer is declared dead (the engine removes the SA)."""
    dpd = ctx.policy.dpd
    if not (dpd.enabled and sa.established and sa.dpd_supported):
        return []
    idle = ctx.now - sa.last_activity
    if sa.dpd_outstanding is not None and idle >= dpd.timeout and \
            dpd_move(sa, "dead_timeout") == "dead":
        ctx.emit(PeerDead(sa.sa_id, sa.remote))
        return None
    last_probe = sa.dpd_sent_at if sa.dpd_sent_at is not None else sa.last_activity
    if ctx.now - last_probe < dpd.interval:
        return []
    if dpd_move(sa, "idle_timeout") != "probing":
        return []
    if sa.dpd_sequence == 0:
        # RFC 3706 §5.4: start from a random sequence number
        sa.dpd_sequence = int.from_bytes(ctx.random(4), "big") & 0x7FFFFFFF or 1
    else:
        sa.dpd_sequence = (sa.dpd_sequence + 1) & 0xFFFFFFFF
    sa.dpd_outstanding = sa.dpd_sequence
    sa.dpd_sent_at = ctx.now
    ctx.sa_log(sa).info("DPD: R-U-THERE %d after %.1f s idle", sa.dpd_sequence, idle)
    return [build_dpd(ctx, sa, NotifyType.R_U_THERE, sa.dpd_sequence.to_bytes(4, "big"))]


def dpd_next_time(ctx_policy, sa: IkeSa) -> float | None:
    dpd = ctx_policy.dpd
    if not (dpd.enabled and sa.established and sa.dpd_supported):
        return None
    last_probe = sa.dpd_sent_at if sa.dpd_sent_at is not None else sa.last_activity
    candidates = [last_probe + dpd.interval]
    if sa.dpd_outstanding is not None:
        candidates.append(sa.last_activity + dpd.timeout)
    return min(candidates)


def note_traffic(sa: IkeSa, now: float) -> None:
    """Any authenticated message or ESP packet proves the peer alive (§5.5)."""
    dpd_move(sa, "traffic")
    sa.last_activity = max(sa.last_activity, now)

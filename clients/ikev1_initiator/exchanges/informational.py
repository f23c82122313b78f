"""Informational exchanges: error and status notifies, DPD (RFC 3706) both ways,
Delete of child SAs and of the ISAKMP SA, sent and received."""

from __future__ import annotations

from responder.ikev1.enums import ExchangeType, NotifyType, ProtocolId, lookup
from responder.ikev1.message import Header, Message
from responder.ikev1.payloads import Delete, Notification

from ..core import SessionCore, log
from ..hooks import Step
from ..results import ChildSaDeleted, DpdAnswered, DpdRequest, SessionClosed
from ..states import KEYED, PHASE1, TERMINAL, InvalidTransition, State

#: Notify types below this are errors (RFC 2408 §3.14.1), the rest status
FIRST_STATUS_NOTIFY = 8192


def receive(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    if not header.encrypted:
        _on_clear_notify(s, Message.parse(data), now)
        return
    message, plaintext = s.decrypt(header, data)
    s.verify_hash1(message, plaintext)
    for payload in message.payloads[1:]:
        if s.state in TERMINAL:
            return
        if isinstance(payload, Notification):
            _on_notify(s, payload, now)
        elif isinstance(payload, Delete):
            _on_delete(s, payload, now)


def _on_clear_notify(s: SessionCore, message: Message, now: float) -> None:
    # unauthenticated: believed only while phase 1 is still being negotiated
    for notify in message.payloads_of(Notification):
        if s.state in PHASE1 and notify.notify_type < FIRST_STATUS_NOTIFY:
            name = lookup(NotifyType, notify.notify_type).name
            s.fail(f"server refused phase 1: {name}", now, notify.notify_type)
            return
    s.log_drop("unprotected informational")


def _on_notify(s: SessionCore, notify: Notification, now: float) -> None:
    if notify.notify_type == NotifyType.R_U_THERE:
        ack = Notification(NotifyType.R_U_THERE_ACK, spi=notify.spi, data=notify.data)
        # RFC 3706 §5.1: the ACK is a new informational exchange
        s.emit_protected(Step.DPD_ACK, ExchangeType.INFORMATIONAL, s.new_message_id(), [ack])
        s.event_queue.append(DpdRequest(_sequence(notify.data)))
        return
    if notify.notify_type == NotifyType.R_U_THERE_ACK:
        sequence = _sequence(notify.data)
        if sequence is not None and sequence == s.dpd_sequence:
            s.event_queue.append(DpdAnswered(sequence))
        return
    name = lookup(NotifyType, notify.notify_type).name
    if notify.notify_type < FIRST_STATUS_NOTIFY and s.state is not State.ESTABLISHED:
        s.fail(f"server error notify {name} in state {s.state.value}", now, notify.notify_type)
        return
    log.info("[%s] server notify %s", s.name, name)


def _on_delete(s: SessionCore, delete: Delete, now: float) -> None:
    if delete.protocol_id == ProtocolId.ISAKMP:
        if s.cky_i + s.cky_r in delete.spis:
            _peer_closed(s, now)
        return
    for child in list(s.children):
        if child.outbound_spi in delete.spis or child.inbound_spi in delete.spis:
            s.children.remove(child)
            s.event_queue.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, True))


def _peer_closed(s: SessionCore, now: float) -> None:
    for child in s.children:
        s.event_queue.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, True))
    s.children.clear()
    s.advance("peer_delete")
    s.finish(now)
    s.event_queue.append(SessionClosed("peer-delete"))
    log.info("[%s] server deleted the phase 1 SA", s.name)


def send_dpd(s: SessionCore) -> int:
    """One R-U-THERE (RFC 3706 §5.1) on the phase 1 SA; returns its sequence number."""
    if s.state not in KEYED:
        raise InvalidTransition(s.state, "send_dpd")
    if s.dpd_sequence is None:
        s.dpd_sequence = int.from_bytes(s.rng(4), "big") & 0x7FFFFFFF or 1
    else:
        s.dpd_sequence = (s.dpd_sequence + 1) & 0xFFFFFFFF
    probe = Notification(NotifyType.R_U_THERE, spi=s.cky_i + s.cky_r,
                         data=s.dpd_sequence.to_bytes(4, "big"))
    s.emit_protected(Step.DPD_PROBE, ExchangeType.INFORMATIONAL, s.new_message_id(), [probe])
    return s.dpd_sequence


def send_deletes(s: SessionCore) -> None:
    spis = [child.inbound_spi for child in s.children]
    if spis:
        s.emit_protected(Step.DELETE, ExchangeType.INFORMATIONAL, s.new_message_id(),
                         [Delete(ProtocolId.IPSEC_ESP, spis)])
    for child in s.children:
        s.event_queue.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, False))
    s.children.clear()
    s.emit_protected(Step.DELETE, ExchangeType.INFORMATIONAL, s.new_message_id(),
                     [Delete(ProtocolId.ISAKMP, [s.cky_i + s.cky_r])])


def _sequence(data: bytes) -> int | None:
    """The 32-bit DPD sequence number of an R-U-THERE(-ACK) notify (RFC 3706 §5.1)."""
    return int.from_bytes(data[:4], "big") if len(data) >= 4 else None

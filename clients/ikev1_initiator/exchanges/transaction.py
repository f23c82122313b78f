"""Transaction exchanges (draft-dukes-ike-mode-cfg): Xauth answered and its status
acknowledged, then the Mode-Config pull (or a pushed SET acknowledged)."""

from __future__ import annotations

from responder.ikev1.enums import (
    CfgType,
    ConfigAttribute,
    ExchangeType,
    NotifyType,
    XauthStatus,
    lookup,
)
from responder.ikev1.message import Header
from responder.ikev1.payloads import AttributePayload, DataAttribute

from ..core import SessionCore, log
from ..hooks import Step
from ..results import ConfigReceived, SessionFailed, XauthDone
from ..states import PeerError, State
from ..wire import mode_config_from_attributes, request_attributes
from . import quick_mode


def after_authentication(s: SessionCore, now: float) -> None:
    """Phase 1 (and Xauth, if any) done: Mode-Config, then Quick Mode."""
    if s.config.mode_config:
        send_modecfg_request(s, now)
    else:
        quick_mode.after_config(s, now)


def receive(s: SessionCore, header: Header, data: bytes, now: float) -> None:
    message, plaintext = s.decrypt(header, data)
    s.verify_hash1(message, plaintext)
    s.accept(header, data)
    attributes = message.first(AttributePayload)
    if attributes is None:
        raise PeerError("Transaction without attribute payload", NotifyType.PAYLOAD_MALFORMED)
    kind = attributes.cfg_type
    status = attributes.attribute(ConfigAttribute.XAUTH_STATUS)
    if kind == CfgType.REQUEST and attributes.attribute(ConfigAttribute.XAUTH_USER_NAME):
        _on_xauth_request(s, header, data, attributes)
    elif kind == CfgType.SET and status is not None:
        _on_xauth_status(s, header, data, attributes, status, now)
    elif kind == CfgType.SET:
        _on_config_push(s, header, data, attributes, now)
    elif kind == CfgType.REPLY and header.message_id == s.modecfg_mid:
        _on_config_reply(s, attributes, now)
    else:
        s.log_drop(f"Transaction {lookup(CfgType, kind).name} not expected")


# ---- Xauth
def _on_xauth_request(s: SessionCore, header: Header, data: bytes,
                      request: AttributePayload) -> None:
    if not s.config.wants_xauth:
        raise PeerError("Xauth requested but no credentials configured")
    s.advance("xauth_request")
    s.deadline = None
    s.reply_arrived()
    reply = AttributePayload(CfgType.REPLY, request.identifier, xauth_answers(s, request))
    datagram = s.emit_protected(Step.XAUTH_REPLY, ExchangeType.TRANSACTION, header.message_id,
                                [reply])
    s.remember_answer(data, [datagram])


def xauth_answers(s: SessionCore, request: AttributePayload) -> list[DataAttribute]:
    answers: list[DataAttribute] = []
    for attribute in request.attributes:
        if attribute.attr_type == ConfigAttribute.XAUTH_TYPE:
            answers.append(DataAttribute(attribute.attr_type, attribute.value))
        elif attribute.attr_type == ConfigAttribute.XAUTH_USER_NAME:
            answers.append(DataAttribute.tlv(attribute.attr_type,
                                             (s.config.xauth_user or "").encode()))
        elif attribute.attr_type == ConfigAttribute.XAUTH_USER_PASSWORD:
            answers.append(DataAttribute.tlv(attribute.attr_type, s.config.xauth_password or b""))
    return answers


def _on_xauth_status(s: SessionCore, header: Header, data: bytes, attributes: AttributePayload,
                     status: DataAttribute, now: float) -> None:
    success = status.as_int() == XauthStatus.OK
    s.advance("xauth_success" if success else "xauth_failure")
    # strongSwan's ACK: the attribute echoed with zero length (draft-dukes §3.2)
    ack = AttributePayload(CfgType.ACK, attributes.identifier,
                           [DataAttribute.tlv(ConfigAttribute.XAUTH_STATUS, b"")])
    datagram = s.emit_protected(Step.XAUTH_ACK, ExchangeType.TRANSACTION, header.message_id, [ack])
    s.remember_answer(data, [datagram])
    s.event_queue.append(XauthDone(success))
    if not success:
        _fail_after_transition(s, "Xauth rejected by the server", now)
        return
    s.timings.xauth = now
    after_authentication(s, now)


def _fail_after_transition(s: SessionCore, reason: str, now: float) -> None:
    # the table already moved us to FAILED (xauth_failure); record why
    s.error = reason
    s.finish(now)
    s.event_queue.append(SessionFailed(reason))
    log.warning("[%s] %s", s.name, reason)


# ---- Mode-Config
def send_modecfg_request(s: SessionCore, now: float) -> None:
    s.advance("request_config")
    s.modecfg_mid = s.new_message_id()
    request = request_attributes(s.config.mode_config_request)
    datagram = s.emit_protected(Step.MODECFG_REQUEST, ExchangeType.TRANSACTION, s.modecfg_mid,
                                [request])
    s.expect_reply(datagram, now)


def _on_config_reply(s: SessionCore, attributes: AttributePayload, now: float) -> None:
    s.advance("config_received")
    s.reply_arrived()
    _config_received(s, attributes, now)


def _on_config_push(s: SessionCore, header: Header, data: bytes, attributes: AttributePayload,
                    now: float) -> None:
    ack = AttributePayload(CfgType.ACK, attributes.identifier,
                           [DataAttribute.tlv(a.attr_type, b"") for a in attributes.attributes])
    datagram = s.emit_protected(Step.MODECFG_ACK, ExchangeType.TRANSACTION, header.message_id,
                                [ack])
    s.remember_answer(data, [datagram])
    if s.state is State.MODECFG_SENT:
        s.advance("config_received")
        s.reply_arrived()
        _config_received(s, attributes, now)
    else:
        s.mode_config = mode_config_from_attributes(attributes.attributes)
        s.event_queue.append(ConfigReceived(s.mode_config))


def _config_received(s: SessionCore, attributes: AttributePayload, now: float) -> None:
    s.mode_config = mode_config_from_attributes(attributes.attributes)
    s.timings.mode_config = now
    s.event_queue.append(ConfigReceived(s.mode_config))
    log.info("[%s] Mode-Config: address %s", s.name, s.mode_config.address)
    quick_mode.after_config(s, now)

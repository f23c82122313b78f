"""Xauth, generic type (draft-ietf-ipsec-isakmp-xauth-06), edge-device side.

Pure data and codec: the attributes we send, the decoding of what the client
answers, and the per-SA state table. The Transaction task
(exchanges/transaction.py) drives it.

Exchange (xauth-06 §4.1, §4.2), each pair on its own message ID:

    REQUEST(USER_NAME, USER_PASSWORD)  ->  REPLY(USER_NAME=u, USER_PASSWORD=p)
    SET(XAUTH_STATUS=OK|FAIL)          ->  ACK(XAUTH_STATUS)

Our REQUEST carries exactly USER_NAME and USER_PASSWORD, empty, like the
strongSwan gateway in the reference captures: XAUTH_TYPE is optional and
defaults to generic (xauth-06 §3.3), and some clients reject a REQUEST whose
attribute set they do not expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .enums import CfgType, ConfigAttribute, XauthStatus, XauthType
from .errors import MalformedAttribute
from .exchanges.common import StateTable
from .payloads import AttributePayload, DataAttribute

__all__ = [
    "XAUTH_TABLE",
    "XAUTH_ATTRIBUTES",
    "InvalidXauthReply",
    "XauthReply",
    "is_xauth_attribute",
    "request_attributes",
    "status_attributes",
    "parse_reply",
    "strip_one_nul",
]

#: xauth-06 §3.3: the Xauth attribute numbers 16520-16529.
XAUTH_ATTRIBUTES = frozenset(a for a in ConfigAttribute if 16520 <= a <= 16529)

#: Per-SA Xauth progress (h11 style: a missing pair is an out-of-order event).
#: "retry" re-prompts with a fresh REQUEST (strongSwan and Cisco do so after a
#: denial); "give_up" sends XAUTH_STATUS=FAIL.
XAUTH_TABLE = StateTable("xauth", {
    ("start", "request_sent"): "requested",
    ("start", "skip"): "succeeded",  # policy: no Xauth for this SA
    ("requested", "reply"): "checking",  # waiting for AAA
    ("requested", "retry"): "requested",  # unusable reply, attempts left
    ("requested", "give_up"): "failing",
    ("checking", "retry"): "requested",  # AAA denied, attempts left
    ("checking", "give_up"): "failing",
    ("checking", "granted"): "confirming",  # SET(STATUS=OK) sent
    ("confirming", "ack"): "succeeded",
    ("failing", "ack"): "failed",
})


class InvalidXauthReply(MalformedAttribute):
    """A CFG_REPLY without a usable user name / password (counts as a failed
    attempt; never a crash)."""


@dataclass(frozen=True)
class XauthReply:
    username: str
    password: bytes = field(repr=False)


def is_xauth_attribute(attr_type: int) -> bool:
    return int(attr_type) in XAUTH_ATTRIBUTES


def request_attributes(message: str | None = None) -> list[DataAttribute]:
    """REQUEST body: empty USER_NAME and USER_PASSWORD ("please fill in"),
    plus an XAUTH_MESSAGE to show the user when re-prompting."""
    attributes = [DataAttribute.tlv(ConfigAttribute.XAUTH_USER_NAME, b""),
                  DataAttribute.tlv(ConfigAttribute.XAUTH_USER_PASSWORD, b"")]
    if message:
        attributes.append(DataAttribute.tlv(ConfigAttribute.XAUTH_MESSAGE, message.encode()))
    return attributes


def status_attributes(ok: bool, message: str | None = None) -> list[DataAttribute]:
    """SET body: XAUTH_STATUS as a basic (TV) attribute, as strongSwan sends."""
    status = XauthStatus.OK if ok else XauthStatus.FAIL
    attributes = [DataAttribute.tv(ConfigAttribute.XAUTH_STATUS, status)]
    if message:
        attributes.append(DataAttribute.tlv(ConfigAttribute.XAUTH_MESSAGE, message.encode()))
    return attributes


def strip_one_nul(value: bytes) -> bytes:
    """Some clients (iOS/racoon-derived) send C strings: drop ONE trailing NUL.
    Only one, so that a password that really ends in NUL bytes is not
    silently shortened further."""
    return value[:-1] if value.endswith(b"\x00") else value


def parse_reply(payload: AttributePayload) -> XauthReply:
    """User name and password of a CFG_REPLY; `InvalidXauthReply` otherwise."""
    if payload.cfg_type != CfgType.REPLY:
        raise InvalidXauthReply(f"Xauth answer of type {payload.cfg_type}, REPLY expected")
    xauth_type = payload.attribute(ConfigAttribute.XAUTH_TYPE)
    if xauth_type is not None:
        try:
            kind = xauth_type.as_int()
        except MalformedAttribute:  # e.g. empty: an unusable reply, not a crash
            raise InvalidXauthReply("XAUTH_TYPE without a value") from None
        if kind != XauthType.GENERIC:
            raise InvalidXauthReply(f"XAUTH_TYPE {kind} not supported (generic only)")
    username = _bytes_value(payload, ConfigAttribute.XAUTH_USER_NAME)
    password = strip_one_nul(_bytes_value(payload, ConfigAttribute.XAUTH_USER_PASSWORD))
    try:
        name = strip_one_nul(username).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidXauthReply("XAUTH_USER_NAME is not UTF-8") from None
    if not name:
        raise InvalidXauthReply("empty XAUTH_USER_NAME")
    return XauthReply(name, password)


def _bytes_value(payload: AttributePayload, attr_type: ConfigAttribute) -> bytes:
    attribute = payload.attribute(attr_type)
    if attribute is None:
        raise InvalidXauthReply(f"{attr_type.name} missing")
    if attribute.is_tv:
        raise InvalidXauthReply(f"{attr_type.name} sent as a basic attribute")
    return bytes(attribute.value)


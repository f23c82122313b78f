"""A registry record as the RADIUS accounting session the supervisor starts for it
(RFC 2866 attributes of the NAS and the port, Class, Interim-Interval)."""
from __future__ import annotations

import ipaddress
import time

from responder.aaa.accounting import AccountingSession
from responder.config.model import ResponderConfig

__all__ = ["accounting_session"]

#: RFC 2865 §5.41 NAS-Port-Type Virtual, §5.6 Service-Type Framed
NAS_PORT_TYPE_VIRTUAL = 5
SERVICE_TYPE_FRAMED = 2


def accounting_session(cfg: ResponderConfig, record: dict) -> AccountingSession:
    radius = cfg.aaa.radius
    nas = {"NAS-Port": int(record["id"]), "NAS-Port-Type": NAS_PORT_TYPE_VIRTUAL,
           "Service-Type": SERVICE_TYPE_FRAMED,
           "Calling-Station-Id": record["peer"].rsplit(":", 1)[0]}
    if radius is not None and radius.nas_ip:
        nas["NAS-IP-Address"] = str(radius.nas_ip)
    if radius is not None and radius.nas_identifier:
        nas["NAS-Identifier"] = radius.nas_identifier
    interim = record.get("interim") or cfg.aaa.accounting.interim_interval
    return AccountingSession(
        record["acct_session_id"], record["user"], ipaddress.IPv4Address(record["address"]),
        started_at=time.monotonic(), nas_attributes=nas,
        class_=bytes.fromhex(record["class"]) if record.get("class") else None,
        interim_interval=interim, authentic_radius=record.get("backend") == "radius")

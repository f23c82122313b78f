"""What a session reports: events as they happen, and a result summary.

Events are small frozen dataclasses read with `session.next_event()`; the
`SessionResult` collects the same facts for a load run's report. Key material
appears only in `ChildSa` (for a future ESP test client) and never in `repr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from responder.ikev1.crypto.phase2 import ChildSaKeys

__all__ = [
    "InitiatorEvent",
    "Phase1Up",
    "XauthDone",
    "ConfigReceived",
    "ChildSaUp",
    "ChildSaDeleted",
    "SessionClosed",
    "SessionFailed",
    "DpdRequest",
    "DpdAnswered",
    "ReceivedModeConfig",
    "ChildSa",
    "Timings",
    "SessionResult",
]


@dataclass(frozen=True)
class ReceivedModeConfig:
    """Attributes the server handed out (REPLY to our pull, or a SET push)."""

    address: str | None = None
    netmask: str | None = None
    dns: tuple[str, ...] = ()
    wins: tuple[str, ...] = ()
    #: every attribute as received: type -> list of raw values (hex for bytes)
    raw: dict[int, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildSa:
    """One Quick Mode SA pair, seen from our side."""

    message_id: int
    inbound_spi: bytes  # chosen by us; the server encrypts with it
    outbound_spi: bytes  # chosen by the server
    cipher: int
    key_length: int | None
    integrity: int | None
    encapsulation_mode: int
    local_selector: str
    remote_selector: str
    lifetime_seconds: int | None
    pfs_group: int | None
    keys: ChildSaKeys = field(repr=False)


class InitiatorEvent:
    """Base class of session events."""


@dataclass(frozen=True)
class Phase1Up(InitiatorEvent):
    exchange: str
    transform: str
    natt_version: str | None
    nat_detected: bool
    floated: bool
    server_vendor_ids: tuple[str, ...]


@dataclass(frozen=True)
class XauthDone(InitiatorEvent):
    success: bool


@dataclass(frozen=True)
class ConfigReceived(InitiatorEvent):
    config: ReceivedModeConfig


@dataclass(frozen=True)
class ChildSaUp(InitiatorEvent):
    child: ChildSa


@dataclass(frozen=True)
class ChildSaDeleted(InitiatorEvent):
    inbound_spi: bytes
    outbound_spi: bytes
    by_peer: bool


@dataclass(frozen=True)
class SessionClosed(InitiatorEvent):
    reason: str  # "local-close", "peer-delete"


@dataclass(frozen=True)
class DpdRequest(InitiatorEvent):
    """The server's R-U-THERE (RFC 3706 §5.1), answered with R-U-THERE-ACK;
    `sequence` is None when the notify carried no 4-byte sequence number."""

    sequence: int | None


@dataclass(frozen=True)
class DpdAnswered(InitiatorEvent):
    """The server's R-U-THERE-ACK to our own probe (`InitiatorSession.send_dpd`)."""

    sequence: int


@dataclass(frozen=True)
class SessionFailed(InitiatorEvent):
    reason: str
    notify: str | None = None


@dataclass
class Timings:
    """Clock readings (the caller's `now`) of each milestone; None = not reached."""

    started: float | None = None
    phase1: float | None = None
    xauth: float | None = None
    mode_config: float | None = None
    quick_mode: float | None = None
    ended: float | None = None

    def elapsed(self) -> dict[str, float | None]:
        """Milliseconds from the start to each milestone."""
        def since(value: float | None) -> float | None:
            if value is None or self.started is None:
                return None
            return round((value - self.started) * 1000.0, 3)

        return {"phase1_ms": since(self.phase1), "xauth_ms": since(self.xauth),
                "mode_config_ms": since(self.mode_config),
                "quick_mode_ms": since(self.quick_mode), "ended_ms": since(self.ended)}


@dataclass
class SessionResult:
    """Summary of one session so far (safe to log: no secrets)."""

    state: str
    #: ESTABLISHED now; `completed`: it got there at some point (also after a close)
    established: bool
    completed: bool
    error: str | None
    notify: str | None
    config: ReceivedModeConfig | None
    #: every child SA established during the session (also deleted ones)
    children: list[ChildSa]
    timings: Timings
    retransmits: int
    floated: bool
    cookies: str

    def as_dict(self) -> dict[str, Any]:
        config = self.config
        return {
            "state": self.state,
            "established": self.established,
            "completed": self.completed,
            "error": self.error,
            "notify": self.notify,
            "address": config.address if config else None,
            "netmask": config.netmask if config else None,
            "dns": list(config.dns) if config else [],
            "wins": list(config.wins) if config else [],
            "children": [{"inbound_spi": c.inbound_spi.hex(), "outbound_spi": c.outbound_spi.hex(),
                          "local": c.local_selector, "remote": c.remote_selector,
                          "encapsulation_mode": int(c.encapsulation_mode)}
                         for c in self.children],
            "retransmits": self.retransmits,
            "floated": self.floated,
            "cookies": self.cookies,
            **self.timings.elapsed(),
        }

"""What the control socket, the metrics endpoint and the RFC 5176 directory read of
the supervisor: a narrow, typed view, so that they do not import the supervisor (which
creates them) and reach only what is listed here."""
from __future__ import annotations

from collections import Counter
from typing import Any, Protocol, Sequence

from responder.aaa.accounting import Accountant, Counters
from responder.config.model import ResponderConfig
from responder.licenses import LicenseManager
from responder.pools import PoolManager
from responder.subscriber import SubscriberEvent

from .lockouts import LockoutCenter

__all__ = ["SupervisorView"]


class SupervisorView(Protocol):
    cfg: ResponderConfig
    licenses: LicenseManager
    pools: PoolManager
    lockouts: LockoutCenter
    accountant: Accountant | None
    metrics: Any
    #: key -> the subscriber's record (the workers' session-up / update lines)
    registry: dict[str, dict[str, Any]]
    counters: dict[str, Counters]
    refused: Counter[str]
    stats: Counter[str]
    last_reload: dict[str, Any] | None

    @property
    def workers(self) -> Sequence[Any]: ...

    def select(self, *, user: str | None = None, address: str | None = None,
               vr: str | None = None, profile: str | None = None,
               session_id: str | None = None) -> list[dict]: ...

    def subscriber_rows(self) -> list[dict]: ...

    def aaa_counters(self) -> dict: ...

    async def logout(self, records: list[dict], cause: SubscriberEvent = ...) -> int: ...

    async def ask_workers(self, message: dict) -> list[dict]: ...

    async def refresh_counters(self) -> None: ...

    async def reload(self) -> dict[str, Any]: ...

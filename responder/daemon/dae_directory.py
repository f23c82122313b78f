"""RFC 5176 sessions over the supervisor's subscriber registry: the directory a
DaeProcessor finds Disconnect and CoA targets in."""
from __future__ import annotations

import asyncio

from responder.aaa.dae import AuthorizationChange, SessionQuery
from responder.subscriber import SubscriberEvent

from .view import SupervisorView

__all__ = ["RegistryDirectory"]


class RegistryDirectory:
    """RFC 5176 sessions over the supervisor's registry (DaeProcessor's directory)."""

    def __init__(self, supervisor: SupervisorView) -> None:
        self.supervisor = supervisor

    def find(self, query: SessionQuery) -> list[object]:
        rows = self.supervisor.select(
            user=query.user_name, session_id=query.acct_session_id,
            address=str(query.framed_ip) if query.framed_ip else None)
        return [r for r in rows
                if (query.nas_port is None or r.get("id") == query.nas_port)
                and (query.calling_station_id is None
                     or r.get("peer", "").rsplit(":", 1)[0] == query.calling_station_id)]

    def disconnect(self, session) -> None:
        asyncio.ensure_future(self.supervisor.logout([session], SubscriberEvent.RADIUS_DISCONNECT))

    def change(self, session, change: AuthorizationChange) -> None:
        channel = self.supervisor.workers[session["worker"]].channel
        if channel is not None:
            channel.notify({"op": "change", "key": session["key"],
                            "session_timeout": change.session_timeout,
                            "idle_timeout": change.idle_timeout})

"""The subscriber registry: one record per logged-in subscriber of every worker (the
workers' session-up and update lines), with its last data-path counters.

``show subscribers``, ``logout``, RFC 5176 lookups (dae_directory.py) and accounting read
it; only the supervisor's worker messages change it.

Every login asks for the user's other sessions (``select(user=...)``: a login again from
the same peer makes the older one go), so records are indexed by user: with thousands
held, a scan of all records per login was most of the supervisor's time.
"""
from __future__ import annotations

import time
from typing import Any

from responder.aaa.accounting import Counters

__all__ = ["SubscriberRegistry"]


class SubscriberRegistry:
    def __init__(self) -> None:
        #: key -> the subscriber's record
        self.records: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, Counters] = {}
        #: user -> keys of that user's records (in login order)
        self._by_user: dict[str, dict[str, None]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def keys_of(self, worker: int) -> list[str]:
        return [key for key, record in self.records.items() if record.get("worker") == worker]

    def up(self, key: str, worker: int, record: dict) -> dict:
        record = dict(record, worker=worker, since=time.time())
        self._unindex(key)
        self.records[key] = record
        self._index(key)
        self.counters[key] = Counters()
        return record

    def update(self, key: str, changes: dict) -> None:
        record = self.records.get(key)
        if record is not None:
            self._unindex(key)
            record.update(changes)
            self._index(key)

    def absorb(self, subs: dict[str, list[int]]) -> None:
        """Data-path counters pushed or asked for (unknown keys: already logged out)."""
        for key, values in subs.items():
            if key in self.records:
                self.counters[key] = Counters(*values)

    def down(self, key: str, counters: list[int] | None) -> dict | None:
        """The record gone (None if it was not registered); its final counters stay
        readable until `forget` (accounting's Stop reads them)."""
        self._unindex(key)
        record = self.records.pop(key, None)
        if record is not None and counters is not None:
            self.counters[key] = Counters(*counters)
        return record

    def forget(self, key: str) -> None:
        self.counters.pop(key, None)

    def counters_of(self, key: str) -> Counters:
        return self.counters.get(key, Counters())

    def select(self, *, user: str | None = None, address: str | None = None,
               vr: str | None = None, profile: str | None = None,
               session_id: str | None = None) -> list[dict]:
        rows = []
        candidates = (self.records.values() if user is None else
                      [self.records[key] for key in self._by_user.get(user, ())])
        for record in candidates:
            if address is not None and record.get("address") != str(address):
                continue
            if vr is not None and vr not in (record.get("vr"), record.get("netns")):
                continue
            if profile is not None and record.get("profile") != profile:
                continue
            if session_id is not None and record.get("acct_session_id") != session_id:
                continue
            rows.append(record)
        return rows

    def _index(self, key: str) -> None:
        user = self.records[key].get("user")
        if user is not None:
            self._by_user.setdefault(user, {})[key] = None

    def _unindex(self, key: str) -> None:
        user = self.records.get(key, {}).get("user")
        keys = self._by_user.get(user)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_user[user]

    def rows(self) -> list[dict]:
        """``show subscribers``: every record with its uptime and counters."""
        now = time.time()
        rows = []
        for key, record in self.records.items():
            c = self.counters_of(key)
            rows.append({**record, "uptime": round(now - record.get("since", now), 1),
                         "bytes_in": c.input_octets, "bytes_out": c.output_octets,
                         "packets_in": c.input_packets, "packets_out": c.output_packets})
        return sorted(rows, key=lambda r: (r.get("worker", 0), r.get("id", 0)))

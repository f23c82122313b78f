"""Interface removals in batches for the worker's netif thread.

Unregistering a net device waits for an RCU grace period (~17 ms here), and the netif
thread is serial: removed one by one, a wave of logouts (200 interfaces: ~3.5 s) holds
up every creation queued behind it, so new logins wait seconds for their interface.
:class:`RemovalBatcher` keeps the removals asked for while one batch job is queued and
hands them to ``InterfaceManager.remove_many`` together (one group delete per VR, one
grace period). Order is kept: every removal runs before any job submitted after it
(a new subscriber may get the address of an interface being removed).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)


class RemovalBatcher:
    """`submit(job)` queues a job on the netif thread; `remove_many(ifaces)` runs there."""

    def __init__(self, submit: Callable[[Callable[[], None]], Any],
                 remove_many: Callable[[Iterable[Any]], int]) -> None:
        self._submit = submit
        self._remove_many = remove_many
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self.batches = 0

    def add(self, iface: Any) -> None:
        """Called from the event loop: removal queued, joined to a batch not yet begun."""
        with self._lock:
            self._pending.append(iface)
            if len(self._pending) > 1:
                return  # the queued batch job takes this one too
        self._submit(self._run_batch)

    def _run_batch(self) -> None:
        """In the netif thread: removes what was pending, one call per VR."""
        with self._lock:
            doomed, self._pending = self._pending, []
        self.batches += 1
        for vr, ifaces in _by_vr(doomed).items():
            try:
                self._remove_many(ifaces)
            except Exception:  # noqa: BLE001 - logged; the fds are closed by remove_many
                log.exception("removing %d interfaces from %s failed", len(ifaces), vr)


def _by_vr(ifaces: list[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for iface in ifaces:
        groups.setdefault(iface.vr, []).append(iface)
    return groups

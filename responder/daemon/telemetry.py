"""A worker's operator side: subscriber event lines, metric reports to the supervisor
and the client vendor IDs in the registry record (a reload: worker_reload.py).

Sits between the worker's transport and the :class:`Orchestrator` (it sees every
engine event after the orchestrator handled it) without changing the login logic:

* one log line per subscriber event (responder/daemon/logsetup.py: ``sub=w0-17
  user=... event=...``) from phase 1 to teardown, with the reason of every refusal
  (no profile, max-interfaces, phase 1 refused by policy or proposals, AAA deny,
  license, address...);
* metric reports (``{"op": "metrics"}`` on the IPC channel, pushed every
  :data:`REPORT_INTERVAL` and pulled by the supervisor before each scrape): logins by
  outcome and reason (deltas of the orchestrator's counters) and exchange latencies
  (phase 1, Xauth + AAA, Quick Mode, full login). The supervisor owns the registry.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from responder.ikev1 import events as ev
from responder.ikev1 import transaction_events as tev
from responder.ikev1.vendor_ids import recognize

from .logsetup import subscriber_event

log = logging.getLogger(__name__)

__all__ = ["WorkerTelemetry", "vendor_names", "REPORT_INTERVAL"]

REPORT_INTERVAL = 2.0
#: observations kept between two reports (a scrape-less daemon must not grow)
MAX_PENDING = 20_000
_PHASE1 = ("IDENTITY_PROTECTION", "AGGRESSIVE")


def vendor_names(vids) -> list[str]:
    """Names of the peer's vendor IDs (responder/ikev1/vendor_ids.py), unknown ones as
    ``unknown:<first 8 hex digits>``."""
    names = []
    for vid in vids or ():
        entry = recognize(bytes(vid))
        name = entry.name if entry is not None else f"unknown:{bytes(vid).hex()[:8]}"
        if name not in names:
            names.append(name)
    return names


class _Link:
    """The orchestrator's SupervisorLink with the client's vendor IDs added to the
    registry record (``show subscribers``)."""

    def __init__(self, inner, telemetry: "WorkerTelemetry") -> None:
        self._inner = inner
        self._telemetry = telemetry

    def session_up(self, key: str, record: dict[str, Any]) -> None:
        record = dict(record, vendor_ids=self._telemetry.vendor_ids_of(record.get("ike_sa")))
        self._inner.session_up(key, record)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class WorkerTelemetry:
    def __init__(self, worker_index: int, responder, clock, generation: int = 0) -> None:
        self.index = worker_index
        # Subscriber ids restart at 1 in a restarted worker: the log label carries
        # the generation (w1.2-17) so that one id never names two subscribers.
        self._label = f"{worker_index}.{generation}" if generation else str(worker_index)
        self.responder = responder
        self.clock = clock
        self.orchestrator = None
        self.worker = None
        self._phase1_at: dict[str, tuple[float, float]] = {}   # sa -> (created, established)
        self._xauth_done: dict[str, float] = {}
        self._keys: dict[int, tuple[str, str | None]] = {}
        self._sent: Counter[tuple[str, str]] = Counter()
        self._latency: dict[str, list[float]] = {}
        self._refused_before: Counter[str] = Counter()
        self._phase1_refused_ike: Counter[str] = Counter()
        self._task: asyncio.Task | None = None

    # -- wiring -------------------------------------------------------------------------
    def wrap_link(self, link):
        return _Link(link, self)

    def attach(self, orchestrator, worker=None) -> None:
        """`worker`: its ``channel`` carries the metric reports pushed every
        :data:`REPORT_INTERVAL`."""
        self.orchestrator = orchestrator
        self.worker = worker
        if worker is not None:
            self._task = asyncio.ensure_future(self._push())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def vendor_ids_of(self, sa_id: str | None) -> list[str]:
        sa = self.responder.sa(sa_id) if sa_id else None
        return vendor_names(sa.peer_vendor_ids) if sa is not None else []

    # -- events -------------------------------------------------------------------------
    def handle_event(self, event) -> None:
        kind = type(event)
        if kind is ev.Phase1Established:
            self._refused_before = Counter(self.orchestrator.refused)
        # events that may end the subscriber are told before its logout line
        if kind in self._BEFORE:
            self._note(event)
        self.orchestrator.handle_event(event)
        if kind not in self._BEFORE:
            self._note(event)

    def _note(self, event) -> None:
        try:
            handler = self._HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
        except Exception:  # noqa: BLE001 - a log line must never break a login
            log.exception("telemetry for %s failed", type(event).__name__)

    def _sub(self, sa_id: str):
        sub = self.orchestrator.by_sa.get(sa_id)
        if sub is None:
            return None, None, None
        return sub, f"{self._label}:{sub.id}", sub.username

    def _observe(self, name: str, seconds: float) -> None:
        values = self._latency.setdefault(name, [])
        if len(values) < MAX_PENDING and seconds >= 0:
            values.append(seconds)

    def _phase1_up(self, event: ev.Phase1Established) -> None:
        if not event.dynamic:
            return
        sa = self.responder.sa(event.sa_id)
        now = self.clock()
        created = sa.created_at if sa is not None else now
        established = getattr(sa, "established_at", None) or now
        self._phase1_at[event.sa_id] = (created, established)
        self._observe("phase1", established - created)
        sub, key, _ = self._sub(event.sa_id)
        peer = f"{event.peer[0]}:{event.peer[1]}"
        if sub is None:
            # refused at once: the orchestrator counted why (no-profile, max-interfaces...)
            subscriber_event(None, None, "refused", level=logging.WARNING, sa=event.sa_id,
                             peer=peer, identity=str(event.identity),
                             reason=self._last_refusal())
            return
        self._keys[sub.id] = (key, None)
        sub.on_gone(self._gone)
        subscriber_event(key, None, "phase1-up", sa=event.sa_id, peer=peer,
                         exchange=event.exchange, identity=str(event.identity),
                         profile=sub.profile, transform=event.transform,
                         vids=self.vendor_ids_of(event.sa_id) or None,
                         ms=round((established - created) * 1000))

    def _last_refusal(self) -> str:
        refused = self.orchestrator.refused
        changed = [r for r, n in refused.items() if n > self._refused_before[r]]
        return changed[0] if changed else "unknown"

    def _credentials(self, event: tev.XauthCredentials) -> None:
        sub, key, _ = self._sub(event.sa_id)
        if key is not None:
            subscriber_event(key, event.username, "xauth-credentials", attempt=event.attempt)

    def _xauth_failed(self, event: tev.XauthFailed) -> None:
        sub, key, user = self._sub(event.sa_id)
        subscriber_event(key, user or event.username, "xauth-failed", level=logging.WARNING,
                         sa=event.sa_id, reason=event.reason)

    def _xauth_ok(self, event: tev.XauthSucceeded) -> None:
        sub, key, user = self._sub(event.sa_id)
        now = self.clock()
        self._xauth_done[event.sa_id] = now
        times = self._phase1_at.get(event.sa_id)
        if times is not None:
            self._observe("xauth_aaa", now - times[1])
        if key is not None:
            subscriber_event(key, user, "xauth-ok", address=str(sub.address), vr=sub.vr)

    def _modecfg(self, event: tev.ModeConfigDone) -> None:
        sub, key, user = self._sub(event.sa_id)
        if key is not None:
            subscriber_event(key, user, "config-sent", address=str(sub.address))

    def _phase2_up(self, event: ev.Phase2Established) -> None:
        if not event.dynamic:
            return
        sub, key, user = self._sub(event.sa_id)
        now = self.clock()
        done = self._xauth_done.pop(event.sa_id, None)
        times = self._phase1_at.pop(event.sa_id, None)
        if done is not None:
            self._observe("quick_mode", now - done)
        if times is not None and key is not None:
            self._observe("login", now - times[0])
        if key is not None:
            subscriber_event(key, user, "phase2-up", child=event.child_id,
                             spi_in=event.inbound.spi.hex(), spi_out=event.outbound.spi.hex(),
                             udp=event.udp_encapsulated)

    def _phase2_down(self, event: ev.Phase2Deleted) -> None:
        sub, key, user = self._sub(event.sa_id)
        if key is not None:
            subscriber_event(key, user, "phase2-down", child=event.child_id)

    def _phase1_down(self, event: ev.Phase1Deleted) -> None:
        self._phase1_at.pop(event.sa_id, None)
        self._xauth_done.pop(event.sa_id, None)
        sub, key, user = self._sub(event.sa_id)
        if key is not None:
            subscriber_event(key, user, "phase1-down", sa=event.sa_id, reason=event.reason)

    def _peer_dead(self, event: ev.PeerDead) -> None:
        sub, key, user = self._sub(event.sa_id)
        subscriber_event(key, user, "dpd-dead", level=logging.WARNING, sa=event.sa_id)

    def _initial_contact(self, event: ev.InitialContact) -> None:
        sub, key, user = self._sub(event.sa_id)
        subscriber_event(key, user, "initial-contact", sa=event.sa_id,
                         peer=f"{event.peer[0]}:{event.peer[1]}")

    def _exchange_failed(self, event: ev.ExchangeFailed) -> None:
        sub, key, user = self._sub(event.sa_id) if event.sa_id else (None, None, None)
        if event.exchange in _PHASE1 and sub is None:
            reason = f"phase1-{event.notify.lower().replace('_', '-')}"
            self._phase1_refused_ike[reason] += 1
            subscriber_event(None, None, "refused", level=logging.WARNING, sa=event.sa_id,
                             peer=f"{event.peer[0]}:{event.peer[1]}", reason=reason,
                             detail=event.reason)
        else:
            subscriber_event(key, user, "exchange-failed", level=logging.WARNING,
                             sa=event.sa_id, exchange=event.exchange, notify=event.notify,
                             detail=event.reason)

    def _gone(self, sub) -> None:
        key, _ = self._keys.pop(sub.id, (f"{self._label}:{sub.id}", None))
        cause = sub.teardown_event.value if sub.teardown_event else "unknown"
        subscriber_event(key, sub.username, "logout", cause=cause,
                         address=str(sub.address) if sub.address else None, vr=sub.vr)

    _BEFORE = frozenset({tev.XauthFailed, ev.Phase1Deleted, ev.PeerDead, ev.Phase2Deleted})

    _HANDLERS = {
        ev.Phase1Established: _phase1_up,
        tev.XauthCredentials: _credentials,
        tev.XauthFailed: _xauth_failed,
        tev.XauthSucceeded: _xauth_ok,
        tev.ModeConfigDone: _modecfg,
        ev.Phase2Established: _phase2_up,
        ev.Phase2Deleted: _phase2_down,
        ev.Phase1Deleted: _phase1_down,
        ev.PeerDead: _peer_dead,
        ev.InitialContact: _initial_contact,
        ev.ExchangeFailed: _exchange_failed,
    }

    # -- metric reports -------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Deltas since the last report: logins by (outcome, reason), latencies."""
        o = self.orchestrator
        now: Counter[tuple[str, str]] = Counter()
        if o is not None:
            now[("success", "")] = o.stats.get("logins_granted", 0) + o.stats.get("reattached", 0)
            for reason, count in o.refused.items():
                now[("refused", reason)] = count
        for reason, count in self._phase1_refused_ike.items():
            now[("refused", reason)] = count
        # an IKE policy rule denied the peer's first message (the engine logs it)
        now[("refused", "policy")] = self.responder.stats.get("dropped_policy_denied", 0)
        deltas = [[outcome, reason, count - self._sent[(outcome, reason)]]
                  for (outcome, reason), count in now.items()
                  if count > self._sent[(outcome, reason)]]
        self._sent = now
        latency, self._latency = self._latency, {}
        return {"op": "metrics", "worker": self.index, "logins": deltas, "latency": latency}

    async def _push(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            channel = getattr(self.worker, "channel", None)
            if channel is None or channel.closed:
                continue
            report = self.report()
            if report["logins"] or report["latency"]:
                channel.notify(report)

    # -- supervisor requests --------------------------------------------------------------
    def on_message(self, message: dict) -> dict:
        if message["op"] == "metrics":
            return self.report()
        raise ValueError(f"unknown op {message['op']!r}")

"""The Prometheus endpoint (``metrics.address``:``metrics.port``, path ``/metrics``),
served by the supervisor from a registry object of its own (no global registry).

Workers report over the IPC channel (``{"op": "metrics"}``: login outcomes and
exchange latencies, responder/daemon/telemetry.py); before each scrape the supervisor
pulls a fresh report and every worker's statistics, so a scrape right after a login
already counts it. Everything else is read from the supervisor's own state at scrape
time (registry, licenses, pools).

==========================================  ======================================
metric                                      labels
==========================================  ======================================
``dynipsec_subscribers``                    vr, profile
``dynipsec_logins_total``                   outcome (success / refused), reason
``dynipsec_licenses_total`` / ``_in_use``   kind (ipsec-tunnel / subscriber)
``dynipsec_pool_addresses`` / ``_used``     vr, pool
``dynipsec_ike_sas`` / ``dynipsec_ipsec_sas``  worker (IPsec: inbound+outbound pairs)
``dynipsec_packets_total``                  direction (in / out)
``dynipsec_octets_total``                   direction (in / out)
``dynipsec_esp_dropped_total``              worker, reason
``dynipsec_ike_admission_total``            worker, counter (``evicted_half_open_limit``,
                                            ``dropped_half_open_peer_limit``, ...)
``dynipsec_exchange_seconds``               exchange (phase1, xauth_aaa, quick_mode,
                                            login): histogram
``dynipsec_worker_restarts_total``          -
``dynipsec_xauth_failures_total``           - (AAA refused a guess: wrong name/password)
``dynipsec_lockouts_total``                 kind (user / source): locks started
``dynipsec_lockouts_active``                kind (user / source)
``dynipsec_xauth_refused_locked_total``     reason (user-locked / source-locked), AAA
                                            not asked
==========================================  ======================================

RADIUS clients (label ``client``: ``worker0``, ``worker1``... ask for AAA,
``accounting`` is the supervisor's) and the DAE server (RFC 5176):

==========================================================  ============================
metric                                                      labels
==========================================================  ============================
``dynipsec_radius_requests_total``                          client, group, server
``dynipsec_radius_timeouts_total``                          client, group, server
``dynipsec_radius_dead_marks_total``                        client, group, server
``dynipsec_radius_dropped_no_message_authenticator_total``  client, group, server
``dynipsec_radius_server_dead``                             client, group, server (1/0)
``dynipsec_radius_refused_no_server_total``                 client, group
``dynipsec_dae_requests_total`` / ``_acks_total``           kind (disconnect / coa)
``dynipsec_dae_naks_total``                                 kind, error_cause
``dynipsec_dae_replays_total``                              - (answered from the cache)
``dynipsec_dae_discarded_total``                            reason (``dropped_*``,
                                                            ``refused_*``)
==========================================================  ============================

A timeout is a request a server left unanswered after every retransmission; a
refused-no-server request was not sent (every server of the group marked dead).

Packets and octets are subscriber traffic as accounting counts it (inner packets):
the sessions that ended plus the live ones. "in" is from the subscriber.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:  # pragma: no cover
    from .view import SupervisorView

log = logging.getLogger(__name__)

__all__ = ["SupervisorMetrics", "LATENCY_BUCKETS", "EXCHANGES"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
EXCHANGES = ("phase1", "xauth_aaa", "quick_mode", "login")
#: the data path counts drops as ``drop_<reason>`` (and ``esp_dropped`` in total)
_DROP_PREFIX = "drop_"
#: engine counters of phase 1 admission (responder/ikev1/admission.py, docs/operations.md)
_ADMISSION_COUNTERS = ("evicted_", "dropped_half_open", "dropped_sa_limit",
                       "dropped_unproven_resend_limit", "notify_rate_limited")


class SupervisorMetrics:
    def __init__(self, supervisor: "SupervisorView") -> None:
        self.supervisor = supervisor
        self.registry = CollectorRegistry(auto_describe=False)
        self.logins = PromCounter("dynipsec_logins", "Logins by outcome and refusal reason",
                                  ["outcome", "reason"], registry=self.registry)
        self.latency = Histogram("dynipsec_exchange_seconds",
                                 "Exchange latencies: phase1 (first message to established), "
                                 "xauth_aaa (phase 1 up to Xauth ACK, AAA included), "
                                 "quick_mode (Xauth done to first child SA), login (first "
                                 "message to first child SA)", ["exchange"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        for outcome in ("success",):
            self.logins.labels(outcome, "")
        for name in EXCHANGES:
            self.latency.labels(name)
        self.registry.register(_StateCollector(self))
        #: octets / packets of sessions that ended: [in_octets, out_octets, in_pkts, out_pkts]
        self.finished = [0, 0, 0, 0]
        self.worker_stats: list[dict[str, Any]] = []
        self._server: asyncio.AbstractServer | None = None

    # -- input ------------------------------------------------------------------------
    def absorb(self, report: dict[str, Any]) -> None:
        for outcome, reason, count in report.get("logins", []):
            if count > 0:
                self.logins.labels(str(outcome), str(reason)).inc(count)
        for name, values in report.get("latency", {}).items():
            histogram = self.latency.labels(str(name))
            for value in values:
                histogram.observe(float(value))

    def session_ended(self, counters) -> None:
        if counters is None:
            return
        values = (counters.input_octets, counters.output_octets, counters.input_packets,
                  counters.output_packets)
        self.finished = [a + int(b) for a, b in zip(self.finished, values)]

    # -- output -----------------------------------------------------------------------
    async def refresh(self) -> None:
        s = self.supervisor
        for reply in await s.ask_workers({"op": "metrics"}):
            if "error" not in reply:
                self.absorb(reply)
        self.worker_stats = await s.ask_workers({"op": "show", "what": "statistics"})
        await s.refresh_counters()

    async def render(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    async def start(self, address: str, port: int) -> None:
        self._server = await asyncio.start_server(self._client, address, port)
        log.info("metrics on http://%s:%d/metrics", address, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            line = request.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(line) < 2 or line[0] not in ("GET", "HEAD"):
                status, body, ctype = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif line[1].split("?")[0] not in ("/metrics", "/"):
                status, body, ctype = "404 Not Found", b"see /metrics\n", "text/plain"
            else:
                status, body, ctype = "200 OK", await self.render(), CONTENT_TYPE_LATEST
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + (body if line and line[0] != "HEAD" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        except Exception:  # noqa: BLE001 - a scrape must never hurt the daemon
            log.exception("metrics request failed")
        finally:
            writer.close()


class _StateCollector:
    """Gauges and counters read from the supervisor at scrape time."""

    def __init__(self, metrics: SupervisorMetrics) -> None:
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        s = m.supervisor
        subs = GaugeMetricFamily("dynipsec_subscribers", "Subscribers logged in",
                                 labels=["vr", "profile"])
        per = Counter((str(r.get("vr")), str(r.get("profile"))) for r in s.registry.values())
        for profile in s.cfg.tunnel_profiles:
            per.setdefault((profile.vr, profile.name), 0)
        for (vr, profile), count in sorted(per.items()):
            subs.add_metric([vr, profile], count)
        yield subs
        total = GaugeMetricFamily("dynipsec_licenses_total", "License pool sizes",
                                  labels=["kind"])
        used = GaugeMetricFamily("dynipsec_licenses_in_use", "Licenses held", labels=["kind"])
        for st in s.licenses.stats():
            kind = st.kind.lower().replace(" ", "-")     # "IPsec tunnel" -> ipsec-tunnel
            total.add_metric([kind], st.size)
            used.add_metric([kind], st.in_use)
        yield total
        yield used
        size = GaugeMetricFamily("dynipsec_pool_addresses", "Pool sizes", labels=["vr", "pool"])
        in_use = GaugeMetricFamily("dynipsec_pool_addresses_used", "Addresses leased",
                                   labels=["vr", "pool"])
        for st in s.pools.stats():
            size.add_metric([st.vr, st.pool], st.size)
            in_use.add_metric([st.vr, st.pool], st.used)
        yield size
        yield in_use
        ike = GaugeMetricFamily("dynipsec_ike_sas", "IKE SAs", labels=["worker"])
        drops = CounterMetricFamily("dynipsec_esp_dropped", "ESP packets dropped",
                                    labels=["worker", "reason"])
        admission = CounterMetricFamily(
            "dynipsec_ike_admission", "Phase 1 admission: unproven SAs evicted, message 1s "
            "dropped at a limit, resends and error notifies held back", labels=["worker", "counter"])
        for index, reply in enumerate(m.worker_stats):
            if "error" in reply:
                continue
            worker = str(index)
            ike.add_metric([worker], reply.get("ike_sas", 0))
            for key, value in (reply.get("engine") or {}).items():
                if key.startswith(_ADMISSION_COUNTERS):
                    admission.add_metric([worker, key], value)
            for key, value in (reply.get("datapath") or {}).items():
                if key.startswith(_DROP_PREFIX):
                    drops.add_metric([worker, key[len(_DROP_PREFIX):]], value)
                elif key == "unknown_spi":
                    drops.add_metric([worker, "unknown-spi"], value)
        yield ike
        yield drops
        yield admission
        ipsec = GaugeMetricFamily("dynipsec_ipsec_sas",
                                  "IPsec SA pairs (inbound + outbound) of subscribers",
                                  labels=["worker"])
        children = Counter()
        for record in s.registry.values():
            children[str(record.get("worker"))] += int(record.get("children") or 0)
        for worker, count in sorted(children.items()):
            ipsec.add_metric([worker], count)
        yield ipsec
        live = [0, 0, 0, 0]
        for counters in s.counters.values():
            live = [a + b for a, b in zip(live, (counters.input_octets, counters.output_octets,
                                                 counters.input_packets,
                                                 counters.output_packets))]
        totals = [a + b for a, b in zip(m.finished, live)]
        octets = CounterMetricFamily("dynipsec_octets", "Subscriber octets (in: from the "
                                     "subscriber)", labels=["direction"])
        packets = CounterMetricFamily("dynipsec_packets", "Subscriber packets (in: from the "
                                      "subscriber)", labels=["direction"])
        octets.add_metric(["in"], totals[0])
        octets.add_metric(["out"], totals[1])
        packets.add_metric(["in"], totals[2])
        packets.add_metric(["out"], totals[3])
        yield octets
        yield packets
        restarts = CounterMetricFamily("dynipsec_worker_restarts", "Workers restarted")
        restarts.add_metric([], s.stats.get("worker_restarts", 0))
        yield restarts
        yield from _lockout_metrics(s.lockouts.table, m.worker_stats)
        aaa = s.aaa_counters()
        yield from _radius_metrics(_radius_clients(aaa["radius"], m.worker_stats))
        yield from _dae_metrics(aaa["dae"])


#: the orchestrator's refusal reasons of a login refused while locked
LOCKED_REASONS = ("user-locked", "source-locked")


def _lockout_metrics(table, worker_stats: list[dict]):
    """Xauth failures and lockouts (the supervisor's table), refusals while locked (the
    workers' refusal counters)."""
    failures = CounterMetricFamily("dynipsec_xauth_failures",
                                   "Xauth logins AAA refused as a wrong name or password")
    failures.add_metric([], table.failures)
    yield failures
    started = CounterMetricFamily("dynipsec_lockouts", "Lockouts started", labels=["kind"])
    active = GaugeMetricFamily("dynipsec_lockouts_active", "Lockouts in force",
                               labels=["kind"])
    for kind, count in table.active(time.monotonic()).items():
        started.add_metric([kind], table.lockouts[kind])
        active.add_metric([kind], count)
    yield started
    yield active
    refused = CounterMetricFamily("dynipsec_xauth_refused_locked",
                                  "Xauth logins refused while locked (AAA not asked)",
                                  labels=["reason"])
    for reason in LOCKED_REASONS:
        refused.add_metric([reason], sum(int((reply.get("refused") or {}).get(reason, 0))
                                         for reply in worker_stats if "error" not in reply))
    yield refused


#: per-server RADIUS client counters (RadiusClient.counters) -> metric name and help
RADIUS_SERVER_METRICS = {
    "requests": ("dynipsec_radius_requests", "RADIUS requests sent to a server"),
    "timeouts": ("dynipsec_radius_timeouts",
                 "RADIUS requests a server left unanswered after every retransmission"),
    "dead_marks": ("dynipsec_radius_dead_marks", "Times a RADIUS server was marked dead"),
    "dropped_no_message_authenticator": (
        "dynipsec_radius_dropped_no_message_authenticator",
        "RADIUS replies dropped for want of a Message-Authenticator"),
}
RADIUS_LABELS = ["client", "group", "server"]


def _radius_clients(accounting: dict | None, worker_stats: list[dict]) -> list[tuple[str, dict]]:
    """(client label, RadiusClient.counters()) of the supervisor and every worker."""
    clients = [("accounting", accounting)] if accounting else []
    for index, reply in enumerate(worker_stats):
        if "error" not in reply and reply.get("radius"):
            clients.append((f"worker{index}", reply["radius"]))
    return clients


def _radius_metrics(clients: list[tuple[str, dict]]):
    families = {key: CounterMetricFamily(name, text, labels=RADIUS_LABELS)
                for key, (name, text) in RADIUS_SERVER_METRICS.items()}
    dead = GaugeMetricFamily("dynipsec_radius_server_dead",
                             "1 while a RADIUS server is marked dead", labels=RADIUS_LABELS)
    refused = CounterMetricFamily("dynipsec_radius_refused_no_server",
                                  "RADIUS requests refused at once: every server of the "
                                  "group marked dead", labels=["client", "group"])
    for client, counters in clients:
        for row in counters.get("servers", []):
            labels = [client, str(row["group"]), str(row["server"])]
            for key, family in families.items():
                family.add_metric(labels, row.get(key, 0))
            dead.add_metric(labels, 1 if row.get("dead") else 0)
        for group, count in (counters.get("refused_no_server") or {}).items():
            refused.add_metric([client, group], count)
    yield from families.values()
    yield dead
    yield refused


def _dae_metrics(counters: dict | None):
    """RFC 5176 server counters (DaeProcessor.counters); nothing without DAE."""
    if counters is None:
        return
    requests = CounterMetricFamily("dynipsec_dae_requests",
                                   "DAE requests that verified, by kind", labels=["kind"])
    acks = CounterMetricFamily("dynipsec_dae_acks", "DAE ACKs sent", labels=["kind"])
    for kind, count in counters["requests"].items():
        requests.add_metric([kind], count)
        acks.add_metric([kind], counters["acks"].get(kind, 0))
    naks = CounterMetricFamily("dynipsec_dae_naks", "DAE NAKs sent by Error-Cause",
                               labels=["kind", "error_cause"])
    for kind, causes in counters["naks"].items():
        for cause, count in causes.items():
            naks.add_metric([kind, cause], count)
    replays = CounterMetricFamily("dynipsec_dae_replays",
                                  "DAE requests seen before, answered from the replay cache")
    replays.add_metric([], counters["replays_answered_from_cache"])
    discarded = CounterMetricFamily("dynipsec_dae_discarded",
                                    "DAE requests dropped or refused before matching, by "
                                    "reason", labels=["reason"])
    for reason, count in counters["other"].items():
        if reason.startswith(("dropped_", "refused_")):
            discarded.add_metric([reason], count)
    yield from (requests, acks, naks, replays, discarded)

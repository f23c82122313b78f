"""RADIUS client and DAE counters where an operator sees them: ``show statistics``
(control API and its text form) and the Prometheus metrics, from a supervisor whose
accounting RADIUS client met a silent server, whose DAE processor answered requests,
and whose worker reports the counters of its AAA RADIUS client."""
from __future__ import annotations

import asyncio
import logging

from prometheus_client.parser import text_string_to_metric_families
from pyrad import packet as rp

from responder.aaa.dae import DaeClient, DaeListener, DaeProcessor, SubscriberDirectory
from responder.aaa.radius import RadiusClient, RadiusServer, RadiusTransport, ServerGroup
from responder.daemon.control import ControlServer, _statistics
from responder.subscriber import SubscriberTable

from .test_aaa_dae import CLIENT, NOW, SECRET, request
from .test_aaa_lockout_daemon import supervisor
from .test_daemon_orchestrator import run


async def silent_radius(group: str) -> tuple[RadiusClient, asyncio.DatagramTransport]:
    """A client whose only server never answers, after one request and one refusal."""
    loop = asyncio.get_running_loop()
    silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=("127.0.0.1", 0))
    port = silent.get_extra_info("sockname")[1]
    server = RadiusServer("127.0.0.1", b"s3cret", auth_port=port, acct_port=port,
                          timeout=0.05, retries=0)
    client = RadiusClient([ServerGroup(group, (server,))],
                          transport=RadiusTransport("127.0.0.1"))
    for _ in range(2):       # the first times out (dead mark), the second is not sent
        try:
            await client.send_accounting({"Acct-Status-Type": "Start"}, created_at=0.0)
        except Exception:    # noqa: BLE001 - RadiusTimeout, RadiusNoServer
            pass
    return client, silent


def answered_dae() -> DaeProcessor:
    processor = DaeProcessor([DaeClient("127.0.0.1", SECRET)],
                             SubscriberDirectory(SubscriberTable(session_prefix="C")))
    unknown = request(rp.DisconnectRequest, User_Name="nobody")
    for raw in (unknown, unknown):                     # NAK 503, then its replay
        processor.handle(raw, CLIENT, NOW)
    processor.handle(request(rp.CoARequest, stamp=None, User_Name="x"), CLIENT, NOW)  # 404
    return processor


async def counted_supervisor(tmp_path):
    sup = supervisor(tmp_path)
    accounting, silent_a = await silent_radius("acct")
    auth, silent_b = await silent_radius("lab")
    sup._radius = accounting
    sup._dae = DaeListener(answered_dae())

    async def ask_workers(message):
        if message.get("what") == "statistics":
            return [{"radius": auth.counters(), "refused": {"aaa_unavailable": 2}}]
        return []
    sup.ask_workers = ask_workers
    return sup, (accounting, auth, silent_a, silent_b)


def close(parts):
    for part in parts:
        part.close()


def test_show_statistics_has_radius_and_dae_counters(tmp_path):
    async def main():
        sup, parts = await counted_supervisor(tmp_path)
        try:
            return await ControlServer(sup, tmp_path / "control.sock").handle(
                {"cmd": "show", "what": "statistics"})
        finally:
            close(parts)
    answer = run(main())
    (acct_server,) = answer["radius"]["servers"]
    assert acct_server["group"] == "acct" and acct_server["dead"] is True
    assert (acct_server["requests"], acct_server["timeouts"], acct_server["dead_marks"]) == (1, 1, 1)
    assert acct_server["dropped_no_message_authenticator"] == 0
    assert answer["radius"]["refused_no_server"] == {"acct": 1}
    (auth_server,) = answer["workers"][0]["radius"]["servers"]
    assert auth_server["group"] == "lab" and auth_server["timeouts"] == 1
    dae = answer["dae"]
    assert dae["requests"] == {"disconnect": 2, "coa": 1}
    assert dae["naks"] == {"disconnect": {"503": 1}, "coa": {"404": 1}}
    assert dae["acks"] == {"disconnect": 0, "coa": 0}
    assert dae["replays_answered_from_cache"] == 1
    text = _statistics(answer)
    assert "\nradius accounting:\n" in text and "\ndae:\n" in text
    assert "servers.acct/127.0.0.1.timeouts" in text
    assert "radius.servers.lab/127.0.0.1.dead_marks" in text
    assert "naks.disconnect.503" in text


def test_radius_and_dae_metrics(tmp_path, caplog):
    async def main():
        sup, parts = await counted_supervisor(tmp_path)
        try:
            return (await sup.metrics.render()).decode()
        finally:
            close(parts)
    with caplog.at_level(logging.DEBUG):
        text = run(main())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def radius(name, client, group):
        return samples[(name, (("client", client), ("group", group), ("server", "127.0.0.1")))]

    for client, group in (("accounting", "acct"), ("worker0", "lab")):
        assert radius("dynipsec_radius_requests_total", client, group) == 1
        assert radius("dynipsec_radius_timeouts_total", client, group) == 1
        assert radius("dynipsec_radius_dead_marks_total", client, group) == 1
        assert radius("dynipsec_radius_dropped_no_message_authenticator_total", client,
                      group) == 0
        assert radius("dynipsec_radius_server_dead", client, group) == 1
        assert samples[("dynipsec_radius_refused_no_server_total",
                        (("client", client), ("group", group)))] == 1
    assert samples[("dynipsec_dae_requests_total", (("kind", "disconnect"),))] == 2
    assert samples[("dynipsec_dae_acks_total", (("kind", "coa"),))] == 0
    assert samples[("dynipsec_dae_naks_total",
                    (("error_cause", "503"), ("kind", "disconnect")))] == 1
    assert samples[("dynipsec_dae_naks_total", (("error_cause", "404"), ("kind", "coa")))] == 1
    assert samples[("dynipsec_dae_replays_total", ())] == 1
    assert samples[("dynipsec_dae_discarded_total",
                    (("reason", "refused_no_event_timestamp"),))] == 1
    assert "s3cret" not in caplog.text and "s3cret" not in text


def test_no_dae_and_no_radius_no_metrics(tmp_path):
    sup = supervisor(tmp_path)

    async def ask_workers(message):
        return [{"radius": None}] if message.get("what") == "statistics" else []
    sup.ask_workers = ask_workers
    text = run(sup.metrics.render()).decode()
    assert "dynipsec_dae_requests" not in text
    assert "dynipsec_radius_requests_total{" not in text
    assert sup.aaa_counters() == {"radius": None, "dae": None}

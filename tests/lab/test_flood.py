"""A spoofed message 1 flood through the real daemon leaves honest users in.

One client host sends a few thousand forged Main Mode and Aggressive Mode message 1s
(raw socket, IP_HDRINCL; sources from 198.18.208.0/20, on-link in the access LAN, so the
gateway's answers end at an unanswered ARP inside the lab: bench/flood_bench.py
`spoof`), enough to fill every worker's half-open table several times, while the
project's initiator (`python -m clients.ikev1_initiator`) logs in from another host:
it must succeed, and the daemon's engine counters show evictions.

Needs root and Mininet (marker `lab`). Under a minute.
"""
from __future__ import annotations

import os
import time

import pytest

from bench.flood_bench import Flood, engine_counters, honest_login

pytestmark = pytest.mark.lab

if os.geteuid() != 0:
    pytest.skip("lab tests need root (Mininet namespaces)", allow_module_level=True)

RATE, SECONDS, COUNT = 2000.0, 10.0, 6000
#: forged message 1s sent before the honest login starts: more than both workers'
#: half-open tables (max_half_open 1000 each) hold
FILL = 3000


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    with gateway_factory("dynipsec", "flood", aaa="local") as gw:
        yield gw


@pytest.fixture(scope="module")
def hosts(lab):
    direct = [c for c in lab.clients if not c.behind_nat]
    return direct[-1].name, direct[-2].name  # honest, sender


def evictions(before: dict, after: dict) -> int:
    return sum(value - before.get(key, 0) for key, value in after.items()
               if key.startswith("evicted_"))


@pytest.mark.parametrize("mode,user", [("main", "user241"), ("aggressive", "user242")])
def test_honest_login_succeeds_during_a_spoofed_flood(lab, plan, gateway, hosts, mode, user,
                                                      wait_until, record_property):
    honest, sender = hosts
    before = engine_counters(gateway)
    with Flood(lab, sender, str(plan.gateway), rate=RATE, seconds=SECONDS, count=COUNT,
               aggressive_share=0.05) as flood:
        time.sleep(FILL / RATE)
        line = honest_login(lab, plan, honest, user, mode=mode)
        sent = flood.result(timeout=SECONDS + 30)
    after = engine_counters(gateway)
    record_property("flood", {"sent": sent, "login_ms": line.get("wall_ms"),
                              "counters": {k: v - before.get(k, 0) for k, v in after.items()}})
    assert line["ok"] == "yes", line
    assert sent["sent"] >= FILL, sent
    assert evictions(before, after) > 0, after
    assert after.get("phase1_started", 0) - before.get("phase1_started", 0) > FILL // 2, after
    assert wait_until(lambda: not gateway.subscriber_rows(user=user), 15)

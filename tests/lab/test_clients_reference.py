"""Real strongSwan and vpnc clients against the reference gateway in the default lab.

Needs root, Mininet and the Debian packages (marker `lab`). The gateway runs once
for the module in the session lab's router.
"""
from __future__ import annotations

import os
import time

import pytest

from clients import ClientError, ClientSettings, make_client
from lab.scenario import ClientPlan, Scenario, ScenarioRunner, format_table
from tests.lab.conftest import client_for

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    with gateway_factory("strongswan", "strongswan-tests") as running:
        yield running


def pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def test_many_clients_at_once(lab, plan, gateway):
    """11 strongSwan (main + aggressive) and 3 vpnc clients in both VRs, 4 behind the NAT."""
    direct = [s for s in lab.clients if not s.behind_nat][:10]
    nat = [s for s in lab.clients if s.behind_nat][:4]
    assert len(nat) == 4, "the default topology has 4 clients behind the NAT host"
    mix = ([("strongswan", "main"), ("strongswan", "aggressive")] * 5
           + [("vpnc", "aggressive"), ("vpnc", "aggressive"), ("strongswan", "main"),
              ("strongswan", "aggressive")])
    entries = []
    for i, (slot, (kind, mode)) in enumerate(zip(direct + nat, mix)):
        group = ("vr1", "vr2")[(i // 2) % 2] if kind == "strongswan" else ("vr1", "vr2")[i % 2]
        entries.append(ClientPlan(node=slot.name, kind=kind, mode=mode, user=f"user{101 + i:03d}",
                                  group=group, behind_nat=slot.behind_nat))
    # one vpnc behind the NAT as well
    entries[12] = ClientPlan(node=nat[2].name, kind="vpnc", mode="aggressive", user="user113",
                             group="vr2", behind_nat=True)
    scenario = Scenario(name="reference-many", clients=tuple(entries))
    kinds = [(e.kind, e.mode, e.group) for e in entries]
    assert sum(k == "strongswan" for k, _, _ in kinds) >= 10
    assert sum(k == "vpnc" for k, _, _ in kinds) >= 2
    assert {(k, m, g) for k, m, g in kinds} >= {
        ("strongswan", "main", "vr1"), ("strongswan", "main", "vr2"),
        ("strongswan", "aggressive", "vr1"), ("strongswan", "aggressive", "vr2"),
        ("vpnc", "aggressive", "vr1"), ("vpnc", "aggressive", "vr2")}

    run_dir = lab.node_dir("scenario-reference-many")
    result = ScenarioRunner(lab, plan, gateway, scenario, run_dir=run_dir).run()
    table = format_table(result)
    assert result.passed, table
    for client in result.clients:
        group = plan.group(client.group)
        assert group.in_pool(client.address), table
        assert client.dns == list(group.dns) and client.wins == list(group.wins), table
        assert client.ping_received == client.ping_sent > 0, table
        assert client.echos_other_vr == 0, table   # VR 1 clients never reach VR 2
        assert client.logged_out, table
    assert (run_dir / "summary.json").exists()


@pytest.mark.parametrize("kind", ["strongswan", "vpnc"])
def test_disconnect_sends_delete(lab, plan, gateway, kind, wait_until):
    user = {"strongswan": "user201", "vpnc": "user202"}[kind]
    node = {"strongswan": "dlc21", "vpnc": "dlc22"}[kind].replace("dl", lab.topology.prefix, 1)
    with client_for(lab, plan, node, kind, "aggressive", user) as client:
        client.connect()
        info = client.wait_up(20)
        assert wait_until(lambda: user in {s.user for s in gateway.subscribers()}, 5)
        pid = client.charon.pid if kind == "strongswan" else client.pid
        client.disconnect()
        assert not pid_alive(pid)
        # the gateway heard the Delete: the subscriber is gone at once, no DPD wait
        assert wait_until(lambda: user not in {s.user for s in gateway.subscribers()}, 3)
    assert info.address


@pytest.mark.parametrize("kind", ["strongswan", "vpnc"])
def test_kill_vanishes_without_delete(lab, plan, gateway, kind):
    user = {"strongswan": "user203", "vpnc": "user204"}[kind]
    node = {"strongswan": "dlc23", "vpnc": "dlc24"}[kind].replace("dl", lab.topology.prefix, 1)
    with client_for(lab, plan, node, kind, "aggressive", user, group="vr2") as client:
        client.connect()
        client.wait_up(20)
        pid = client.charon.pid if kind == "strongswan" else client.pid
        client.kill()
        assert not pid_alive(pid)
    time.sleep(2)
    # no Delete reached the gateway: it still holds the subscriber (until DPD)
    assert user in {s.user for s in gateway.subscribers()}
    assert gateway.terminate(user=user) == 1


def test_failed_login_reports_the_client_log(lab, plan, gateway):
    settings = ClientSettings(gateway=plan.gateway, group="vr1", psk=plan.psk_for("vr1", "main"),
                              user="user205", password="wrong-password", mode="main")
    node = f"{lab.topology.prefix}c25"
    with make_client("strongswan", lab.node(node), lab.node_dir(node), settings, lab) as client:
        client.connect()
        started = time.monotonic()
        with pytest.raises(ClientError) as failure:
            client.wait_up(15)
        assert time.monotonic() - started < 20
        pid = client.charon.pid
    message = str(failure.value)
    assert "charon.log" in message and "user205" in message
    assert "wrong-password" not in message
    assert not pid_alive(pid)   # leaving the with block ended charon

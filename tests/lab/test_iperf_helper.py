"""lab.iperf in a real lab: it measures a plain routed path and one tunnel through the
reference gateway, reports a server that is not there, and leaves no process behind.

Behaviour checks only: every number must be positive, none must be fast.
"""
from __future__ import annotations

import os

import pytest

from clients import ClientSettings, make_client
from lab.gateways import make_gateway
from lab.iperf import IperfError, IperfJob, IperfServer, run_concurrently, run_iperf_client

pytestmark = pytest.mark.lab

# far from the ports the data-path benchmark uses (5201...)
PORT = 5391


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture(scope="module")
def vr1_server(lab):
    """iperf3 servers on VR 1's intranet server: two ports, so two tests can run at once."""
    node = lab.server("vr1")
    servers = [IperfServer(node, lab.node_dir(node.name), port, tracker=lab).start()
               for port in (PORT, PORT + 1)]
    yield node
    for server in servers:
        pid = server.pid
        server.stop()
        assert not alive(pid), f"iperf3 server {pid} survived stop()"


def test_plain_routed_path_is_measured(lab, plan, vr1_server):
    """VR 1 to its intranet server: no tunnel, just the veth between them."""
    group = plan.group("vr1")
    result = run_iperf_client(lab.vr("vr1"), IperfJob(group.server, PORT), seconds=1, tracker=lab)
    assert result.received_bps > 0
    assert result.received_bytes > 0
    assert result.remote == f"{group.server}:{PORT}"


def test_two_tests_at_once_each_get_a_result(lab, plan, vr1_server):
    group = plan.group("vr1")
    vr = lab.vr("vr1")
    results = run_concurrently([(vr, IperfJob(group.server, PORT)),
                                (vr, IperfJob(group.server, PORT + 1))], seconds=1, tracker=lab)
    assert [type(r).__name__ for r in results] == ["IperfResult", "IperfResult"]
    assert all(r.received_bps > 0 for r in results)


def test_no_server_is_an_iperf_error(lab, plan, vr1_server):
    with pytest.raises(IperfError, match="refused|unable to connect"):
        run_iperf_client(lab.vr("vr1"), IperfJob(plan.group("vr1").server, PORT + 50), seconds=1,
                         tracker=lab)


def test_one_tunnel_through_the_reference_gateway(lab, plan, vr1_server):
    """A strongSwan client's tunnel address as source: the traffic can only take the tunnel."""
    group = plan.group("vr1")
    slot = next(s for s in lab.clients if not s.behind_nat)
    user = "user240"
    settings = ClientSettings(gateway=plan.gateway, group=group.group,
                              psk=plan.psk_for(group.group, "aggressive"), user=user,
                              password=plan.users[user], mode="aggressive",
                              remote_networks=(group.intranet,))
    workdir = lab.node_dir(lab.topology.router_name) / "gateway-iperf-test"
    with make_gateway("strongswan", lab.router, workdir, plan, lab):
        with make_client("strongswan", slot.host, lab.node_dir(slot.name), settings,
                         tracker=lab) as client:
            client.connect()
            info = client.wait_up(30)
            assert client.ping(group.server, count=2).ok
            result = run_iperf_client(slot.host, IperfJob(group.server, PORT, bind=info.address),
                                      seconds=1, omit=0, tracker=lab)
            client.disconnect()
    assert result.received_bps > 0
    assert result.local.startswith(f"{info.address}:")

"""Real strongSwan and vpnc clients log in through dynipsec (issues 4 and 5).

Needs root, Mininet and the Debian packages (marker `lab`). The gateway runs once per
AAA mode for the module in the session lab's router: `local` (every plan user is a
local user) and `radius` (the lab's FreeRADIUS, no local users). Each login is checked
end to end: Mode-Config values, the TUN interface and /32 access route in the right VR
namespace (asked with `ip` in that namespace), a ping to the VR's intranet server
through the ESP tunnel, and after the client's Delete: no interface, route, lease or
license left (asked with `ip` and the control socket), accounting Start and Stop in
FreeRADIUS's detail file.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from clients import ClientError
from lab.scenario import icmp_in_echos
from tests.lab.conftest import cli, client_for, node_name, poll_until

pytestmark = pytest.mark.lab

LOGINS = [("strongswan", "main", "vr1"), ("strongswan", "aggressive", "vr2"),
          ("vpnc", "aggressive", "vr1")]


@pytest.fixture(scope="module", params=["local", "radius"])
def gateway(request, lab, plan, gateway_factory):
    with gateway_factory("dynipsec", f"dynipsec-{request.param}", aaa=request.param) as gw:
        yield gw
    assert not _subscriber_links(lab, plan), "interfaces left after the gateway stopped"


def vr_cmd(lab, netns: str, command: str) -> str:
    return lab.node(netns).cmd(command)


def _subscriber_links(lab, plan) -> list[str]:
    found = []
    for group in plan.groups:
        out = vr_cmd(lab, group.vr, "ip -o link show")
        found += re.findall(r"^\d+: (ips\d+-\d+)", out, re.M)
    return found


def resources_in_use(gateway) -> tuple[int, int, int]:
    licenses = gateway.show("licenses")
    pools = gateway.show("pools")
    return (sum(r["in_use"] for r in licenses), sum(r["used"] for r in pools),
            len(gateway.show("subscribers")))


def still_held(gateway) -> str:
    """What the gateway still holds, for an assertion message: the numbers, who, and the
    end of its log (a peer's Delete that never took effect shows there)."""
    rows = [(r.get("user"), r.get("address"), r.get("state")) for r in gateway.show("subscribers")]
    tail = "\n".join(gateway.log_path.read_text(errors="replace").splitlines()[-25:])
    return f"in use (licences, addresses, subscribers) {resources_in_use(gateway)}: {rows}\n{tail}"


def acct_records(lab, session_id: str) -> list[dict]:
    return [r for r in lab.accounting_records() if r.get("Acct-Session-Id") == session_id]


def check_logged_out(lab, gateway, user: str, row: dict) -> None:
    assert poll_until(lambda: user not in {s.user for s in gateway.subscribers()}, 5)
    route = vr_cmd(lab, row["netns"], f"ip route show {row['address']}/32")
    assert not route.strip(), route
    assert row["interface"] not in vr_cmd(lab, row["netns"], "ip -o link show")
    assert poll_until(lambda: resources_in_use(gateway) == (0, 0, 0), 3), still_held(gateway)


@pytest.mark.parametrize("kind,mode,group", LOGINS, ids=["-".join(x) for x in LOGINS])
def test_login_config_route_ping_teardown(lab, plan, gateway, kind, mode, group, wait_until):
    index = LOGINS.index((kind, mode, group)) + (0 if gateway.aaa == "local" else 3)
    user = f"user{21 + index:03d}"
    node = node_name(lab, 20 + index)
    expected = plan.group(group)
    with client_for(lab, plan, node, kind, mode, user, group) as client:
        client.connect()
        info = client.wait_up(20)
        # Mode-Config (pull), per the profile: address from the group's pool
        assert expected.in_pool(info.address), info
        assert info.netmask == expected.netmask
        assert info.dns == list(expected.dns) and info.wins == list(expected.wins)
        assert info.split_networks == [expected.intranet]
        # the subscriber, its TUN interface and /32 access route in the group's VR
        rows = gateway.subscriber_rows(user=user)
        assert len(rows) == 1, rows
        row = rows[0]
        assert row["netns"] == expected.vr and row["address"] == info.address
        assert row["backend"] == gateway.aaa
        route = vr_cmd(lab, expected.vr, f"ip route show {info.address}/32")
        assert f"dev {row['interface']}" in route, route
        other = [g for g in plan.groups if g.vr != expected.vr][0]
        assert row["interface"] not in vr_cmd(lab, other.vr, "ip -o link show")
        # ESP data path: the VR's own intranet server answers, the other VR's sees nothing
        servers = {g.vr: lab.server(g.vr) for g in plan.groups}
        before = {vr: icmp_in_echos(host) for vr, host in servers.items()}
        ping = client.ping(expected.server, count=3)
        after = {vr: icmp_in_echos(host) for vr, host in servers.items()}
        assert ping.sent == ping.received == 3, ping
        assert after[expected.vr] - before[expected.vr] >= 3
        assert after[other.vr] == before[other.vr]
        # counters and the CLI on the control socket
        live = gateway.subscriber_rows(user=user)[0]
        assert live["packets_in"] >= 3 and live["packets_out"] >= 3, live
        assert cli(gateway, "show", "subscribers", "--user", user, "--json")["rows"][0][
            "interface"] == row["interface"]
        assert user in subprocess.run(
            [sys.executable, "-m", "responder", "show", "subscribers", "-s",
             gateway.daemon.control_socket], capture_output=True, text=True, timeout=30).stdout
        assert any(r["ike_sa"] == row["ike_sa"] for r in cli(gateway, "show", "ike-sa", "--json")["rows"])
        assert len([r for r in cli(gateway, "show", "ipsec-sa", "--json")["rows"]
                    if r["subscriber"] == row["key"]]) == 1
        client.disconnect()
    check_logged_out(lab, gateway, user, row)
    # RADIUS accounting: Start and Stop (User-Request) for the session
    assert wait_until(lambda: len(acct_records(lab, row["acct_session_id"])) >= 2, 5)
    records = acct_records(lab, row["acct_session_id"])
    assert [r["Acct-Status-Type"] for r in records] == ["Start", "Stop"], records
    assert records[1]["Acct-Terminate-Cause"] == "User-Request"
    assert records[1]["Framed-IP-Address"] == info.address
    assert int(records[1]["Acct-Input-Packets"]) >= 3


def test_radius_virtual_router_moves_user(lab, plan, gateway):
    """radius-vr2 logs in with group vr1; RADIUS says VR vr2, pool vr2, DNS/WINS."""
    if gateway.aaa != "radius":
        pytest.skip("a RADIUS reply attribute")
    vr1, vr2 = plan.group("vr1"), plan.group("vr2")
    node = node_name(lab, 30)
    with client_for(lab, plan, node, "strongswan", "aggressive", "radius-vr2", "vr1") as client:
        client.connect()
        info = client.wait_up(20)
        assert vr2.in_pool(info.address), info
        assert info.dns == list(vr2.dns) and info.wins == list(vr2.wins)
        row = gateway.subscriber_rows(user="radius-vr2")[0]
        assert row["profile"] == "vr1" and row["vr"] == "vr2" and row["netns"] == vr2.vr
        assert f"dev {row['interface']}" in vr_cmd(lab, vr2.vr, f"ip route show {info.address}/32")
        assert not vr_cmd(lab, vr1.vr, f"ip route show {info.address}/32").strip()
        server2 = lab.server(vr2.vr)
        before = icmp_in_echos(server2)
        assert client.ping(vr2.server, count=2).received == 2
        assert icmp_in_echos(server2) - before >= 2
        client.disconnect()
    check_logged_out(lab, gateway, "radius-vr2", row)


@pytest.mark.parametrize("kind", ["strongswan", "vpnc"])
def test_wrong_password_retried_then_refused(lab, plan, gateway, kind):
    user = {"strongswan": "user031", "vpnc": "user032"}[kind]
    node = node_name(lab, {"strongswan": 31, "vpnc": 32}[kind])
    log_start = gateway.log_path.stat().st_size
    with client_for(lab, plan, node, kind, "aggressive", user, "vr1",
                    password="not-the-password") as client:
        client.connect()
        with pytest.raises(ClientError):
            client.wait_up(8)
    log = gateway.log_path.read_text(errors="replace")[log_start:]
    attempts = re.findall(rf"user '{user}' refused by AAA \(attempt (\d)\)", log)
    assert attempts and attempts[0] == "1", log[-3000:]
    if kind == "strongswan":  # answers every re-prompt with the same password
        assert attempts[:3] == ["1", "2", "3"], log[-3000:]
        assert f"Xauth user '{user}' refused (denied)" in log, log[-3000:]
    assert user not in {s.user for s in gateway.subscribers()}
    assert resources_in_use(gateway) == (0, 0, 0)


def test_worker_killed_logs_its_subscribers_out(lab, plan, gateway, wait_until):
    """SIGKILL the worker holding a subscriber: Stop with Port-Error, address and
    licenses back, interface gone, a new worker; a new login works."""
    if gateway.aaa != "local":
        pytest.skip("once is enough")
    node = node_name(lab, 33)
    with client_for(lab, plan, node, "strongswan", "aggressive", "user033", "vr1") as client:
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user="user033")[0]
        workers = {w["index"]: w for w in gateway.workers()}
        victim = workers[row["worker"]]
        os.kill(victim["pid"], signal.SIGKILL)
        assert wait_until(lambda: "user033" not in {s.user for s in gateway.subscribers()}, 5)
        assert wait_until(lambda: resources_in_use(gateway) == (0, 0, 0), 3)
        assert wait_until(lambda: not vr_cmd(lab, row["netns"],
                                             f"ip route show {row['address']}/32").strip(), 3)
        assert wait_until(lambda: all(w["ready"] for w in gateway.workers())
                          and {w["index"]: w for w in gateway.workers()}[row["worker"]]
                          ["generation"] == victim["generation"] + 1, 10)
        client.kill()
    assert wait_until(lambda: len(acct_records(lab, row["acct_session_id"])) >= 2, 5)
    stop = acct_records(lab, row["acct_session_id"])[-1]
    assert stop["Acct-Status-Type"] == "Stop" and stop["Acct-Terminate-Cause"] == "Port-Error"
    # logins work again (whichever worker steering picks)
    with client_for(lab, plan, node_name(lab, 34), "vpnc", "aggressive", "user034", "vr2") as again:
        again.connect()
        assert plan.group("vr2").in_pool(again.wait_up(20).address)
        again.disconnect()
    assert wait_until(lambda: resources_in_use(gateway) == (0, 0, 0), 5), still_held(gateway)


def test_admin_logout_and_sigterm(lab, plan, gateway, wait_until):
    """Admin logout by user sends Delete (Admin-Reset); SIGTERM logs everyone out
    (Admin-Reboot) and leaves nothing behind. Runs last: it restarts the gateway."""
    if gateway.aaa != "local":
        pytest.skip("once is enough")
    with client_for(lab, plan, node_name(lab, 35), "strongswan", "main", "user035", "vr1") as a, \
            client_for(lab, plan, node_name(lab, 36), "vpnc", "aggressive", "user036", "vr2") as b:
        a.connect()
        b.connect()
        a.wait_up(20)
        b.wait_up(20)
        row_a = gateway.subscriber_rows(user="user035")[0]
        row_b = gateway.subscriber_rows(user="user036")[0]
        assert gateway.terminate(user="user035") == 1
        assert wait_until(lambda: "user035" not in {s.user for s in gateway.subscribers()}, 5)
        gateway.stop()
        assert not _subscriber_links(lab, plan)
    for row, cause in ((row_a, "Admin-Reset"), (row_b, "Admin-Reboot")):
        assert wait_until(lambda: len(acct_records(lab, row["acct_session_id"])) >= 2, 5)
        assert acct_records(lab, row["acct_session_id"])[-1]["Acct-Terminate-Cause"] == cause
    gateway.start()  # the module fixture stops it again


def test_radius_disconnect_and_session_timeout(lab, plan, gateway, wait_until):
    """RFC 5176 Disconnect-Request from FreeRADIUS logs a subscriber out (Admin-Reset);
    RADIUS Session-Timeout 5 s ends radius-short's session (Session-Timeout)."""
    if gateway.aaa != "radius":
        pytest.skip("RADIUS attributes and requests")
    with client_for(lab, plan, node_name(lab, 37), "vpnc", "aggressive", "user037", "vr2") as a, \
            client_for(lab, plan, node_name(lab, 38), "strongswan", "aggressive", "radius-short",
                       "vr1") as b:
        a.connect()
        b.connect()
        a.wait_up(20)
        b.wait_up(20)
        started = time.monotonic()
        row_a = gateway.subscriber_rows(user="user037")[0]
        row_b = gateway.subscriber_rows(user="radius-short")[0]
        assert row_b["session_timeout"] == 5
        answer = lab.radius.send_dynamic_authorization("disconnect", user="user037")
        assert "Disconnect-ACK" in answer, answer
        assert wait_until(lambda: "user037" not in {s.user for s in gateway.subscribers()}, 5)
        assert wait_until(lambda: "radius-short" not in {s.user for s in gateway.subscribers()}, 10)
        assert time.monotonic() - started >= 3.5
    for row, cause in ((row_a, "Admin-Reset"), (row_b, "Session-Timeout")):
        assert wait_until(lambda: len(acct_records(lab, row["acct_session_id"])) >= 2, 5)
        assert acct_records(lab, row["acct_session_id"])[-1]["Acct-Terminate-Cause"] == cause
    assert wait_until(lambda: resources_in_use(gateway) == (0, 0, 0), 3)

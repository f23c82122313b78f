"""Plain routed connectivity of the default topology (no IPsec yet): the lab itself is right."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def pings(host, target: str, *options: str) -> bool:
    out = host.cmd("ping -c1 -W2 -q " + " ".join(options) + f" {target}")
    return " 1 received" in out


def echo_requests_captured(lab) -> str:
    pcap = lab.run_dir / "router-public.pcap"
    return subprocess.run(["tcpdump", "-r", str(pcap), "-n", "icmp[icmptype] == icmp-echo"],
                          capture_output=True, text=True).stdout


def in_echos(host) -> int:
    """ICMP echo requests this host has received (/proc/PID/net/snmp is per namespace)."""
    lines = [l.split() for l in Path(f"/proc/{host.pid}/net/snmp").read_text().splitlines()
             if l.startswith("Icmp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("InEchos")])


def test_first_and_last_client_reach_the_router(lab):
    plain = [c for c in lab.clients if not c.behind_nat]
    router = str(lab.topology.access.router)
    assert pings(plain[0].host, router), f"{plain[0].name} cannot ping {router}"
    assert pings(plain[-1].host, router), f"{plain[-1].name} cannot ping {router}"


def test_client_addresses_follow_the_contract(lab):
    plain = [c for c in lab.clients if not c.behind_nat]
    assert plain[0].address == "198.18.1.1"
    assert plain[0].host.IP() == plain[0].address
    nat = [c for c in lab.clients if c.behind_nat]
    assert [c.address for c in nat] == [f"192.168.100.{10 + i}" for i in range(1, len(nat) + 1)]


def test_nat_client_reaches_router_from_the_nat_public_address(lab):
    behind = next(c for c in lab.clients if c.behind_nat)
    router = str(lab.topology.access.router)
    # a recognisable payload, so that this test's packet is found among everything else
    assert pings(behind.host, router, "-p", "d1ad0a7d"), f"{behind.name} cannot ping {router}"
    public = str(lab.topology.nat.public)
    expected = f"{public} > {router}: ICMP echo request"
    seen = ""
    deadline = time.monotonic() + 5  # the capture writes each packet at once; allow a little
    while expected not in seen and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = echo_requests_captured(lab)
    assert expected in seen
    assert f"{behind.address} >" not in seen, "an inside address leaked onto the access LAN"


def test_vr_tables_reach_their_own_intranet_server(lab):
    """10.50.0.10 exists in both intranets: the router's table per VR decides which one answers."""
    router = lab.router
    servers = [lab.server(name) for name in lab.vr_names]
    for k, vr in enumerate(lab.topology.vrs):
        source = str(vr.pool.network_address + 250)  # a pool address, as a subscriber would have
        router.cmd(f"ip addr add {source}/32 dev lo")
        try:
            before = [in_echos(s) for s in servers]
            assert pings(router, str(vr.intranet.server), "-I", source), f"no answer via {vr.name}"
            after = [in_echos(s) for s in servers]
        finally:
            router.cmd(f"ip addr del {source}/32 dev lo")
        answered = [s.name for s, b, a in zip(servers, before, after) if a > b]
        assert answered == [servers[k].name], f"via {vr.name} the echo reached {answered}"


def test_servers_carry_dns_and_wins_addresses(lab):
    for name in lab.vr_names:
        server = lab.server(name)
        vr = lab.topology.vr(name)
        addresses = server.cmd("ip -4 -o addr show")
        for address in (*vr.intranet.dns, *vr.intranet.wins, vr.intranet.server):
            assert f"{address}/" in addresses, f"{server.name} lacks {address}"


def test_vr_namespaces_are_reachable_by_name_for_pyroute2(lab):
    from pyroute2 import NetNS

    for name in lab.vr_names:
        with NetNS(name) as ns:
            links = {link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
        assert f"{name}-eth0" in links and f"{name}-eth1" in links, links


def test_private_run_directories(lab):
    a, b = lab.clients[0].host, lab.clients[1].host
    a.cmd("echo mine > /var/run/dynipsec-probe")
    assert b.cmd("cat /var/run/dynipsec-probe 2>/dev/null").strip() == ""
    assert a.cmd("cat /var/run/dynipsec-probe").strip() == "mine"
    assert not Path("/run/dynipsec-probe").exists()


def test_the_capture_counts_what_it_wrote_and_what_it_dropped(lab):
    before = lab.capture.counters()
    assert before is not None, "tcpdump did not print its counters on SIGUSR1"
    router = str(lab.topology.access.router)
    plain = next(c for c in lab.clients if not c.behind_nat)
    assert " 3 received" in plain.host.cmd(f"ping -c3 -i0.2 -W2 -q {router}")
    after = lab.capture.counters()
    assert after.captured >= before.captured + 6  # three echo requests and three replies
    assert after.dropped >= 0 and after.received >= after.captured

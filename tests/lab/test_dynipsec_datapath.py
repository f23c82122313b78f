"""The userspace ESP data path of dynipsec with real clients.

Needs root, Mininet and the Debian packages (marker `lab`). One gateway for the module
(local AAA, RADIUS accounting to the lab's FreeRADIUS, two workers, ``force_encap``
off): strongSwan clients encapsulate (kernel-libipsec), a vpnc client with ``NAT
Traversal Mode none`` sends raw ESP (IP protocol 50), a client behind the NAT host
detects the NAT. Both VRs use the same intranet subnet (10.50.0.0/24, server
10.50.0.10): echo and TCP segment counters of BOTH servers show that traffic lands on
the subscriber's own VR only.

* ping and iperf3 TCP from every kind of client to its VR's server, the SA's
  encapsulation (raw / UDP), accounting Stop octets at least what iperf3 carried;
* a captured ESP packet of a logged-in client re-injected (replay) and a bit-flipped
  copy with a fresh sequence number (tampered) are dropped and counted (statistics and
  per-SA counters) while the tunnel keeps working;
* an inner packet whose source is not the subscriber's address is dropped and counted;
* a client rekeying its child SA every 5 s pings on without loss across the rekeys.

Clients 34-37 of the session lab (and the last NAT client), users 231-237.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lab.iperf import IperfJob, run_iperf_client, start_servers, stop_servers
from lab.scenario import icmp_in_echos
from tests.lab.conftest import cli, client_for
from tests.lab.test_dynipsec_login import acct_records

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else "python3"
IPERF_PORT = 5291
IPERF_SECONDS = 2

#: (id, kind, mode, group, natt, client index or "nat", user)
CLIENTS = [
    ("strongswan-udp-vr1", "strongswan", "aggressive", "vr1", "force", 34, "user231"),
    ("vpnc-raw-vr2", "vpnc", "aggressive", "vr2", "none", 35, "user232"),
    ("vpnc-udp-vr1", "vpnc", "aggressive", "vr1", "force", 36, "user233"),
    ("strongswan-nat-vr2", "strongswan", "main", "vr2", "force", "nat", "user234"),
]


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    with gateway_factory("dynipsec", "dynipsec-datapath", aaa="local") as gw:
        assert gw.daemon.config["ike"]["force_encap"] is False
        yield gw


@pytest.fixture(scope="module")
def iperf_servers(lab, plan):
    servers = []
    try:
        for group in plan.groups:
            host = lab.server(group.vr)
            servers += start_servers(host, lab.node_dir(host.name), [IPERF_PORT], tracker=lab)
        yield servers
    finally:
        stop_servers(servers)


def client_node(lab, index) -> str:
    if index == "nat":
        return [slot for slot in lab.clients if slot.behind_nat][-1].name
    slot = lab.clients[index]
    assert not slot.behind_nat
    return slot.name


def connect(lab, plan, kind, mode, group, natt, index, user, **extra):
    return client_for(lab, plan, client_node(lab, index), kind, mode, user, group,
                      natt=natt, **extra)


def tcp_in_segs(host) -> int:
    lines = Path(f"/proc/{host.pid}/net/snmp").read_text().splitlines()
    tcp = [line.split() for line in lines if line.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("InSegs")])


def datapath_stats(gateway) -> dict[str, int]:
    """The workers' data-path counters, summed (`dynipsec show statistics --json`)."""
    total: dict[str, int] = {}
    for worker in cli(gateway, "show", "statistics", "--json")["workers"]:
        for key, value in worker.get("datapath", {}).items():
            total[key] = total.get(key, 0) + value
    return total


def sa_rows(gateway, key: str) -> list[dict]:
    return [r for r in cli(gateway, "show", "ipsec-sa", "--json")["rows"] if r["subscriber"] == key]


def servers_of(lab, plan):
    return {g.group: lab.server(g.vr) for g in plan.groups}


@pytest.mark.parametrize("case", CLIENTS, ids=[c[0] for c in CLIENTS])
def test_ping_and_tcp_to_own_vr(lab, plan, gateway, iperf_servers, case, wait_until):
    _, kind, mode, group, natt, index, user = case
    other = [g.group for g in plan.groups if g.group != group][0]
    servers = servers_of(lab, plan)
    server_ip = plan.group(group).server
    with connect(lab, plan, kind, mode, group, natt, index, user) as client:
        client.connect()
        info = client.wait_up(20)
        row = gateway.subscriber_rows(user=user)[0]
        assert row["vr"] == group
        sas = sa_rows(gateway, row["key"])
        assert len(sas) == 1
        assert sas[0]["encapsulation"] == ("raw" if natt == "none" else "udp"), sas
        raw_before = datapath_stats(gateway).get("raw_in", 0)
        # ping: the own VR's server answers, the other's sees nothing
        echos = {g: icmp_in_echos(h) for g, h in servers.items()}
        ping = client.ping(server_ip, count=3)
        assert ping.sent == ping.received == 3, ping
        assert icmp_in_echos(servers[group]) - echos[group] >= 3
        assert icmp_in_echos(servers[other]) == echos[other]
        # TCP: iperf3 to 10.50.0.10 lands on the own VR's server
        segs = {g: tcp_in_segs(h) for g, h in servers.items()}
        result = run_iperf_client(lab.node(client_node(lab, index)),
                                  IperfJob(server_ip, IPERF_PORT, bind=info.address),
                                  seconds=IPERF_SECONDS, tracker=lab)
        assert result.received_bps > 0 and result.received_bytes > 0, result
        assert tcp_in_segs(servers[group]) - segs[group] > 100
        assert tcp_in_segs(servers[other]) - segs[other] < 20
        if natt == "none":
            assert datapath_stats(gateway).get("raw_in", 0) - raw_before > 100
        live = sa_rows(gateway, row["key"])[0]
        assert live["in_octets"] >= result.received_bytes, live
        client.disconnect()
    # the counters feed accounting: Stop carries at least what iperf3 sent through
    assert wait_until(lambda: len(acct_records(lab, row["acct_session_id"])) >= 2, 5)
    stop = acct_records(lab, row["acct_session_id"])[-1]
    assert stop["Acct-Status-Type"] == "Stop"
    octets = int(stop["Acct-Input-Octets"]) + (int(stop.get("Acct-Input-Gigawords", 0)) << 32)
    assert octets >= result.received_bytes, stop


CAPTURE = r"""
import sys
from scapy.all import IP, UDP, Raw, rdpcap, send
pcap, client, gateway, mode = sys.argv[1:5]
packets = [p for p in rdpcap(pcap) if p.haslayer(UDP) and p[UDP].dport == 4500]
udp = packets[-1][UDP]
esp = bytes(udp.payload)
if mode == "tamper":
    seq = int.from_bytes(esp[4:8], "big") + 100000
    esp = bytearray(esp[:4] + seq.to_bytes(4, "big") + esp[8:])
    esp[-1] ^= 0x01
    esp = bytes(esp)
send(IP(src=client, dst=gateway) / UDP(sport=udp.sport, dport=4500) / Raw(esp), verbose=0)
print(esp[:4].hex())
"""


def test_replayed_and_tampered_esp_dropped_and_counted(lab, plan, gateway, wait_until):
    node_name = client_node(lab, 37)
    node = lab.node(node_name)
    slot = lab.clients[37]
    workdir = lab.node_dir(node_name)
    pcap, script = workdir / "esp-capture.pcap", workdir / "esp-inject.py"
    script.write_text(CAPTURE)
    pcap.unlink(missing_ok=True)
    with connect(lab, plan, "strongswan", "aggressive", "vr1", "force", 37, "user235") as client:
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user="user235")[0]
        # a real ESP packet of the client, captured on its side of the access network
        dump = node.popen(["tcpdump", "-i", "any", "-U", "-c", "3", "-w", str(pcap),
                           f"src host {slot.address} and udp dst port 4500 and udp[8:4] != 0"])
        lab.track_pid(dump.pid, f"tcpdump@{node_name}")
        try:
            time.sleep(1.0)
            assert client.ping(plan.group("vr1").server, count=4).received == 4
            dump.wait(timeout=10)
        finally:
            if dump.poll() is None:
                dump.kill()
                dump.wait()
            lab.untrack_pid(dump.pid)
        before = datapath_stats(gateway)
        for mode in ("replay", "tamper"):
            out = node.cmd(f"{PYTHON} {script} {pcap} {slot.address} {plan.gateway} {mode}")
            assert len(out.strip().splitlines()[-1]) == 8, out
        assert wait_until(lambda: datapath_stats(gateway).get("drop_replay", 0)
                          > before.get("drop_replay", 0), 3), datapath_stats(gateway)
        assert wait_until(lambda: datapath_stats(gateway).get("drop_bad_icv", 0)
                          > before.get("drop_bad_icv", 0), 3), datapath_stats(gateway)
        drops = sa_rows(gateway, row["key"])[0]["drops"]["in"]
        assert drops.get("replay", 0) >= 1 and drops.get("bad_icv", 0) >= 1, drops
        # the tunnel keeps working (the forged packet did not move the replay window)
        assert client.ping(plan.group("vr1").server, count=3).received == 3
        client.disconnect()


SPOOF = r"""
import socket, sys
from scapy.all import IP, ICMP
source, target = sys.argv[1:3]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(3):
    s.sendto(bytes(IP(src=source, dst=target) / ICMP()), (target, 0))
"""


def test_inner_source_not_the_subscribers_dropped(lab, plan, gateway, wait_until):
    """vpnc puts whatever reaches tun0 into ESP: a spoofed inner source reaches the
    gateway, which drops it (bad_inner_source) before the VR sees it."""
    node_name = client_node(lab, 35)
    script = lab.node_dir(node_name) / "spoof.py"
    script.write_text(SPOOF)
    server = servers_of(lab, plan)["vr2"]
    with connect(lab, plan, "vpnc", "aggressive", "vr2", "force", 35, "user236") as client:
        client.connect()
        info = client.wait_up(20)
        row = gateway.subscriber_rows(user="user236")[0]
        before, echos = datapath_stats(gateway), icmp_in_echos(server)
        spoofed = "10.99.2.250" if info.address != "10.99.2.250" else "10.99.2.251"
        lab.node(node_name).cmd(f"{PYTHON} {script} {spoofed} {plan.group('vr2').server}")
        assert wait_until(lambda: datapath_stats(gateway).get("drop_bad_inner_source", 0)
                          >= before.get("drop_bad_inner_source", 0) + 3, 3)
        assert icmp_in_echos(server) == echos
        assert sa_rows(gateway, row["key"])[0]["drops"]["in"]["bad_inner_source"] >= 3
        assert client.ping(plan.group("vr2").server, count=2).received == 2
        client.disconnect()


def test_child_rekey_without_loss(lab, plan, gateway):
    """strongSwan rekeys its child SA every 5 s (life time 10 s): a ping every 0.1 s for
    13 s loses nothing; the old inbound SA stays next to the new one (so packets still
    in flight under the old SPI decrypt) until its lifetime ends, then it is removed."""
    with connect(lab, plan, "strongswan", "aggressive", "vr1", "force", 34, "user237",
                 child_rekey_seconds=5) as client:
        client.connect()
        client.wait_up(20)
        row = gateway.subscriber_rows(user="user237")[0]
        first_spi = sa_rows(gateway, row["key"])[0]["spi_in"]
        before = datapath_stats(gateway)
        seen: set[str] = set()
        most = [0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                rows = sa_rows(gateway, row["key"])
                seen.update(r["spi_in"] for r in rows)
                most[0] = max(most[0], len(rows))
                time.sleep(0.3)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            ping = client.ping(plan.group("vr1").server, count=130, interval=0.1, timeout=25)
        finally:
            stop.set()
            watcher.join(5)
        assert len(seen) >= 2, seen  # rekeyed at least once
        assert most[0] >= 2  # old and new inbound SA side by side
        # ... until the old one's lifetime (10 s) ended: the engine removed it
        assert first_spi not in {r["spi_in"] for r in sa_rows(gateway, row["key"])}
        assert ping.sent == ping.received == 130, ping
        after = datapath_stats(gateway)
        assert after.get("unknown_spi", 0) == before.get("unknown_spi", 0), after
        assert gateway.subscriber_rows(user="user237")[0]["key"] == row["key"]
        client.disconnect()


def test_statistics_are_json(gateway):
    stats = cli(gateway, "show", "statistics", "--json")
    assert json.dumps(stats) and len(stats["workers"]) == 2

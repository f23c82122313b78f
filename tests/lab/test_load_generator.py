"""The load generator against both lab gateways: a few dozen subscribers from many
source addresses on two client hosts, held, then deleted (marker `lab`)."""
from __future__ import annotations

import pytest

from lab.gateways import make_gateway, plan_from_topology
from lab.gateways.dynipsec import DynipsecGateway
from lab.gateways.strongswan import StrongSwanGateway
from lab.loadgen import (GatewayProbe, LoadProcess, LoadSpec, SourceAddresses, run_loads,
                         source_blocks, wait_for)

pytestmark = pytest.mark.lab

LOGINS_PER_HOST = 15
SOURCES_PER_HOST = 4


def start_gateway(kind: str, lab, plan):
    workdir = lab.node_dir(lab.topology.router_name) / f"gateway-load-{kind}"
    if kind == "dynipsec":
        return DynipsecGateway(lab.router, workdir, plan, lab, aaa="local").start()
    return make_gateway(kind, lab.router, workdir, plan, lab).start()


def addresses_on(node, interface: str) -> set[str]:
    out = node.cmd(f"ip -o -4 addr show dev {interface}")
    return {field.split("/")[0] for line in out.splitlines()
            for field in line.split()[3:4]}


@pytest.mark.parametrize("kind", ["dynipsec", "strongswan"])
def test_load_establishes_all_and_releases_all(lab, kind):
    plan = plan_from_topology(lab.topology)
    hosts = [slot for slot in lab.clients if not slot.behind_nat][-2:]
    blocks = source_blocks(str(lab.topology.access.subnet), len(hosts), SOURCES_PER_HOST,
                           exclude=[slot.address for slot in lab.clients])
    gateway = start_gateway(kind, lab, plan)
    held_counts = []
    try:
        idle = GatewayProbe.of(gateway).snapshot()
        assert 0 < GatewayProbe.pss_kb(idle) <= GatewayProbe.rss_kb(idle)
        with SourceAddresses(hosts[0].host, blocks[0], neighbours=[lab.router]) as first, \
                SourceAddresses(hosts[1].host, blocks[1], neighbours=[lab.router]) as second:
            assert set(blocks[0]) <= addresses_on(hosts[0].host, first.interface)
            processes = []
            for k, (slot, sources) in enumerate(zip(hosts, blocks)):
                group = plan.groups[k % len(plan.groups)]
                mode = ("aggressive", "main")[k % 2]
                spec = LoadSpec(server=plan.gateway, group=group.group,
                                psk=plan.psk_for(group.group, mode),
                                user="user{n:03d}", password="pw-user{n:03d}",
                                first=1 + k * LOGINS_PER_HOST, count=LOGINS_PER_HOST,
                                mode=mode, rate=20.0)
                processes.append(LoadProcess(lab, slot.host,
                                             lab.node_dir(slot.name) / f"load-{kind}",
                                             spec, sources))

            def held() -> None:
                wait_for(lambda: len(gateway.subscribers()) >= 2 * LOGINS_PER_HOST, 10)
                held_counts.append(len(gateway.subscribers()))

            result = run_loads(processes, held_timeout=90, on_held=held)
            released = wait_for(lambda: not gateway.subscribers(), 20)
        assert not (set(blocks[1]) & addresses_on(hosts[1].host, second.interface))
    finally:
        gateway.stop()
    assert result["established"] == 2 * LOGINS_PER_HOST, result["failures"]
    assert result["failed"] == 0
    assert result["sources"] == 2 * SOURCES_PER_HOST
    assert held_counts == [2 * LOGINS_PER_HOST]
    assert result["released"] == 2 * LOGINS_PER_HOST
    assert released is not None, "subscribers left after every session was deleted"
    assert result["latency_ms"]["count"] == 2 * LOGINS_PER_HOST


def test_strongswan_in_radius_mode_asks_radius_and_sends_accounting(lab):
    """The reference gateway's AAA "radius" (the login bench's fair comparison): Xauth
    by FreeRADIUS, accounting Start and Stop per login, like dynipsec."""
    plan = plan_from_topology(lab.topology)
    host = [slot for slot in lab.clients if not slot.behind_nat][-1]
    sources = source_blocks(str(lab.topology.access.subnet), 1, 2,
                            exclude=[slot.address for slot in lab.clients])[0]
    group = plan.groups[0]
    workdir = lab.node_dir(lab.topology.router_name) / "gateway-load-strongswan-radius"
    gateway = StrongSwanGateway(lab.router, workdir, plan, lab, aaa="radius").start()
    mark = len(lab.accounting_records())
    try:
        with SourceAddresses(host.host, sources, neighbours=[lab.router]):
            spec = LoadSpec(server=plan.gateway, group=group.group,
                            psk=plan.psk_for(group.group, "aggressive"),
                            user="user{n:03d}", password="pw-user{n:03d}", first=1, count=4,
                            mode="aggressive", rate=10.0)
            result = run_loads([LoadProcess(lab, host.host, lab.node_dir(host.name) /
                                            "load-strongswan-radius", spec, sources)],
                               held_timeout=60)
            wait_for(lambda: len(lab.accounting_records()) - mark >= 8, 10)
        log = gateway.log_path.read_text()
    finally:
        gateway.stop()
    assert result["established"] == 4, (result["failures"], log[-2000:])
    assert log.count("sending RADIUS Access-Request") >= 4
    records = lab.accounting_records()[mark:]
    users = {f"user{n:03d}" for n in range(1, 5)}
    for kind in ("Start", "Stop"):
        assert {r.get("User-Name", "").strip('"') for r in records
                if r.get("Acct-Status-Type") == kind} >= users, (kind, records)

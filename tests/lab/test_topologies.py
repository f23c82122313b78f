"""Every topology file (topologies/*.yaml) builds, carries traffic and tears down to nothing.

Each test builds the topology under its own prefix (`aux_prefix("t")`, beside the session
lab), checks that every node exists and that clients at both ends of each network (access
LAN, behind each NAT host) reach the gateway's addresses, then stops the lab and checks,
with the lab's own record of what it created (lab.state), that nothing is left: no state
file, no process it recorded, no process in one of its namespaces, no `ip netns` name and
no link in the root namespace.
"""
from __future__ import annotations

import copy
import os
import time

import pytest

from lab.topology import TOPOLOGY_DIR, load_topology
from tests.lab.conftest import aux_prefix

pytestmark = pytest.mark.lab

TOPOLOGIES = sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def _ends(slots):
    """First and last client of each /24 (access-LAN blocks, each NAT host's inside)."""
    groups: dict[str, list] = {}
    for slot in slots:
        groups.setdefault(slot.address.rsplit(".", 1)[0], []).append(slot)
    return [s for members in groups.values() for s in dict.fromkeys([members[0], members[-1]])]


def _answers(host, address: str) -> bool:
    out = host.cmd(f"ping -c1 -W2 {address}")
    return " 0% packet loss" in out


def _leftovers(snapshot) -> list[str]:
    """What the lab recorded and is still there (lab.state's own accounting)."""
    from lab.state import load_state, netns_name_inode, processes_in_namespaces, root_links

    found = []
    if load_state(snapshot.prefix) is not None:
        found.append(f"state file of prefix {snapshot.prefix}")
    records = [*snapshot.hosts.values(), *snapshot.daemons.values()]
    found += [f"process {r.pid} ({r.what})" for r in records if r.is_alive()]
    found += [f"process {r.pid} in a lab namespace ({r.what[:60]})"
              for r in processes_in_namespaces(snapshot)]
    found += [f"netns name {name}" for name in snapshot.netns_names if netns_name_inode(name)]
    present = root_links()
    found += [f"root-namespace link {name}" for name in [*snapshot.root_links, *snapshot.interfaces]
              if name in present]
    return found


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_topology_builds_and_leaves_nothing(name, lab_evidence_dir):
    from lab.engine import Lab

    topology = load_topology(name).with_overrides(prefix=aux_prefix("t"))
    started = time.monotonic()
    with Lab(topology, lab_evidence_dir) as lab:
        built = time.monotonic() - started
        assert sorted(lab.hosts) == sorted(topology.node_names())
        assert all(os.path.exists(f"/run/netns/{n}") for n in lab.state.netns_names)
        unanswered = [f"{slot.name} -> {address}" for slot in _ends(lab.clients)
                      for address in map(str, topology.public_addresses)
                      if not _answers(slot.host, address)]
        assert not unanswered, f"no answer: {', '.join(unanswered)}"
        for vr in topology.vrs:
            assert _answers(lab.node(topology.vr_netns(vr)), str(vr.intranet.server))
        snapshot = copy.deepcopy(lab.state)
        assert _leftovers(snapshot), "the leftover accounting sees nothing of a running lab"
    print(f"{name}: {len(topology.node_names())} hosts built in {built:.1f}s, "
          f"stopped in {lab.timings['stop']:.1f}s")
    assert not _leftovers(snapshot), f"left after teardown: {_leftovers(snapshot)}"

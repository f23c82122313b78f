"""The topology files (topologies/*.yaml), the model features they use, and what the gateways
make of them (no root, no namespaces).

Every file validates and has a scenario that runs it; every scenario's hosts and groups
exist in its topology; NAT hosts in series, further gateway addresses and groups bound to
them are checked with one-line errors; both gateways render one Main Mode key per address.
"""
from __future__ import annotations

import copy
import ipaddress

import pytest
import yaml

from lab.gateways.plan import plan_from_topology
from lab.scenario_spec import all_scenario_paths, load_scenario
from lab.topology import TOPOLOGY_DIR, TopologyError, load_topology, parse_topology, topology_path

TOPOLOGY_FILES = sorted(TOPOLOGY_DIR.glob("*.yaml"))
SCENARIOS = {path.stem: load_scenario(path) for path in all_scenario_paths()}


def problems_of(data: dict) -> list[str]:
    with pytest.raises(TopologyError) as info:
        parse_topology(data, source="test.yaml")
    return info.value.problems


def changed(name: str, change) -> dict:
    data = copy.deepcopy(yaml.safe_load((TOPOLOGY_DIR / f"{name}.yaml").read_text()))
    change(data)
    return data


# -- the files ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", TOPOLOGY_FILES, ids=lambda p: p.stem)
def test_every_topology_file_validates(path):
    topology = load_topology(path)
    assert topology.name == path.stem, "a topology's name is its file name"
    assert plan_from_topology(topology).groups


@pytest.mark.parametrize("path", TOPOLOGY_FILES, ids=lambda p: p.stem)
def test_every_topology_has_a_scenario(path):
    users = [name for name, spec in SCENARIOS.items()
             if topology_path(spec.topology.name).resolve() == path.resolve()]
    assert users, f"no scenario in scenarios/ runs topology {path.stem!r}"


def test_lab_prefixes_of_the_added_topologies_differ_from_the_default():
    # a default lab and one of these can run side by side
    default = load_topology("default").prefix
    others = {p.stem: load_topology(p).prefix for p in TOPOLOGY_FILES
              if p.stem not in ("default", "minimal")}
    assert default not in others.values()
    assert len(set(others.values())) == len(others)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_hosts_and_groups_exist_in_its_topology(name):
    spec = SCENARIOS[name]
    topology = load_topology(spec.topology.name).with_overrides(clients=spec.topology.clients)
    nodes = set(topology.node_names())
    groups = {g.group for g in plan_from_topology(topology).groups}
    for client in spec.clients:
        assert topology.prefix + client.host in nodes, f"{client.name}: no host {client.host}"
        assert client.group in groups, f"{client.name}: no group {client.group}"


def test_nat_topology_puts_clients_behind_two_nats():
    t = load_topology("nat")
    assert [(n.name, n.upstream) for n in t.nat_hosts] == [("nat", None), ("inat", "nat")]
    inner = t.nat_host("inat")
    assert t.nat_uplink(inner) == (ipaddress.IPv4Network("192.168.100.0/24"),
                                   ipaddress.IPv4Address("192.168.100.1"))
    assert [t.nat_host_client_name(inner, i) for i in (1, 2)] == ["dnnn1", "dnnn2"]
    assert {"dnc1", "dnn1", "dnnat", "dninat"} <= set(t.node_names())
    assert [n["name"] for n in t.summary()["nats"]] == ["dnnat", "dninat"]


def test_scale_topology_has_room_for_5000_subscribers():
    t = load_topology("scale")
    assert t.clients.count >= 200 and len(t.aaa.users) >= 5000
    assert sum(vr.pool.num_addresses - 2 for vr in t.vrs) >= 5000
    assert str(t.client_address(t.clients.count)) == "198.18.3.10"


# -- model errors: one line each, with the key path ------------------------------------------
NAT_ERRORS = [
    (lambda d: d["nats"][0].update(upstream="nope"),
     "nats[0].upstream: 'nope' is not an earlier NAT host (nat)"),
    (lambda d: d["nats"][0].update(public="10.1.1.1"),
     "nats[0].public: 10.1.1.1 is not inside its upstream network 192.168.100.0/24"),
    (lambda d: d["nats"][0].update(public="192.168.100.11"),
     "nats[0].public: 192.168.100.11 is a client address of NAT host 'nat'"),
    (lambda d: d["nats"][0]["inside"].update(subnet="192.168.100.0/24", gateway="192.168.100.1",
                                             first_client="192.168.100.50"),
     "nats[0].inside.subnet: 192.168.100.0/24 overlaps nat.inside.subnet 192.168.100.0/24"),
    (lambda d: d["nats"][0].update(name="nat"),
     "nats[0].name: 'nat' is used twice (the nat section is 'nat')"),
    (lambda d: d["nats"][0].update(client_prefix="c"),
     "nats: node name(s) dnc1 would be used twice; choose another name or client_prefix"),
    (lambda d: d["nats"][0].pop("client_prefix"), "nats[0].client_prefix: required key is missing"),
]


@pytest.mark.parametrize("change,problem", NAT_ERRORS, ids=[p.split(":")[0] + str(i) for i, (_, p)
                                                           in enumerate(NAT_ERRORS)])
def test_nat_hosts_in_series_are_checked(change, problem):
    assert problem in problems_of(changed("nat", change))


ADDRESS_ERRORS = [
    (lambda d: d["access"].update(addresses=["10.0.0.2"]),
     "access.addresses[0]: 10.0.0.2 is not inside access.subnet 198.18.0.0/16"),
    (lambda d: d["access"].update(addresses=["198.18.0.1"]),
     "access.addresses[0]: 198.18.0.1 is used twice (access.router included)"),
    (lambda d: d["aaa"]["groups"][1].update(address="198.18.0.3"),
     "aaa.groups[1].address: 198.18.0.3 is not a public address of the router "
     "(198.18.0.1, 198.18.0.2)"),
    (lambda d: d["access"].update(addresses=["198.18.1.2"]),
     "clients.count: client addresses run into access.addresses[0] 198.18.1.2"),
]


@pytest.mark.parametrize("change,problem", ADDRESS_ERRORS, ids=[p.split(":")[0] + str(i) for i, (_, p)
                                                               in enumerate(ADDRESS_ERRORS)])
def test_gateway_addresses_are_checked(change, problem):
    assert problem in problems_of(changed("multi-address", change))


def test_every_problem_is_one_line():
    data = changed("nat", lambda d: d["nats"][0].update(upstream="nope", client_prefix="C"))
    problems = problems_of(data)
    assert len(problems) >= 2 and all("\n" not in line for line in problems)


# -- the gateways: one Main Mode VPN per address ---------------------------------------------
def test_plan_has_one_main_mode_key_per_address():
    plan = plan_from_topology(load_topology("multi-address"))
    assert plan.addresses == ("198.18.0.1", "198.18.0.2")
    assert [plan.gateway_for(g) for g in ("vr1", "vr2")] == ["198.18.0.1", "198.18.0.2"]
    assert [plan.main_mode_key(a) for a in plan.addresses] == ["psk-vr1", "psk-vr2"]
    assert plan.psk_for("vr2", "main") == plan.psk_for("vr2", "aggressive") == "psk-vr2"


def test_shared_address_plans_are_unchanged():
    plan = plan_from_topology(load_topology("default"))
    assert plan.addresses == ("198.18.0.1",)
    assert plan.psk_for("vr2", "main") == "psk-vr1"  # the address's one Main Mode key
    assert plan.psk_for("vr2", "aggressive") == "psk-vr2"


@pytest.mark.parametrize("name", [p.stem for p in TOPOLOGY_FILES])
def test_dynipsec_configuration_of_every_topology_is_accepted(name, tmp_path):
    from lab.gateways.dynipsec import render_config
    from responder.config import load_config

    topology = load_topology(name)
    cfg = render_config(plan_from_topology(topology), control_socket=str(tmp_path / "c.sock"),
                        topology=topology)
    (tmp_path / "responder.yaml").write_text(yaml.safe_dump(cfg))
    load_config(str(tmp_path / "responder.yaml"))


def test_dynipsec_serves_each_address_with_its_own_vpn():
    from lab.gateways.dynipsec import render_config

    topology = load_topology("multi-address")
    cfg = render_config(plan_from_topology(topology), control_socket="/tmp/c.sock", topology=topology)
    assert [entry["address"] for entry in cfg["listen"]] == ["198.18.0.1", "198.18.0.2"]
    main_keys = [(k["local"], k["secret"]) for k in cfg["pre_shared_keys"] if "identity" not in k]
    assert main_keys == [("198.18.0.1", "psk-vr1"), ("198.18.0.2", "psk-vr2")]
    matches = {p["name"]: p["match"] for p in cfg["tunnel_profiles"]}
    assert matches["vr2"] == {"identities": ["keyid:vr2"], "local_addresses": ["198.18.0.2"]}


def test_strongswan_serves_each_address_with_its_own_main_mode_key(tmp_path):
    from lab.gateways.strongswan import MAIN_MODE_ID, GatewayCharon

    class Node:
        name = "dmr"

    plan = plan_from_topology(load_topology("multi-address"))
    charon = GatewayCharon(Node(), tmp_path, plan)
    charon.build_config()
    text = charon.swanctl_conf_path.read_text()
    vr2_main = text.split("vr2-main {", 1)[1].split("children", 1)[0]
    assert "local_addrs = 198.18.0.2" in vr2_main
    assert f"id = {MAIN_MODE_ID}-198.18.0.2" in vr2_main
    secret = text.split("ike-main-mode-2 {", 1)[1].split("}", 1)[0]
    assert f"id-local = {MAIN_MODE_ID}-198.18.0.2" in secret
    assert 'secret = "psk-vr2"' in secret and "keyid:vr1" not in secret

"""Topology validation (no root, no namespaces): every mistake reported, with its key path."""
from __future__ import annotations

import copy
import ipaddress

import pytest
import yaml

from lab.topology import TOPOLOGY_DIR, TopologyError, load_topology, parse_topology


@pytest.fixture(scope="module")
def default_data() -> dict:
    return yaml.safe_load((TOPOLOGY_DIR / "default.yaml").read_text())


def problems_of(data: dict) -> list[str]:
    with pytest.raises(TopologyError) as info:
        parse_topology(data, source="test.yaml")
    return info.value.problems


def mutated(data: dict, change) -> dict:
    copy_ = copy.deepcopy(data)
    change(copy_)
    return copy_


def test_default_topology_follows_the_contract():
    t = load_topology("default")
    assert t.prefix == "dl"
    assert [t.router_name, t.aaa_name, t.nat_name] == ["dlr", "dlaaa", "dlnat"]
    assert [t.vr_netns(vr) for vr in t.vrs] == ["dlvr1", "dlvr2"]
    assert [t.server_name(k) for k in (1, 2)] == ["dlsrv1", "dlsrv2"]
    assert t.clients.count == 50
    assert str(t.access.router) == "198.18.0.1"
    assert str(t.client_address(1)) == "198.18.1.1"
    assert str(t.client_address(250)) == "198.18.1.250"
    assert str(t.client_address(251)) == "198.18.2.1"
    assert [str(t.nat_client_address(i)) for i in (1, 4)] == ["192.168.100.11", "192.168.100.14"]
    assert t.vrs[0].intranet.subnet == t.vrs[1].intranet.subnet  # same subnet in both VRs
    assert str(t.nas_address) == "10.255.0.1"
    assert [(g.name, g.vr, str(g.pool)) for g in t.aaa.groups] == [
        ("vr1", "vr1", "10.99.1.0/24"), ("vr2", "vr2", "10.99.2.0/24")]


def test_users_range_is_expanded_into_users():
    t = load_topology("default")
    names = [u.name for u in t.aaa.users]
    assert "user001" in names and "user250" in names and "user251" not in names
    assert t.aaa.user("user042").password == "pw-user042"
    assert len(t.aaa.explicit_users) == 4
    assert len(names) == len(set(names)) == 254


def test_radius_reply_attributes_use_freeradius_names():
    t = load_topology("default")
    pairs = dict((name, value) for name, value, _ in t.aaa.user("radius-vr2").reply.radius_pairs())
    assert pairs["ERX-Virtual-Router-Name"] == "vr2"
    assert pairs["ERX-Primary-Dns"] == "10.50.0.53"
    assert pairs["ERX-Secondary-Wins"] == "10.50.0.138"
    fixed = dict((n, v) for n, v, _ in t.aaa.user("radius-fixed").reply.radius_pairs())
    assert fixed == {"Framed-IP-Address": "10.99.1.200", "Framed-IP-Netmask": "255.255.255.255",
                     "Class": "lab-class-fixed"}
    assert t.aaa.user("radius-short").reply.session_timeout == 5


def test_overrides_revalidate_and_scale():
    t = load_topology("default").with_overrides(clients=300, prefix="dt")
    assert t.clients.count == 300 and t.router_name == "dtr"
    assert t.client_address(300) == ipaddress.IPv4Address("198.18.2.50")
    assert len(t.aaa.users) == 254  # generated users are not duplicated by the round trip
    assert len(t.node_names()) == 2 + 4 + 1 + 4 + 300
    with pytest.raises(TopologyError, match="prefix"):
        load_topology("default").with_overrides(prefix="much-too-long")


def test_invalid_address_names_its_key_path(default_data):
    data = mutated(default_data, lambda d: d["vrs"][1]["intranet"].update(server="10.50.0.300"))
    assert problems_of(data) == ["vrs[1].intranet.server: '10.50.0.300' is not a valid IPv4 address"]


def test_all_field_problems_are_reported_at_once(default_data):
    def break_many(d):
        d["vrs"][0]["pool"] = "10.99.1.1/24"
        d["vrs"][0]["poool"] = "typo"
        del d["access"]["router"]
        d["clients"]["count"] = "many"
        d["aaa"]["users"][0]["reply"]["primary_dns"] = "x"
    problems = problems_of(mutated(default_data, break_many))
    assert "vrs[0].pool: '10.99.1.1/24' is not a valid IPv4 network (host bits set)" in problems
    assert "vrs[0].poool: unknown key" in problems
    assert "access.router: required key is missing" in problems
    assert any(p.startswith("clients.count: 'many'") for p in problems)
    assert "aaa.users[0].reply.primary_dns: 'x' is not a valid IPv4 address" in problems
    assert len(problems) == 5


def test_consistency_problems_are_reported_at_once(default_data):
    def inconsistent(d):
        d["aaa"]["groups"][1]["vr"] = "vr9"
        d["aaa"]["users"][0]["reply"]["virtual_router"] = "vr7"
        d["nat"]["public"] = "10.1.1.1"
        d["vrs"][1]["intranet"]["server"] = "10.51.0.10"
        d["vrs"][1]["table"] = 101
    problems = problems_of(mutated(default_data, inconsistent))
    assert "aaa.groups[1].vr: 'vr9' is not a VR of this topology (vr1, vr2)" in problems
    assert "aaa.users[0].reply.virtual_router: 'vr7' is not a VR of this topology (vr1, vr2)" in problems
    assert "nat.public: 10.1.1.1 is not inside access.subnet 198.18.0.0/16" in problems
    assert "vrs[1].intranet.server: 10.51.0.10 is not inside 10.50.0.0/24" in problems
    assert "vrs[1].table: 101 is used twice" in problems


def test_client_count_limits(default_data):
    clash = mutated(default_data, lambda d: d["clients"].update(count=300) or d["nat"].update(public="198.18.2.5"))
    assert problems_of(clash) == ["clients.count: client addresses run into nat.public 198.18.2.5"]
    outside = mutated(default_data, lambda d: d["clients"].update(first="198.18.255.1", count=300))
    assert any("outside access.subnet 198.18.0.0/16" in p for p in problems_of(outside))
    assert any("less than or equal to 5000" in p
               for p in problems_of(mutated(default_data, lambda d: d["clients"].update(count=6000))))


def test_interface_names_stay_within_the_kernel_limit(default_data):
    problems = problems_of(mutated(default_data, lambda d: d.update(prefix="abcde")
                                   or d["vrs"][0].update(name="longvrnm")))
    assert any("would exceed 15 characters" in p for p in problems)


def test_unknown_topology_lists_the_available_ones():
    with pytest.raises(TopologyError) as info:
        load_topology("no-such-topology")
    assert "default" in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprefix: [unclosed\n")
    with pytest.raises(TopologyError) as info:
        load_topology(bad)
    assert "line 3" in str(info.value) or "line 2" in str(info.value)


def test_top_level_must_be_a_mapping():
    assert problems_of(["not", "a", "mapping"]) == ["(top level): expected a mapping, got list"]

"""Scenario files: every file in scenarios/ validates; mistakes are one line with a key path."""
from __future__ import annotations

import pytest

from lab.scenario_engine import CHECKS, STEPS
from lab.scenario_spec import (ScenarioError, StepBase, all_scenario_paths, load_scenario,
                               parse_scenario)
from lab.topology import load_topology

BASE = {
    "name": "x",
    "clients": [{"name": "a", "host": "c1", "kind": "strongswan", "user": "user001"}],
    "steps": [{"do": "login", "clients": ["a"]}],
}


def with_changes(**changes) -> dict:
    return {**BASE, **changes}


def problems_of(data) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, source="x.yaml")
    return info.value.problems


@pytest.mark.parametrize("path", all_scenario_paths(), ids=lambda p: p.stem)
def test_every_scenario_file_validates_and_names_real_things(path):
    spec = load_scenario(path)
    assert spec.name == path.stem
    topology = load_topology(spec.topology.name)
    groups = {g.name for g in topology.aaa.groups}
    hosts = {name.removeprefix(topology.prefix)
             for name in topology.with_overrides(clients=spec.topology.clients).node_names()}
    for client in spec.clients:
        assert client.group in groups, client
        assert client.host in hosts, client


def test_there_are_scenarios_for_every_topology():
    used = {load_scenario(p).topology.name for p in all_scenario_paths()}
    assert {"default", "minimal"} <= used


def test_the_engine_has_a_function_for_every_step_and_check_kind():
    step_kinds = {kind for cls in StepBase.__subclasses__()
                  for kind in cls.model_fields["do"].annotation.__args__}
    assert step_kinds == set(STEPS)
    from lab.scenario_spec import CheckBase
    check_kinds = {cls.model_fields["check"].annotation.__args__[0]
                   for cls in CheckBase.__subclasses__()}
    assert check_kinds == set(CHECKS)


def test_unknown_key_is_refused_with_its_path():
    data = with_changes(steps=[{"do": "login", "clients": ["a"], "timout": 3}])
    assert problems_of(data) == ["steps[0].login.timout: unknown key"]


def test_unknown_step_kind_is_one_line():
    (line,) = problems_of(with_changes(steps=[{"do": "dance"}]))
    assert line.startswith("steps[0]:") and "dance" in line


def test_reference_to_a_missing_client():
    data = with_changes(steps=[{"do": "ping", "client": "b"}])
    assert problems_of(data) == ["steps[0].client: no client 'b' (clients: a)"]


def test_dynipsec_only_step_needs_the_dynipsec_gateway():
    data = with_changes(steps=[{"do": "kill_worker", "client": "a"}])
    (line,) = problems_of(data)
    assert line.startswith("steps[0].do: kill_worker needs the dynipsec gateway")


def test_evaluation_line_becomes_a_command_check():
    data = with_changes(steps=[{"do": "login", "clients": ["a"],
                                "expect": ["r::ip route::10.99::NO"]}])
    check = parse_scenario(data).steps[0].expect[0]
    assert (check.check, check.host, check.run, check.pattern, check.present) == \
        ("command", "r", "ip route", "10.99", False)
    (line,) = problems_of(with_changes(steps=[{"do": "login", "clients": ["a"],
                                               "expect": ["r::ip route::MAYBE"]}]))
    assert "host::command::pattern::YES|NO" in line


def test_impair_takes_exactly_one_action():
    data = with_changes(steps=[{"do": "impair", "host": "c1", "loss": 5, "blackhole": True}])
    assert problems_of(data) == ["steps[0]: impair takes exactly one of loss, blackhole, rate, clear"]


def test_vendor_ids_only_for_the_initiator():
    clients = [{**BASE["clients"][0], "vendor_ids": ["xauth"]}]
    assert problems_of(with_changes(clients=clients)) == [
        "clients[0]: vendor_ids and quirks need kind initiator"]


def test_error_lines_name_the_file():
    with pytest.raises(ScenarioError) as info:
        parse_scenario(with_changes(name="Bad Name"), source="scenarios/x.yaml")
    assert str(info.value).startswith("scenarios/x.yaml: name: ")

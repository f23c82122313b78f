"""The supervisor's resources (licenses, then an address) and its subscriber registry,
without processes: what a refusal leaves held, release exactly once, the counters a
logout's accounting Stop reads."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from responder.aaa.accounting import Counters
from responder.config import parse_config
from responder.daemon.registry import SubscriberRegistry
from responder.daemon.resources import Resources

from .test_daemon_orchestrator import CONFIG

CFG = parse_config(CONFIG)   # two licenses of each kind, vr1 with 10.99.1.0/24


def ask(resources: Resources, key: str, **extra) -> dict:
    return resources.acquire(CFG, 0, {"key": key, "user": key, "vr": "vr1", **extra})


def in_use(resources: Resources) -> list[int]:
    return [s.in_use for s in resources.licenses.stats()]


def test_licenses_run_out_and_the_refused_login_holds_nothing():
    resources = Resources(CFG)
    assert ask(resources, "0:1")["ok"] and ask(resources, "0:2")["ok"]
    refused = ask(resources, "0:3")
    assert refused["ok"] is False and refused["kind"] == "license"
    assert "0:3" not in resources.held and in_use(resources) == [2, 2]
    assert sum(resources.refused.values()) == 1


def test_an_unknown_vr_gives_the_licenses_back():
    resources = Resources(CFG)
    answer = ask(resources, "0:1", vr="nosuchvr")
    assert answer["kind"] == "vr" and "nosuchvr" in answer["reason"]
    assert in_use(resources) == [0, 0] and resources.refused["unknown-vr"] == 1


def test_a_second_acquire_of_one_key_is_a_duplicate_and_takes_nothing_more():
    resources = Resources(CFG)
    first = ask(resources, "0:1")
    assert ask(resources, "0:1")["kind"] == "duplicate"
    assert in_use(resources) == [1, 1] and str(resources.held["0:1"].lease.address) == first["address"]


def test_release_is_once_and_the_address_comes_back():
    resources = Resources(CFG)
    address = ask(resources, "0:1", framed_ip="10.99.1.77")["address"]
    assert address == "10.99.1.77"
    resources.release("0:1")
    resources.release("0:1")
    assert in_use(resources) == [0, 0] and not resources.held
    assert ask(resources, "0:2", framed_ip="10.99.1.77")["address"] == "10.99.1.77"


def test_keys_of_a_worker_are_the_ones_it_acquired():
    resources = Resources(CFG)
    resources.acquire(CFG, 1, {"key": "1:1", "vr": "vr1"})
    ask(resources, "0:1")
    assert resources.keys_of(1) == ["1:1"] and resources.keys_of(0) == ["0:1"]


def test_the_final_counters_stay_readable_until_forgotten():
    registry = SubscriberRegistry()
    registry.up("0:1", 0, {"key": "0:1", "user": "alice", "address": "10.99.1.2"})
    registry.absorb({"0:1": [10, 20, 1, 2], "9:9": [1, 1, 1, 1]})
    assert "9:9" not in registry.counters   # a subscriber already gone is not brought back
    record = registry.down("0:1", [100, 200, 3, 4])
    assert record["user"] == "alice" and len(registry) == 0
    assert registry.counters_of("0:1") == Counters(100, 200, 3, 4)
    registry.forget("0:1")
    assert registry.counters_of("0:1") == Counters() and registry.down("0:1", None) is None


def test_select_and_rows():
    registry = SubscriberRegistry()
    registry.up("0:1", 0, {"key": "0:1", "id": 1, "user": "alice", "address": "10.99.1.2",
                           "vr": "vr1", "netns": "nsvr1", "profile": "p1"})
    registry.up("1:1", 1, {"key": "1:1", "id": 1, "user": "bob", "address": "10.99.1.3",
                           "vr": "vr1", "netns": "nsvr1", "profile": "p2"})
    assert [r["key"] for r in registry.select(user="bob")] == ["1:1"]
    assert [r["key"] for r in registry.select(vr="nsvr1", profile="p1")] == ["0:1"]
    assert [r["worker"] for r in registry.rows()] == [0, 1]
    assert registry.keys_of(1) == ["1:1"]


# -- the registry's user index against a plain scan of the records ------------------------
USERS = ["alice", "bob", "carol"]
registry_steps = st.lists(st.one_of(
    st.tuples(st.just("up"), st.integers(0, 5), st.sampled_from(USERS)),
    st.tuples(st.just("update"), st.integers(0, 5), st.sampled_from(USERS)),
    st.tuples(st.just("down"), st.integers(0, 5), st.none())), max_size=40)


@settings(max_examples=200, deadline=None)
@given(registry_steps)
def test_the_user_index_finds_what_a_scan_of_the_records_finds(steps):
    registry = SubscriberRegistry()
    for op, n, user in steps:
        key = f"0:{n}"
        if op == "up":
            registry.up(key, 0, {"key": key, "user": user, "address": f"10.0.0.{n}"})
        elif op == "update":
            registry.update(key, {"user": user})
        else:
            registry.down(key, None)
        for name in USERS:
            scanned = [r for r in registry.records.values() if r.get("user") == name]
            assert sorted(r["key"] for r in registry.select(user=name)) == \
                sorted(r["key"] for r in scanned)
            assert registry.select(user=name, address="10.0.0.1") == \
                [r for r in scanned if r["address"] == "10.0.0.1"]

"""Leftover subscriber interfaces of a crashed run, removed at start (root only).

Each test makes its own namespace (named hQs<pid>...) and deletes exactly that one.
"""
import os
import subprocess
from ipaddress import IPv4Address

import pytest

from responder.netif import InterfaceManager, daemon_interface_pattern, remove_stale_interfaces

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="needs root and /dev/net/tun (creates network namespaces)",
)

TAG = f"hQs{os.getpid() % 100000}"


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def in_ns(ns: str, *args: str) -> str:
    return run("ip", "netns", "exec", ns, *args)


@pytest.fixture
def vr():
    name = f"{TAG}v"
    run("ip", "netns", "add", name)
    try:
        in_ns(name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def links(ns: str) -> set[str]:
    return {line.split(":")[1].strip().split("@")[0]
            for line in in_ns(ns, "ip", "-o", "link", "show").splitlines()}


def leftover(ns: str, name: str, address: str) -> None:
    """A persistent TUN with a /32 route: what a crashed run can leave."""
    in_ns(ns, "ip", "tuntap", "add", "mode", "tun", "name", name)
    in_ns(ns, "ip", "link", "set", name, "up")
    in_ns(ns, "ip", "route", "add", f"{address}/32", "dev", name, "scope", "link")


def test_pattern_matches_only_the_daemons_names():
    pattern = daemon_interface_pattern(["ips", "vr2-"])
    assert pattern.fullmatch("ips0-17") and pattern.fullmatch("vr2-1-3")
    assert not pattern.fullmatch("ips0") and not pattern.fullmatch("eth0")
    assert not pattern.fullmatch("xips0-1") and not pattern.fullmatch("ips0-1x")


def test_stale_tun_and_route_removed_others_kept(vr):
    leftover(vr, "ips0-41", "10.99.7.41")
    leftover(vr, "ips1-42", "10.99.7.42")
    in_ns(vr, "ip", "tuntap", "add", "mode", "tun", "name", "ips-keep")   # not the daemon's name
    in_ns(vr, "ip", "link", "add", "ips2-9", "type", "veth", "peer", "name", "hqpeer")  # not a TUN
    (found,) = remove_stale_interfaces({vr: ["ips"]})
    assert found.vr == vr and found.interfaces == ("ips0-41", "ips1-42") and found.routes == 2
    assert {"ips0-41", "ips1-42"}.isdisjoint(links(vr))
    assert {"ips-keep", "ips2-9"} <= links(vr)
    assert "10.99.7.4" not in in_ns(vr, "ip", "route", "show")
    assert remove_stale_interfaces({vr: ["ips"]})[0].interfaces == ()


def test_missing_namespace_is_skipped():
    assert remove_stale_interfaces({f"{TAG}none": ["ips"]}) == []


def test_live_interfaces_of_a_running_manager_are_found_by_name(vr):
    """Removal at start runs before any worker: a live device with the daemon's name
    would be removed as well, so the supervisor must call it only then."""
    with InterfaceManager() as manager:
        manager.create(vr, "ips0-1", IPv4Address("10.99.7.1"), 1400)
        assert "ips0-1" in links(vr)
    assert "ips0-1" not in links(vr)

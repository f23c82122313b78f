"""Subscriber interfaces in real VR namespaces (root only; namespaces named dx<pid>...).

Each test makes its own namespaces and removes exactly those (by name) afterwards.
"""
import os
import select
import subprocess
import time
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP

from responder.netif import (InterfaceExistsError, InterfaceManager, InterfaceSpec, NetifError,
                             interface_name)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="needs root and /dev/net/tun (creates network namespaces)",
)

SUBSCRIBER = IPv4Address("10.99.0.7")
TAG = f"dx{os.getpid() % 100000}"


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def in_ns(ns: str, *args: str) -> str:
    return run("ip", "netns", "exec", ns, *args)


@pytest.fixture
def namespaces():
    """Factory for uniquely named namespaces; deletes the ones it made."""
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{TAG}{suffix}"
        run("ip", "netns", "add", name)
        made.append(name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        return name

    yield make
    for name in reversed(made):
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(params=["in_vr", "move"])
def manager(request):
    with InterfaceManager(placement=request.param) as mgr:
        yield mgr


def ifname(n: int) -> str:
    return interface_name(n, prefix=f"{TAG}i")


def link_names(ns: str) -> set[str]:
    return {line.split()[0].split("@")[0] for line in in_ns(ns, "ip", "-br", "link").splitlines()}


def test_names_are_checked():
    assert interface_name(1042) == "ips1042"
    with pytest.raises(NetifError):
        interface_name(10**13)  # 16 characters


def test_interface_is_in_the_vr_with_name_mtu_up_route_and_no_ipv6(namespaces, manager):
    vr = namespaces("a")
    iface = manager.create(vr, ifname(1), SUBSCRIBER, 1400)
    shown = in_ns(vr, "ip", "-o", "link", "show", iface.name)
    assert f"{iface.ifindex}: {iface.name}:" in shown and "mtu 1400" in shown and ",UP," in shown
    assert in_ns(vr, "ip", "route", "show", f"{SUBSCRIBER}/32").split()[:3] == [str(SUBSCRIBER), "dev", iface.name]
    assert "scope link" in in_ns(vr, "ip", "route", "show", f"{SUBSCRIBER}/32")
    assert in_ns(vr, "cat", f"/proc/sys/net/ipv6/conf/{iface.name}/disable_ipv6").strip() == "1"
    assert in_ns(vr, "ip", "-6", "addr", "show", "dev", iface.name).strip() == ""
    assert iface.name not in run("ip", "-br", "link")  # moved out of the responder's namespace
    assert os.get_blocking(iface.fileno()) is False
    assert manager.list(vr) == [iface] and manager.get(vr, iface.name) is iface


def test_two_vrs_may_give_the_same_address_to_two_subscribers(namespaces, manager):
    vr_a, vr_b = namespaces("a"), namespaces("b")
    first = manager.create(vr_a, ifname(1), SUBSCRIBER, 1400)
    second = manager.create(vr_b, ifname(2), SUBSCRIBER, 1300)
    assert f"dev {first.name}" in in_ns(vr_a, "ip", "route", "show", f"{SUBSCRIBER}/32")
    assert f"dev {second.name}" in in_ns(vr_b, "ip", "route", "show", f"{SUBSCRIBER}/32")
    assert {i.name for i in manager.list()} == {first.name, second.name}


def test_duplicate_name_in_a_vr_is_refused(namespaces, manager):
    vr = namespaces("a")
    manager.create(vr, ifname(1), SUBSCRIBER, 1400)
    with pytest.raises(InterfaceExistsError):
        manager.create(vr, ifname(1), IPv4Address("10.99.0.8"), 1400)


def test_unknown_vr_is_a_clear_error(manager):
    with pytest.raises(NetifError, match="not found"):
        manager.create(f"{TAG}nope", ifname(1), SUBSCRIBER, 1400)


def _wait_for_echo_reply(fd: int, source: str, timeout: float = 3.0) -> IP:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        packet = IP(os.read(fd, 65535))
        if packet.haslayer(ICMP) and packet[ICMP].type == 0 and packet.src == source:
            return packet
    raise AssertionError(f"no echo reply from {source} within {timeout}s")


def test_packet_written_to_fd_is_answered_by_a_host_behind_the_vr(namespaces, manager):
    """Data-path plumbing: subscriber -> TUN fd -> VR -> veth -> intranet host and back."""
    vr, host = namespaces("vr"), namespaces("h")
    veth_vr, veth_host = f"{TAG}v", f"{TAG}w"
    run("ip", "link", "add", veth_vr, "netns", vr, "type", "veth", "peer", "name", veth_host, "netns", host)
    in_ns(vr, "ip", "addr", "add", "192.168.50.1/24", "dev", veth_vr)
    in_ns(vr, "ip", "link", "set", veth_vr, "up")
    in_ns(vr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    in_ns(host, "ip", "addr", "add", "192.168.50.10/24", "dev", veth_host)
    in_ns(host, "ip", "link", "set", veth_host, "up")
    in_ns(host, "ip", "route", "add", "10.99.0.0/16", "via", "192.168.50.1")
    iface = manager.create(vr, ifname(1), SUBSCRIBER, 1400)

    request = IP(src=str(SUBSCRIBER), dst="192.168.50.10") / ICMP(id=0x4242, seq=1) / b"dynipsec"
    os.write(iface.fd, bytes(request))
    reply = _wait_for_echo_reply(iface.fd, "192.168.50.10")
    assert reply.dst == str(SUBSCRIBER) and reply[ICMP].id == 0x4242 and bytes(reply[ICMP].payload) == b"dynipsec"


def test_packet_to_a_local_address_of_the_vr_is_answered(namespaces, manager):
    vr = namespaces("vr")
    in_ns(vr, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
    iface = manager.create(vr, ifname(1), SUBSCRIBER, 1400)
    os.write(iface.fd, bytes(IP(src=str(SUBSCRIBER), dst="192.0.2.1") / ICMP(id=7, seq=3)))
    assert _wait_for_echo_reply(iface.fd, "192.0.2.1")[ICMP].seq == 3


def test_remove_leaves_nothing_and_twice_is_harmless(namespaces, manager):
    vr = namespaces("a")
    iface = manager.create(vr, ifname(1), SUBSCRIBER, 1400)
    assert manager.remove(iface) is True
    assert iface.name not in link_names(vr)
    assert in_ns(vr, "ip", "route", "show").strip() == ""
    assert iface.name not in run("ip", "-br", "link")
    with pytest.raises(OSError):
        os.fstat(iface.fd)  # the fd is closed
    assert manager.remove(iface) is False
    assert manager.list() == []


def test_batch_create_and_remove(namespaces, manager):
    vr = namespaces("a")
    specs = [InterfaceSpec(vr, ifname(n), IPv4Address(f"10.99.1.{n}"), 1400) for n in range(1, 21)]
    created = manager.create_many(specs)
    assert len(manager) == 20
    assert {s.name for s in specs} <= link_names(vr)
    assert len(in_ns(vr, "ip", "route", "show").splitlines()) == 20
    assert manager.remove_many(created) == 20
    assert not {s.name for s in specs} & link_names(vr)
    assert in_ns(vr, "ip", "route", "show").strip() == ""


def test_removing_some_keeps_the_others_and_foreign_devices(namespaces, manager):
    vr, peer = namespaces("a"), namespaces("p")
    run("ip", "link", "add", f"{TAG}v", "netns", vr, "type", "veth", "peer", "name", f"{TAG}w", "netns", peer)
    specs = [InterfaceSpec(vr, ifname(n), IPv4Address(f"10.99.2.{n}"), 1400) for n in range(1, 7)]
    created = manager.create_many(specs)
    assert manager.remove_many(created[:4]) == 4
    assert manager.remove_many(created[:4]) == 0
    left = link_names(vr)
    assert {ifname(5), ifname(6), f"{TAG}v"} <= left and not {ifname(n) for n in range(1, 5)} & left
    assert len(in_ns(vr, "ip", "route", "show").splitlines()) == 2
    assert manager.list(vr) == created[4:]
    assert manager.remove(created[4]) is True
    assert manager.remove_many(manager.list()) == 1
    assert f"{TAG}v" in link_names(vr) and in_ns(vr, "ip", "route", "show").strip() == ""


def test_failed_batch_leaves_nothing(namespaces, manager):
    vr = namespaces("a")
    specs = [InterfaceSpec(vr, ifname(1), SUBSCRIBER, 1400),
             InterfaceSpec(vr, ifname(2), IPv4Address("10.99.0.8"), 1400),
             InterfaceSpec(vr, ifname(1), IPv4Address("10.99.0.9"), 1400)]  # duplicate name
    with pytest.raises(InterfaceExistsError):
        manager.create_many(specs)
    assert manager.list() == []
    assert not {ifname(1), ifname(2)} & link_names(vr)
    assert in_ns(vr, "ip", "route", "show").strip() == ""


def test_closing_the_manager_removes_its_interfaces(namespaces):
    vr = namespaces("a")
    with InterfaceManager() as mgr:
        mgr.create(vr, ifname(1), SUBSCRIBER, 1400)
    assert ifname(1) not in link_names(vr)


def _children() -> set[str]:
    found: set[str] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            found.update(f.read().split())
    return found


def test_creating_and_removing_in_a_vr_starts_no_helper_process(namespaces, manager):
    vr = namespaces("a")
    before = _children()
    iface = manager.create(vr, ifname(1), SUBSCRIBER, 1400)
    during = _children()
    manager.remove(iface)
    assert during == before and _children() == before


def test_a_refused_access_route_leaves_no_device_behind(namespaces, manager):
    from responder.netif import NetlinkError
    vr = namespaces("a")
    in_ns(vr, "ip", "route", "add", f"{SUBSCRIBER}/32", "dev", "lo", "scope", "link", "proto", "static")
    with pytest.raises(NetlinkError) as refused:
        manager.create(vr, ifname(1), SUBSCRIBER, 1400)
    assert refused.value.errno == 17  # EEXIST, from the route of the same batch
    time.sleep(0.05)  # the device goes with its fd; unregistering is asynchronous
    assert ifname(1) not in link_names(vr) and len(manager) == 0


def test_removing_hundreds_of_some_in_one_call(namespaces):
    """Each device moved to the removal group is acked; hundreds of acks overflowed the
    netlink socket's receive buffer (ENOBUFS) and left the devices to the fd close."""
    vr = namespaces("h")
    with InterfaceManager() as manager:
        specs = [InterfaceSpec(vr, ifname(n), IPv4Address("10.98.0.0") + n, 1400)
                 for n in range(1, 701)]
        created = manager.create_many(specs)
        assert manager.remove_many(created[:600]) == 600
        left = link_names(vr)
        assert not {s.name for s in specs[:600]} & left and {s.name for s in specs[600:]} <= left
        assert len(in_ns(vr, "ip", "route", "show").splitlines()) == 100
        assert manager.remove_many(manager.list()) == 100

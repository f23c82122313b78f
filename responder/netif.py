"""Subscriber IP interfaces: one TUN device per subscriber inside its VR namespace.

The kernels here have no ESP, VRF or xfrm interfaces, so a subscriber's "IP interface"
is a TUN device that the responder owns (it holds the file descriptor and carries ESP
in userspace) but that sits in the subscriber's virtual-router (VR) namespace, with a
/32 access route to the subscriber's assigned address through it.

How an interface is made (``InterfaceManager.create``)
------------------------------------------------------
1. The TUN device is created: ``/dev/net/tun`` opened (O_NONBLOCK for asyncio,
   O_CLOEXEC), ``TUNSETIFF`` with ``IFF_TUN | IFF_NO_PI`` (raw IPv4, no packet-info
   header), not persistent, so the device lives exactly as long as our fd. Where:

   * ``placement="in_vr"`` (default): the calling thread switches into the VR
     namespace (setns) for the open, so the device is born there. A TUN device belongs
     to the namespace its fd was opened in; the fd works from any namespace after.
   * ``placement="move"``: opened in the responder's own namespace, then moved with
     one RTM_NEWLINK (``IFLA_NET_NS_FD``; the kernel changes the namespace first in
     ``do_setlink``, so MTU and IFF_UP of the same message apply in the VR). Measured
     on these machines a move costs ~17-20 ms (RCU synchronisation in
     ``dev_change_net_namespace``) against ~0.2 ms for the open inside the VR, hence
     the default (bench/netif_bench.py has both).
2. IPv6 is disabled on the device before it goes up (``net.ipv6.conf.<dev>.
   disable_ipv6``, written while in the VR): a TUN otherwise gets a link-local address
   and sends router solicitations into the VR. With ``placement="move"`` it is written
   after the move (per-device IPv6 settings are recreated in the new namespace).
3. Its ifindex in the VR is read once (``if_nametoindex`` while in the VR, or one
   RTM_GETLINK by name after a move) and kept in the manager's index: nothing ever
   dumps all links.
4. One RTM_NEWLINK sets MTU, IFF_UP and the manager's link group (see removal).
5. The access route ``<address>/32 dev <dev> scope link`` is added in the VR. No
   address is needed on the device: a TUN is point-to-point without ARP, so a
   link-scope route is enough for the VR to hand packets for the subscriber to the fd,
   and packets written to the fd enter the VR from the subscriber (strict rp_filter
   passes, the reverse route is the same device).

Naming: ``<prefix><subscriber id>``, default prefix ``ips`` (``ips1042`` is subscriber
1042), at most 15 characters (IFNAMSIZ - 1). Names must be unique per VR, and with
``placement="move"`` also among the workers sharing the router namespace (the device
is born there), so a worker may choose its own prefix (``ips2-`` ...).

Removal
-------
``remove`` deletes the route (RTM_DELROUTE) and the link (RTM_DELLINK) in the VR and
closes the fd, exactly once; a second ``remove`` of the same interface is a no-op that
returns False. Unregistering one net device waits for an RCU grace period (~17 ms
here), so ``remove_many`` puts the doomed devices in one link group and deletes the
group with a single RTM_DELLINK (``unregister_netdevice_many``: one grace period for
all); the kernel drops their routes with them. Every device this manager makes
carries its own random link group, so a group delete never touches other devices.

Leftovers of a crashed run
--------------------------
A device normally dies with its fd. One can outlive the run that made it (an orphaned
worker still holding it, a persistent device made by hand with the daemon's naming):
:func:`remove_stale_interfaces` runs at daemon start, before any worker, and deletes in
each VR namespace every TUN device named like the daemon's (``<prefix><worker>-<id>``),
with the access routes through it. The link groups of a dead run are random and not
kept, so names (and the device kind) are what identify them.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import re
import socket
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Callable, Iterable, Iterator

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16
CLONE_NEWNET = 0x40000000
RT_SCOPE_LINK = 253
RTPROT_STATIC = 4
DEFAULT_NAME_PREFIX = "ips"
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
IFF_UP = 0x1
# rtnetlink message types, flags and attributes (linux/rtnetlink.h, linux/if_link.h)
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLM_F_DUMP = 0x300
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_GROUP, IFLA_NET_NS_FD = 3, 4, 18, 27, 28
IFLA_INFO_KIND = 1
RTA_DST, RTA_OIF = 1, 4
_NLMSGHDR = struct.Struct("=LHHLL")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTMSG = struct.Struct("=BBBBBBBBI")
NETNS_RUN_DIR = "/run/netns"


class NetifError(Exception):
    """An interface could not be created, or the request was invalid."""


class InterfaceExistsError(NetifError):
    pass


def interface_name(subscriber_id: int, prefix: str = DEFAULT_NAME_PREFIX) -> str:
    """The device name for a subscriber: ``<prefix><id>``, checked against IFNAMSIZ."""
    name = f"{prefix}{subscriber_id}"
    _check_name(name)
    return name


def _check_name(name: str) -> None:
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
        raise NetifError(f"invalid interface name {name!r} (1-15 characters, no '/' or spaces)")


@dataclass(frozen=True)
class InterfaceSpec:
    """One interface to create (the batch API takes these)."""

    vr: str
    name: str
    address: IPv4Address
    mtu: int


@dataclass(eq=False)
class SubscriberInterface:
    """A subscriber's TUN device: its fd (ours) and where it lives (the VR)."""

    vr: str
    name: str
    ifindex: int  # in the VR namespace
    address: IPv4Address
    mtu: int
    fd: int = field(repr=False)
    removed: bool = False

    def fileno(self) -> int:
        """For ``loop.add_reader`` / ``select``: the non-blocking TUN fd."""
        return self.fd


class _NetnsSwitch:
    """Moves the *calling thread* into another network namespace and back.

    Used to open TUN devices inside a VR and for sysctls (/proc/sys/net resolves to the
    namespace of the task that opens the file; there is no netlink message for
    ``disable_ipv6``). Only this thread moves, and always back before returning.
    """

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")

    @contextmanager
    def entered(self, netns_fd: int) -> Iterator[None]:
        self._setns(netns_fd)
        try:
            yield
        finally:
            self._setns(self._home_fd)

    def close(self) -> None:
        os.close(self._home_fd)


@dataclass(eq=False)
class _VirtualRouter:
    """Handles to one VR namespace, opened once: its ns fd and a netlink socket in it."""

    name: str
    netns_fd: int
    rtnl: "Rtnl"
    interfaces: dict[str, SubscriberInterface] = field(default_factory=dict)

    def close(self) -> None:
        self.rtnl.close()
        os.close(self.netns_fd)


PLACEMENTS = ("in_vr", "move")


class InterfaceManager:
    """Creates and removes subscriber interfaces for one responder worker.

    One manager per worker; it keeps one netlink socket in its own namespace and one per
    VR namespace it has used (``vr`` is an ``ip netns`` name, found in ``netns_dir``).
    Synchronous: a create is one netlink round trip in the VR (link up and route in one
    batch) after the TUN open, plus the move with ``placement="move"``.
    """

    def __init__(
        self,
        *,
        placement: str = "in_vr",
        netns_dir: str = NETNS_RUN_DIR,
        link_group: int | None = None,
        vnet_hdr: bool = False,
    ) -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
        self.placement = placement
        #: TUN fds carry a virtio_net_hdr before each packet (responder/daemon/tungso.py)
        self.vnet_hdr = vnet_hdr
        self._netns_dir = netns_dir
        # Group 0 is every device's default; ours is random so group deletes stay ours.
        self.link_group = link_group if link_group is not None else _random_link_group()
        self._own_rtnl = Rtnl() if placement == "move" else None
        self._switch = _NetnsSwitch()
        self._vrs: dict[str, _VirtualRouter] = {}

    # -- context management -----------------------------------------------------------

    def __enter__(self) -> "InterfaceManager":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, *, remove_interfaces: bool = True) -> None:
        """Release every handle; by default remove every interface still there first."""
        if remove_interfaces:
            self.remove_many(self.list())
        for vr in self._vrs.values():
            vr.close()
        self._vrs.clear()
        if self._own_rtnl is not None:
            self._own_rtnl.close()
        self._switch.close()

    # -- queries ----------------------------------------------------------------------

    def list(self, vr: str | None = None) -> list[SubscriberInterface]:
        if vr is None:
            routers = list(self._vrs.values())
        else:
            routers = [self._vrs[vr]] if vr in self._vrs else []
        return [iface for router in routers for iface in router.interfaces.values()]

    def get(self, vr: str, name: str) -> SubscriberInterface | None:
        router = self._vrs.get(vr)
        return router.interfaces.get(name) if router else None

    def __len__(self) -> int:
        return sum(len(router.interfaces) for router in self._vrs.values())

    # -- create -----------------------------------------------------------------------

    def create(self, vr: str, name: str, address: IPv4Address, mtu: int) -> SubscriberInterface:
        """A TUN device ``name`` in VR ``vr``, up, with MTU and a /32 route to ``address``."""
        return self.create_many([InterfaceSpec(vr, name, IPv4Address(address), mtu)])[0]

    def create_many(self, specs: Iterable[InterfaceSpec]) -> list[SubscriberInterface]:
        """Create several interfaces; on any failure those made by this call are removed."""
        created: list[SubscriberInterface] = []
        try:
            for spec in specs:
                created.append(self._create_one(spec))
        except BaseException:
            self.remove_many(created)
            raise
        return created

    def _create_one(self, spec: InterfaceSpec) -> SubscriberInterface:
        self._validate(spec)
        router = self._router(spec.vr)
        if spec.name in router.interfaces:
            raise InterfaceExistsError(f"{spec.name} already exists in VR {spec.vr}")
        if self.placement == "in_vr":
            fd, ifindex = self._open_tun_in_vr(router, spec.name)
        else:
            fd, ifindex = self._open_tun_and_move(router, spec.name)
        iface = SubscriberInterface(spec.vr, spec.name, ifindex, spec.address, spec.mtu, fd)
        try:
            self._bring_up_with_route(router, iface)
        except BaseException:
            # Closing the only fd unregisters the (non-persistent) device and its routes.
            os.close(fd)
            raise
        router.interfaces[spec.name] = iface
        log.debug("created %s (ifindex %d) in VR %s for %s", spec.name, ifindex, spec.vr, spec.address)
        return iface

    @staticmethod
    def _validate(spec: InterfaceSpec) -> None:
        _check_name(spec.name)
        if not 68 <= spec.mtu <= 65535:  # IPv4 minimum MTU (RFC 791), TUN maximum
            raise NetifError(f"MTU {spec.mtu} out of range 68-65535")

    def _open_tun_in_vr(self, router: _VirtualRouter, name: str) -> tuple[int, int]:
        with self._switch.entered(router.netns_fd):
            fd = open_tun(name, self.vnet_hdr)
            try:
                ifindex = socket.if_nametoindex(name)
                _write_disable_ipv6(name)
            except BaseException:
                os.close(fd)
                raise
        return fd, ifindex

    def _open_tun_and_move(self, router: _VirtualRouter, name: str) -> tuple[int, int]:
        fd = open_tun(name, self.vnet_hdr)
        try:
            self._own_rtnl.request(link_message(RTM_NEWLINK, socket.if_nametoindex(name),
                                                netns_fd=router.netns_fd))
            # The index changes if it is taken in the VR: ask the VR (one lookup by name).
            ifindex = router.rtnl.link_index(name)
            with self._switch.entered(router.netns_fd):
                _write_disable_ipv6(name)
        except BaseException:
            os.close(fd)
            raise
        return fd, ifindex

    def _bring_up_with_route(self, router: _VirtualRouter, iface: SubscriberInterface) -> None:
        # MTU, group, IFF_UP and the access route in one send: one round trip, and the
        # kernel handles the route after the link change of the same batch.
        router.rtnl.request(
            link_message(RTM_NEWLINK, iface.ifindex, mtu=iface.mtu, group=self.link_group, up=True),
            route_message(RTM_NEWROUTE, iface.address, iface.ifindex, create=True))

    def _router(self, vr: str) -> _VirtualRouter:
        router = self._vrs.get(vr)
        if router is None:
            router = self._open_router(vr)
            self._vrs[vr] = router
        return router

    def _open_router(self, vr: str) -> _VirtualRouter:
        _check_name(vr)
        path = os.path.join(self._netns_dir, vr)
        try:
            netns_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetifError(f"VR namespace {vr!r} not found ({path})") from None
        try:
            # A netlink socket belongs to the namespace it was created in: made while this
            # thread is inside the VR, it works there from anywhere, with no helper.
            with self._switch.entered(netns_fd):
                rtnl = Rtnl()
        except BaseException:
            os.close(netns_fd)
            raise
        return _VirtualRouter(vr, netns_fd, rtnl)

    # -- remove -----------------------------------------------------------------------

    def remove(self, iface: SubscriberInterface) -> bool:
        """Delete route and link, close the fd. False if it was already removed."""
        router = self._owning_router(iface)
        if router is None:
            return False
        try:
            _ignore_gone(lambda: router.rtnl.request(
                route_message(RTM_DELROUTE, iface.address, iface.ifindex)))
            _ignore_gone(lambda: router.rtnl.request(link_message(RTM_DELLINK, iface.ifindex)))
        finally:
            self._forget(router, iface)
        log.debug("removed %s from VR %s", iface.name, iface.vr)
        return True

    def remove_many(self, ifaces: Iterable[SubscriberInterface]) -> int:
        """Remove interfaces with one group delete per VR; returns how many were removed."""
        by_router: dict[str, list[SubscriberInterface]] = {}
        for iface in ifaces:
            if self._owning_router(iface) is not None:
                by_router.setdefault(iface.vr, []).append(iface)
        for vr, doomed in by_router.items():
            self._remove_group(self._vrs[vr], doomed)
        return sum(len(doomed) for doomed in by_router.values())

    def _remove_group(self, router: _VirtualRouter, doomed: list[SubscriberInterface]) -> None:
        group = self.link_group
        try:
            if len(doomed) != len(router.interfaces):
                # Only some of ours: move those to a group of their own first.
                group = _random_link_group()
                router.rtnl.request(*(link_message(RTM_NEWLINK, iface.ifindex, group=group)
                                      for iface in doomed))
            router.rtnl.request(link_message(RTM_DELLINK, 0, group=group))
        finally:
            # The routes went with the devices; without the delete, the close removes them.
            for iface in doomed:
                self._forget(router, iface)
        log.debug("removed %d interfaces from VR %s", len(doomed), router.name)

    def _owning_router(self, iface: SubscriberInterface) -> _VirtualRouter | None:
        router = self._vrs.get(iface.vr)
        if iface.removed or router is None or router.interfaces.get(iface.name) is not iface:
            log.debug("%s in VR %s already removed", iface.name, iface.vr)
            return None
        return router

    @staticmethod
    def _forget(router: _VirtualRouter, iface: SubscriberInterface) -> None:
        # Whatever netlink said, the fd goes: that alone unregisters the device.
        os.close(iface.fd)
        iface.removed = True
        del router.interfaces[iface.name]


def _random_link_group() -> int:
    # Non-zero, below 2^31 so no tool shows it negative.
    return int.from_bytes(os.urandom(4), "big") % 0x7FFFFFFE + 1


def _write_disable_ipv6(name: str) -> None:
    """Disable IPv6 on a device of the namespace this thread is in."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as sysctl:
            sysctl.write("1")
    except FileNotFoundError:
        pass  # IPv6 not available in this namespace/kernel: nothing to disable


def _ignore_gone(operation: Callable[[], object]) -> None:
    """Run a netlink delete; 'no such route/device' means it is already gone."""
    try:
        operation()
    except NetlinkError as exc:
        if exc.errno not in (errno.ESRCH, errno.ENODEV, errno.ENOENT):
            raise


def open_tun(name: str, vnet_hdr: bool = False) -> int:
    """A new non-persistent TUN device (raw IP, no packet info) in this thread's namespace;
    with `vnet_hdr` every read and write starts with a 10-byte virtio_net_hdr."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError as exc:
        os.close(fd)
        raise NetifError(f"cannot create TUN {name}: {exc.strerror}") from exc
    return fd


# -- leftovers of a crashed run ----------------------------------------------------------


def daemon_interface_pattern(prefixes: Iterable[str]) -> re.Pattern[str]:
    """The names the daemon gives subscriber interfaces: ``<prefix><worker>-<id>``."""
    alternatives = "|".join(re.escape(p) for p in sorted(set(prefixes), key=len, reverse=True))
    return re.compile(rf"(?:{alternatives})\d+-\d+")


@dataclass(frozen=True)
class StaleCleanup:
    """What :func:`remove_stale_interfaces` found and removed in one VR namespace."""

    vr: str
    interfaces: tuple[str, ...]
    routes: int


def remove_stale_interfaces(vr_prefixes: dict[str, Iterable[str]], *,
                            netns_dir: str = NETNS_RUN_DIR) -> list[StaleCleanup]:
    """Delete, in each VR namespace (``ip netns`` name -> interface prefixes), every TUN
    device whose name is the daemon's; routes through them go with them. Namespaces that
    do not exist are skipped (the workers report them)."""
    switch = _NetnsSwitch()
    try:
        return [found for vr, prefixes in vr_prefixes.items()
                if (found := _clean_namespace(switch, netns_dir, vr,
                                              daemon_interface_pattern(prefixes))) is not None]
    finally:
        switch.close()


def _clean_namespace(switch: _NetnsSwitch, netns_dir: str, vr: str,
                     pattern: re.Pattern[str]) -> StaleCleanup | None:
    try:
        netns_fd = os.open(os.path.join(netns_dir, vr), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        with switch.entered(netns_fd):
            rtnl = Rtnl()
    finally:
        os.close(netns_fd)
    try:
        doomed = {index: name for index, name, kind in rtnl.links()
                  if kind == "tun" and pattern.fullmatch(name)}
        routes = sum(1 for oif in rtnl.route_oifs() if oif in doomed)
        for index in doomed:
            _ignore_gone(lambda index=index: rtnl.request(link_message(RTM_DELLINK, index)))
    finally:
        rtnl.close()
    return StaleCleanup(vr, tuple(sorted(doomed.values())), routes)


def _attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each rtattr in ``data`` from ``offset``."""
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4: offset + length]   # without NLA_F_NESTED
        offset += (length + 3) & ~3


def parse_link(body: bytes) -> tuple[int, str, str | None]:
    """An RTM_NEWLINK body -> (ifindex, name, IFLA_INFO_KIND or None)."""
    index = _IFINFOMSG.unpack_from(body)[2]
    name, kind = "", None
    for attr, payload in _attributes(body, _IFINFOMSG.size):
        if attr == IFLA_IFNAME:
            name = payload.split(b"\0", 1)[0].decode(errors="replace")
        elif attr == IFLA_LINKINFO:
            for inner, value in _attributes(payload):
                if inner == IFLA_INFO_KIND:
                    kind = value.split(b"\0", 1)[0].decode(errors="replace")
    return index, name, kind


def parse_route_oif(body: bytes) -> int | None:
    """An RTM_NEWROUTE body -> its output interface (RTA_OIF) or None."""
    for attr, payload in _attributes(body, _RTMSG.size):
        if attr == RTA_OIF:
            return struct.unpack_from("=I", payload)[0]
    return None


class NetlinkError(OSError):
    """The kernel refused an rtnetlink request (``errno`` is the kernel's error)."""


def _attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def link_message(kind: int, index: int, *, mtu: int | None = None, group: int | None = None,
                 up: bool = False, netns_fd: int | None = None, ifname: str | None = None
                 ) -> tuple[int, int, bytes]:
    """An RTM_*LINK request (type, flags, body); ``index`` 0 with ``group`` deletes the group."""
    flags_mask = IFF_UP if up else 0
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, flags_mask)
    if ifname is not None:
        body += _attr(IFLA_IFNAME, ifname.encode() + b"\0")
    if mtu is not None:
        body += _attr(IFLA_MTU, struct.pack("=I", mtu))
    if group is not None:
        body += _attr(IFLA_GROUP, struct.pack("=I", group))
    if netns_fd is not None:
        body += _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
    return kind, 0, body


def route_message(kind: int, address: IPv4Address, oif: int, *, create: bool = False
                  ) -> tuple[int, int, bytes]:
    """The access route ``<address>/32 dev <oif> scope link proto static`` (add or delete)."""
    body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC if create else 0,
                       RT_SCOPE_LINK, RTN_UNICAST, 0)
    body += _attr(RTA_DST, IPv4Address(address).packed) + _attr(RTA_OIF, struct.pack("=I", oif))
    return kind, (NLM_F_CREATE | NLM_F_EXCL) if create else 0, body


class Rtnl:
    """A blocking rtnetlink socket in the namespace of the thread that made it.

    ``request`` sends its messages in datagrams of `BATCH` and waits for every ack: the
    kernel runs them in order, so a batch costs one system call each way.
    """

    #: requests per datagram: every ack holds ~1 kB of the socket's receive buffer until
    #: read, and the default buffer (208 kB) overflowed at ~270 acks (ENOBUFS: the rest
    #: were dropped and their wait never ended)
    BATCH = 64
    #: a lost answer ends the wait with an error instead of blocking the thread for good
    TIMEOUT = 30.0

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sock.settimeout(self.TIMEOUT)
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def request(self, *messages: tuple[int, int, bytes]) -> list[tuple[int, bytes]]:
        """Send, wait for all acks; raise the first refusal (after every batch ran).
        Returns the replies' bodies."""
        replies: list[tuple[int, bytes]] = []
        failure: NetlinkError | None = None
        for start in range(0, len(messages), self.BATCH):
            datagram, pending = self._encode(messages[start:start + self.BATCH], NLM_F_ACK)
            self._sock.send(datagram)
            try:
                replies += self._collect(pending)
            except NetlinkError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return replies

    def _recv(self) -> bytes:
        try:
            return self._sock.recv(1 << 16)
        except socket.timeout:
            raise NetlinkError(errno.ETIMEDOUT, f"no netlink answer within {self.TIMEOUT:g} s") from None
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                raise NetlinkError(errno.ENOBUFS, "netlink answers lost: receive buffer "
                                   "overrun") from None
            raise

    def link_index(self, name: str) -> int:
        """The ifindex of device ``name`` in this socket's namespace (one RTM_GETLINK)."""
        replies = self.request(link_message(RTM_GETLINK, 0, ifname=name))
        for kind, body in replies:
            if kind == RTM_NEWLINK:
                return _IFINFOMSG.unpack_from(body)[2]
        raise NetlinkError(errno.ENODEV, f"no link {name}")

    def dump(self, kind: int, body: bytes) -> list[bytes]:
        """One NLM_F_DUMP request: the bodies of every reply until NLMSG_DONE."""
        datagram, pending = self._encode([(kind, NLM_F_DUMP, body)], 0)
        self._sock.send(datagram)
        (seq,) = pending
        bodies: list[bytes] = []
        while True:
            data = self._recv()
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, reply, _flags, reply_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                payload = data[offset + _NLMSGHDR.size: offset + length]
                offset += (length + 3) & ~3
                if reply_seq != seq:
                    continue
                if reply == NLMSG_DONE:
                    return bodies
                if reply == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    raise NetlinkError(code, os.strerror(code))
                bodies.append(payload)

    def links(self) -> list[tuple[int, str, str | None]]:
        """Every link of this namespace: (ifindex, name, kind)."""
        return [parse_link(body) for body in
                self.dump(RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))]

    def route_oifs(self) -> list[int]:
        """The output interface of every IPv4 route of this namespace (all tables)."""
        oifs = (parse_route_oif(body) for body in
                self.dump(RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)))
        return [oif for oif in oifs if oif is not None]

    def _encode(self, messages, extra_flags: int) -> tuple[bytes, set[int]]:
        parts, pending = [], set()
        for kind, flags, body in messages:
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            pending.add(self._seq)
            parts.append(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind,
                                        NLM_F_REQUEST | extra_flags | flags, self._seq, 0) + body)
        return b"".join(parts), pending

    def _collect(self, pending: set[int]) -> list[tuple[int, bytes]]:
        replies: list[tuple[int, bytes]] = []
        failure: NetlinkError | None = None
        while pending:
            data = self._recv()
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                body = data[offset + _NLMSGHDR.size: offset + length]
                offset += (length + 3) & ~3
                if seq not in pending:
                    continue  # an answer to an earlier, abandoned request
                if kind == NLMSG_ERROR:
                    pending.discard(seq)
                    code = -struct.unpack_from("=i", body)[0]
                    if code and failure is None:
                        failure = NetlinkError(code, os.strerror(code))
                elif kind != NLMSG_DONE:
                    replies.append((kind, body))
        if failure is not None:
            raise failure
        return replies

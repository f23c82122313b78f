"""Turns a `lab.topology.Topology` into a running Mininet network (docs/lab-contract.md).

    with Lab(load_topology("default")) as lab:
        lab.router.cmd("ping -c1 198.18.1.1")

What the engine builds (names for prefix `dl`): router `dlr` with the access LAN as a
Linux bridge `lan0` *inside* its namespace, a management link to `dlaaa`, one transit link
per VR namespace (`dlvr1`, ...) which connects to its intranet server (`dlsrv1`, ...),
client hosts `dlc1..N` on the access LAN, and a NAT host `dlnat` with clients `dln1..K`
on its own inside bridge behind an nftables masquerade. Further NAT hosts (`nats:`) hang
off the access LAN or an earlier NAT host's inside bridge (NATs in series); further
public addresses (`access.addresses`) go on `lan0` beside the first.

Everything the lab creates is recorded in its state file (lab.state) as it goes, so
that `dynipsec lab clean` can remove precisely the leftovers of a crashed run.
"""
from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from clients.process import Daemon
from lab.cleanup import clean_state
from lab.holders import stop_sandbox
from lab.state import (LabState, ProcessRecord, delete_netns_name, load_state,
                       netns_name_inode, terminate_processes)
from lab.topology import REPO_ROOT, Topology

log = logging.getLogger(__name__)

#: each host gets its own tmpfs here: pid files, sockets and logs never clash
PRIVATE_DIRS = ["/var/run", "/var/log"]
RUNS_ENV = "DYNIPSEC_RUNS"
LAN_BRIDGE = "lan0"
NAT_BRIDGE = "nat0"


class LabError(RuntimeError):
    """The lab could not be built, or is already running under the same prefix."""


#: Python modules of the `lab` extra (pyproject.toml) that building a lab imports
LAB_EXTRA_MODULES = ("mininet", "jinja2", "pexpect")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def require_lab_extra() -> None:
    """Fail before anything is created if the `lab` extra is not installed."""
    missing = [name for name in LAB_EXTRA_MODULES if not _importable(name)]
    if missing:
        raise LabError(f"the lab needs the Python packages of the `lab` extra, missing: "
                       f"{', '.join(missing)} (pip install 'dynipsec[lab]', or `make setup`)")


@dataclass(frozen=True)
class ClientSlot:
    """One client host: on the access LAN, or behind the NAT host."""

    name: str
    host: object  # mininet.node.Host
    address: str
    behind_nat: bool


# -- run directory -----------------------------------------------------------------------
def runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV) or REPO_ROOT / "runs")


def make_run_dir(root: Path | None = None) -> Path:
    """runs/<UTC timestamp>/ (suffix -2, -3 ... if taken) and the symlink runs/latest."""
    root = root or runs_root()
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        run_dir = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise LabError(f"no free run directory for {stamp} in {root}")
    _point_latest(root, run_dir)
    return run_dir


def _point_latest(root: Path, run_dir: Path) -> None:
    # symlink to a temporary name, then rename over: readers never see a missing link
    tmp = root / f".latest.{os.getpid()}"
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, root / "latest")


# -- helpers run inside a node ------------------------------------------------------------
def ip_batch(host, commands: Iterable[str], what: str) -> None:
    """Run `ip` commands in a host with one `ip -batch -` process (no 4 KiB cmd limit)."""
    script = "\n".join(commands) + "\n"
    proc = host.popen(["ip", "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(script, timeout=30)
    if proc.returncode != 0:
        raise LabError(f"{what} on {host.name} failed: {err.strip() or out.strip()}")


def run_in(host, argv: list[str], what: str, stdin: str | None = None, timeout: float = 30) -> str:
    proc = host.popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(stdin, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"{what} on {host.name} failed ({proc.returncode}): {err.strip() or out.strip()}")
    return out


def enable_forwarding(host) -> None:
    # /proc/sys/net is per network namespace: write it from inside the host
    run_in(host, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], "enable IPv4 forwarding")


# -- packet capture -----------------------------------------------------------------------
#: kernel capture buffer, KiB: with the default 2 MiB a busy 2-core lab dropped ~2% of
#: the packets of 40 concurrent logins (a lost MM4 hid a gateway's NAT-D from the test)
CAPTURE_BUFFER_KIB = 65536
_COUNTERS = re.compile(r"(\d+) packets captured, (\d+) packets received by filter, "
                       r"(\d+) packets dropped by kernel")


@dataclass(frozen=True)
class CaptureCounters:
    """tcpdump's own counters: what it wrote, what matched, what the kernel dropped."""

    captured: int
    received: int
    dropped: int


class PacketCapture(Daemon):
    """tcpdump on one interface of a node, writing a pcap that is complete after stop()."""

    name = "tcpdump"
    parts = ("tcpdump",)

    def __init__(self, node, workdir: Path, interface: str, pcap: Path, tracker=None):
        super().__init__(node, workdir, tracker)
        self.interface = interface
        self.pcap = Path(pcap)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"tcpdump-{self.interface}.log"

    def argv(self) -> list[str]:
        # --immediate-mode -U: hand each packet over and write it at once (otherwise the
        # kernel's capture blocks hold packets back ~1 s, and tests read the file while
        # it grows); -Z root: Debian's tcpdump would otherwise drop to user tcpdump and
        # lose the right to write into the root-owned run directory.
        return ["tcpdump", "-i", self.interface, "-n", "--immediate-mode", "-U", "-Z", "root",
                "-B", str(CAPTURE_BUFFER_KIB), "-w", str(self.pcap)]

    def ready(self) -> bool:
        return self.alive() and "listening on" in self.tail_log(5)

    def counters(self, timeout: float = 2.0) -> CaptureCounters | None:
        """The counters so far (tcpdump prints them on SIGUSR1); None if it does not answer.

        A reader of the pcap asks this to tell "the gateway did not send it" from "the
        capture lost it"."""
        if not self.alive():
            return None
        before = len(_COUNTERS.findall(self.tail_log(10_000)))
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _COUNTERS.findall(self.tail_log(10_000))
            if len(found) > before:
                return CaptureCounters(*(int(n) for n in found[-1]))
            time.sleep(0.02)
        return None


# -- the lab -----------------------------------------------------------------------------
class Lab:
    """A running lab; a context manager. stop() is idempotent and safe after a failed start."""

    def __init__(self, topology: Topology, run_dir: Path | str | None = None, *,
                 start_aaa: bool | None = None, capture: bool = True,
                 progress: Callable[[str], None] | None = None, kind: str = "in-process"):
        self.topology = topology
        self._run_dir = Path(run_dir) if run_dir else None
        self.start_aaa = topology.aaa.enabled if start_aaa is None else start_aaa
        self.capture_enabled = capture
        self._progress = progress or (lambda message: None)
        self._kind = kind
        self.net = None
        self.hosts: dict[str, object] = {}
        self.clients: list[ClientSlot] = []
        self.daemons: list[Daemon] = []
        self.radius = None  # lab.aaa.FreeRadius once started
        self.capture: PacketCapture | None = None  # the router's public capture once started
        self.state: LabState | None = None
        self.timings: dict[str, float] = {}
        self._default_routes: dict[str, str] = {}
        # track_pid is called from the scenario's login threads
        self._state_lock = threading.Lock()

    # -- contract accessors ----------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise LabError("the lab has not been started")
        return self._run_dir

    def node(self, name: str):
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in this lab (nodes: {', '.join(self.hosts)})") from None

    @property
    def router(self):
        return self.node(self.topology.router_name)

    @property
    def aaa(self):
        return self.node(self.topology.aaa_name)

    @property
    def nat(self):
        return self.node(self.topology.nat_name)

    @property
    def vr_names(self) -> list[str]:
        return [self.topology.vr_netns(vr) for vr in self.topology.vrs]

    def vr(self, name: str):
        """The VR's Mininet host, by topology name ('vr1') or netns name ('dlvr1')."""
        return self.node(self.topology.vr_netns(self.topology.vr(name)))

    def server(self, vr: str):
        """Intranet server host of a VR (by netns name 'dlvr1' or topology name 'vr1')."""
        wanted = self.topology.vr(vr)
        index = self.topology.vrs.index(wanted) + 1
        return self.node(self.topology.server_name(index))

    def node_dir(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- PID tracking (clients.process.PidTracker) ----------------------------------------
    def track_pid(self, pid: int, what: str) -> None:
        record = ProcessRecord.of(pid, what)
        if record is None or self.state is None:
            return
        with self._state_lock:
            self.state.daemons[str(pid)] = record
            self.state.save()

    def untrack_pid(self, pid: int) -> None:
        if self.state is None:
            return
        with self._state_lock:
            if self.state.daemons.pop(str(pid), None) is not None:
                self.state.save()

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Lab":
        if self.net is not None:
            return self
        started = time.monotonic()
        require_lab_extra()
        self._claim_prefix()
        try:
            self._run_dir = self._run_dir or make_run_dir()
            self._run_dir.mkdir(parents=True, exist_ok=True)
            self.state.run_dir = str(self._run_dir)
            self._phase("build", self._build_network)
            self._phase("configure", self._configure)
            self._phase("netns", self._attach_netns_names)
            self._phase("daemons", self._start_daemons)
            self._write_summary()
            self.state.status = "running"
            self.state.save()
        except BaseException:
            log.error("lab %s failed to start; tearing down what was built", self.topology.prefix)
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - started
        log.info("lab %s up in %.2fs: %d hosts, run dir %s", self.topology.prefix,
                 self.timings["start"], len(self.hosts), self._run_dir)
        return self

    def stop(self) -> None:
        """Processes first (they keep namespaces alive): others' tracked ones, then the lab's
        own daemons with the packet capture last, so the pcap still sees their goodbyes;
        then netns names, then the network."""
        if self.state is None:
            return
        started = time.monotonic()
        self.state.status = "stopping"
        self.state.save()
        try:
            self._stop_sandbox()
            self._stop_tracked_pids()
            self._stop_daemons()
            self._detach_netns_names()
            self._stop_network()
        finally:
            self.state.remove()
            self.state = None
        self.timings["stop"] = time.monotonic() - started
        log.info("lab %s stopped in %.2fs", self.topology.prefix, self.timings["stop"])

    def _phase(self, name: str, step: Callable[[], None]) -> None:
        t0 = time.monotonic()
        step()
        self.timings[name] = time.monotonic() - t0
        log.debug("phase %s: %.2fs", name, self.timings[name])

    def _claim_prefix(self) -> None:
        """One lab per prefix: refuse if its owner lives, clean it if it crashed."""
        previous = load_state(self.topology.prefix)
        if previous is not None:
            if previous.owner_alive():
                raise LabError(f"a lab with prefix {self.topology.prefix!r} is already running "
                               f"(pid {previous.owner.pid}, {previous.owner.what}); stop it with "
                               f"`dynipsec lab down --prefix {self.topology.prefix}` or use another prefix")
            log.warning("lab %s: cleaning leftovers of a crashed run (pid %d)",
                        self.topology.prefix, previous.owner.pid)
            for line in clean_state(previous):
                log.warning("removed %s", line)
        owner = ProcessRecord.of(os.getpid(), f"{self._kind} lab owner")
        self.state = LabState(prefix=self.topology.prefix, owner=owner, topology=self.topology.name,
                              kind=self._kind)
        self.state.save()

    # -- build ---------------------------------------------------------------------------
    def _build_network(self) -> None:
        from mininet.link import Link
        from mininet.log import setLogLevel
        from mininet.net import Mininet

        setLogLevel("warning")
        t = self.topology
        self._progress(f"creating {len(t.node_names())} hosts")
        self.net = Mininet(controller=None, switch=None, link=Link, build=False,
                           autoSetMacs=False, waitConnected=False)
        self._build_core()
        self._build_clients()
        self._progress("configuring routes")
        self._add_default_routes()
        # addresses were set as each link was made; net.build() would only repeat that
        self.net.built = True
        self.state.save()

    def _add_host(self, name: str, address: str | None, default_via: str | None = None):
        # Mininet would mount each private directory with two shell round trips and
        # configure every host again in net.build(); one command per host is enough
        # (build time is dominated by these round trips).
        host = self.net.addHost(name, ip=address, privateDirs=[])
        host.privateDirs = list(PRIVATE_DIRS)  # what Node.unmountPrivateDirs() would undo
        mounts = "; ".join(f"mount -n -t tmpfs tmpfs {d}" for d in PRIVATE_DIRS)
        host.cmd(f"mkdir -p {' '.join(PRIVATE_DIRS)}; {mounts}; ip link set lo up")
        self.hosts[name] = host
        if default_via:
            self._default_routes[name] = default_via
        self.state.hosts[name] = ProcessRecord.of(host.pid, f"mininet shell {name}")
        return host

    def _add_default_routes(self) -> None:
        for name, via in self._default_routes.items():
            out = self.hosts[name].cmd(f"ip route add default via {via}")
            if out.strip():
                raise LabError(f"default route via {via} on {name}: {out.strip()}")

    def _add_link(self, node1, node2, ip1: str | None, ip2: str | None) -> None:
        link = self.net.addLink(node1, node2, params1={"ip": ip1}, params2={"ip": ip2})
        self.state.interfaces += [link.intf1.name, link.intf2.name]

    def _build_core(self) -> None:
        t = self.topology
        mgmt_len = t.management.subnet.prefixlen
        router = self._add_host(t.router_name, f"{t.management.router}/{mgmt_len}")
        aaa = self._add_host(t.aaa_name, f"{t.management.aaa}/{mgmt_len}", str(t.management.router))
        self._add_link(router, aaa, f"{t.management.router}/{mgmt_len}", f"{t.management.aaa}/{mgmt_len}")
        for k, vr in enumerate(t.vrs, 1):
            transit_len = vr.transit.subnet.prefixlen
            intranet_len = vr.intranet.subnet.prefixlen
            vr_host = self._add_host(t.vr_netns(vr), f"{vr.transit.vr}/{transit_len}")
            server = self._add_host(t.server_name(k), f"{vr.intranet.server}/{intranet_len}",
                                    str(vr.intranet.gateway))
            self._add_link(router, vr_host, f"{vr.transit.router}/{transit_len}", f"{vr.transit.vr}/{transit_len}")
            self._add_link(vr_host, server, f"{vr.intranet.gateway}/{intranet_len}",
                           f"{vr.intranet.server}/{intranet_len}")
        self.state.save()

    def _build_clients(self) -> None:
        t = self.topology
        router = self.router
        access_len = t.access.subnet.prefixlen
        for nat in t.nat_hosts:  # in list order: an upstream NAT host exists before its downstream
            self._build_nat_host(nat)
        for i in range(1, t.clients.count + 1):
            address = str(t.client_address(i))
            host = self._add_host(t.client_name(i), f"{address}/{access_len}", str(t.access.router))
            self._add_link(host, router, f"{address}/{access_len}", None)
            self.clients.append(ClientSlot(host.name, host, address, behind_nat=False))
            if i % 25 == 0:
                self.state.save()
        # access-LAN clients first, NAT clients last: lab.clients[0] is a plain client
        self.clients.sort(key=lambda slot: slot.behind_nat)
        self.state.save()

    def _build_nat_host(self, nat) -> None:
        """A NAT host linked to its upstream (the router's access LAN, or an upstream NAT
        host's inside bridge): its uplink is its first interface, the public side."""
        t = self.topology
        network, gateway = t.nat_uplink(nat)
        upstream = self.router if nat.upstream is None else self.node(t.nat_host_name(t.nat_host(nat.upstream)))
        public = f"{nat.public}/{network.prefixlen}"
        host = self._add_host(t.nat_host_name(nat), public, str(gateway))
        self._add_link(host, upstream, public, None)  # no address upstream: a bridge port
        inside_len = nat.inside.subnet.prefixlen
        for i in range(1, nat.clients + 1):
            address = str(t.nat_host_client_address(nat, i))
            client = self._add_host(t.nat_host_client_name(nat, i), f"{address}/{inside_len}",
                                    str(nat.inside.gateway))
            self._add_link(client, host, f"{address}/{inside_len}", None)
            self.clients.append(ClientSlot(client.name, client, address, behind_nat=True))

    # -- configure -----------------------------------------------------------------------
    def _configure(self) -> None:
        self._configure_router()
        self._configure_vrs()
        for nat in self.topology.nat_hosts:
            self._configure_nat(nat)

    def _bridge_ports(self, host, exclude: set[str]) -> list[str]:
        """The host's interfaces without an address (the links meant for a bridge)."""
        return [intf.name for intf in host.intfList() if intf.name != "lo" and intf.name not in exclude
                and not intf.IP()]

    def _configure_router(self) -> None:
        t = self.topology
        router = self.router
        ports = self._bridge_ports(router, exclude=set())
        commands = [f"link add {LAN_BRIDGE} type bridge forward_delay 0"]
        commands += [f"addr add {address}/{t.access.subnet.prefixlen} dev {LAN_BRIDGE}"
                     for address in t.public_addresses]
        commands += [f"link set {port} master {LAN_BRIDGE} up" for port in ports]
        commands.append(f"link set {LAN_BRIDGE} up")
        # subscribers of VR k appear on the router with pool addresses: send them to VR k
        for vr in t.vrs:
            commands += [f"route add default via {vr.transit.vr} table {vr.table}",
                         f"rule add from {vr.pool} lookup {vr.table} pref {1000 + vr.table}"]
        enable_forwarding(router)
        ip_batch(router, commands, "router setup")
        self.state.interfaces.append(LAN_BRIDGE)

    def _configure_vrs(self) -> None:
        for k, vr in enumerate(self.topology.vrs, 1):
            vr_host = self.node(self.topology.vr_netns(vr))
            enable_forwarding(vr_host)
            ip_batch(vr_host, [f"route add {vr.pool} via {vr.transit.router}"], f"VR {vr.name} routes")
            server = self.node(self.topology.server_name(k))
            intf = server.defaultIntf().name
            extra = [*vr.intranet.dns, *vr.intranet.wins]
            plen = vr.intranet.subnet.prefixlen
            ip_batch(server, [f"addr add {a}/{plen} dev {intf}" for a in extra], "server DNS/WINS addresses")

    def _configure_nat(self, nat) -> None:
        host = self.node(self.topology.nat_host_name(nat))
        public_intf = host.defaultIntf().name
        ports = self._bridge_ports(host, exclude={public_intf})
        commands = [f"link add {NAT_BRIDGE} type bridge forward_delay 0",
                    f"addr add {nat.inside.gateway}/{nat.inside.subnet.prefixlen} dev {NAT_BRIDGE}"]
        commands += [f"link set {port} master {NAT_BRIDGE} up" for port in ports]
        commands.append(f"link set {NAT_BRIDGE} up")
        enable_forwarding(host)
        ip_batch(host, commands, "NAT inside bridge")
        ruleset = (f"table ip dynipsec_nat {{\n"
                   f"  chain postrouting {{\n"
                   f"    type nat hook postrouting priority srcnat; policy accept;\n"
                   f"    ip saddr {nat.inside.subnet} oifname \"{public_intf}\" masquerade\n"
                   f"  }}\n}}\n")
        run_in(host, ["nft", "-f", "-"], "nftables masquerade", stdin=ruleset)
        if NAT_BRIDGE not in self.state.interfaces:
            self.state.interfaces.append(NAT_BRIDGE)

    # -- netns names -----------------------------------------------------------------------
    def _named_hosts(self) -> list[str]:
        """Infrastructure nodes get `ip netns` names (pyroute2 NetNS(name), ip netns exec);
        clients do not need them and stay cheaper to build."""
        t = self.topology
        names = [t.router_name, t.aaa_name]
        for k, vr in enumerate(t.vrs, 1):
            names += [t.vr_netns(vr), t.server_name(k)]
        names += [t.nat_host_name(nat) for nat in t.nat_hosts]
        return names

    def _attach_netns_names(self) -> None:
        names = self._named_hosts()
        taken = [name for name in names if netns_name_inode(name) is not None]
        if taken:
            raise LabError(f"ip netns name(s) already in use: {', '.join(taken)} "
                           f"(another lab with this prefix? try `dynipsec lab clean`)")
        # record the intent first: a crash in between must still be cleanable
        for name in names:
            self.state.netns_names[name] = None
        self.state.save()
        script = "".join(f"netns attach {name} {self.hosts[name].pid}\n" for name in names)
        run = subprocess.run(["ip", "-batch", "-"], input=script, capture_output=True, text=True)
        if run.returncode != 0:
            raise LabError(f"ip netns attach failed: {run.stderr.strip()}")
        for name in names:
            self.state.netns_names[name] = netns_name_inode(name)
        self.state.save()

    def _detach_netns_names(self) -> None:
        for name, inode in list(self.state.netns_names.items()):
            delete_netns_name(name, inode)
            self.state.netns_names.pop(name, None)
        self.state.save()

    # -- daemons ---------------------------------------------------------------------------
    def _start_daemons(self) -> None:
        if self.capture_enabled:
            self._progress("starting packet capture")
            self.capture = PacketCapture(self.router, self.node_dir(self.topology.router_name),
                                         LAN_BRIDGE, self.run_dir / "router-public.pcap",
                                         tracker=self)
            self._start_daemon(self.capture)
        if self.start_aaa:
            from lab.aaa import FreeRadius

            self._progress("starting FreeRADIUS")
            self.radius = FreeRadius(self.aaa, self.node_dir(self.topology.aaa_name), self.topology,
                                     tracker=self)
            self._start_daemon(self.radius)

    def _start_daemon(self, daemon: Daemon) -> None:
        self.daemons.append(daemon)  # before start(): a failed start is still stopped
        daemon.start()

    def _stop_daemons(self) -> None:
        while self.daemons:
            daemon = self.daemons.pop()
            try:
                daemon.stop()
            except Exception:  # keep tearing down: a stuck daemon must not leak the rest
                log.exception("stopping %s failed", daemon.name)

    def _stop_sandbox(self) -> None:
        """Gateways, clients and captures that `dynipsec lab gateway|login|capture` started
        in this lab (lab.sandbox): logged out and stopped while the hosts still live."""
        for line in stop_sandbox(self.topology.prefix):
            log.info("sandbox: %s", line)

    def _stop_tracked_pids(self) -> None:
        """PIDs others tracked (client daemons, gateways) and did not stop themselves."""
        own = {str(d.pid) for d in self.daemons if d.pid is not None}
        others = [r for key, r in self.state.daemons.items() if key not in own]
        for record in terminate_processes(others):
            log.warning("stopped leftover process %d (%s)", record.pid, record.what)
        for key in [key for key in self.state.daemons if key not in own]:
            del self.state.daemons[key]
        self.state.save()

    # -- teardown --------------------------------------------------------------------------
    def _stop_network(self) -> None:
        """Ends every host shell; the namespaces, their veths and their private mounts
        go with them. Faster than Mininet's net.stop(), which deletes each interface and
        unmounts each private directory with one shell command apiece."""
        if self.net is None:
            return
        net, self.net = self.net, None
        hosts = list(net.hosts)
        for host in hosts:
            self._hang_up(host)
        deadline = time.monotonic() + 10
        for host in hosts:
            self._reap(host, deadline)
        self.hosts.clear()
        self.clients.clear()

    @staticmethod
    def _hang_up(host) -> None:
        shell = getattr(host, "shell", None)
        if shell is not None and shell.poll() is None:
            try:
                os.killpg(shell.pid, 1)  # SIGHUP, as Mininet's Node.terminate() does
            except ProcessLookupError:
                pass

    @staticmethod
    def _reap(host, deadline: float) -> None:
        shell = getattr(host, "shell", None)
        if shell is None:
            return
        try:
            shell.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            shell.kill()
            shell.wait(2)
        for fd_owner in (getattr(host, "stdin", None),):
            if fd_owner is not None:
                fd_owner.close()
        try:
            os.close(host.slave)
        except OSError:
            pass
        host.shell = None

    # -- evidence -------------------------------------------------------------------------
    def _write_summary(self) -> None:
        summary = self.topology.summary()
        summary["run_dir"] = str(self.run_dir)
        summary["nodes"] = {name: {"pid": host.pid,
                                   "addresses": {i.name: i.IP() for i in host.intfList()
                                                 if i.name != "lo" and i.IP()}}
                            for name, host in self.hosts.items()}
        # the bridges are ours, not Mininet's: add their addresses by hand
        t = self.topology
        summary["nodes"][t.router_name]["addresses"][LAN_BRIDGE] = str(t.access.router)
        for nat in t.nat_hosts:
            summary["nodes"][t.nat_host_name(nat)]["addresses"][NAT_BRIDGE] = str(nat.inside.gateway)
        summary["netns_names"] = list(self.state.netns_names)
        summary["clients"] = [{"name": c.name, "address": c.address, "behind_nat": c.behind_nat}
                              for c in self.clients]
        summary["daemons"] = [{"name": d.name, "node": d.node.name, "pid": d.pid, "log": str(d.log_path)}
                              for d in self.daemons]
        summary["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        (self.run_dir / "lab.json").write_text(json.dumps(summary, indent=1))

    # -- AAA helpers (see lab.aaa) -----------------------------------------------------------
    def _radius(self):
        if self.radius is None:
            raise LabError("FreeRADIUS is not running in this lab (aaa.enabled is false?)")
        return self.radius

    def aaa_disconnect(self, *, user: str | None = None, framed_ip: str | None = None,
                       session_id: str | None = None, nas: str | None = None, port: int | None = None,
                       extra: dict[str, str] | None = None, timeout: float = 2.0) -> str:
        """RFC 5176 Disconnect-Request from the AAA host (radclient); radclient's output."""
        return self._radius().send_dynamic_authorization(
            "disconnect", user=user, framed_ip=framed_ip, session_id=session_id, nas=nas,
            port=port, extra=extra, timeout=timeout)

    def aaa_coa(self, *, user: str | None = None, framed_ip: str | None = None,
                session_id: str | None = None, nas: str | None = None, port: int | None = None,
                extra: dict[str, str] | None = None, timeout: float = 2.0) -> str:
        """RFC 5176 CoA-Request from the AAA host (radclient); radclient's output."""
        return self._radius().send_dynamic_authorization(
            "coa", user=user, framed_ip=framed_ip, session_id=session_id, nas=nas,
            port=port, extra=extra, timeout=timeout)

    def accounting_records(self) -> list[dict[str, str]]:
        """Accounting requests FreeRADIUS wrote to its detail file, oldest first."""
        return self._radius().accounting_records()

"""The load generator in the lab: source addresses, initiator processes, gateway probes.

    with SourceAddresses(node, addresses, neighbours=[lab.router]) as added:  # removed on exit
        runs = [LoadProcess(lab, node, spec, sources) ...]
        load = run_loads(runs, on_held=measure)               # one merged result
    probe = GatewayProbe.of(gateway); probe.cpu_seconds(); probe.rss_kb()

`python -m clients.ikev1_initiator.load` runs inside a client host (one process per
host, so that the initiators' own crypto spreads over the cores). The extra source
addresses are /32s on the host's interface, added with one `ip -batch` and deleted by
the list recorded when they were added. Secrets go to files of the host's run
directory (mode 0600), never on a command line.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from clients.ikev1_initiator.load import LatencyHistogram, address_block
from lab.engine import LabError, ip_batch

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- source addresses ----------------------------------------------------------------------
def source_blocks(access_subnet: str, hosts: int, per_host: int,
                  first: str = "198.18.200.1", exclude: Sequence[str] = ()) -> list[list[str]]:
    """`per_host` addresses for each of `hosts` client hosts, from one block of the
    access LAN that the lab does not use itself."""
    block = address_block(access_subnet, first, hosts * per_host, exclude)
    return [block[i * per_host:(i + 1) * per_host] for i in range(hosts)]


class SourceAddresses:
    """/32 addresses added to a host's interface; deleted again by the recorded names.

    `neighbours` (the gateway's node) forget these addresses' neighbour entries when
    they are added and when they go: an address moved from one host to another
    (the same block on another host in the next run) would otherwise be answered to
    the MAC of the host that held it before until the stale entry times out."""

    def __init__(self, node, addresses: Sequence[str], interface: str | None = None,
                 neighbours: Sequence = ()) -> None:
        self.node = node
        self.interface = interface or node.defaultIntf().name
        self.addresses = list(addresses)
        self.neighbours = list(neighbours)
        self.added: list[str] = []

    def __enter__(self) -> "SourceAddresses":
        try:
            for chunk in _chunks(self.addresses, 500):
                ip_batch(self.node, [f"address add {a}/32 dev {self.interface}" for a in chunk],
                         "add load source addresses")
                self.added += chunk
            self._forget_neighbours(self.addresses)
        except BaseException:
            self.remove()
            raise
        return self

    def _forget_neighbours(self, addresses: Sequence[str]) -> None:
        for node in self.neighbours:
            for chunk in _chunks(addresses, 500):
                ip_batch(node, [f"neigh flush to {a}" for a in chunk],
                         "forget neighbour entries of load source addresses")

    def remove(self) -> None:
        for chunk in _chunks(self.added, 500):
            try:
                ip_batch(self.node, [f"address del {a}/32 dev {self.interface}" for a in chunk],
                         "remove load source addresses")
            except LabError:
                # -force: delete what is still there even if one line fails
                self.node.popen(["ip", "-force", "-batch", "-"], stdin=subprocess.PIPE,
                                text=True).communicate(
                    "".join(f"address del {a}/32 dev {self.interface}\n" for a in chunk))
        try:
            self._forget_neighbours(self.added)
        except LabError:
            pass      # removing the addresses matters; a stale entry only delays a reply
        self.added = []

    def __exit__(self, *exc) -> None:
        self.remove()


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# -- initiator processes -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """What one initiator process does (see `python -m clients.ikev1_initiator.load`)."""

    server: str
    group: str
    psk: str = dataclasses.field(repr=False)
    user: str                       # template, e.g. "user{n:05d}"
    password: str = dataclasses.field(repr=False)   # template, e.g. "pw-user{n:05d}"
    first: int = 1
    count: int = 10
    mode: str = "aggressive"
    rate: float | None = None
    concurrency: int | None = None
    timeout: float = 30.0
    release_each: bool = False
    ike: str = "aes256-sha256-modp2048"
    esp: str = "aes256-sha1"
    retransmit_timeout: float = 2.0

    def argv(self, workdir: Path, sources_file: Path, output: Path) -> list[str]:
        argv = [sys.executable, "-m", "clients.ikev1_initiator.load", "--server", self.server,
                "--mode", self.mode, "--id", f"keyid:{self.group}",
                "--psk-file", str(workdir / "psk"), "--user", self.user,
                "--password-file", str(workdir / "password"), "--first", str(self.first),
                "--count", str(self.count), "--timeout", str(self.timeout),
                "--ike", self.ike, "--esp", self.esp, "--natt", "force",
                "--retransmit-timeout", str(self.retransmit_timeout),
                "--sources-file", str(sources_file), "--output", str(output), "--quiet"]
        if self.concurrency:
            argv += ["--concurrency", str(self.concurrency)]
        else:
            argv += ["--rate", str(self.rate)]
        argv += ["--release-each"] if self.release_each else ["--wait-release"]
        return argv


class LoadProcess:
    """One `clients.ikev1_initiator.load` process in a client host."""

    def __init__(self, tracker, node, workdir: Path, spec: LoadSpec,
                 sources: Sequence[str]) -> None:
        self.tracker = tracker
        self.node = node
        self.workdir = Path(workdir)
        self.spec = spec
        self.sources = list(sources)
        self.proc: subprocess.Popen | None = None
        self.events: list[dict] = []
        self._held = threading.Event()
        self._reader: threading.Thread | None = None
        self.stderr_path = self.workdir / "load.err"
        self.output = self.workdir / "load.json"

    def start(self) -> "LoadProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name, secret in (("psk", self.spec.psk), ("password", self.spec.password)):
            path = self.workdir / name
            path.write_text(secret)
            os.chmod(path, 0o600)
        sources_file = self.workdir / "sources.txt"
        sources_file.write_text("\n".join(self.sources) + "\n")
        self.output.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = self.node.popen(self.spec.argv(self.workdir, sources_file, self.output),
                                    cwd=str(REPO), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=open(self.stderr_path, "w"), text=True, env=env)
        if self.tracker is not None:
            self.tracker.track_pid(self.proc.pid, f"load generator in {self.node.name}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            self.events.append(record)
            if record.get("event") == "held" or self.spec.release_each:
                self._held.set()
        self._held.set()

    def wait_held(self, timeout: float) -> bool:
        return self._held.wait(timeout)

    def release(self) -> None:
        if self.proc is not None and self.proc.stdin is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("release\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def result(self, timeout: float) -> dict:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        finally:
            self.stop()
        if not self.output.exists():
            raise LabError(f"load generator in {self.node.name} ended ({self.proc.returncode}) "
                           f"without a result: {self.stderr_path.read_text()[-2000:]}")
        return json.loads(self.output.read_text())

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tracker is not None:
            self.tracker.untrack_pid(self.proc.pid)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


def run_loads(processes: Sequence[LoadProcess], *, held_timeout: float,
              on_held: Callable[[], None] | None = None,
              on_released: Callable[[], None] | None = None) -> dict:
    """Starts every process, waits until all have finished their login phase, calls
    `on_held`, releases all, waits, calls `on_released`; returns the merged result."""
    started = time.monotonic()
    try:
        for process in processes:
            process.start()
        deadline = started + held_timeout
        for process in processes:
            if not process.wait_held(max(0.0, deadline - time.monotonic())):
                raise LabError(f"load generator in {process.node.name} did not finish its "
                               f"logins within {held_timeout:g} s")
        held_at = time.monotonic()
        if on_held is not None:
            on_held()
        released_at = time.monotonic()
        for process in processes:
            process.release()
        results = [p.result(timeout=120) for p in processes]
        if on_released is not None:
            on_released()
        merged = merge_results(results)
        merged["harness"] = {"held_after_s": round(held_at - started, 3),
                             "released_after_s": round(released_at - started, 3),
                             "ended_after_s": round(time.monotonic() - started, 3)}
        return merged
    finally:
        for process in processes:
            process.stop()


def merge_results(results: Sequence[dict]) -> dict:
    """One result from several processes: sums, one histogram, the per-second rates
    aligned on the processes' wall-clock start."""
    histogram = LatencyHistogram.from_samples(
        [ms for r in results for ms in r["latency_ms"]["samples_ms"]])
    failures: dict[str, int] = {}
    for r in results:
        for reason, n in r["failures"].items():
            failures[reason] = failures.get(reason, 0) + n
    t0 = min(r["started_unix"] for r in results)
    rates: list[int] = []
    for r in results:
        offset = int(round(r["started_unix"] - t0))
        for i, n in enumerate(r["rate_per_s"]):
            while len(rates) <= offset + i:
                rates.append(0)
            rates[offset + i] += n
    login_s = max(r["phases"].get("login_s", 0.0) for r in results)
    established = sum(r["established"] for r in results)
    return {
        "processes": len(results), "sources": sum(r["sources"] for r in results),
        "offered": sum(r["offered"] for r in results), "established": established,
        "failed": sum(r["failed"] for r in results), "failures": dict(sorted(failures.items())),
        "latency_ms": histogram.as_dict(), "rate_per_s": rates,
        "established_per_s": round(established / login_s, 2) if login_s else None,
        "login_s": round(login_s, 3),
        "logout_s": round(max(r["phases"].get("logout_s", 0.0) for r in results), 3),
        "released": sum(r["released"] for r in results),
        "deleted_by_server": sum(r["deleted_by_server"] for r in results),
        "retransmits": sum(r["retransmits"] for r in results),
        "start_lag_max_s": max(r["start_lag_max_s"] for r in results),
    }


# -- the gateway's processes, from /proc -----------------------------------------------------
def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, utime+stime ticks, rss pages) of a process; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21])


def process_tree(roots: Sequence[int]) -> dict[int, tuple[int, int]]:
    """pid -> (cpu ticks, rss pages) for the roots and all their descendants."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    tree: dict[int, tuple[int, int]] = {}
    todo = [p for p in roots if p in stats]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree[pid] = stats[pid][1:]
            todo += children.get(pid, [])
    return tree


def meminfo_kb(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@dataclasses.dataclass
class GatewayProbe:
    """CPU and memory of a gateway's whole process tree (supervisor + workers, or charon)."""

    kind: str
    roots: list[int]

    @classmethod
    def of(cls, gateway) -> "GatewayProbe":
        pid = getattr(gateway, "pid", None)
        if pid is None:
            pid = getattr(getattr(gateway, "charon", None), "pid", None)
        if not isinstance(pid, int):
            raise LabError(f"{gateway.kind} gateway has no PID to measure")
        return cls(gateway.kind, [pid])

    def snapshot(self) -> dict[int, tuple[int, int]]:
        return process_tree(self.roots)

    @staticmethod
    def cpu_between(before: dict, after: dict) -> float:
        """CPU seconds between two snapshots; a process born in between counts from zero."""
        ticks = sum(cpu - before.get(pid, (0, 0))[0] for pid, (cpu, _) in after.items())
        return ticks / CLOCK_TICKS

    @staticmethod
    def rss_kb(snapshot: dict) -> int:
        return sum(rss for _, rss in snapshot.values()) * PAGE_KB

    @staticmethod
    def pss_kb(snapshot: dict) -> int:
        """Proportional set size of the processes of a snapshot (/proc/PID/smaps_rollup):
        pages shared between them (or with other processes) counted once in all."""
        return sum(smaps_rollup_kb(pid, "Pss") for pid in snapshot)

    def processes(self) -> int:
        return len(self.snapshot())

    def fds(self) -> int:
        count = 0
        for pid in self.snapshot():
            try:
                count += len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                pass
        return count


def smaps_rollup_kb(pid: int, field: str) -> int:
    """One field of /proc/PID/smaps_rollup in kB (0 when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0])
    return 0


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until `predicate()` held, or None after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # a gateway busy with a load may not answer one poll
            pass
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


# -- a lab sized for a load ---------------------------------------------------------------------
def scaled_topology(topology, *, users: int, pool_prefixlen: int = 18,
                    pool_base: str = "10.100.0.0"):
    """The topology with `users` generated users (user00001 ...) and one pool of
    /`pool_prefixlen` per VR, consecutive from `pool_base` (the /24 pools of the default
    topology hold 253 subscribers each)."""
    from lab.topology import parse_topology

    data = topology.model_dump(mode="json", by_alias=True)
    data["aaa"]["users"] = [u.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                            for u in topology.aaa.explicit_users]
    digits = max(3, len(str(users)))
    data["aaa"]["users_range"] = {"prefix": "user", "count": users, "digits": digits,
                                  "password_prefix": "pw-"}
    base = ipaddress.ip_network(f"{pool_base}/{pool_prefixlen}")
    pools = {}
    for k, vr in enumerate(data["vrs"]):
        pools[vr["name"]] = str(ipaddress.ip_network(
            (int(base.network_address) + k * base.num_addresses, pool_prefixlen)))
        vr["pool"] = pools[vr["name"]]
    for group in data["aaa"]["groups"]:
        group["pool"] = pools[group["vr"]]
    for user in data["aaa"]["users"]:
        reply = user.get("reply") or {}
        if "framed_ip_address" in reply:   # keep fixed addresses inside the new pools
            first = ipaddress.ip_network(pools[data["vrs"][0]["name"]])
            reply["framed_ip_address"] = str(first.network_address + 200)
    return parse_topology(data, source=f"{topology.name} (scaled for load)")


def user_template(topology) -> tuple[str, str]:
    """(user, password) templates of the topology's generated users, for `{n}`."""
    users_range = topology.aaa.users_range
    name = f"{users_range.prefix}{{n:0{users_range.digits}d}}"
    return name, f"{users_range.password_prefix}{name}"


def describe(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# -- what a gateway holds (cheap questions, asked while it is under load) ----------------------
def held_count(gateway) -> int:
    """Subscribers / IKE SAs the gateway holds now (one cheap question, not a listing)."""
    if gateway.kind == "dynipsec":
        return max((row.get("in_use", 0) for row in gateway.show("licenses")), default=0)
    out = gateway.charon.swanctl("--stats")
    match = re.search(r"IKE_SAs:\s*(\d+) total", out)
    if match is None:
        raise LabError(f"unexpected swanctl --stats output: {out[:200]!r}")
    return int(match.group(1))


def leftovers(gateway, lab) -> dict[str, int]:
    """Everything a logged-out subscriber must give back, counted (all 0 when clean)."""
    found: dict[str, int] = {}
    if gateway.kind == "dynipsec":
        found["licenses"] = sum(r.get("in_use", 0) for r in gateway.show("licenses"))
        found["addresses"] = sum(r.get("used", 0) for r in gateway.show("pools"))
        found["subscribers"] = len(gateway.show("subscribers"))
        found["ike_sas"] = len(gateway.show("ike-sa"))
        found["ipsec_sas"] = len(gateway.show("ipsec-sa"))
        prefixes = [vr["interface_prefix"] for vr in gateway.config["vrs"].values()]
        links = routes = 0
        for group in gateway.plan.groups:
            node = lab.node(group.vr)
            links += sum(1 for line in node.cmd("ip -o link show").splitlines()
                         if any(f": {p}-" in line for p in prefixes))
            routes += sum(1 for line in node.cmd("ip -4 route show").splitlines()
                          if any(f"dev {p}-" in line for p in prefixes))
        found["tun_devices"] = links
        found["routes"] = routes
    else:
        found["ike_sas"] = held_count(gateway)
        pools = gateway.charon.swanctl("--list-pools")
        found["addresses"] = sum(int(m.group(1)) for m in
                                 re.finditer(r"(\d+) / \d+ / \d+", pools))
        found["routes"] = len(lab.router.cmd("ip -4 route show table 220").splitlines())
    return found

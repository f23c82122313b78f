"""The lab's record of what it created, and the process and namespace helpers its cleanup uses.

A running lab keeps `/run/dynipsec-lab/<prefix>.json` up to date as it goes: the
process that owns it, every host shell and daemon PID (with the process start time,
so that a recycled PID is never mistaken for ours), every `ip netns` name (with the
namespace inode it was bound to) and every interface name. `lab.cleanup.clean_state`
removes exactly those leftovers after a crash and nothing else: no name patterns, no
killall.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: overridable so that unit tests (and several users) can keep their own records
STATE_DIR_ENV = "DYNIPSEC_STATE_DIR"
DEFAULT_STATE_DIR = Path("/run/dynipsec-lab")


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR))


# -- process identity --------------------------------------------------------------------
def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or None
    if there is no such process or it is a zombie (dead, merely not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


@dataclass
class ProcessRecord:
    pid: int
    start_time: int
    what: str
    netns: int | None = None  # inode of the process's network namespace at record time

    @classmethod
    def of(cls, pid: int, what: str) -> "ProcessRecord | None":
        start = process_start_time(pid)
        if start is None:
            return None
        return cls(pid=pid, start_time=start, what=what, netns=netns_inode(pid))

    def is_alive(self) -> bool:
        """True only if PID still exists AND is the same process we recorded."""
        return process_start_time(self.pid) == self.start_time


# -- the state file ----------------------------------------------------------------------
@dataclass
class LabState:
    prefix: str
    owner: ProcessRecord
    topology: str = ""
    run_dir: str = ""
    status: str = "building"  # building | running | stopping
    kind: str = "in-process"  # in-process | keeper
    hosts: dict[str, ProcessRecord] = field(default_factory=dict)
    netns_names: dict[str, int | None] = field(default_factory=dict)  # name -> ns inode
    interfaces: list[str] = field(default_factory=list)
    #: links made in the root namespace; none today (Mininet's fast links create each
    #: veth pair inside the first node), kept so that a future bridge there is recorded
    root_links: list[str] = field(default_factory=list)
    daemons: dict[str, ProcessRecord] = field(default_factory=dict)  # str(pid) -> record

    @property
    def path(self) -> Path:
        return state_path(self.prefix)

    def save(self) -> None:
        """Atomic write (rename), so a crash never leaves a half-written record."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # unique per thread too: daemons are started from several threads at once
        tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def owner_alive(self) -> bool:
        return self.owner.is_alive()

    def namespace_inodes(self) -> set[int]:
        inodes = {rec.netns for rec in self.hosts.values() if rec.netns}
        inodes |= {ino for ino in self.netns_names.values() if ino}
        return inodes

    @classmethod
    def from_json(cls, data: dict) -> "LabState":
        data = dict(data)
        data["owner"] = ProcessRecord(**data["owner"])
        data["hosts"] = {k: ProcessRecord(**v) for k, v in data.get("hosts", {}).items()}
        data["daemons"] = {k: ProcessRecord(**v) for k, v in data.get("daemons", {}).items()}
        return cls(**data)


def state_path(prefix: str) -> Path:
    return state_dir() / f"{prefix}.json"


def load_state(prefix: str) -> LabState | None:
    try:
        return LabState.from_json(json.loads(state_path(prefix).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable lab state %s: %s", state_path(prefix), exc)
        return None


def all_states() -> list[LabState]:
    states = []
    for path in sorted(state_dir().glob("*.json")):
        state = load_state(path.stem)
        if state is not None:
            states.append(state)
    return states


# -- cleanup -----------------------------------------------------------------------------
def terminate_process(record: ProcessRecord, timeout: float = 3.0) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL, only if PID is still the recorded
    process. Returns True if something was signalled."""
    if not record.is_alive():
        return False
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while record.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if record.is_alive():
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone(record, 2.0)
    return True


def terminate_processes(records: list[ProcessRecord], timeout: float = 3.0) -> list[ProcessRecord]:
    """terminate_process() for many at once: SIGTERM to all, one shared wait, then SIGKILL
    to the rest. Returns the records that were signalled."""
    signalled = []
    for record in records:
        if record.is_alive():
            try:
                os.kill(record.pid, signal.SIGTERM)
                signalled.append(record)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while any(r.is_alive() for r in signalled) and time.monotonic() < deadline:
        time.sleep(0.02)
    for record in signalled:
        if record.is_alive():
            try:
                os.kill(record.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for record in signalled:
        _wait_gone(record, 2.0)
    return signalled


def _wait_gone(record: ProcessRecord, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while record.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)


def interfaces_of(pid: int) -> set[str]:
    """Interface names in the network namespace of `pid` (/proc/PID/net/dev is per-netns)."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return set()
    return {line.split(":", 1)[0].strip() for line in lines}


def processes_in_namespaces(state: LabState) -> list[ProcessRecord]:
    """Processes still living in one of the lab's namespaces (daemons started without
    tracking, or forked children). A namespace inode may be reused once freed, so a
    process counts only if its namespace also still holds one of the lab's interfaces."""
    inodes = state.namespace_inodes()
    ours = set(state.interfaces)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid() or netns_inode(pid) not in inodes:
            continue
        if interfaces_of(pid) & ours:
            record = ProcessRecord.of(pid, _cmdline(pid))
            if record:
                found.append(record)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def netns_name_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def delete_netns_name(name: str, expected_inode: int | None) -> str | None:
    """`ip netns delete NAME` if the name still points to the namespace we bound."""
    inode = netns_name_inode(name)
    if inode is None:
        return None
    if expected_inode and inode != expected_inode:
        log.warning("netns name %s now points to another namespace; left alone", name)
        return None
    run = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True)
    if run.returncode != 0:
        log.warning("ip netns delete %s: %s", name, run.stderr.strip())
        return None
    return f"netns name {name}"


def root_links() -> set[str]:
    return interfaces_of(os.getpid()) if Path(f"/proc/{os.getpid()}/ns/net").exists() else set()


def delete_root_link(name: str) -> str | None:
    run = subprocess.run(["ip", "link", "del", "dev", name], capture_output=True, text=True)
    return f"root-namespace link {name}" if run.returncode == 0 else None


class LabRunningError(RuntimeError):
    def __init__(self, state: LabState):
        self.state = state
        super().__init__(f"lab {state.prefix!r} is running (owner pid {state.owner.pid}, "
                         f"{state.owner.what}); stop it with `dynipsec lab down --prefix {state.prefix}`")

"""Build/teardown and crash/clean leave nothing behind: namespaces, links, bridges, mounts,
processes. Each test builds its own lab under its own prefix, next to the session lab."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.conftest import poll_until

pytestmark = pytest.mark.lab

DYNIPSEC = [sys.executable, "-m", "responder.cli"]


def netns_names(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(prefix)}


def root_links(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return {line.split()[0].split("@")[0] for line in out.splitlines() if line.startswith(prefix)}


def mounts_mentioning(*needles: str) -> set[str]:
    points = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    return {p for p in points if any(n in p for n in needles)}


def living(pid: int) -> bool:
    """A process that exists and is not a zombie (init reaps orphans lazily here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def processes_in(inodes: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino in inodes and living(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def snapshot(prefix: str, run_root: Path | None = None) -> dict:
    return {"netns": netns_names(prefix), "links": root_links(prefix),
            "mounts": mounts_mentioning(f"/netns/{prefix}", *(str(run_root),) if run_root else ())}


def assert_nothing_left(prefix: str, before: dict, pids: set[int], inodes: set[int]) -> None:
    assert snapshot(prefix) == before, "namespaces, links or mounts left behind"
    assert poll_until(lambda: not [p for p in pids if living(p)], 5), \
        f"processes left: {[p for p in pids if living(p)]}"
    assert poll_until(lambda: not processes_in(inodes), 5), "processes left in lab namespaces"
    from lab.state import state_path
    assert not state_path(prefix).exists(), "state file left behind"


def test_build_and_teardown_of_default_topology_leaves_nothing(make_topology, make_prefix, tmp_path):
    from lab.engine import Lab

    prefix = make_prefix("x")
    before = snapshot(prefix)
    lab = Lab(make_topology(clients=50, prefix=prefix), run_dir=tmp_path / "run")
    started = time.monotonic()
    with lab:
        build_seconds = time.monotonic() - started
        assert netns_names(prefix) == {f"{prefix}r", f"{prefix}aaa", f"{prefix}vr1", f"{prefix}vr2",
                                       f"{prefix}srv1", f"{prefix}srv2", f"{prefix}nat"}
        # a process someone tracked but never stopped: stop() must end it, by PID
        forgotten = lab.clients[0].host.popen(["sleep", "300"])
        lab.track_pid(forgotten.pid, "forgotten sleep (test)")
        state = lab.state
        pids = {r.pid for r in state.hosts.values()} | {r.pid for r in state.daemons.values()}
        assert forgotten.pid in pids
        inodes = state.namespace_inodes()
        assert len(pids) >= 50 + 4 + 7 + 2
        stop_started = time.monotonic()
    stop_seconds = time.monotonic() - stop_started
    assert_nothing_left(prefix, before, pids, inodes)
    assert (tmp_path / "run" / "lab.json").exists()
    assert (tmp_path / "run" / "router-public.pcap").stat().st_size >= 24
    print(f"50-client lab: build {build_seconds:.2f}s, teardown {stop_seconds:.2f}s")
    assert build_seconds < 15 and stop_seconds < 15  # goal is < 5 s each (bench/lab_build.py)


def dynipsec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*DYNIPSEC, *args], capture_output=True, text=True, timeout=timeout)


def test_killed_keeper_then_clean_leaves_nothing(make_prefix, tmp_path, wait_until):
    from lab.state import load_state

    prefix = make_prefix("k")
    before = snapshot(prefix)
    env_runs = {**os.environ, "DYNIPSEC_RUNS": str(tmp_path)}
    up = subprocess.run([*DYNIPSEC, "lab", "up", "--prefix", prefix, "--clients", "3"],
                        capture_output=True, text=True, timeout=120, env=env_runs)
    assert up.returncode == 0, up.stdout + up.stderr
    state = load_state(prefix)
    try:
        assert state is not None and state.kind == "keeper" and state.owner_alive()
        pids = {r.pid for r in state.hosts.values()} | {r.pid for r in state.daemons.values()}
        inodes = state.namespace_inodes()
        assert len(state.daemons) == 2  # tcpdump, freeradius: they survive a killed keeper

        ran = dynipsec("lab", "exec", f"{prefix}c1", "--", "ping", "-c1", "-W2", "198.18.0.1")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert dynipsec("lab", "exec", f"{prefix}c1", "--", "false").returncode == 1
        status = dynipsec("lab", "status", "--prefix", prefix)
        assert "running" in status.stdout and f"{prefix}vr1" in status.stdout

        os.kill(state.owner.pid, signal.SIGKILL)
        assert wait_until(lambda: not state.owner_alive(), 10)
        assert netns_names(prefix), "expected leftovers after the crash"
        assert "CRASHED" in dynipsec("lab", "status", "--prefix", prefix).stdout
        clean = dynipsec("lab", "clean", "--prefix", prefix)
        assert clean.returncode == 0, clean.stderr
        assert "freeradius" in clean.stdout and f"netns name {prefix}r" in clean.stdout
    finally:
        if load_state(prefix) is not None:  # never leave a lab behind, even on failure
            dynipsec("lab", "clean", "--force", "--prefix", prefix)
    assert_nothing_left(prefix, before, pids, inodes)
    assert "nothing to clean" in dynipsec("lab", "clean", "--prefix", prefix).stdout


def test_up_then_down(make_prefix, tmp_path):
    from lab.state import load_state

    prefix = make_prefix("d")
    before = snapshot(prefix)
    env_runs = {**os.environ, "DYNIPSEC_RUNS": str(tmp_path)}
    up = subprocess.run([*DYNIPSEC, "lab", "up", "--prefix", prefix, "--clients", "2", "--no-aaa"],
                        capture_output=True, text=True, timeout=120, env=env_runs)
    assert up.returncode == 0, up.stdout + up.stderr
    state = load_state(prefix)
    pids = {r.pid for r in state.hosts.values()} | {r.pid for r in state.daemons.values()}
    inodes = state.namespace_inodes()
    try:
        down = dynipsec("lab", "down", "--prefix", prefix)
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        if load_state(prefix) is not None:
            dynipsec("lab", "clean", "--force", "--prefix", prefix)
    assert_nothing_left(prefix, before, pids, inodes)
    assert (tmp_path / "latest" / "router-public.pcap").exists()
    assert "no lab is running" in dynipsec("lab", "status", "--prefix", prefix).stdout

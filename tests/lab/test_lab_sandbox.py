"""The sandbox commands from a bare shell, as a user types them: up, gateway start, login,
exec ping through the tunnel, logout, gateway stop, down; nothing may be left behind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import aux_prefix

pytestmark = pytest.mark.lab


def dynipsec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "responder", *args], capture_output=True,
                          text=True, timeout=timeout)


def ok(*args: str) -> str:
    run = dynipsec(*args)
    assert run.returncode == 0, f"dynipsec {' '.join(args)}: {run.stdout}{run.stderr}"
    return run.stdout


def leftovers(prefix: str) -> list[str]:
    names = subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = [n for n in names if n.startswith(prefix)]
    found += [line.split(":")[1].strip() for line in links.splitlines()
              if line.split(":")[1].strip().startswith(prefix)]
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"--prefix {prefix} " in cmdline + " ":
            found.append(f"process {proc.name}: {cmdline[:80]}")
    return found


def test_gateway_login_ping_logout_down_from_the_cli():
    prefix = aux_prefix("x")
    client = f"{prefix}c1"
    ok("lab", "up", "--topology", "minimal", "--prefix", prefix)
    try:
        assert "undo: dynipsec lab gateway stop" in ok("lab", "gateway", "start", "--kind",
                                                       "dynipsec", "--prefix", prefix)
        login = ok("lab", "login", client, "--kind", "strongswan", "--user", "user001")
        assert "address 10.99.1." in login and f"undo:   dynipsec lab logout {client}" in login
        ping = ok("lab", "exec", client, "--", "ping", "-c1", "-W2", "10.50.0.10")
        assert "1 received" in ping
        status = json.loads(ok("lab", "status", "--json", "--prefix", prefix))[0]["sandbox"]
        assert status["gateway"]["running"] and status["clients"][client]["running"]
        assert "10.99.1." in ok("lab", "gateway", "status", "--prefix", prefix)
        assert "logged out" in ok("lab", "logout", client)
        assert "stopped the dynipsec gateway" in ok("lab", "gateway", "stop", "--prefix", prefix)
    finally:
        ok("lab", "down", "--prefix", prefix)
    assert not leftovers(prefix)


def test_sandbox_lab_finds_nodes_as_the_lab_does():
    """SandboxLab uses the Lab's own lookups (router, aaa, vr, server, node_dir) over
    handles that enter the running lab's hosts by their recorded PID."""
    from lab.sandbox import SandboxError, SandboxLab

    prefix = aux_prefix("y")
    ok("lab", "up", "--topology", "minimal", "--prefix", prefix)
    try:
        lab = SandboxLab(prefix)
        names = (lab.router.name, lab.aaa.name, lab.vr("vr1").name, lab.server("vr1").name)
        assert names == (f"{prefix}r", f"{prefix}aaa", f"{prefix}vr1", f"{prefix}srv1")
        assert lab.node_dir(f"{prefix}c1") == lab.run_dir / f"{prefix}c1"
        client = lab.node(f"{prefix}c1")
        assert client.defaultIntf().name == f"{prefix}c1-eth0"
        assert client.interfaces() == [f"{prefix}c1-eth0"]
        assert "1 received" in client.cmd(f"ping -c1 -W2 {lab.topology.access.router}")
        with pytest.raises(SandboxError, match=f"lab '{prefix}' has no host 'nope'"):
            lab.node("nope")
    finally:
        ok("lab", "down", "--prefix", prefix)
    assert not leftovers(prefix)

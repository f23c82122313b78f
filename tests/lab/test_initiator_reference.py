"""The project's initiator against the strongSwan reference gateway in the lab.

Proves the initiator against an implementation nobody here wrote: Main Mode
and Aggressive Mode with a group PSK, the gateway's Xauth, Mode-Config (an
address from the right VR's pool, DNS/WINS), Quick Mode (NAT-T encapsulated:
the gateway runs with encap=yes), and Delete on close. The initiator runs as
`python -m clients.ikev1_initiator` inside a client host's namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

if os.geteuid() != 0:
    pytest.skip("lab tests need root (Mininet namespaces)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    with gateway_factory("strongswan", "strongswan-initiator") as running:
        yield running


def client_node(lab, index: int) -> str:
    direct = [slot for slot in lab.clients if not slot.behind_nat]
    return direct[index].name


def start_initiator(lab, node: str, *, mode: str, group: str, psk: str, user: str,
                    password: str, remote: str, extra: list[str] = ()) -> subprocess.Popen:
    """Run the CLI in the client's namespace; secrets go through 0600 files."""
    workdir = lab.node_dir(node)
    psk_file, password_file = workdir / f"initiator-{group}.psk", workdir / f"initiator-{user}.pw"
    for path, secret in ((psk_file, psk), (password_file, password)):
        path.write_text(secret)
        os.chmod(path, 0o600)
    argv = [PYTHON, "-m", "clients.ikev1_initiator", "--server", str(lab.topology.access.router),
            "--mode", mode, "--id", f"keyid:{group}", "--psk-file", str(psk_file),
            "--user", user, "--password-file", str(password_file), "--remote-selector", remote,
            "--timeout", "20", *extra]
    process = lab.node(node).popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    lab.track_pid(process.pid, f"ikev1-initiator {user}")
    return process


def finish(lab, process: subprocess.Popen, timeout: float = 90) -> tuple[int, list[dict], dict, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        lab.untrack_pid(process.pid)
    lines = [dict(field.split("=", 1) for field in line.split())
             for line in out.splitlines() if line.startswith("session=")]
    summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return process.returncode, lines, summary, err


@pytest.mark.parametrize("mode, group, user, index", [
    ("main", "vr1", "user061", 20),
    ("aggressive", "vr2", "user062", 21),
])
def test_login_against_reference_gateway(lab, plan, gateway, mode, group, user, index, record_property, wait_until):
    vr = plan.group(group)
    process = start_initiator(lab, client_node(lab, index), mode=mode, group=group,
                              psk=plan.psk_for(group, mode), user=user,
                              password=plan.users[user], remote=vr.intranet,
                              extra=["--hold", "4"])
    # while the session holds, the gateway lists the subscriber
    seen = wait_until(lambda: user in {s.user for s in gateway.subscribers()}, 15)
    rc, lines, summary, err = finish(lab, process)
    assert rc == 0, f"{lines} {summary}\n{err[-3000:]}\n{gateway.charon.tail_log(40)}"
    [line] = lines
    assert seen, "the gateway never listed the subscriber"
    assert line["ok"] == "yes" and line["floated"] == "True"  # encap=yes on the gateway
    assert vr.in_pool(line["address"]), line
    assert line["dns"].split(",") == list(vr.dns)
    assert line["wins"].split(",") == list(vr.wins)
    assert line["spis"] != "-"
    assert "password" not in err.lower() or plan.users[user] not in err
    assert plan.users[user] not in err + json.dumps(lines) and plan.psk_for(group, mode) not in err
    # Delete on close: the gateway drops the subscriber at once (no DPD wait)
    assert wait_until(lambda: user not in {s.user for s in gateway.subscribers()}, 5)
    record_property("login_ms", line["quick_mode_ms"])
    print(f"\n[initiator] {mode} mode login against strongSwan: phase1 {line['phase1_ms']} ms, "
          f"xauth {line['xauth_ms']} ms, mode-config {line['mode_config_ms']} ms, "
          f"quick mode {line['quick_mode_ms']} ms")


def test_burst_of_sessions_from_one_host(lab, plan, gateway, wait_until):
    """Many sessions in one process: 20 aggressive-mode logins, users in turn."""
    group, count = "vr1", 20
    node = client_node(lab, 22)
    workdir = lab.node_dir(node)
    psk_file, password_file = workdir / "burst.psk", workdir / "burst.pw"
    psk_file.write_text(plan.psk_for(group, "aggressive"))
    password_file.write_text("pw-user{n:03d}")
    for path in (psk_file, password_file):
        os.chmod(path, 0o600)
    argv = [PYTHON, "-m", "clients.ikev1_initiator", "--server", str(plan.gateway),
            "--mode", "aggressive", "--id", f"keyid:{group}", "--psk-file", str(psk_file),
            "--user", "user{n:03d}", "--password-file", str(password_file), "--first", "150",
            "--count", str(count), "--rate", "50", "--remote-selector", plan.group(group).intranet,
            "--timeout", "30"]
    process = lab.node(node).popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    lab.track_pid(process.pid, "ikev1-initiator burst")
    rc, lines, summary, err = finish(lab, process, timeout=120)
    assert rc == 0, f"{summary}\n{err[-3000:]}"
    assert summary["established"] == count and len(lines) == count
    addresses = {line["address"] for line in lines}
    assert len(addresses) == count and all(plan.group(group).in_pool(a) for a in addresses)
    print(f"\n[initiator] burst of {count} logins against strongSwan: {summary}")
    assert wait_until(lambda: not gateway.subscribers(), 10)

"""Xauth brute-force defence through the real daemon (two workers, local AAA) with the
project's initiator (`python -m clients.ikev1_initiator`) in a client namespace:

* wrong passwords for one user, one per phase 1 (``xauth.max_attempts`` 1): at the
  limit the user is locked (``show lockouts`` lists it);
* the right password is refused while locked (AAA not asked: ``user-locked``);
* another user from the same source address still logs in (the user counter);
* ``lockout clear --user`` -> the right password logs in;
* no password appears in the daemon's log.

Needs root and Mininet (marker `lab`). Under a minute: short back-off in the gateway's
``aaa.lockout`` section.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import cli

pytestmark = pytest.mark.lab

if os.geteuid() != 0:
    pytest.skip("lab tests need root (Mininet namespaces)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
MAX_FAILURES = 3
LOCKOUT = {"max_failures": MAX_FAILURES, "max_source_failures": 50, "duration": 120,
           "backoff_base": 0.1, "backoff_max": 0.4}
WRONG_PASSWORDS = [f"guess-{n}-Vq7r" for n in range(MAX_FAILURES)]


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    with gateway_factory("dynipsec", "lockout", aaa="local", max_attempts=1,
                         extra_config={"aaa": {"lockout": LOCKOUT}}) as gw:
        yield gw


@pytest.fixture(scope="module")
def slot(lab):
    return [c for c in lab.clients if not c.behind_nat][0]


def login(lab, plan, node: str, user: str, password: str) -> dict:
    """One session of the project's initiator: its `session=` line as a dict."""
    workdir = lab.node_dir(node)
    psk_file, password_file = workdir / "lockout.psk", workdir / "lockout.pw"
    for path, secret in ((psk_file, plan.psk_for("vr1", "aggressive")),
                         (password_file, password)):
        path.write_text(secret)
        os.chmod(path, 0o600)
    argv = [PYTHON, "-m", "clients.ikev1_initiator", "--server", plan.gateway,
            "--mode", "aggressive", "--id", "keyid:vr1", "--psk-file", str(psk_file),
            "--user", user, "--password-file", str(password_file), "--timeout", "10",
            "--remote-selector", str(plan.group("vr1").intranet)]
    process = lab.node(node).popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    lab.track_pid(process.pid, "ikev1-initiator lockout")
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        lab.untrack_pid(process.pid)
    lines = [dict(field.split("=", 1) for field in line.split())
             for line in out.splitlines() if line.startswith("session=")]
    assert len(lines) == 1, f"{out}\n{err[-3000:]}"
    return lines[0]


def lockouts(gateway) -> dict[tuple[str, str], dict]:
    return {(r["kind"], r["key"]): r for r in cli(gateway, "show", "lockouts", "--json")["rows"]}


def test_wrong_passwords_lock_the_user_until_cleared(lab, plan, gateway, slot, wait_until):
    victim, other = sorted(u for u in plan.users if u.startswith("user"))[:2]
    log_start = gateway.log_path.stat().st_size
    for password in WRONG_PASSWORDS:
        line = login(lab, plan, slot.name, victim, password)
        assert line["ok"] == "no", line
    rows = lockouts(gateway)
    row = rows[("user", victim)]
    assert row["locked"] is True and row["failures"] == MAX_FAILURES, rows
    assert row["locked_until"], row
    assert rows[("source", slot.address)]["locked"] is False, rows
    # the right password while locked: refused, AAA not asked
    line = login(lab, plan, slot.name, victim, plan.users[victim])
    assert line["ok"] == "no", line
    log = gateway.log_path.read_text(errors="replace")[log_start:]
    assert f"user '{victim}' denied: user-locked (source {slot.address}), AAA not asked" \
        in log, log[-3000:]
    assert log.count(f"AAA refuse for '{victim}'") == MAX_FAILURES, log[-3000:]
    # another user from the same source is not locked by the user counter
    line = login(lab, plan, slot.name, other, plan.users[other])
    assert line["ok"] == "yes", line
    # cleared: the right password logs in
    assert cli(gateway, "lockout", "clear", "--user", victim, "--json")["cleared"] == 1
    assert ("user", victim) not in lockouts(gateway)
    line = login(lab, plan, slot.name, victim, plan.users[victim])
    assert line["ok"] == "yes", line
    assert wait_until(lambda: not gateway.subscriber_rows(), 10), gateway.subscriber_rows()
    # the password of no attempt is in the daemon's log
    log = gateway.log_path.read_text(errors="replace")[log_start:]
    for password in (*WRONG_PASSWORDS, plan.users[victim], plan.users[other]):
        assert password not in log

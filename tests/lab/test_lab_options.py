"""The pytest options of the lab suite, run for real: an inner pytest session (its own
lab prefix, a small lab) runs a tiny lab test with the option, and the outer test checks
what the option promised.

  --lab-pcap  the test's evidence directory holds a capture of the access LAN with the
              test's own traffic in it;
  --lab-keep  after a failing lab test the lab stays up, the printed instructions work
              (`dynipsec lab exec`, `dynipsec lab status`), and `dynipsec lab down` ends it
              with nothing left behind.
"""
from __future__ import annotations

import os
import re
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.lab.conftest import PCAP_NAME, aux_prefix

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
DYNIPSEC = [sys.executable, "-m", "responder.cli"]

INNER_CONFTEST = '''
# the lab suite's options and fixtures, loaded as plugins into this inner session
pytest_plugins = ["tests.conftest", "tests.lab.conftest"]
'''

PING_TEST = '''
import os
from pathlib import Path

import pytest


@pytest.mark.lab
def test_ping_router(lab, lab_evidence_dir):
    Path(os.environ["INNER_EVIDENCE_FILE"]).write_text(str(lab_evidence_dir))
    client = lab.node(lab.clients[0].name)
    out = client.cmd("ping -c 3 -i 0.2 -W 1 " + str(lab.topology.access.router))
    assert " 0% packet loss" in out, out
'''

FAILING_TEST = '''
import pytest


@pytest.mark.lab
def test_fails_in_the_lab(lab):
    assert lab.router is None, "failing on purpose: --lab-keep must keep this lab"
'''


def inner_session(tmp_path: Path, test_source: str, letter: str, runs: Path) -> tuple[list, dict]:
    """argv and environment of an inner pytest over one test file in tmp_path."""
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(test_source)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
           "DYNIPSEC_LAB_PREFIX": aux_prefix(letter), "DYNIPSEC_LAB_CLIENTS": "2",
           "DYNIPSEC_RUNS": str(runs), "INNER_EVIDENCE_FILE": str(tmp_path / "evidence")}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-o", "markers=lab: inner lab test", str(tmp_path / "test_inner.py")]
    return argv, env


def lab_leftovers(prefix: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line for line in names.splitlines() if line.startswith(prefix)]


def test_lab_pcap_writes_the_tests_capture(tmp_path):
    argv, env = inner_session(tmp_path, PING_TEST, "p", tmp_path / "runs")
    run = subprocess.run([*argv, "--lab-pcap"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    pcap = Path((tmp_path / "evidence").read_text()) / PCAP_NAME
    assert pcap.stat().st_size > 24, f"{pcap} holds no packet"  # 24: the pcap file header
    # the test's own pings (client -> router on the access LAN) are in it
    echoes = subprocess.run(["tcpdump", "-n", "-r", str(pcap), "icmp[icmptype] == icmp-echo"],
                            capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert len(echoes) >= 3, echoes


def test_without_lab_pcap_no_capture(tmp_path):
    argv, env = inner_session(tmp_path, PING_TEST, "q", tmp_path / "runs")
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (Path((tmp_path / "evidence").read_text()) / PCAP_NAME).exists()


def line_reader(process: subprocess.Popen) -> queue.Queue:
    """The process's output lines, read by a thread: select() on a buffered pipe would
    miss lines that are already in the buffer."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    return lines


def read_until(lines: queue.Queue, pattern: str, timeout: float) -> str:
    """The output up to the first line matching `pattern`."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen += line
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f}s:\n{seen}")


def test_lab_keep_leaves_a_failed_lab_up_with_working_instructions(tmp_path):
    argv, env = inner_session(tmp_path, FAILING_TEST, "o", tmp_path / "runs")
    prefix = env["DYNIPSEC_LAB_PREFIX"]
    inner = subprocess.Popen([*argv, "--lab-keep"], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = line_reader(inner)
        shown = read_until(lines, r"dynipsec lab clean", timeout=240)
        assert f"lab {prefix!r} kept up after 1 failed lab test(s)" in shown, shown
        assert "test_fails_in_the_lab" in shown
        enter = re.search(r"enter: +dynipsec lab exec (\S+) -- ip -br addr", shown)
        assert enter, shown
        assert f"dynipsec lab down --prefix {prefix}" in shown
        assert f"dynipsec lab clean --prefix {prefix}" in shown
        # the instructions work while the inner pytest waits
        addresses = subprocess.run([*DYNIPSEC, "lab", "exec", enter.group(1), "--", "ip",
                                    "-br", "addr"], capture_output=True, text=True, timeout=30)
        assert addresses.returncode == 0 and "lan0" in addresses.stdout, addresses
        status = subprocess.run([*DYNIPSEC, "lab", "status", "--prefix", prefix],
                                capture_output=True, text=True, timeout=30)
        assert prefix in status.stdout and "no lab is running" not in status.stdout, status
        down = subprocess.run([*DYNIPSEC, "lab", "down", "--prefix", prefix],
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        inner.wait(timeout=60)
        rest = read_until(lines, r"\d+ failed", timeout=10)
    finally:
        if inner.poll() is None:
            inner.kill()
            subprocess.run([*DYNIPSEC, "lab", "clean", "--prefix", prefix], timeout=120)
    assert inner.returncode == 1, rest  # the failing test is still reported as failed
    assert "1 failed" in rest, rest
    assert not lab_leftovers(prefix)

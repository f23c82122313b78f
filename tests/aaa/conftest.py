"""A private FreeRADIUS 3.2 on 127.0.0.1 with non-default ports, for the `aaa` tests.

Own minimal fixture rather than the lab's ``lab.aaa.FreeRadius``: that class serves a
topology on the standard ports 1812/1813 in the AAA namespace; these tests want a
throw-away server on loopback ports that cannot clash with anything. The configuration
is built the way ``reference/lab-feasibility/radprep.sh`` does it: Debian's raddb copied,
logs and run files inside the copy, no ``user``/``group`` switch, no EAP, one minimal
site (files + pap, accounting into one detail file). The process is stopped by its PID.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients.parts import require

SYSTEM_RADDB = Path("/etc/freeradius/3.0")
SECRET = "da-test-secret"

USERS = """\
alice	Cleartext-Password := "alicepw"
	Framed-IP-Address = 10.99.2.7,
	Framed-IP-Netmask = 255.255.255.255,
	Session-Timeout = 120,
	Idle-Timeout = 30,
	Class = 0x6461636c617373,
	Reply-Message = "hello alice",
	ERX-Virtual-Router-Name = "dlvr2",
	ERX-Address-Pool-Name = "pool2",
	ERX-Primary-Dns = 10.50.0.53,
	ERX-Secondary-Dns = 10.50.0.54,
	ERX-Primary-Wins = 10.50.0.137,
	ERX-Secondary-Wins = 10.50.0.138

bob@corp	Cleartext-Password := "bobpw"
	Reply-Message = "corp user"
"""

SITE = """\
server da_test {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {auth_port}
  }}
  listen {{
    type = acct
    ipaddr = 127.0.0.1
    port = {acct_port}
  }}
  authorize {{
    preprocess
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  preacct {{
    preprocess
    acct_unique
  }}
  accounting {{
    da_detail
    ok
  }}
  post-auth {{
    # Message-Authenticator in every Accept/Reject (BlastRADIUS): 3.2.1 adds it only
    # when asked, and computes it when the reply is sent
    update reply {{
      &Message-Authenticator := 0x00
    }}
    Post-Auth-Type REJECT {{
      update reply {{
        &Message-Authenticator := 0x00
      }}
      attr_filter.access_reject
    }}
  }}
}}
"""


def unsigned_site(site: str) -> str:
    """The site without its Message-Authenticator updates: FreeRADIUS 3.2.1 as installed."""
    return re.sub(r"\n *update reply \{\n *&Message-Authenticator := 0x00\n *\}", "", site)


DETAIL = """\
detail da_detail {
  filename = ${radacctdir}/detail
  escape_filenames = no
  permissions = 0600
  header = "%t"
  locking = no
}
"""

CLIENTS = f"""\
client localhost {{
  ipaddr = 127.0.0.1
  secret = {SECRET}
  require_message_authenticator = no
}}
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "aaa: needs root and FreeRADIUS 3.2 (a private server on 127.0.0.1)")


def freeradius_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "aaa test: needs root (runs a private FreeRADIUS)"
    return None


def free_udp_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (bound and released at once)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_bound(pid: int, port: int) -> bool:
    wanted = f":{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(len(f := line.split()) > 1 and f[1].endswith(wanted) for line in lines)


@dataclass
class RadiusServerInfo:
    raddb: Path
    auth_port: int
    acct_port: int
    secret: str
    pid: int

    @property
    def detail_path(self) -> Path:
        return self.raddb / "log" / "radacct" / "detail"

    def accounting_records(self) -> list[dict[str, str]]:
        """Detail file -> one dict per record (quotes removed; last value wins)."""
        try:
            text = self.detail_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        records, current = [], None
        for line in text.splitlines():
            if not line.strip():
                current = None
            elif not line[0].isspace():
                current = {"_time": line.strip()}
                records.append(current)
            elif current is not None and " = " in line:
                name, value = line.strip().split(" = ", 1)
                current[name] = value.strip('"')
        return records


def build_raddb(raddb: Path, auth_port: int, acct_port: int, sign_replies: bool = True) -> None:
    """``sign_replies=False``: FreeRADIUS 3.2.1 as installed, no Message-Authenticator in
    non-EAP replies."""
    shutil.copytree(SYSTEM_RADDB, raddb, symlinks=True)
    (raddb / "log" / "radacct").mkdir(parents=True, exist_ok=True)
    (raddb / "run").mkdir(exist_ok=True)
    conf = raddb / "radiusd.conf"
    text = conf.read_text()
    text = re.sub(r"(?m)^logdir = .*$", f"logdir = {raddb / 'log'}", text)
    text = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {raddb / 'run'}", text)
    text = re.sub(r"(?m)^(\s*)(user|group) = freerad", r"\1#\2 = freerad", text)
    conf.write_text(text)
    (raddb / "mods-enabled" / "eap").unlink(missing_ok=True)
    for site in (raddb / "sites-enabled").iterdir():
        site.unlink()
    site = SITE.format(auth_port=auth_port, acct_port=acct_port)
    if not sign_replies:
        site = unsigned_site(site)
    files = {
        raddb / "sites-enabled" / "da_test": site,
        raddb / "mods-enabled" / "da_detail": DETAIL,
        raddb / "clients.conf": CLIENTS,
        raddb / "mods-config" / "files" / "authorize": USERS,
    }
    for path, content in files.items():
        path.unlink(missing_ok=True)   # may be a symlink into the copied tree
        path.write_text(content)
    check = subprocess.run(["freeradius", "-C", "-d", str(raddb)], capture_output=True,
                           text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError("freeradius -C refused the test configuration:\n"
                           + (check.stdout + check.stderr)[-3000:])


def start_freeradius(directory: Path, auth_port: int, acct_port: int,
                     sign_replies: bool = True) -> tuple[subprocess.Popen, RadiusServerInfo]:
    """Build a raddb under ``directory`` and start FreeRADIUS on it; ready when both
    ports are bound. Stop it with :func:`stop_freeradius`."""
    raddb = directory / "raddb"
    build_raddb(raddb, auth_port, acct_port, sign_replies)
    log_path = directory / "freeradius.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(["freeradius", "-f", "-l", "stdout", "-d", str(raddb)],
                                stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (_port_bound(proc.pid, auth_port) and _port_bound(proc.pid, acct_port)):
            if proc.poll() is not None:
                raise RuntimeError(f"freeradius exited with {proc.returncode}: "
                                   + log_path.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError("freeradius not ready after 15 s")
            time.sleep(0.02)
    except BaseException:
        stop_freeradius(proc)
        raise
    return proc, RadiusServerInfo(raddb, auth_port, acct_port, SECRET, proc.pid)


def stop_freeradius(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _skip_without_freeradius() -> None:
    reason = freeradius_unavailable_reason()
    if reason:
        pytest.skip(reason)
    require("freeradius", "radclient", "freeradius configuration")


@pytest.fixture(scope="session")
def freeradius(tmp_path_factory):
    _skip_without_freeradius()
    proc, info = start_freeradius(tmp_path_factory.mktemp("da-freeradius"), *free_udp_ports(2))
    try:
        yield info
    finally:
        stop_freeradius(proc)


@pytest.fixture
def freeradius_factory(tmp_path):
    """Start private FreeRADIUS servers for one test: ``start() -> (proc, info)``; each
    is stopped at the end (``stop_freeradius(proc)`` stops one earlier)."""
    _skip_without_freeradius()
    started: list[subprocess.Popen] = []

    def start(sign_replies: bool = True) -> tuple[subprocess.Popen, RadiusServerInfo]:
        directory = tmp_path / f"freeradius{len(started)}"
        directory.mkdir()
        proc, info = start_freeradius(directory, *free_udp_ports(2), sign_replies)
        started.append(proc)
        return proc, info

    try:
        yield start
    finally:
        for proc in started:
            stop_freeradius(proc)

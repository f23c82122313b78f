"""The lab's AAA host: FreeRADIUS 3.2 with a private configuration rendered from the topology.

The configuration is Debian's /etc/freeradius/3.0 copied into the daemon's work directory
(so nothing of the machine's own RADIUS setup is touched), with logs and run files kept
inside it, the EAP module removed (no certificates are shipped), and one minimal site:
PAP against a users file, accounting into a single detail file. The router's management
address is the NAS client.

Also here: sending RFC 5176 Disconnect/CoA requests with radclient from the AAA host, and
reading accounting records back from the detail file.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import jinja2

from clients.process import Daemon, DaemonError

log = logging.getLogger(__name__)

SYSTEM_RADDB = Path("/etc/freeradius/3.0")
TEMPLATES = Path(__file__).resolve().parent / "templates" / "freeradius"
AUTH_PORT = 1812
ACCT_PORT = 1813


def _quote(value: object) -> str:
    """A FreeRADIUS double-quoted string."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["q"] = _quote
    return env


def udp_port_bound(pid: int, port: int) -> bool:
    """Is `port` bound in the network namespace of `pid`? (/proc/PID/net/udp is per netns)"""
    wanted = f":{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1].endswith(wanted) for line in lines if len(line.split()) > 1)


class FreeRadius(Daemon):
    """FreeRADIUS on the AAA node; workdir holds raddb/, the log and the detail file."""

    name = "freeradius"
    ready_timeout = 15.0
    parts = ("freeradius", "radclient", "freeradius configuration")

    def __init__(self, node, workdir: Path, topology, tracker=None):
        super().__init__(node, workdir, tracker)
        self.topology = topology

    # -- paths ---------------------------------------------------------------------------
    @property
    def raddb(self) -> Path:
        return self.workdir / "raddb"

    @property
    def detail_path(self) -> Path:
        return self.raddb / "log" / "radacct" / "detail"

    @property
    def secret_file(self) -> Path:
        return self.raddb / "lab-secret"

    # -- Daemon hooks --------------------------------------------------------------------
    def build_config(self) -> None:
        raddb = self.raddb
        if raddb.exists():
            shutil.rmtree(raddb)
        shutil.copytree(SYSTEM_RADDB, raddb, symlinks=True)
        (raddb / "log" / "radacct").mkdir(parents=True, exist_ok=True)
        (raddb / "run").mkdir(exist_ok=True)
        self._patch_radiusd_conf()
        (raddb / "mods-enabled" / "eap").unlink(missing_ok=True)
        for site in (raddb / "sites-enabled").iterdir():
            site.unlink()
        self._render_files()

    def _patch_radiusd_conf(self) -> None:
        conf = self.raddb / "radiusd.conf"
        text = conf.read_text()
        text = re.sub(r"(?m)^logdir = .*$", f"logdir = {self.raddb / 'log'}", text)
        text = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {self.raddb / 'run'}", text)
        # runs as root inside its own namespace: no switch to the freerad user, whose
        # rights would not reach this private directory
        text = re.sub(r"(?m)^(\s*)(user|group) = freerad", r"\1#\2 = freerad", text)
        # answer a bad password at once: tests of Xauth retries would otherwise wait 1 s each
        text = re.sub(r"(?m)^(\s*)reject_delay = .*$", r"\1reject_delay = 0", text)
        conf.write_text(text)

    def _render_files(self) -> None:
        t = self.topology
        env = _templates()
        files = {
            self.raddb / "sites-enabled" / "dynipsec_lab": env.get_template("site.j2").render(
                listen="*", auth_port=AUTH_PORT, acct_port=ACCT_PORT),
            self.raddb / "mods-enabled" / "lab_detail": env.get_template("detail.j2").render(),
            self.raddb / "clients.conf": env.get_template("clients.conf.j2").render(
                nas_name=t.router_name, nas=t.nas_address, secret=t.aaa.secret),
            self.raddb / "mods-config" / "files" / "authorize": env.get_template("authorize.j2").render(
                topology=t.name, users=t.aaa.users),
        }
        for path, text in files.items():
            path.unlink(missing_ok=True)  # may be a symlink into the copied tree
            path.write_text(text)
        self.secret_file.write_text(t.aaa.secret + "\n")
        self.secret_file.chmod(0o600)

    def check_config(self) -> None:
        run = subprocess.run(["freeradius", "-C", "-d", str(self.raddb)],
                             capture_output=True, text=True, timeout=30)
        if run.returncode != 0:
            lines = (run.stdout + run.stderr).strip().splitlines()
            raise DaemonError("freeradius -C refused the lab configuration:\n" + "\n".join(lines[-20:]))

    def argv(self) -> list[str]:
        # -f: stay in the foreground (tracked PID); -l stdout: log into our log file.
        # Never -X into a pipe: it blocks once ~64 KiB of output pile up.
        return ["freeradius", "-f", "-l", "stdout", "-d", str(self.raddb)]

    def ready(self) -> bool:
        return (self.alive() and udp_port_bound(self.proc.pid, AUTH_PORT)
                and udp_port_bound(self.proc.pid, ACCT_PORT))

    # -- RFC 5176 ------------------------------------------------------------------------
    def send_dynamic_authorization(self, kind: str, *, user: str | None = None,
                                   framed_ip: str | None = None, session_id: str | None = None,
                                   nas: str | None = None, port: int | None = None,
                                   extra: dict[str, str] | None = None, timeout: float = 2.0) -> str:
        """Disconnect-Request (kind 'disconnect') or CoA-Request ('coa') from the AAA host
        to the NAS with radclient; returns radclient's output (look for
        'Received Disconnect-ACK' / 'Disconnect-NAK' / 'No reply')."""
        if kind not in ("disconnect", "coa"):
            raise ValueError(f"kind must be 'disconnect' or 'coa', not {kind!r}")
        attributes = dict(extra or {})
        if user is not None:
            attributes["User-Name"] = user
        if framed_ip is not None:
            attributes["Framed-IP-Address"] = str(framed_ip)
        if session_id is not None:
            attributes["Acct-Session-Id"] = session_id
        if not attributes:
            raise ValueError("a Disconnect/CoA request needs at least one identifying attribute")
        target = f"{nas or self.topology.nas_address}:{port or self.topology.aaa.coa_port}"
        line = ",".join(f"{name}={_quote(value)}" for name, value in attributes.items())
        if "Event-Timestamp" not in attributes:
            # RFC 5176 §3.4 replay protection: the NAS refuses requests without a fresh one
            line += f",Event-Timestamp={int(time.time())}"
        # -S: the secret comes from a file, so it never shows in ps or in logs
        argv = ["radclient", "-x", "-r", "1", "-t", str(timeout), "-d", str(self.raddb),
                "-S", str(self.secret_file), target, kind]
        log.info("radclient %s to %s: %s", kind, target, line)
        proc = self.node.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        output, _ = proc.communicate(line + "\n", timeout=timeout * 2 + 5)
        log.debug("radclient output:\n%s", output)
        return output

    # -- accounting ------------------------------------------------------------------------
    def accounting_records(self) -> list[dict[str, str]]:
        try:
            text = self.detail_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return parse_detail(text)


def parse_detail(text: str) -> list[dict[str, str]]:
    """FreeRADIUS detail file -> one dict per record.

    A record is a timestamp line followed by tab-indented `Name = Value` lines and ends
    with a blank line. Quotes around string values are removed; the timestamp line is
    kept as '_time'. A repeated attribute keeps its last value.
    """
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
            current = None
        elif not line[0].isspace():
            if current:
                records.append(current)
            current = {"_time": line.strip()}
        elif current is not None and " = " in line:
            name, value = line.strip().split(" = ", 1)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            current[name] = value
    if current:
        records.append(current)
    return records

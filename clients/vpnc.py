"""vpnc 0.5 as a remote-access IKEv1 client: Aggressive Mode, group name as key-id.

vpnc runs in the foreground (`--no-detach`) under `stdbuf -oL` (otherwise its
stdio-buffered output appears only at exit), driven through pexpect: the
Xauth password is not in the configuration, vpnc prompts for it and the harness
answers. A reader thread copies vpnc's output to vpnc.log, answers the prompt,
and notes the moment the tunnel is up ("S7.9 main loop" at debug 2+, "VPNC
started in foreground..." at any level). What vpnc received
comes from its script's record (vpnc-env.connect).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pexpect

from clients.base import ClientError, ClientInfo, ClientSettings, IPsecClient
from clients.charon import TEMPLATES, render
import clients.parts as parts
from clients.process import PidTracker, ProcessHost

log = logging.getLogger(__name__)

#: "S7.9 main loop" at --debug 2 and above; "VPNC started in foreground..." at every level
UP_MARKERS = ("S7.9 main loop", "VPNC started in foreground")
PASSWORD_PROMPT = re.compile(r"[Pp]assword for [^\n]*: ?$")
#: vpnc waits this long for an answer before it gives up on its own
VPNC_GIVES_UP = 30.0


class VpncClient(IPsecClient):
    kind = "vpnc"

    def __init__(self, node: ProcessHost, workdir: Path, settings: ClientSettings,
                 tracker: PidTracker | None = None, debug: int = 1):
        if settings.mode != "aggressive":
            raise ValueError("vpnc only does Aggressive Mode")
        super().__init__(node, workdir, settings, tracker)
        self.workdir = self.workdir.resolve()
        self.debug = debug
        self._child: pexpect.spawn | None = None
        self._reader: threading.Thread | None = None
        self._up = threading.Event()
        self._exited = threading.Event()

    # -- paths ---------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "vpnc.log"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "vpnc.conf"

    @property
    def script_path(self) -> Path:
        return self.workdir / "vpnc-script"

    def env_record(self, reason: str) -> Path:
        return self.workdir / f"vpnc-env.{reason}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    # -- life cycle ----------------------------------------------------------
    def prepare(self) -> None:
        parts.require("vpnc", "stdbuf", "mnexec")
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATES / "vpnc-script.sh", self.script_path)
        os.chmod(self.script_path, 0o755)
        render("vpnc.conf.j2", self.conf_path, node=self.node.name, workdir=self.workdir,
               settings=self.settings, script=self.script_path)
        os.chmod(self.conf_path, 0o600)  # holds the group key
        check_line_lengths(self.conf_path)

    def _start_login(self) -> None:
        if self._child is not None and self._child.isalive():
            raise ClientError(f"{self.name}: vpnc is already running")
        for reason in ("connect", "disconnect", "pre-init"):
            self.env_record(reason).unlink(missing_ok=True)
        self._up.clear()
        self._exited.clear()
        argv = ["mnexec", "-a", str(self.node.pid), "stdbuf", "-oL", "-eL",
                "vpnc", "--no-detach", "--debug", str(self.debug), str(self.conf_path)]
        # echo=False: the answer to the password prompt never shows up in the transcript
        self._child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace",
                                    echo=False, timeout=None)
        if self.tracker:
            self.tracker.track_pid(self._child.pid, f"vpnc@{self.node.name}")
        self._reader = threading.Thread(target=self._read_output, args=(self._child,),
                                        name=f"vpnc-{self.name}", daemon=True)
        self._reader.start()

    def _read_output(self, child: pexpect.spawn) -> None:
        """Copies vpnc's output to the log, answers the prompt once, notes the up marker."""
        window = ""
        answered = False
        with open(self.log_path, "a", encoding="utf-8") as out:
            while True:
                try:
                    chunk = child.read_nonblocking(4096, timeout=0.5)
                except pexpect.TIMEOUT:
                    continue
                except (pexpect.EOF, OSError, ValueError):
                    break
                out.write(chunk)
                out.flush()
                window = (window + chunk)[-512:]
                if not answered and PASSWORD_PROMPT.search(window):
                    child.sendline(self.settings.password)
                    answered = True
                    window = ""
                if not self._up.is_set() and any(m in window for m in UP_MARKERS):
                    self._up_at = time.monotonic()
                    self._up.set()
        self._exited.set()

    def _poll_up(self) -> bool:
        if self._up.is_set():
            return True
        if self._exited.is_set() or (self._child is not None and not self._child.isalive()):
            self._exited.wait(2)
            raise self.error("vpnc exited before the tunnel came up")
        return False

    def _read_info(self) -> ClientInfo:
        record = self.env_record("connect")
        if not _wait_for_file(record, timeout=2.0):
            raise self.error(f"no record of the connect script ({record})")
        return info_from_vpnc_env(read_env_record(record))

    def disconnect(self, timeout: float = 10.0) -> None:
        """SIGTERM: vpnc sends Delete (ESP, then ISAKMP), runs its script, and exits."""
        child = self._child
        if child is not None and child.isalive():
            os.kill(child.pid, signal.SIGTERM)
            if not self._exited.wait(timeout):
                log.warning("%s: vpnc did not exit within %.0fs of SIGTERM", self.name, timeout)
        self.close()

    def kill(self) -> None:
        """SIGKILL: vpnc vanishes without a Delete; its tun device goes with it."""
        child = self._child
        if child is not None and child.isalive():
            os.kill(child.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            if child.isalive():
                child.close(force=True)  # SIGHUP, SIGINT, then SIGKILL
            else:
                child.close()
            if self.tracker:
                self.tracker.untrack_pid(child.pid)
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def is_up(self) -> bool:
        return self._up.is_set() and self._child is not None and self._child.isalive()


# -- what vpnc received ---------------------------------------------------------------
#: vpnc reads its configuration with a 200-byte line buffer: the rest of a longer line is
#: read as a line of its own, so a long Script line loses its arguments
VPNC_MAX_LINE = 198


def check_line_lengths(conf: Path) -> None:
    """ClientError naming the first line of `conf` that vpnc would cut."""
    for number, line in enumerate(conf.read_text().splitlines(), 1):
        if len(line.encode()) > VPNC_MAX_LINE and not line.startswith("#"):
            raise ClientError(f"{conf}:{number}: {len(line.encode())} bytes, vpnc reads at most "
                              f"{VPNC_MAX_LINE} per line: use a shorter work directory")


def read_env_record(path: Path) -> dict[str, str]:
    """The NUL-separated NAME=value pairs the script recorded."""
    values = {}
    for item in Path(path).read_bytes().split(b"\0"):
        if b"=" in item:
            name, _, value = item.decode(errors="replace").partition("=")
            values[name] = value
    return values


def info_from_vpnc_env(env: dict[str, str]) -> ClientInfo:
    split = []
    for i in range(int(env.get("CISCO_SPLIT_INC", "0") or 0)):
        address = env.get(f"CISCO_SPLIT_INC_{i}_ADDR")
        length = env.get(f"CISCO_SPLIT_INC_{i}_MASKLEN")
        if address and length:
            split.append(str(ipaddress.IPv4Network(f"{address}/{length}", strict=False)))
    return ClientInfo(
        address=env.get("INTERNAL_IP4_ADDRESS") or None,
        netmask=env.get("INTERNAL_IP4_NETMASK") or None,
        dns=env.get("INTERNAL_IP4_DNS", "").split(),
        wins=env.get("INTERNAL_IP4_NBNS", "").split(),
        banner=env.get("CISCO_BANNER") or None,
        default_domain=env.get("CISCO_DEF_DOMAIN") or None,
        split_networks=split,
    )


def _wait_for_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

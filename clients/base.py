"""One API for every kind of IPsec client the lab drives (strongSwan, vpnc, ...).

A client object is bound to one lab node (a Mininet host: .popen/.cmd/.pid/.name)
and to a work directory where its configuration, logs and records live. The
life cycle is the same for every kind:

    with StrongSwanClient(node, workdir, settings, tracker=lab) as client:
        client.connect()              # starts the login, returns at once
        client.wait_up(timeout=20)    # ClientError with the client's log tail
        client.info                   # ClientInfo: address, dns, wins, ...
        client.ping("10.50.0.10")     # PingResult(sent, received), through the tunnel
        client.disconnect()           # graceful: the client sends Delete

`kill()` makes the client vanish without a Delete (for dead peer detection
tests). Leaving the `with` block always ends every process the client started.
"""
from __future__ import annotations

import abc
import dataclasses
import logging
import re
import subprocess
import time
from pathlib import Path
from typing import Literal

from clients.process import PidTracker, ProcessHost

log = logging.getLogger(__name__)

Mode = Literal["main", "aggressive"]
MODES: tuple[str, ...] = ("main", "aggressive")


class ClientError(RuntimeError):
    """A client did not come up, or an operation on it failed.

    The message carries the tail of the client's own log, so that a failing
    test shows why without opening files.
    """


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """What a remote-access client needs to know to log in.

    `group` is the IKE identity sent as key-id (the VR group name); `psk` is the
    group's pre-shared key for the chosen mode; `remote_networks` are the
    networks routed through the tunnel (the VR's intranet).
    """

    gateway: str
    group: str
    psk: str
    user: str
    password: str
    mode: Mode = "aggressive"
    remote_networks: tuple[str, ...] = ("10.50.0.0/24",)
    #: NAT traversal: "force" (always ESP in UDP 4500: kernel-libipsec can do nothing
    #: else) or "none" (vpnc only: raw ESP, IP protocol 50, when there is no NAT)
    natt: str = "force"
    #: strongSwan only: the child SA's rekey time in seconds (its life time is 2x), to
    #: make the client rekey during a test; None: strongSwan's defaults
    child_rekey_seconds: int | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.natt not in ("force", "none"):
            raise ValueError(f"natt must be 'force' or 'none', not {self.natt!r}")

    def __repr__(self) -> str:  # keeps secrets out of logs and tracebacks
        return (f"ClientSettings(gateway={self.gateway!r}, group={self.group!r}, "
                f"user={self.user!r}, mode={self.mode!r}, "
                f"remote_networks={self.remote_networks!r})")


@dataclasses.dataclass
class ClientInfo:
    """What the client received from the gateway (Mode-Config and Unity)."""

    address: str | None = None
    netmask: str | None = None
    dns: list[str] = dataclasses.field(default_factory=list)
    wins: list[str] = dataclasses.field(default_factory=list)
    banner: str | None = None
    default_domain: str | None = None
    split_networks: list[str] = dataclasses.field(default_factory=list)
    #: seconds from the start of the login (connect) until the tunnel was up
    setup_time: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PingResult:
    sent: int
    received: int

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent

    def __str__(self) -> str:
        return f"{self.received}/{self.sent}"


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def parse_ping_summary(output: str) -> PingResult:
    """Reads iputils' summary line; no summary (ping failed to start) is 0/0."""
    match = _PING_SUMMARY.search(output)
    if not match:
        return PingResult(0, 0)
    return PingResult(int(match.group(1)), int(match.group(2)))


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def run_in_node(node: ProcessHost, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Runs a short command inside a node; thread-safe (Node.cmd shares one shell)."""
    proc = node.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return subprocess.CompletedProcess(argv, -9, out.decode(errors="replace"))
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(errors="replace"))


class IPsecClient(abc.ABC):
    """Base class of the client harnesses. Subclasses implement the hooks below."""

    #: short kind name used in reports ("strongswan", "vpnc")
    kind: str = "client"

    def __init__(self, node: ProcessHost, workdir: Path, settings: ClientSettings,
                 tracker: PidTracker | None = None):
        self.node = node
        self.workdir = Path(workdir)
        self.settings = settings
        self.tracker = tracker
        self._login_started: float | None = None
        self._setup_time: float | None = None
        self._up_at: float | None = None
        self._info: ClientInfo | None = None

    # -- hooks -----------------------------------------------------------
    def prepare(self) -> None:
        """Renders the configuration and starts what must run before the login.

        Optional to call: connect() prepares first if needed. Calling it ahead
        of time keeps daemon start-up out of the measured setup time.
        """

    @abc.abstractmethod
    def _start_login(self) -> None:
        """Starts the login; must not block until it completes."""

    @abc.abstractmethod
    def _poll_up(self) -> bool:
        """True once the tunnel is up; raises ClientError if it cannot come up.

        Subclasses that notice the moment of success in a watcher thread set
        self._up_at (time.monotonic()), so that the setup time does not depend on
        when wait_up() happens to poll.
        """

    @abc.abstractmethod
    def _read_info(self) -> ClientInfo:
        """Collects what the client received (called once the tunnel is up)."""

    @abc.abstractmethod
    def disconnect(self, timeout: float = 10.0) -> None:
        """Logs out gracefully (the client sends Delete) and ends its processes."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL: the client vanishes without sending a Delete."""

    @abc.abstractmethod
    def close(self) -> None:
        """Ends every process of this client; idempotent, never raises."""

    @property
    @abc.abstractmethod
    def log_path(self) -> Path:
        """The client's own log (shown in ClientError)."""

    # -- common behaviour -------------------------------------------------
    @property
    def name(self) -> str:
        return self.node.name

    def connect(self) -> None:
        """Starts logging in and returns; use wait_up() to wait for the tunnel."""
        self.prepare()
        self._info = None
        self._setup_time = None
        self._up_at = None
        self._login_started = time.monotonic()
        log.debug("%s: %s login as %s (%s mode, group %s)", self.name, self.kind,
                  self.settings.user, self.settings.mode, self.settings.group)
        self._start_login()

    def wait_up(self, timeout: float = 20.0) -> ClientInfo:
        """Waits until the tunnel is up and returns what the client received."""
        if self._login_started is None:
            raise ClientError(f"{self.name}: wait_up() before connect()")
        deadline = self._login_started + timeout
        while not self._poll_up():
            if time.monotonic() > deadline:
                raise self.error(f"tunnel not up after {timeout:.0f}s")
            time.sleep(0.02)
        if self._setup_time is None:
            up_at = self._up_at if self._up_at is not None else time.monotonic()
            self._setup_time = up_at - self._login_started
        log.debug("%s: %s up in %.3fs", self.name, self.kind, self._setup_time)
        return self.info

    @property
    def info(self) -> ClientInfo:
        """What the client received; read once after the tunnel came up."""
        if self._info is None:
            info = self._read_info()
            info.setup_time = self._setup_time
            self._info = info
        return self._info

    def ping(self, target: str, count: int = 3, timeout: float = 5.0,
             interval: float = 0.2) -> PingResult:
        """Pings through the tunnel, with the assigned address as source."""
        source = self.info.address
        if not source:
            raise self.error("no assigned address to ping from")
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval),
                "-W", "1", "-w", str(max(1, int(timeout))), "-I", source, target]
        result = run_in_node(self.node, argv, timeout=timeout + 5)
        return parse_ping_summary(result.stdout)

    def error(self, what: str) -> ClientError:
        return ClientError(f"{self.name} ({self.kind}, user {self.settings.user}, "
                           f"{self.settings.mode} mode): {what}; log {self.log_path}:\n"
                           f"{tail(self.log_path)}")

    def __enter__(self) -> "IPsecClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.settings!r}>"

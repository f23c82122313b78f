"""One class per daemon the lab and its clients run (FreeRADIUS, charon, vpnc, the responder).

A daemon has a name, a node to run on, a configuration it renders into its own
directory, a dry run that validates that configuration before anything starts,
an argv to start, and a readiness check. Start and stop are paired in a context
manager; the process is tracked by PID through the lab so that `dynipsec lab
clean` can end it after a crash. Nothing here kills by name.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Protocol

import clients.parts as parts

log = logging.getLogger(__name__)

#: longest AF_UNIX path: sun_path holds 108 bytes, the last one the NUL
MAX_SOCKET_PATH = 107


def unix_socket_path(workdir: Path, name: str) -> Path:
    """Where a daemon's unix socket goes: in its work directory when the path fits in
    sun_path, else a short name in the temporary directory derived from that path (so the
    same work directory always gets the same socket, and two never share one)."""
    path = Path(workdir) / name
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(str(path))).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dynipsec-{digest}-{name}"


class DaemonError(RuntimeError):
    """A daemon's configuration was refused or it did not become ready."""


class ProcessHost(Protocol):
    """What a daemon needs from the place it runs: a Mininet host has all of it."""

    name: str

    def popen(self, *args, **kwargs) -> subprocess.Popen: ...

    def cmd(self, *args, **kwargs) -> str: ...


class PidTracker(Protocol):
    """Records PIDs so that a crashed run can be cleaned up (lab.engine.Lab does this)."""

    def track_pid(self, pid: int, what: str) -> None: ...

    def untrack_pid(self, pid: int) -> None: ...


class Daemon:
    """Base class. Subclasses set `name` and implement the hooks."""

    name: str = "daemon"
    #: how long start() waits for ready() to become true
    ready_timeout: float = 10.0
    #: how long stop() waits after SIGTERM before SIGKILL
    stop_timeout: float = 5.0
    #: programs (names in clients.parts.PROGRAMS) checked before anything starts
    parts: tuple[str, ...] = ()

    def __init__(self, node: ProcessHost, workdir: Path, tracker: PidTracker | None = None):
        self.node = node
        self.workdir = Path(workdir)
        self.tracker = tracker
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # -- hooks -----------------------------------------------------------
    def build_config(self) -> None:
        """Render configuration files into self.workdir."""

    def check_config(self) -> None:
        """Dry run: raise DaemonError with the daemon's own words if the config is bad."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def ready(self) -> bool:
        """True once the daemon serves. Default: the process is alive."""
        return self.alive()

    def check_started(self) -> None:
        """Raise (e.g. parts.MissingPart) if the starting daemon reported a fatal fault."""

    # -- lifecycle -------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "Daemon":
        parts.require(*self.parts)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.build_config()
        self.check_config()
        self._log_file = open(self.log_path, "ab", buffering=0)
        env = self.env()
        kwargs = {"stdout": self._log_file, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
        if env is not None:
            kwargs["env"] = {**os.environ, **env}
        self.proc = self.node.popen(self.argv(), **kwargs)
        if self.tracker:
            self.tracker.track_pid(self.proc.pid, f"{self.name}@{self.node.name}")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("%s on %s ready (pid %d)", self.name, self.node.name, self.proc.pid)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self.ready():
            self.check_started()
            if not self.alive():
                raise DaemonError(f"{self.name} on {self.node.name} exited with "
                                  f"{self.proc.returncode}; see {self.log_path}:\n{self.tail_log()}")
            if time.monotonic() > deadline:
                raise DaemonError(f"{self.name} on {self.node.name} not ready after "
                                  f"{self.ready_timeout:.0f}s; see {self.log_path}:\n{self.tail_log()}")
            time.sleep(0.02)
        self.check_started()

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if self.tracker:
                self.tracker.untrack_pid(proc.pid)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

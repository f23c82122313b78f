"""The project's initiator (clients.ikev1_initiator) run as a one-shot lab client.

The scenario engine and the sandbox's `dynipsec lab login --kind initiator` both use it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clients import ClientError, ClientInfo, ClientSettings
from lab.topology import REPO_ROOT


class InitiatorProbe:
    """The project's initiator as a one-shot client: up (phase 1, Xauth, Mode-Config,
    Quick Mode), then Delete at once; what it received is read from its result line."""

    kind = "initiator"

    def __init__(self, node, workdir: Path, settings: ClientSettings, spec, tracker=None):
        self.node = node
        self.workdir = Path(workdir)
        self.settings = settings
        self.spec = spec
        self.tracker = tracker
        self.info = ClientInfo()
        self.log_path = self.workdir / f"initiator-{settings.user}.log"

    def argv(self, psk_file: Path, password_file: Path) -> list[str]:
        argv = [sys.executable, "-m", "clients.ikev1_initiator", "--server", self.settings.gateway,
                "--mode", self.settings.mode, "--id", f"keyid:{self.settings.group}",
                "--psk-file", str(psk_file), "--user", self.settings.user,
                "--password-file", str(password_file),
                "--remote-selector", self.settings.remote_networks[0], "--timeout", "20"]
        sent = self.spec.vendor_ids
        if sent is not None:
            argv += [f"--no-{vid}-vid" for vid in ("xauth", "dpd", "unity") if vid not in sent]
        quirk_flags = {"initial-contact": ["--initial-contact"],
                       "no-mode-config": ["--no-mode-config"], "natt-off": ["--natt", "off"]}
        for quirk in self.spec.quirks:
            argv += quirk_flags[quirk]
        return argv

    def connect(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        psk_file = self.workdir / f"initiator-{self.settings.group}.psk"
        password_file = self.workdir / f"initiator-{self.settings.user}.pw"
        for path, secret in ((psk_file, self.settings.psk), (password_file, self.settings.password)):
            path.write_text(secret)
            os.chmod(path, 0o600)
        with open(self.log_path, "w") as log_file:
            proc = self.node.popen(self.argv(psk_file, password_file), cwd=str(REPO_ROOT),
                                   stdout=subprocess.PIPE, stderr=log_file, text=True)
            if self.tracker:
                self.tracker.track_pid(proc.pid, f"ikev1-initiator {self.settings.user}")
            try:
                out, _ = proc.communicate(timeout=60)
            finally:
                if self.tracker:
                    self.tracker.untrack_pid(proc.pid)
        with open(self.log_path, "a") as log_file:
            log_file.write(out)
        line = next((l for l in out.splitlines() if l.startswith("session=")), "")
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("ok") != "yes":
            raise ClientError(f"{self.node.name} (initiator, user {self.settings.user}): "
                              f"session failed: {line or out.strip()[-300:]}")
        listed = lambda key: [] if fields.get(key, "-") == "-" else fields[key].split(",")
        self.info = ClientInfo(address=fields.get("address"), dns=listed("dns"), wins=listed("wins"))

    def wait_up(self, timeout: float) -> ClientInfo:
        return self.info

    def ping(self, *args, **kwargs):
        raise ClientError("the initiator has no data path: it cannot ping")

    def disconnect(self, timeout: float = 10.0) -> None:
        """Nothing to do: the session already ended with its Delete."""

    kill = close = disconnect

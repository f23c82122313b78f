"""strongSwan's charon as a lab daemon, and `swanctl` driven through pexpect.

Used by the strongSwan client harness (one charon per client host) and by the
reference gateway (one charon in the router). Each instance keeps everything in
its work directory: strongswan.conf, swanctl.conf, the vici socket, the log,
and a private /run, because charon's pid file path (/var/run/charon.pid) is
compiled in and would clash between instances sharing a mount namespace.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
from pathlib import Path

import jinja2
import pexpect

import clients.parts as parts
from clients.process import Daemon, DaemonError, PidTracker, ProcessHost, unix_socket_path

log = logging.getLogger(__name__)

CHARON = parts.PROGRAMS["charon"][0]
SWANCTL = parts.PROGRAMS["swanctl"][0]
TEMPLATES = Path(__file__).parent / "templates"


def render(template: str, target: Path, templates: Path = TEMPLATES, **values) -> Path:
    """Renders a jinja2 template (by default from clients/templates) into target."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    target.write_text(env.get_template(template).render(**values))
    return target


class SwanctlError(RuntimeError):
    """swanctl failed, hung, or charon refused the command."""


class Charon(Daemon):
    """One charon with a private /run, its config and vici socket in workdir.

    Subclasses render strongswan.conf and swanctl.conf in build_config().
    """

    name = "charon"
    ready_timeout = 10.0
    #: how long a single swanctl call may take (a hung vici socket must not hang us)
    swanctl_timeout = 30.0
    parts = ("charon", "swanctl", "unshare", "mount", "mnexec")

    def __init__(self, node: ProcessHost, workdir: Path, tracker: PidTracker | None = None):
        super().__init__(node, workdir, tracker)
        self.workdir = Path(workdir).resolve()

    @property
    def conf_path(self) -> Path:
        return self.workdir / "strongswan.conf"

    @property
    def swanctl_conf_path(self) -> Path:
        return self.workdir / "swanctl.conf"

    @property
    def vici_path(self) -> Path:
        return unix_socket_path(self.workdir, "charon.vici")

    @property
    def uri(self) -> str:
        return f"unix://{self.vici_path}"

    @property
    def filelog_path(self) -> Path:
        """charon's own log (the templates' filelog), whatever the daemon's name."""
        return self.workdir / "charon.log"

    @property
    def private_run(self) -> Path:
        return self.workdir / "run"

    def check_config(self) -> None:
        """charon has no dry run: both files must parse as strongSwan settings, and every
        plugin the configuration loads must be installed."""
        from clients.settings import SettingsError, parse_settings
        for path in (self.conf_path, self.swanctl_conf_path):
            try:
                parse_settings(path.read_text())
            except SettingsError as exc:
                raise DaemonError(f"{path}: {exc}") from exc
        parts.require_plugins(parts.plugins_in(self.conf_path.read_text()))

    def check_started(self) -> None:
        """charon goes on without a plugin that failed to load, and a login then fails
        much later (no Xauth credentials, no cipher): refuse to go on at once."""
        try:
            failed = parts.failed_plugins(self.filelog_path.read_text(errors="replace"))
        except OSError:
            return
        if failed:
            raise parts.failed_plugins_error(failed, self.filelog_path)

    def argv(self) -> list[str]:
        self.private_run.mkdir(exist_ok=True)
        # a log left by an earlier run would be read as this start's (check_started)
        for stale in (self.private_run / "charon.pid", self.vici_path, self.filelog_path):
            stale.unlink(missing_ok=True)
        # unshare + bind mount: the compiled-in pid file lands in workdir/run;
        # both execs keep the PID, so the tracked PID is charon's own.
        script = f"mount --bind {shlex.quote(str(self.private_run))} /run && exec {CHARON}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def env(self) -> dict[str, str]:
        return {"STRONGSWAN_CONF": str(self.conf_path)}

    def ready(self) -> bool:
        return self.alive() and self.vici_path.exists()

    def start(self) -> "Charon":
        super().start()
        self.load_all()
        return self

    def stop(self) -> None:
        super().stop()
        # a socket moved out of a long work directory is not removed with that directory
        if self.vici_path.parent != self.workdir:
            self.vici_path.unlink(missing_ok=True)

    # -- swanctl ------------------------------------------------------------
    def swanctl_argv(self, command: str, *args: str) -> list[str]:
        # swanctl wants the command first, then --uri
        return [SWANCTL, command, "--uri", self.uri, *args]

    def spawn_swanctl(self, command: str, *args: str, timeout: float | None = None) -> pexpect.spawn:
        """Starts swanctl inside the node and returns the running pexpect child."""
        argv = ["mnexec", "-a", str(self.node.pid), *self.swanctl_argv(command, *args)]
        env = {**os.environ, "STRONGSWAN_CONF": str(self.conf_path)}
        return pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8",
                             codec_errors="replace", timeout=timeout or self.swanctl_timeout)

    def swanctl(self, command: str, *args: str, timeout: float | None = None,
                check: bool = True) -> str:
        """Runs swanctl to completion; returns its output. SwanctlError on failure."""
        timeout = timeout or self.swanctl_timeout
        child = self.spawn_swanctl(command, *args, timeout=timeout)
        try:
            child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT as exc:
            child.close(force=True)
            raise SwanctlError(f"swanctl {command} on {self.node.name} hung for {timeout:.0f}s "
                               f"(charon log {self.log_path})") from exc
        output = child.before or ""
        child.close()
        if check and child.exitstatus != 0:
            raise SwanctlError(f"swanctl {command} on {self.node.name} failed "
                               f"(exit {child.exitstatus}):\n{output.strip()}")
        return output

    def load_all(self) -> None:
        self.swanctl("--load-all", "--file", str(self.swanctl_conf_path))

    def list_sas(self) -> list[dict]:
        """The IKE SAs charon holds, parsed from `swanctl --list-sas --raw`."""
        return parse_list_sas(self.swanctl("--list-sas", "--raw"))


# -- parsing of swanctl --raw output --------------------------------------------
# --raw prints each vici message on one line, e.g.
#   list-sa event {gw {uniqueid=1 version=1 state=ESTABLISHED local-host=198.18.1.1
#   remote-xauth-id=user001 remote-vips=[10.99.1.1] child-sas {gw-1 {... remote-ts=[10.50.0.0/24]}}}}
_TOKEN = re.compile(r"\s*(?:(\})|(\])|([^\s=\{\}\[\]]+)\s*(=\s*)?(\{|\[)?)")


def parse_vici_raw(text: str) -> dict:
    """Parses one `swanctl --raw` message body into nested dicts/lists of strings."""
    pos = 0

    def parse_section(end: str):
        nonlocal pos
        out: dict = {}
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match:
                pos += 1
                continue
            pos = match.end()
            close_section, close_list, word, equals, opener = match.groups()
            if close_section or close_list:
                return out
            if opener == "{":
                out[word] = parse_section("}")
            elif opener == "[":
                out[word] = parse_list()
            elif equals:
                value_match = re.compile(r"([^\s\}]*)").match(text, pos)
                out[word] = value_match.group(1)
                pos = value_match.end()
        return out

    def parse_list():
        nonlocal pos
        items = []
        while pos < len(text):
            match = re.compile(r"\s*(\]|[^\s\]]+)").match(text, pos)
            if not match:
                break
            pos = match.end()
            if match.group(1) == "]":
                break
            items.append(match.group(1))
        return items

    return parse_section("")


def parse_list_sas(output: str) -> list[dict]:
    """Every IKE SA from `swanctl --list-sas --raw`, each with its name in 'name'."""
    sas = []
    for line in output.splitlines():
        if not line.startswith("list-sa event"):
            continue
        body = parse_vici_raw(line[len("list-sa event"):].strip().removeprefix("{"))
        for name, sa in body.items():
            if isinstance(sa, dict):
                sas.append({"name": name, **sa})
    return sas

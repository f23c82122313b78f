"""strongSwan (charon) as a remote-access IKEv1 client: PSK + Xauth, main or aggressive.

One charon per client host. What the client received is read from charon's own
state (`swanctl --list-sas`: virtual IP, traffic selectors), from the resolve
plugin's private file (DNS), and, for the attributes the client has no handler
for (WINS = NBNS, Unity banner and default domain), from the decoded Mode-Config
payload: charon logs attribute values only at enc level 3, which also dumps the
Xauth password the client sends. So that dump never reaches a file: a second
charon logger writes enc-3 lines into a FIFO, and AttributeTap keeps only the
values of the received Mode-Config attributes. charon.log itself stays at enc 1.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import select
import signal
import threading
import time
from pathlib import Path

import pexpect

from clients.base import ClientError, ClientInfo, ClientSettings, IPsecClient
from clients.charon import Charon, SwanctlError, render
from clients.process import DaemonError, PidTracker, ProcessHost

log = logging.getLogger(__name__)

CONNECTION = "gw"
INITIATE_TIMEOUT = 60


class ClientCharon(Charon):
    """The charon of one client host, configured for one gateway login."""

    name = "charon"

    def __init__(self, node: ProcessHost, workdir: Path, settings: ClientSettings,
                 tracker: PidTracker | None = None):
        super().__init__(node, workdir, tracker)
        self.settings = settings
        self.tap = AttributeTap(self.workdir / "attributes.fifo")

    def build_config(self) -> None:
        values = dict(node=self.node.name, workdir=self.workdir, vici_socket=self.vici_path,
                      settings=self.settings,
                      conn=CONNECTION, attribute_fifo=self.tap.path)
        render("strongswan-client.conf.j2", self.conf_path, **values)
        render("swanctl-client.conf.j2", self.swanctl_conf_path, **values)
        (self.workdir / "resolv.conf").write_text("")
        # the swanctl.conf holds the PSK and the password: readable by root only
        os.chmod(self.swanctl_conf_path, 0o600)

    def start(self) -> "ClientCharon":
        self.tap.open()  # before charon opens the FIFO for writing, or that open blocks
        try:
            super().start()
        except BaseException:
            self.tap.close()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        self.tap.close()


class StrongSwanClient(IPsecClient):
    kind = "strongswan"

    def __init__(self, node: ProcessHost, workdir: Path, settings: ClientSettings,
                 tracker: PidTracker | None = None):
        super().__init__(node, workdir, settings, tracker)
        self.charon = ClientCharon(node, self.workdir, settings, tracker)
        self._initiate: InitiateWatcher | None = None

    @property
    def log_path(self) -> Path:
        return self.charon.log_path

    def prepare(self) -> None:
        if self.charon.alive():
            return
        try:
            self.charon.start()
        except (DaemonError, SwanctlError) as exc:
            self.charon.stop()
            raise ClientError(f"{self.name}: charon did not start: {exc}\n"
                              f"{self.charon.tail_log()}") from exc

    def _start_login(self) -> None:
        self.charon.tap.reset()
        child = self.charon.spawn_swanctl("--initiate", "--child", CONNECTION, "--timeout",
                                          str(INITIATE_TIMEOUT), "--loglevel", "0")
        self._initiate = InitiateWatcher(child, self.workdir / "initiate.out",
                                         INITIATE_TIMEOUT + 10)

    def _poll_up(self) -> bool:
        watcher = self._initiate
        if watcher is None:
            raise self.error("no login in progress")
        if not watcher.done.is_set():
            if not self.charon.alive():
                raise self.error("charon exited during the login")
            return False
        if watcher.exitstatus != 0:
            raise self.error(f"swanctl --initiate failed (exit {watcher.exitstatus}): "
                             f"{watcher.output.strip()[-500:]}")
        self._up_at = watcher.finished_at
        return True

    def _read_info(self) -> ClientInfo:
        sa = self._established_sa()
        received = self.charon.tap.wait_for_reply(timeout=2.0)
        vips = sa.get("local-vips") or []
        return ClientInfo(
            address=vips[0] if vips else _first(received.get("address")),
            netmask=_first(received.get("netmask")),
            # attribute order is primary/secondary; the resolve file proves installation
            dns=received.get("dns") or read_resolve_file(self.workdir / "resolv.conf"),
            wins=received.get("wins", []),
            banner=_first(received.get("banner")),
            default_domain=_first(received.get("default_domain")),
            split_networks=received.get("split_include", []) or _child_remote_ts(sa),
        )

    def _established_sa(self) -> dict:
        try:
            sas = self.charon.list_sas()
        except SwanctlError as exc:
            raise self.error(str(exc)) from exc
        for sa in sas:
            if sa.get("state") == "ESTABLISHED":
                return sa
        raise self.error("no ESTABLISHED IKE SA")

    def is_up(self) -> bool:
        """True while charon holds an established IKE SA (one swanctl call)."""
        if not self.charon.alive():
            return False
        try:
            return any(sa.get("state") == "ESTABLISHED" for sa in self.charon.list_sas())
        except SwanctlError:
            return False

    def disconnect(self, timeout: float = 10.0) -> None:
        """Terminates the IKE SA (charon sends Delete for ESP and ISAKMP), then stops charon."""
        if self.charon.alive() and self._login_started is not None:
            try:
                self.charon.swanctl("--terminate", "--ike", CONNECTION, "--timeout",
                                    str(int(timeout)), "--loglevel", "0", timeout=timeout + 5)
            except SwanctlError as exc:
                # "no matching SAs": the login never succeeded or the gateway deleted it
                level = logging.DEBUG if "no matching SAs" in str(exc) else logging.WARNING
                log.log(level, "%s: terminate failed: %s", self.name, exc)
        self.close()

    def kill(self) -> None:
        """SIGKILL charon: no Delete reaches the gateway, its ipsec0 vanishes."""
        pid = self.charon.pid
        if pid and self.charon.alive():
            os.kill(pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        if self._initiate is not None:
            self._initiate.close()
            self._initiate = None
        self.charon.stop()


class InitiateWatcher:
    """Waits in a thread for `swanctl --initiate` to end; notes when and how."""

    def __init__(self, child: pexpect.spawn, transcript: Path, timeout: float):
        self.child = child
        self.transcript = transcript
        self.timeout = timeout
        self.done = threading.Event()
        self.exitstatus: int | None = None
        self.finished_at: float | None = None
        self.output = ""
        self._thread = threading.Thread(target=self._run, name=f"initiate-{child.pid}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.child.expect(pexpect.EOF, timeout=self.timeout)
            self.finished_at = time.monotonic()
            self.output = self.child.before or ""
            self.child.close()
            self.exitstatus = self.child.exitstatus
        except pexpect.TIMEOUT:
            self.output = (self.child.before or "") + "\n(swanctl --initiate timed out)"
            self.child.close(force=True)
            self.exitstatus = -1
        except Exception as exc:  # pexpect errors after close(): report, never hang
            self.output = f"(watching swanctl failed: {exc})"
            self.exitstatus = -1
        finally:
            try:
                self.transcript.write_text(self.output)
            except OSError:
                pass
            self.done.set()

    def close(self) -> None:
        if not self.done.is_set():
            self.child.close(force=True)
            self._thread.join(timeout=5)


# -- Mode-Config attributes from charon's enc-3 log stream --------------------------
# Mode-Config attribute types (RFC 2409 drafts / Cisco Unity) the lab checks
ATTRIBUTE_NAMES = {
    1: "address", 2: "netmask", 3: "dns", 4: "wins",
    28672: "banner", 28674: "default_domain", 28676: "split_include",
}

# While parsing a received CONFIGURATION_ATTRIBUTE_V1, enc level 3 logs:
#   <gw|1>   parsing rule 1 ATTRIBUTE_TYPE
#   <gw|1>    => 3
#   <gw|1>   parsing rule 3 ATTRIBUTE_VALUE
#   <gw|1>    => 4 bytes @ 0x7f10d0002120
#   <gw|1>    0: 0A 32 00 35                                      .2.5
_PARSING_RULE = re.compile(r"parsing rule \d+ (\w+)")
_ARROW_NUMBER = re.compile(r"=> (\d+)\s*$")
_HEX_DUMP = re.compile(r"\s(\d+): ((?:[0-9A-F]{2} )*[0-9A-F]{2})(?:\s|$)")


class AttributeParser:
    """Line-by-line state machine over charon's enc-3 output.

    Only values inside "parsing rule ... ATTRIBUTE_VALUE" blocks of the types
    above are kept: generated payloads (our own Xauth reply) are never stored.
    """

    def __init__(self):
        self.replies: list[dict[str, list[str]]] = []
        self._type: int | None = None
        self._expect: str | None = None   # "type" or "value"
        self._value: bytearray | None = None

    def feed(self, line: str) -> None:
        if self._value is not None:
            dump = _HEX_DUMP.search(line)
            if dump and "=>" not in line:
                self._value += bytes.fromhex(dump.group(2))
                return
            if "=>" in line and not self._value:
                return  # the "=> N bytes @ 0x..." header of the value dump
            self._finish_value()
        rule = _PARSING_RULE.search(line)
        if rule:
            self._expect = {"ATTRIBUTE_TYPE": "type", "ATTRIBUTE_VALUE": "value"}.get(rule.group(1))
            if self._expect == "value":
                self._value = bytearray()
            return
        if self._expect == "type":
            number = _ARROW_NUMBER.search(line)
            if number:
                self._type = int(number.group(1))
                self._expect = None

    def _finish_value(self) -> None:
        value, self._value = bytes(self._value or b""), None
        name = ATTRIBUTE_NAMES.get(self._type)
        self._type = None
        if name is None or not value:
            return  # requests carry empty values
        if name == "address" or not self.replies:
            self.replies.append({})  # the address opens a Mode-Config reply
        decoded = decode_attribute(name, value)
        bucket = self.replies[-1].setdefault(name, [])
        for item in decoded:
            if item not in bucket:
                bucket.append(item)

    def flush(self) -> None:
        if self._value is not None:
            self._finish_value()


def decode_attribute(name: str, value: bytes) -> list[str]:
    if name in ("address", "netmask", "dns", "wins"):
        return [str(ipaddress.IPv4Address(value[:4]))] if len(value) >= 4 else []
    if name == "split_include":
        # Unity split entries, 14 bytes each: address, mask, protocol, sport, dport
        networks = []
        for offset in range(0, len(value) - 7, 14):
            address = ipaddress.IPv4Address(value[offset:offset + 4])
            mask = ipaddress.IPv4Address(value[offset + 4:offset + 8])
            networks.append(str(ipaddress.IPv4Network(f"{address}/{mask}", strict=False)))
        return networks
    return [value.rstrip(b"\0").decode(errors="replace")]


class AttributeTap:
    """Reads charon's enc-3 log stream from a FIFO in a thread; keeps only attributes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.parser = AttributeParser()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        if self._fd is not None:
            return
        self.path.unlink(missing_ok=True)
        os.mkfifo(self.path, 0o600)
        # O_RDWR: opening never blocks and reads never see EOF while charon restarts
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"attrtap-{self.path.parent.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            with self._lock:
                for line in lines:
                    self.parser.feed(line.decode(errors="replace"))

    def reset(self) -> None:
        with self._lock:
            self.parser = AttributeParser()

    def received(self) -> dict[str, list[str]]:
        with self._lock:
            self.parser.flush()
            return dict(self.parser.replies[-1]) if self.parser.replies else {}

    def wait_for_reply(self, timeout: float) -> dict[str, list[str]]:
        """The last Mode-Config reply; waits briefly for the thread to catch up."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.received()
            if received.get("address") or time.monotonic() > deadline:
                return received
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


# -- other sources ------------------------------------------------------------------
def read_resolve_file(path: Path) -> list[str]:
    """DNS servers the resolve plugin wrote ("nameserver 10.50.0.53   # by strongSwan")."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    return [line.split()[1] for line in lines
            if line.startswith("nameserver") and len(line.split()) > 1]


def _first(values):
    return values[0] if values else None


def _child_remote_ts(sa: dict) -> list[str]:
    networks: list[str] = []
    for child in (sa.get("child-sas") or {}).values():
        if isinstance(child, dict):
            networks += [ts for ts in child.get("remote-ts", []) if ts not in networks]
    return networks

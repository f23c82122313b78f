"""The programs and charon plugins the lab and its clients run, each with the Debian
package that has it.

Each daemon checks its own parts before it starts (so a missing piece fails in a
second, naming its package, instead of a login timing out); ``lab.parts`` checks a
whole installation against the same tables.

    require("vpnc", "stdbuf")                 # MissingPart naming path and package
    require_plugins(["xauth-generic"])        # the same for charon plugins
"""
from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Iterable

#: where Debian's strongSwan packages put charon's plugins
PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")

#: program -> (absolute path, or a command looked up on PATH; Debian package)
PROGRAMS: dict[str, tuple[str, str]] = {
    "charon": ("/usr/lib/ipsec/charon", "strongswan-charon"),
    "swanctl": ("swanctl", "strongswan-swanctl"),
    "vpnc": ("vpnc", "vpnc"),
    "freeradius": ("freeradius", "freeradius"),
    "radclient": ("radclient", "freeradius-utils"),
    "tshark": ("tshark", "tshark"),
    "tcpdump": ("tcpdump", "tcpdump"),
    "iperf3": ("iperf3", "iperf3"),
    "mnexec": ("/usr/bin/mnexec", "mininet"),
    "ip": ("ip", "iproute2"),
    "tc": ("tc", "iproute2"),
    "nft": ("nft", "nftables"),
    "brctl": ("brctl", "bridge-utils"),
    "ping": ("ping", "iputils-ping"),
    "sysctl": ("sysctl", "procps"),
    "unshare": ("unshare", "util-linux"),
    "nsenter": ("nsenter", "util-linux"),
    "mount": ("mount", "mount"),
    "stdbuf": ("stdbuf", "coreutils"),
    "timeout": ("timeout", "coreutils"),
    "curl": ("curl", "curl"),
    "openssl": ("openssl", "openssl"),
}

#: other files read directly -> (absolute path, Debian package)
FILES: dict[str, tuple[str, str]] = {
    "libstrongswan": ("/usr/lib/ipsec/libstrongswan.so.0.0.0", "libstrongswan"),
    "freeradius configuration": ("/etc/freeradius/3.0", "freeradius-config"),
}

#: charon plugin -> Debian package holding PLUGIN_DIR/libstrongswan-<plugin>.so
PLUGINS: dict[str, str] = {
    "aes": "libstrongswan",
    "attr": "libstrongswan",
    "gmp": "libstrongswan",
    "hmac": "libstrongswan",
    "kdf": "libstrongswan",
    "kernel-netlink": "libstrongswan",
    "md5": "libstrongswan",
    "nonce": "libstrongswan",
    "pem": "libstrongswan",
    "pkcs1": "libstrongswan",
    "pubkey": "libstrongswan",
    "random": "libstrongswan",
    "resolve": "libstrongswan",
    "sha1": "libstrongswan",
    "sha2": "libstrongswan",
    "x509": "libstrongswan",
    "counters": "strongswan-libcharon",
    "socket-default": "strongswan-libcharon",
    "updown": "strongswan-libcharon",
    "vici": "strongswan-swanctl",
    "openssl": "libstrongswan-standard-plugins",
    "curve25519": "libstrongswan-extra-plugins",
    "kernel-libipsec": "libcharon-extra-plugins",
    "unity": "libcharon-extra-plugins",
    "xauth-generic": "libcharon-extauth-plugins",
}

_LOAD_LINE = re.compile(r"(?m)^\s*load\s*=\s*(.+?)\s*$")
#: charon's words for a plugin it was told to load and could not
_FAILED_PLUGIN = re.compile(r"plugin '([^']+)':? failed to load")


class MissingPart(RuntimeError):
    """A program or plugin the lab needs is not installed; the message names its package."""

    #: what `dynipsec` exits with after printing the message as one line
    exit_status = 3


@dataclasses.dataclass(frozen=True)
class Part:
    kind: str       # "program" or "charon plugin"
    name: str
    path: str       # absolute path, or a command name looked up on PATH
    package: str

    def present(self) -> bool:
        if self.path.startswith("/"):
            return Path(self.path).exists()
        return shutil.which(self.path) is not None

    def missing_message(self) -> str:
        return (f"{self.kind} '{self.name}' is missing ({self.path}): install the Debian "
                f"package {self.package} (ci/setup.sh installs it)")


def program(name: str) -> Part:
    if name in FILES:
        return Part("file", name, *FILES[name])
    try:
        path, package = PROGRAMS[name]
    except KeyError:
        raise KeyError(f"program {name!r} is in neither clients.parts.PROGRAMS nor FILES") from None
    return Part("program", name, path, package)


def plugin(name: str) -> Part:
    package = PLUGINS.get(name, "unknown: add it to clients.parts.PLUGINS")
    return Part("charon plugin", name, str(PLUGIN_DIR / f"libstrongswan-{name}.so"), package)


def _raise_for(parts: Iterable[Part]) -> None:
    missing = [part.missing_message() for part in parts if not part.present()]
    if missing:
        raise MissingPart("; ".join(missing))


def require(*programs: str) -> None:
    """Raises MissingPart naming every absent program (or file of FILES) and its package."""
    _raise_for(program(name) for name in programs)


def require_plugins(names: Iterable[str]) -> None:
    """Raises MissingPart naming every absent charon plugin and its package."""
    _raise_for(plugin(name) for name in names)


def plugins_in(conf_text: str) -> list[str]:
    """The plugins named by the `load =` lines of a strongswan.conf (or its template)."""
    names: list[str] = []
    for match in _LOAD_LINE.finditer(conf_text):
        names.extend(name for name in match.group(1).split() if name not in names)
    return names


def failed_plugins(log_text: str) -> list[str]:
    """Plugins charon reported as failed to load, in the order it logged them."""
    return list(dict.fromkeys(_FAILED_PLUGIN.findall(log_text)))


def failed_plugins_error(names: Iterable[str], log_path: Path) -> MissingPart:
    found = ", ".join(f"'{name}' (Debian package {plugin(name).package})" for name in names)
    return MissingPart(f"charon failed to load plugin {found}; see {log_path}")

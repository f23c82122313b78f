"""The programs and charon plugins the lab runs, each with the Debian package that has it.

One table serves three readers: ``ci/setup.sh`` checks after installing that every
part is present (``python -m lab.parts check``), each daemon checks its own parts
before it starts (so a missing piece fails in a second, naming its package, instead
of a login timing out), and a unit test ties the table to the charon templates'
``load =`` lines and to ``ci/apt-packages.txt``.

    require("vpnc", "stdbuf")                 # MissingPart naming path and package
    require_plugins(["xauth-generic"])        # the same for charon plugins
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from pathlib import Path
from typing import Iterable

#: where Debian's strongSwan packages put charon's plugins
PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")
ROOT = Path(__file__).resolve().parent.parent

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

#: the strongswan.conf templates whose `load =` lines name plugins
CHARON_TEMPLATES = (
    ROOT / "clients" / "templates" / "strongswan-client.conf.j2",
    ROOT / "lab" / "gateways" / "templates" / "strongswan-gateway.conf.j2",
)

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
        raise KeyError(f"program {name!r} is in neither lab.parts.PROGRAMS nor FILES") from None
    return Part("program", name, path, package)


def plugin(name: str) -> Part:
    package = PLUGINS.get(name, "unknown: add it to lab.parts.PLUGINS")
    return Part("charon plugin", name, str(PLUGIN_DIR / f"libstrongswan-{name}.so"), package)


def every_part() -> list[Part]:
    return ([program(name) for name in [*PROGRAMS, *FILES]]
            + [plugin(name) for name in PLUGINS])


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


def template_plugins() -> list[str]:
    """Every plugin that a charon template of the lab loads."""
    names: list[str] = []
    for template in CHARON_TEMPLATES:
        names.extend(name for name in plugins_in(template.read_text()) if name not in names)
    return names


def missing_parts() -> list[Part]:
    parts = every_part() + [plugin(name) for name in template_plugins() if name not in PLUGINS]
    return [part for part in parts if not part.present()]


def check_installation() -> list[str]:
    """One line per missing part: what, where, and the package that provides it."""
    return [part.missing_message() for part in missing_parts()]


USAGE = """usage: python -m lab.parts check | missing-packages
  check             every program, file and charon plugin the lab uses is installed
                    (one line per missing part with its Debian package; exit 1 if any)
  missing-packages  the Debian packages of the missing parts, one per line"""


def main(argv: list[str]) -> int:
    if argv == ["missing-packages"]:
        for package in dict.fromkeys(part.package for part in missing_parts()):
            print(package)
        return 0
    if argv != ["check"]:
        print(USAGE, file=sys.stderr)
        return 2
    problems = check_installation()
    for line in problems:
        print(f"missing: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"[setup] all {len(PROGRAMS)} programs, {len(FILES)} files and {len(PLUGINS)} "
          "charon plugins present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

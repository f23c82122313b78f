"""Is everything the lab runs installed? ``python -m lab.parts check`` (ci/setup.sh runs it).

The tables of programs, files and charon plugins live in ``clients.parts``; this module
adds the plugins that the lab's charon templates load, and a unit test ties them to
those templates' ``load =`` lines and to ``ci/apt-packages.txt``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from clients.parts import FILES, PLUGINS, PROGRAMS, Part, plugin, plugins_in, program

ROOT = Path(__file__).resolve().parent.parent

#: the strongswan.conf templates whose `load =` lines name plugins
CHARON_TEMPLATES = (
    ROOT / "clients" / "templates" / "strongswan-client.conf.j2",
    ROOT / "lab" / "gateways" / "templates" / "strongswan-gateway.conf.j2",
)


def every_part() -> list[Part]:
    return ([program(name) for name in [*PROGRAMS, *FILES]]
            + [plugin(name) for name in PLUGINS])


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

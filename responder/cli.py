"""The `dynipsec` command: one entry point for the responder, the lab and the demo.

Each area registers its own subcommands (``register(subparsers)``) so that this
module stays a table of contents, not a dispatcher full of logic. The responder's
commands are listed here; other packages (the lab, the demo) add theirs through the
``dynipsec.commands`` entry point group, so the responder never imports them and
installs without them.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from typing import Callable

from responder import __version__

#: entry point group of the commands other packages add
COMMAND_GROUP = "dynipsec.commands"
Registrar = Callable[[argparse._SubParsersAction], None]


def core_registrars() -> list[Registrar]:
    from responder import cli_responder
    from responder.daemon import control   # show ..., logout ...

    return [cli_responder.register, control.register]


def plugin_registrars() -> list[tuple[str, Registrar | None, str]]:
    """(name, register or None, why not) for every entry point of COMMAND_GROUP, by name.
    A plugin whose imports fail (its extra not installed) is listed with the reason."""
    found = []
    for point in sorted(importlib.metadata.entry_points(group=COMMAND_GROUP), key=lambda p: p.name):
        try:
            found.append((point.name, point.load(), ""))
        except ImportError as exc:
            found.append((point.name, None, f"{exc} (install dynipsec[{point.name}]"
                                            " or the lab extra)"))
    return found


def _register_unavailable(sub, name: str, why: str) -> None:
    def refuse(args) -> int:
        print(f"dynipsec {name}: not available: {why}", file=sys.stderr)
        return 3

    parser = sub.add_parser(name, help=f"(not available: {why})")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=refuse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynipsec",
        description=(
            "IKEv1 responder for dynamic IPsec subscribers (Xauth, Mode-Config, "
            "per-subscriber interfaces in virtual routers) and the Mininet lab "
            "that proves it against real strongSwan and vpnc clients."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dynipsec {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for name, register, why in plugin_registrars():
        if register is None:
            _register_unavailable(sub, name, why)
        else:
            register(sub)
    for register in core_registrars():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # default: warnings only (progress and tables are printed, not logged); -v info, -vv debug
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `dynipsec ... | head`: the reader left; the rest goes nowhere, quietly
        # (the interpreter would otherwise fail again flushing stdout at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        # an error a command knows how to explain in one line (e.g. a missing program)
        status = getattr(exc, "exit_status", None)
        if not isinstance(status, int):
            raise
        print(f"dynipsec: {exc}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())

"""The `dynipsec` command: one entry point for the responder, the lab and the demo.

Each area registers its own subcommands (``register(subparsers)``) so that this
module stays a table of contents, not a dispatcher full of logic.
"""
from __future__ import annotations

import argparse
import logging
import sys

from responder import __version__


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

    from lab import cli as lab_cli
    lab_cli.register(sub)
    from lab import demo as demo_cli
    demo_cli.register(sub)
    from responder import cli_responder
    cli_responder.register(sub)
    from responder.daemon import control as control_cli   # show ..., logout ...
    control_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lab.parts import MissingPart

    parser = build_parser()
    args = parser.parse_args(argv)
    # default: warnings only (progress and tables are printed, not logged); -v info, -vv debug
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except MissingPart as exc:
        print(f"dynipsec: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())

"""`dynipsec lab ...` subcommands (placeholder: the lab engine fills this in)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("lab", help="build, inspect and clean the Mininet lab")
    p.set_defaults(func=lambda args: p.print_help())

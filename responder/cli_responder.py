"""`dynipsec responder check|run -c CONFIG`: the operator's entry to the daemon.

``check`` validates a configuration and prints either one summary line (exit 0) or one
line per problem (exit 1). ``run`` validates the same way, then runs the daemon
(``responder.daemon.run``) in the foreground; its exit status is the daemon's.
"""
from __future__ import annotations

import argparse
import sys
from typing import TextIO

from responder.config import ConfigError, ResponderConfig, config_warnings, load_config

EXIT_OK = 0
EXIT_INVALID = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("responder", help="validate and run the IKEv1 responder")
    actions = parser.add_subparsers(dest="responder_command", metavar="ACTION")
    actions.required = True

    check = actions.add_parser("check", help="validate a configuration file")
    _add_config_argument(check)
    check.set_defaults(func=cmd_check)

    run = actions.add_parser("run", help="run the responder in the foreground")
    _add_config_argument(run)
    run.set_defaults(func=cmd_run)


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    # Both spellings: `-c CONFIG` like other daemons, and the shorter `check CONFIG`.
    parser.add_argument("-c", "--config", dest="config_option", metavar="CONFIG",
                        help="configuration file (YAML)")
    parser.add_argument("config_positional", nargs="?", metavar="CONFIG",
                        help=argparse.SUPPRESS)


def _config_path(args: argparse.Namespace) -> str | None:
    return args.config_option or args.config_positional


def _load(args: argparse.Namespace, out: TextIO, err: TextIO,
          warnings: bool = True) -> ResponderConfig | None:
    """The validated configuration, or None after printing why not."""
    path = _config_path(args)
    if path is None:
        print("error: give the configuration file: -c CONFIG", file=err)
        return None
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=err)
        for line in exc.problems:
            print(line, file=err)
        return None
    for warning in config_warnings(config) if warnings else ():
        print(f"warning: {warning}", file=out)
    return config


def cmd_check(args: argparse.Namespace, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    # Streams are looked up at call time (not bound as defaults) so redirection works.
    out, err = out or sys.stdout, err or sys.stderr
    config = _load(args, out, err)
    if config is None:
        return EXIT_INVALID
    print(f"ok: {config.summary()}", file=out)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, out: TextIO | None = None,
            err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    config = _load(args, out, err, warnings=False)   # the daemon logs them (its log format)
    if config is None:
        return EXIT_INVALID
    from responder.daemon import run   # the daemon's imports only when it runs

    # the path too: every worker process of the daemon loads the file itself
    return int(run(_config_path(args), config) or EXIT_OK)

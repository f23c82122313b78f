"""`dynipsec lab up|down|status|exec|clean`: the lab as a developer sandbox.

Mininet host shells die with the Python process that owns their ptys, so `up` starts a
detached *keeper* process that builds the lab, owns it, and tears it down on SIGTERM
(`down`). Everything else reads the lab state files (lab.state) and acts by recorded PID.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

KEEPER_LOG = "keeper.log"


def register(sub) -> None:
    lab = sub.add_parser(
        "lab", help="build, inspect and clean the Mininet lab",
        description="The network-namespace lab: a router with VR namespaces, intranets, an AAA "
                    "host (FreeRADIUS), client hosts and a NAT host, built from a topology YAML. "
                    "Needs root.")
    lab.set_defaults(func=lambda args: lab.print_help() or 2)
    cmds = lab.add_subparsers(dest="lab_command", metavar="ACTION")

    up = cmds.add_parser("up", help="build the lab and keep it running in the background",
                         description="Build the lab and leave it running: a detached keeper process "
                                     "owns it until `dynipsec lab down`. Prints progress, returns "
                                     "when the lab is ready.")
    up.add_argument("--topology", default="default",
                    help="topology name in topologies/ or a path to a YAML file (default: default)")
    up.add_argument("--clients", type=int, default=None, help="number of access-LAN clients "
                    "(default: from the topology, 50 in the default one)")
    up.add_argument("--prefix", default=None, help="node-name prefix (default: from the topology); "
                    "use another one to run a second lab next to a colleague's")
    up.add_argument("--no-aaa", action="store_true", help="do not start FreeRADIUS")
    up.add_argument("--timeout", type=float, default=None, help="seconds to wait for the lab")
    up.set_defaults(func=cmd_up)

    down = cmds.add_parser("down", help="stop a lab started with `up`",
                           description="Ask the keeper to tear the lab down (daemons, names, hosts) "
                                       "and wait until it is gone.")
    _prefix_option(down)
    down.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    down.set_defaults(func=cmd_down)

    status = cmds.add_parser("status", help="show running labs: nodes, addresses, daemons",
                             description="Show every lab recorded on this machine, or say that none runs.")
    _prefix_option(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    run = cmds.add_parser("exec", help="run a command inside a lab host",
                          description="Run COMMAND in HOST's network and mount namespaces (so the "
                                      "host's private /var/run and /var/log are visible); exits with "
                                      "the command's exit code. Example: dynipsec lab exec dlc1 -- "
                                      "ping -c1 198.18.0.1")
    _prefix_option(run)
    run.add_argument("host", help="node name, e.g. dlr, dlaaa, dlvr1, dlc3")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    run.set_defaults(func=cmd_exec)

    clean = cmds.add_parser("clean", help="remove leftovers of crashed labs (by record, nothing else)",
                            description="For each lab state file whose owner process is gone: end the "
                                        "recorded processes (after checking each PID is still the "
                                        "recorded process), delete the recorded `ip netns` names and "
                                        "root-namespace links, and the state file. Running labs are "
                                        "left alone unless --force.")
    _prefix_option(clean)
    clean.add_argument("--force", action="store_true",
                       help="also clean labs whose owner still runs (stops the owner first)")
    clean.set_defaults(func=cmd_clean)

    from lab import cli_run; cli_run.register(cmds)
    from lab import cli_sandbox; cli_sandbox.register(cmds)
    from lab.vendorids import cli as vendorids_cli; vendorids_cli.register(cmds)


def _prefix_option(parser) -> None:
    parser.add_argument("--prefix", default=None, help="only the lab with this prefix (default: all)")


def _selected_states(prefix: str | None):
    from lab.state import all_states, load_state

    if prefix:
        state = load_state(prefix)
        return [state] if state else []
    return all_states()


# -- up: start the keeper and wait for its report ------------------------------------------
def cmd_up(args) -> int:
    from lab.state import load_state
    from lab.topology import TopologyError, load_topology

    try:
        topology = load_topology(args.topology).with_overrides(clients=args.clients, prefix=args.prefix)
    except TopologyError as exc:
        print(f"dynipsec lab up: {exc}", file=sys.stderr)
        return 2
    existing = load_state(topology.prefix)
    if existing and existing.owner_alive():
        print(f"lab {topology.prefix!r} is already running (pid {existing.owner.pid}); "
              f"`dynipsec lab down --prefix {topology.prefix}` first", file=sys.stderr)
        return 1
    argv = [sys.executable, "-m", "lab.cli", "keeper", "--topology", str(args.topology),
            "--prefix", topology.prefix, "--clients", str(topology.clients.count)]
    if args.no_aaa:
        argv.append("--no-aaa")
    timeout = args.timeout or 60.0 + 0.2 * len(topology.node_names())
    print(f"building lab {topology.prefix!r} ({len(topology.node_names())} hosts) ...", flush=True)
    keeper = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    return _await_keeper(keeper, topology.prefix, timeout)


def _await_keeper(keeper: subprocess.Popen, prefix: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(keeper.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                print(f"lab {prefix!r} not ready after {timeout:.0f}s; stopping it", file=sys.stderr)
                keeper.terminate()
                keeper.wait(60)
                return 1
            if not sel.select(min(remaining, 1.0)):
                continue
            line = keeper.stdout.readline()
            if not line:
                keeper.wait(10)
                print(f"lab {prefix!r} failed to start (keeper exited {keeper.returncode})", file=sys.stderr)
                return 1
            kind, _, text = line.rstrip("\n").partition(" ")
            if kind == "progress":
                print(f"  {text}", flush=True)
            elif kind == "error":
                print(f"lab {prefix!r} failed: {text}", file=sys.stderr)
            elif kind == "ready":
                info = json.loads(text)
                keeper.stdout.close()
                print(f"lab {prefix!r} is up in {info['seconds']:.1f}s: {info['hosts']} hosts, "
                      f"keeper pid {keeper.pid}\n  run dir: {info['run_dir']}\n"
                      f"  try:     dynipsec lab exec {prefix}c1 -- ping -c1 {info['router']}\n"
                      f"  stop:    dynipsec lab down --prefix {prefix}")
                return 0


# -- the keeper process ------------------------------------------------------------------
def keeper_main(argv: list[str]) -> int:
    """Builds the lab, reports on stdout ('progress ...', 'ready {json}', 'error ...'),
    then owns it until SIGTERM/SIGINT/SIGHUP."""
    parser = argparse.ArgumentParser(prog="lab keeper")
    parser.add_argument("--topology", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--no-aaa", action="store_true")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    def report(kind: str, text: str) -> None:
        try:
            print(kind, text, flush=True)
        except (BrokenPipeError, ValueError):
            pass  # `up` went away; the lab keeps running regardless

    from lab.engine import Lab, make_run_dir
    from lab.topology import load_topology

    try:
        topology = load_topology(args.topology).with_overrides(clients=args.clients, prefix=args.prefix)
        run_dir = make_run_dir()
        _log_to_file(run_dir / KEEPER_LOG)
        lab = Lab(topology, run_dir, start_aaa=False if args.no_aaa else None,
                  progress=lambda text: report("progress", text), kind="keeper")
        lab.start()
    except BaseException as exc:  # report any failure to `up`, then exit non-zero
        log.exception("lab failed to start")
        report("error", str(exc).replace("\n", " | "))
        return 1
    try:
        report("ready", json.dumps({"run_dir": str(run_dir), "hosts": len(lab.hosts),
                                    "seconds": lab.timings.get("start", 0.0),
                                    "router": str(topology.access.router)}))
        _detach_stdout()
        while not stop.wait(5.0):
            pass
        log.info("keeper: signal received, tearing the lab down")
    finally:
        lab.stop()
    return 0


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _detach_stdout() -> None:
    # `up` closes its end after 'ready'; later writes must not raise SIGPIPE here
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


# -- down ----------------------------------------------------------------------------------
def cmd_down(args) -> int:
    from lab.cleanup import clean_state

    states = _selected_states(args.prefix)
    if not states:
        print("no lab is running" + (f" with prefix {args.prefix!r}" if args.prefix else ""))
        return 0
    status = 0
    for state in states:
        if not state.owner_alive():
            removed = clean_state(state)
            print(f"lab {state.prefix!r} was not running; cleaned {len(removed)} leftover(s)")
            continue
        if state.kind != "keeper":
            print(f"lab {state.prefix!r} belongs to process {state.owner.pid} ({state.owner.what}), "
                  f"not to `up`; stop that process instead", file=sys.stderr)
            status = 1
            continue
        status |= _stop_keeper(state, args.timeout)
    return status


def _stop_keeper(state, timeout: float) -> int:
    from lab.cleanup import clean_state

    print(f"stopping lab {state.prefix!r} (keeper pid {state.owner.pid}) ...", flush=True)
    started = time.monotonic()
    os.kill(state.owner.pid, signal.SIGTERM)
    deadline = started + timeout
    while state.owner_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if state.owner_alive():
        print(f"keeper did not stop within {timeout:.0f}s; cleaning up by force", file=sys.stderr)
        clean_state(state, force=True)
        return 1
    if state.path.exists():  # the keeper died without removing its record
        clean_state(state)
    print(f"lab {state.prefix!r} stopped in {time.monotonic() - started:.1f}s")
    return 0


# -- status --------------------------------------------------------------------------------
def cmd_status(args) -> int:
    states = _selected_states(args.prefix)
    reports = [_status_report(state) for state in states]
    if args.json:
        print(json.dumps(reports, indent=1))
        return 0
    if not reports:
        print("no lab is running" + (f" with prefix {args.prefix!r}" if args.prefix else ""))
        return 0
    for report in reports:
        _print_status(report)
    return 0


def _status_report(state) -> dict:
    from lab.sandbox import sandbox_report

    summary = {}
    try:
        summary = json.loads((Path(state.run_dir) / "lab.json").read_text())
    except (OSError, ValueError):
        pass
    return {
        "prefix": state.prefix, "topology": state.topology, "status": state.status,
        "running": state.owner_alive(), "owner": {"pid": state.owner.pid, "what": state.owner.what},
        "run_dir": state.run_dir,
        "nodes": {name: summary.get("nodes", {}).get(name, {}).get("addresses", {})
                  for name in state.hosts},
        "netns_names": list(state.netns_names),
        "daemons": [{"pid": rec.pid, "what": rec.what, "alive": rec.is_alive()}
                    for rec in state.daemons.values()],
        "sandbox": sandbox_report(state.prefix),
    }


def _print_status(report: dict) -> None:
    health = report["status"] if report["running"] else "CRASHED (run `dynipsec lab clean`)"
    print(f"lab {report['prefix']!r} (topology {report['topology']}): {health}, "
          f"owner pid {report['owner']['pid']} ({report['owner']['what']})")
    print(f"  run dir: {report['run_dir']}")
    print(f"  netns names: {' '.join(report['netns_names']) or '-'}")
    print("  nodes:")
    for name, addresses in report["nodes"].items():
        text = "  ".join(f"{intf}={addr}" for intf, addr in addresses.items()) or "(bridge ports only)"
        print(f"    {name:<10} {text}")
    print("  daemons:")
    for daemon in report["daemons"] or [{"pid": "-", "what": "none", "alive": True}]:
        print(f"    {daemon['pid']:>7}  {daemon['what']}{'' if daemon['alive'] else '  (gone)'}")


# -- exec ----------------------------------------------------------------------------------
def cmd_exec(args) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("dynipsec lab exec: no command given (usage: exec HOST -- COMMAND ...)", file=sys.stderr)
        return 2
    record = _find_host(args.host, args.prefix)
    if record is None:
        print(f"dynipsec lab exec: no running lab has a host {args.host!r}", file=sys.stderr)
        return 2
    # -n -m: the host's network AND mount namespace (its private /var/run, /var/log)
    from lab.sandbox import enter_argv

    return subprocess.call(enter_argv(record.pid, command))


def _find_host(name: str, prefix: str | None):
    for state in _selected_states(prefix):
        record = state.hosts.get(name)
        if record is not None and state.owner_alive() and record.is_alive():
            return record
    return None


# -- clean ---------------------------------------------------------------------------------
def cmd_clean(args) -> int:
    from lab.cleanup import clean_state
    from lab.state import LabRunningError

    states = _selected_states(args.prefix)
    if not states:
        print("nothing to clean: no lab state recorded" +
              (f" for prefix {args.prefix!r}" if args.prefix else ""))
        return 0
    status = 0
    for state in states:
        try:
            removed = clean_state(state, force=args.force)
        except LabRunningError as exc:
            print(f"skipped: {exc}")
            continue
        except OSError as exc:
            print(f"lab {state.prefix!r}: cleanup failed: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"lab {state.prefix!r}: removed {len(removed)} leftover(s)")
        for line in removed:
            print(f"  {line}")
    return status


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "keeper":
        sys.exit(keeper_main(sys.argv[2:]))
    sys.exit("usage: python -m lab.cli keeper ... (internal; use `dynipsec lab up`)")

"""Gateways, clients and captures started in a running lab from separate CLI invocations.

A lab started with `dynipsec lab up` is owned by its keeper process; the commands
`dynipsec lab gateway|login|logout|capture` run as processes of their own. They reach
a lab host through its recorded shell PID (`nsenter -t PID -n -m`: the host's network
AND mount namespace, so its private /run and /var/log), and record what they start in
`<state dir>/sandbox/<prefix>.json`:

* a gateway or a logged-in client lives in a detached *holder* process
  (`python -m lab.sandbox hold ...`) that starts it with the lab's own classes
  (lab.gateways, clients), reports in a status file, and on SIGTERM stops it the
  graceful way (the gateway logs everyone out, a client sends Delete);
* every PID a holder starts is recorded too, so that `lab down` and `lab clean`
  can end them by PID even if a holder died;
* a capture is a tcpdump PID.

The record, the holders and `stop_sandbox(prefix)` (which ends all of it) are in
lab.holders, which the keeper and `lab clean` use without this module.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from lab.engine import Lab
from lab.holders import edit_records, load_records, read_status, stored_record
from lab.initiator_probe import InitiatorProbe
from lab.state import ProcessRecord, all_states, interfaces_of, load_state, terminate_process
from lab.topology import load_topology


class SandboxError(RuntimeError):
    """A sandbox command cannot do what it was asked (no lab, no such host, ...)."""


# -- a lab host seen from another process ------------------------------------------------
def enter_argv(pid: int, argv: list[str]) -> list[str]:
    """`argv` run inside the lab host whose shell is `pid`: its network AND mount
    namespace (its private /var/run, /var/log). No --fork: nsenter execs the command,
    so the PID the caller sees is the command's own."""
    return ["nsenter", "-t", str(pid), "-n", "-m", "--", *argv]


class Interface:
    def __init__(self, name: str):
        self.name = name


class NodeHandle:
    """What lab daemons and clients need from a Mininet host (name, pid, popen, cmd),
    for a host of a lab owned by another process."""

    def __init__(self, name: str, pid: int):
        self.name = name
        self.pid = pid

    def popen(self, argv, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(enter_argv(self.pid, list(argv)), **kwargs)

    def cmd(self, command: str) -> str:
        run = subprocess.run(enter_argv(self.pid, ["sh", "-c", command]),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=60)
        return run.stdout

    def interfaces(self) -> list[str]:
        return sorted(interfaces_of(self.pid) - {"lo"})

    def defaultIntf(self) -> Interface:  # noqa: N802  (Mininet's name)
        mininet = [n for n in self.interfaces() if n.startswith(f"{self.name}-eth")]
        return Interface((mininet or self.interfaces())[0])


class SandboxLab:
    """The parts of lab.engine.Lab that gateways and clients use, for a running lab.
    Only `node()` differs (a recorded shell PID instead of a Mininet host); how a
    topology name becomes a node, and where a node's files go, are the Lab's own."""

    router = Lab.router
    aaa = Lab.aaa
    vr = Lab.vr
    server = Lab.server
    node_dir = Lab.node_dir

    def __init__(self, prefix: str):
        state = load_state(prefix)
        if state is None or not state.owner_alive():
            raise SandboxError(f"no lab with prefix {prefix!r} is running "
                               f"(start one with `dynipsec lab up --prefix {prefix}`)")
        self.state = state
        self.prefix = prefix
        self.run_dir = Path(state.run_dir)
        summary = json.loads((self.run_dir / "lab.json").read_text())
        direct = [c for c in summary["clients"] if not c["behind_nat"]]
        self.topology = load_topology(state.topology).with_overrides(clients=len(direct),
                                                                     prefix=prefix)

    def node(self, name: str) -> NodeHandle:
        record = self.state.hosts.get(name)
        if record is None or not record.is_alive():
            raise SandboxError(f"lab {self.prefix!r} has no host {name!r} "
                               f"(hosts: {', '.join(self.state.hosts)})")
        return NodeHandle(name, record.pid)

    # -- PID tracking (clients.process.PidTracker) ------------------------------------------------
    def track_pid(self, pid: int, what: str) -> None:
        record = ProcessRecord.of(pid, what)
        if record is not None:
            with edit_records(self.prefix) as records:
                records["pids"][str(pid)] = record.__dict__

    def untrack_pid(self, pid: int) -> None:
        with edit_records(self.prefix) as records:
            records["pids"].pop(str(pid), None)


def resolve_prefix(prefix: str | None) -> str:
    """The prefix given, or the only running lab's."""
    if prefix:
        return prefix
    running = [s.prefix for s in all_states() if s.owner_alive()]
    if len(running) == 1:
        return running[0]
    if not running:
        raise SandboxError("no lab is running (start one with `dynipsec lab up`)")
    raise SandboxError(f"several labs run ({', '.join(running)}): choose one with --prefix")


def host_prefix(host: str) -> str | None:
    """The prefix of the running lab that has this host."""
    for state in all_states():
        if host in state.hosts and state.owner_alive():
            return state.prefix
    return None


# -- captures ------------------------------------------------------------------------------
def start_capture(lab: SandboxLab, host: str, interface: str) -> Path:
    key = f"{host}:{interface}"
    if key in load_records(lab.prefix)["captures"]:
        raise SandboxError(f"a capture on {key} runs already")
    pcap = lab.run_dir / f"{host}-{interface}.pcap"
    log = open(lab.node_dir(host) / f"tcpdump-{interface}.log", "ab")
    proc = lab.node(host).popen(["tcpdump", "-i", interface, "-n", "--immediate-mode", "-U",
                                 "-Z", "root", "-w", str(pcap)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
    record = ProcessRecord.of(proc.pid, f"tcpdump {key}")
    with edit_records(lab.prefix) as records:
        records["captures"][key] = {"pid": record.__dict__ if record else None, "pcap": str(pcap)}
    return pcap


def stop_capture(prefix: str, key: str) -> str:
    with edit_records(prefix) as records:
        entry = records["captures"].pop(key, None)
    if entry is None:
        raise SandboxError(f"no capture runs on {key}")
    record = stored_record(entry["pid"])
    if record is not None:
        terminate_process(record)
    return entry["pcap"]


# -- the holder process --------------------------------------------------------------------
def _make_gateway(lab: SandboxLab, options: dict):
    from lab.gateways import plan_from_topology

    plan = plan_from_topology(lab.topology)
    kind = options["kind"]
    workdir = lab.node_dir(lab.topology.router_name) / f"sandbox-gateway-{kind}"
    if kind == "strongswan":
        from lab.gateways.strongswan import StrongSwanGateway
        return StrongSwanGateway(lab.router, workdir, plan, lab)
    from lab.gateways.dynipsec import DynipsecGateway

    gateway = DynipsecGateway(lab.router, workdir, plan, lab, aaa=options.get("aaa", "local"),
                              topology=lab.topology)
    if options.get("config"):
        import yaml

        config = yaml.safe_load(Path(options["config"]).read_text())
        config.setdefault("control", {})["socket"] = gateway.daemon.control_socket
        config.setdefault("state_dir", str(gateway.state_dir))
        gateway.daemon.config = config
    return gateway


def _make_client(lab: SandboxLab, options: dict):
    from clients import ClientSettings, make_client
    from lab.gateways import plan_from_topology

    plan = plan_from_topology(lab.topology)
    group = plan.group(options["group"])
    password = options.get("password") or plan.users.get(options["user"])
    if password is None:
        raise SandboxError(f"user {options['user']!r} is not in the topology: give --password")
    settings = ClientSettings(gateway=plan.gateway, group=group.group,
                              psk=plan.psk_for(group.group, options["mode"]), user=options["user"],
                              password=password, mode=options["mode"],
                              remote_networks=(group.intranet,))
    node = lab.node(options["host"])
    workdir = lab.node_dir(node.name)
    if options["kind"] == "initiator":
        spec = argparse.Namespace(vendor_ids=None, quirks=[])
        return InitiatorProbe(node, workdir, settings, spec, lab)
    return make_client(options["kind"], node, workdir, settings, tracker=lab)


def _write_status(path: Path, status: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


def hold(args) -> int:
    """Starts the gateway or client, reports, holds it until SIGTERM, stops it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    status_file = Path(args.status)
    options = json.loads(args.options)
    thing = None
    try:
        lab = SandboxLab(args.prefix)
        if args.role == "gateway":
            thing = _make_gateway(lab, options).start()
            status = {"state": "up", "kind": thing.kind, "log": str(thing.log_path),
                      "pid": getattr(thing, "pid", None) or getattr(thing.charon, "pid", None),
                      "control_socket": getattr(getattr(thing, "daemon", None), "control_socket", None)}
        else:
            thing = _make_client(lab, options)
            thing.connect()
            info = thing.wait_up(options.get("timeout", 20))
            status = {"state": "up", "kind": options["kind"], "info": info.as_dict(),
                      "log": str(thing.log_path)}
    except Exception as exc:  # reported to the waiting CLI, which prints it
        _write_status(status_file, {"state": "failed", "error": str(exc).strip()})
        if thing is not None and args.role != "gateway":
            thing.close()
        return 1
    _write_status(status_file, status)
    stop.wait()
    if args.role == "gateway":
        thing.stop()
    else:
        thing.disconnect()
    _write_status(status_file, {**status, "state": "stopped"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.sandbox",
                                     description="internal: the holder process of `dynipsec lab "
                                                 "gateway start` and `dynipsec lab login`")
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--prefix", required=True)
    h.add_argument("--role", choices=("gateway", "client"), required=True)
    h.add_argument("--status", required=True)
    h.add_argument("--options", required=True, help="JSON")
    h.set_defaults(func=hold)
    args = parser.parse_args(argv)
    return args.func(args)


def sandbox_report(prefix: str) -> dict[str, Any]:
    """Plain data for `dynipsec lab status --json`."""
    records = load_records(prefix)
    alive = lambda entry: bool(entry) and bool(stored_record(entry.get("holder"))) and \
        stored_record(entry.get("holder")).is_alive()
    gateway = records["gateway"]
    return {
        "gateway": None if not gateway else {**gateway["options"], "running": alive(gateway),
                                             **read_status(Path(gateway["status"]))},
        "clients": {host: {**entry["options"], "running": alive(entry),
                           **read_status(Path(entry["status"]))}
                    for host, entry in records["clients"].items()},
        "captures": {key: entry["pcap"] for key, entry in records["captures"].items()},
    }


if __name__ == "__main__":
    sys.exit(main())

"""`dynipsec lab gateway|login|logout|capture|impair`: act on a lab started with `lab up`.

Every command says what it did and how to undo it. What they start is recorded
(lab.sandbox), so `dynipsec lab down` and `dynipsec lab clean` stop it by PID.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys

GATEWAY_KINDS = ("dynipsec", "strongswan")
CLIENT_KINDS = ("strongswan", "vpnc", "initiator")


def register(cmds) -> None:
    _register_gateway(cmds)
    _register_login(cmds)
    _register_capture(cmds)
    _register_impair(cmds)


# -- argument patterns ---------------------------------------------------------------------
def _prefix_option(parser) -> None:
    parser.add_argument("--prefix", default=None,
                        help="the lab's prefix (default: the only running lab)")


def _host_argument(parser) -> None:
    parser.add_argument("host", help="client host, e.g. dlc1")


def _kind_option(parser, kinds: tuple[str, ...]) -> None:
    parser.add_argument("--kind", choices=kinds, default=kinds[0])


def _register_gateway(cmds) -> None:
    gateway = cmds.add_parser(
        "gateway", help="start, stop or inspect the gateway in the lab's router",
        description="Run a gateway in the router of a lab started with `dynipsec lab up`: "
                    "dynipsec (configuration rendered from the topology's access plan, or -c "
                    "CONFIG; the VR namespaces are made visible inside the router) or the "
                    "reference strongSwan. It keeps running after the command returns; "
                    "`dynipsec lab gateway stop` (or `lab down`) stops it.")
    gateway.set_defaults(func=lambda args: gateway.print_help() or 2)
    actions = gateway.add_subparsers(dest="gateway_action", metavar="ACTION")
    start = actions.add_parser("start", help="start a gateway",
                               description="Start the gateway and wait until it serves.")
    _kind_option(start, GATEWAY_KINDS)
    start.add_argument("-c", "--config", default=None,
                       help="dynipsec: a responder configuration file to run instead of the "
                            "rendered one (its VR namespaces must be the lab's, e.g. dlvr1)")
    start.add_argument("--aaa", choices=("local", "radius"), default="local",
                       help="dynipsec: local users or the lab's FreeRADIUS (default local)")
    _prefix_option(start)
    start.set_defaults(func=cmd_gateway_start)
    stop = actions.add_parser("stop", help="stop the gateway (logs every subscriber out)",
                              description="Stop the gateway: dynipsec logs every subscriber "
                                          "out (Delete, accounting Stop) before it exits.")
    _prefix_option(stop)
    stop.set_defaults(func=cmd_gateway_stop)
    status = actions.add_parser("status", help="the gateway and its subscribers",
                                description="Which gateway runs, and the subscribers it lists.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _prefix_option(status)
    status.set_defaults(func=cmd_gateway_status)


def _register_login(cmds) -> None:
    login = cmds.add_parser(
        "login", help="log a real IPsec client in from a lab host",
        description="Log a client in from HOST (e.g. dlc1, dln2) to the lab's gateway and keep "
                    "it logged in after the command returns (`dynipsec lab logout HOST` ends "
                    "it). Prints what the client received. The initiator kind is one-shot: "
                    "it logs in and out at once and prints what it got.")
    _host_argument(login)
    _kind_option(login, CLIENT_KINDS)
    login.add_argument("--user", required=True, help="Xauth user, e.g. user001")
    login.add_argument("--password", default=None, help="default: the topology's password")
    login.add_argument("--mode", choices=("main", "aggressive"), default="aggressive")
    login.add_argument("--group", default=None, help="IKE group (default: the topology's first)")
    login.add_argument("--timeout", type=float, default=20.0, help="seconds (default 20)")
    login.set_defaults(func=cmd_login)
    logout = cmds.add_parser("logout", help="log the client on a lab host out",
                             description="The client on HOST logs out (it sends Delete) and "
                                         "its processes end.")
    _host_argument(logout)
    logout.set_defaults(func=cmd_logout)


def _register_capture(cmds) -> None:
    capture = cmds.add_parser(
        "capture", help="capture packets on a lab host's interface",
        description="Without an argument: where the lab's own capture of the router's public "
                    "side is. With HOST:IFACE (e.g. dlvr1:dlvr1-eth1): start tcpdump there, "
                    "writing RUN_DIR/HOST-IFACE.pcap, until `--stop HOST:IFACE` or `lab down`.")
    capture.add_argument("target", nargs="?", default=None, metavar="HOST:IFACE")
    capture.add_argument("--stop", action="store_true", help="stop the capture on HOST:IFACE")
    _prefix_option(capture)
    capture.set_defaults(func=cmd_capture)


def _register_impair(cmds) -> None:
    impair = cmds.add_parser(
        "impair", help="drop, blackhole or rate-limit a lab host's link",
        description="Impair LINK (HOST or HOST:IFACE; HOST alone means its first interface) "
                    "inside the host: --loss P drops P%% of the packets and --blackhole all of "
                    "them (nftables table dynipsec_impair), --rate R limits the rate (tc tbf, "
                    "e.g. 1mbit); --clear removes the impairment. There is no delay (no netem).")
    impair.add_argument("link", metavar="LINK", help="HOST or HOST:IFACE, e.g. dlc1")
    what = impair.add_mutually_exclusive_group(required=True)
    what.add_argument("--loss", type=int, metavar="P", help="percent of packets dropped (1-100)")
    what.add_argument("--blackhole", action="store_true", help="drop every packet")
    what.add_argument("--rate", metavar="R", help="tc rate, e.g. 1mbit")
    what.add_argument("--clear", action="store_true", help="remove the impairment")
    impair.set_defaults(func=cmd_impair)


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"dynipsec lab {command}: {message}", file=sys.stderr)
    return code


# -- what every command looks up first -------------------------------------------------------
class CommandError(Exception):
    """A command cannot go on: one line for stderr, and the exit status (2: usage)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _command(name: str):
    """A command function whose CommandError becomes `dynipsec lab NAME: message`."""
    def wrap(function):
        @functools.wraps(function)
        def run(args) -> int:
            try:
                return function(args)
            except CommandError as exc:
                return _fail(name, str(exc), exc.code)
        return run
    return wrap


def _running_lab(prefix: str | None):
    """(prefix, SandboxLab) of the lab given by --prefix, or of the only running one."""
    from lab.sandbox import SandboxError, SandboxLab, resolve_prefix

    try:
        prefix = resolve_prefix(prefix)
        return prefix, SandboxLab(prefix)
    except SandboxError as exc:
        raise CommandError(str(exc), 2) from None


def _prefix_of_host(host: str, prefix: str | None = None) -> str:
    """The prefix given, or that of the running lab that has `host`."""
    from lab.sandbox import host_prefix

    prefix = prefix or host_prefix(host)
    if prefix is None:
        raise CommandError(f"no running lab has a host {host!r}", 2)
    return prefix


def _lab_of_host(host: str):
    """(prefix, SandboxLab) of the running lab that has `host`."""
    return _running_lab(_prefix_of_host(host))


# -- gateway -------------------------------------------------------------------------------
@_command("gateway start")
def cmd_gateway_start(args) -> int:
    from lab.holders import load_records, start_holder

    prefix, lab = _running_lab(args.prefix)
    if args.config and args.kind != "dynipsec":
        raise CommandError("-c CONFIG is for --kind dynipsec", 2)
    running = load_records(prefix)["gateway"]
    if running:
        raise CommandError(f"a {running['options']['kind']} gateway runs already in "
                           f"lab {prefix!r}; `dynipsec lab gateway stop` first")
    options = {"kind": args.kind, "aaa": args.aaa, "config": args.config}
    workdir = lab.node_dir(lab.topology.router_name) / f"sandbox-gateway-{args.kind}"
    status = start_holder(prefix, "gateway", "gateway", workdir, options)
    if status["state"] != "up":
        raise CommandError(f"{args.kind} did not start: {status.get('error')}")
    print(f"started the {args.kind} gateway in {lab.topology.router_name} "
          f"(listening on {lab.topology.access.router}, pid {status.get('pid')})\n"
          f"  log:  {status['log']}")
    if status.get("control_socket"):
        print(f"  show: dynipsec show subscribers -s {status['control_socket']}")
    print(f"  undo: dynipsec lab gateway stop --prefix {prefix}")
    return 0


@_command("gateway stop")
def cmd_gateway_stop(args) -> int:
    from lab.holders import stop_holder
    from lab.sandbox import SandboxError, resolve_prefix

    try:
        prefix = resolve_prefix(args.prefix)
    except SandboxError as exc:
        raise CommandError(str(exc), 2) from None
    entry = stop_holder(prefix, "gateway", "gateway")
    if entry is None:
        print(f"no gateway runs in lab {prefix!r}; nothing to do")
        return 0
    print(f"stopped the {entry['options']['kind']} gateway of lab {prefix!r} "
          f"(its subscribers were logged out)\n"
          f"  undo: dynipsec lab gateway start --kind {entry['options']['kind']} --prefix {prefix}")
    return 0


def _gateway_subscribers(lab, status: dict) -> list[dict]:
    if status.get("control_socket"):
        from responder.daemon.control import request

        return request(status["control_socket"], {"cmd": "show", "what": "subscribers"})["rows"]
    from clients.charon import parse_list_sas
    from clients.process import unix_socket_path

    workdir = lab.node_dir(lab.topology.router_name) / "sandbox-gateway-strongswan"
    vici = unix_socket_path(workdir.resolve(), "charon.vici")
    out = lab.router.cmd(f"swanctl --list-sas --raw --uri unix://{vici}")
    return [{"user": sa.get("remote-xauth-id"), "address": (sa.get("remote-vips") or [""])[0],
             "state": sa.get("state")} for sa in parse_list_sas(out)]


@_command("gateway status")
def cmd_gateway_status(args) -> int:
    from lab.sandbox import sandbox_report

    prefix, lab = _running_lab(args.prefix)
    gateway = sandbox_report(prefix)["gateway"]
    rows = _gateway_subscribers(lab, gateway) if gateway and gateway.get("running") else []
    if args.json:
        print(json.dumps({"gateway": gateway, "subscribers": rows}, indent=1))
        return 0
    if not gateway:
        print(f"no gateway runs in lab {prefix!r} (start one: dynipsec lab gateway start)")
        return 0
    print(f"{gateway['kind']} gateway in lab {prefix!r}: "
          f"{'running' if gateway['running'] else 'NOT RUNNING'}, log {gateway.get('log')}")
    for row in rows:
        print(f"  {row.get('user') or '-':<14} {row.get('address') or '-':<15} "
              f"{row.get('vr') or row.get('state') or ''}")
    print(f"  {len(rows)} subscriber(s)")
    return 0


# -- login / logout ------------------------------------------------------------------------
def _login_group(lab, wanted: str | None) -> str:
    groups = [g.name for g in lab.topology.aaa.groups]
    group = wanted or groups[0]
    if group not in groups:
        raise CommandError(f"no group {group!r} (groups: {', '.join(groups)})", 2)
    return group


@_command("login")
def cmd_login(args) -> int:
    from lab.holders import load_records, start_holder, stop_holder
    from lab.sandbox import SandboxError

    prefix, lab = _lab_of_host(args.host)
    if not load_records(prefix)["gateway"]:
        raise CommandError(f"no gateway runs in lab {prefix!r}; start one with "
                           f"`dynipsec lab gateway start --prefix {prefix}`")
    if args.host in load_records(prefix)["clients"]:
        raise CommandError(f"{args.host} is logged in already; `dynipsec lab logout "
                           f"{args.host}` first")
    group = _login_group(lab, args.group)
    options = {"host": args.host, "kind": args.kind, "user": args.user, "mode": args.mode,
               "group": group, "password": args.password, "timeout": args.timeout}
    try:
        lab.node(args.host)
    except SandboxError as exc:
        raise CommandError(str(exc), 2) from None
    status = start_holder(prefix, "client", args.host, lab.node_dir(args.host), options)
    if status["state"] != "up":
        error = (status.get("error") or "").splitlines()
        raise CommandError(f"{args.kind} on {args.host} did not log in: "
                           f"{error[0] if error else ''}")
    info = status["info"]
    print(f"{args.kind} on {args.host} logged in as {args.user} ({args.mode} mode, group {group}) "
          f"in {info.get('setup_time') or 0:.2f}s\n"
          f"  address {info.get('address')}  netmask {info.get('netmask') or '-'}  "
          f"DNS {','.join(info.get('dns') or []) or '-'}  WINS {','.join(info.get('wins') or []) or '-'}\n"
          f"  banner  {info.get('banner') or '-'}\n"
          f"  log     {status['log']}")
    if args.kind == "initiator":
        stop_holder(prefix, "client", args.host)
        print("  (the initiator is one-shot: it has logged out again; nothing to undo)")
        return 0
    server = lab.topology.vr(next(g.vr for g in lab.topology.aaa.groups if g.name == group)).intranet.server
    print(f"  try:    dynipsec lab exec {args.host} -- ping -c1 -I {info.get('address')} {server}\n"
          f"  undo:   dynipsec lab logout {args.host}")
    return 0


@_command("logout")
def cmd_logout(args) -> int:
    from lab.holders import stop_holder

    prefix = _prefix_of_host(args.host)
    entry = stop_holder(prefix, "client", args.host)
    if entry is None:
        print(f"no client is logged in on {args.host}; nothing to do")
        return 0
    options = entry["options"]
    print(f"{options['kind']} on {args.host} logged out ({options['user']}; it sent Delete)\n"
          f"  undo: dynipsec lab login {args.host} --kind {options['kind']} --user "
          f"{options['user']} --mode {options['mode']} --group {options['group']}")
    return 0


# -- capture / impair ----------------------------------------------------------------------
@_command("capture")
def cmd_capture(args) -> int:
    from lab.sandbox import SandboxError, SandboxLab, start_capture, stop_capture

    if args.target is None:
        _, lab = _running_lab(args.prefix)
        print(f"the lab captures the router's public side all the time: "
              f"{lab.run_dir / 'router-public.pcap'}\n"
              f"  read: tshark -r {lab.run_dir / 'router-public.pcap'} -Y isakmp\n"
              f"  more: dynipsec lab capture HOST:IFACE")
        return 0
    host, _, interface = args.target.partition(":")
    prefix = _prefix_of_host(host, args.prefix)
    try:
        if args.stop:
            pcap = stop_capture(prefix, args.target)
            print(f"stopped the capture on {args.target}; packets in {pcap}")
            return 0
        lab = SandboxLab(prefix)
        interface = interface or lab.node(host).defaultIntf().name
        pcap = start_capture(lab, host, interface)
    except SandboxError as exc:
        raise CommandError(str(exc)) from None
    print(f"capturing on {host}:{interface} into {pcap}\n"
          f"  undo: dynipsec lab capture --stop {host}:{interface}")
    return 0


@_command("impair")
def cmd_impair(args) -> int:
    from lab.impair import ImpairError, Impairment, apply_impairment
    from lab.sandbox import SandboxError, SandboxLab

    host, _, interface = args.link.partition(":")
    prefix = _prefix_of_host(host)
    if args.loss is not None and not 1 <= args.loss <= 100:
        raise CommandError(f"--loss {args.loss}: a percentage from 1 to 100", 2)
    try:
        node = SandboxLab(prefix).node(host)
        interface = interface or node.defaultIntf().name
        if interface not in node.interfaces():
            raise CommandError(f"{host} has no interface {interface!r} "
                               f"({', '.join(node.interfaces())})", 2)
        impairment = Impairment(loss=args.loss, blackhole=args.blackhole, rate=args.rate,
                                clear=args.clear)
        apply_impairment(node, interface, impairment)
    except (SandboxError, ImpairError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{host}:{interface}: {impairment.describe()}")
    if not args.clear:
        print(f"  undo: dynipsec lab impair {host}:{interface} --clear")
    return 0

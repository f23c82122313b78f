"""`dynipsec demo`: the default lab, a gateway, a mix of real clients, a table of results.

Brings up the default topology, starts the gateway in the router (dynipsec by
default, the reference strongSwan one with --gateway strongswan), runs the default scenario
(strongSwan main, strongSwan aggressive and vpnc clients in both VRs, every
client host of the topology by default, those behind the NAT host included),
prints the table, and tears everything down. Logins, pings and logouts run
--workers clients at a time; progress goes to stderr, the table to stdout.
Exit status 0 only if every client passed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import TextIO

from lab.gateways import GATEWAY_KINDS, GatewayError, make_gateway, plan_from_topology

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 10   # bounded: 2 cores serve every client daemon and the gateway
DEFAULT_TOPOLOGY = "default"

_OUTPUT_LOCK = threading.Lock()


def register(sub) -> None:
    p = sub.add_parser("demo", help="bring up the default lab, log in real IPsec clients, "
                                    "print what they got, tear down",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway", choices=GATEWAY_KINDS, default="dynipsec",
                   help="gateway in the router node (default: dynipsec; strongswan is the "
                        "reference)")
    p.add_argument("--clients", type=int, default=None, metavar="N",
                   help="number of clients to log in (default: every client host of the "
                        "topology, 54 in the default one; with N, up to 4 of them behind "
                        "the NAT host)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="K",
                   help=f"clients logging in, pinging or logging out at the same time "
                        f"(default {DEFAULT_WORKERS})")
    p.add_argument("--topology", default=DEFAULT_TOPOLOGY,
                   help="topology name in topologies/ or a YAML path (default: default)")
    p.set_defaults(func=run)


def write_line(stream: TextIO, message: str) -> None:
    """The message and its newline in one write, so concurrent callers' lines stay whole."""
    with _OUTPUT_LOCK:
        stream.write(message + "\n")
        stream.flush()


def _say(message: str) -> None:
    """Progress goes to stderr, so that stdout carries only the table."""
    write_line(sys.stderr, message)


def check_gateway_available(kind: str) -> None:
    """Fails before building anything if the gateway cannot serve yet."""
    if kind == "dynipsec":
        try:
            import lab.gateways.dynipsec  # noqa: F401  (written with the responder)
        except ImportError:
            raise GatewayError("the dynipsec gateway cannot log subscribers in yet "
                               "(lab/gateways/dynipsec.py does not exist); "
                               "run `dynipsec demo --gateway strongswan`") from None


def run(args) -> int:
    from lab.engine import Lab, LabError
    from lab.scenario import ScenarioRunner, default_scenario, format_table
    from lab.topology import load_topology

    try:
        check_gateway_available(args.gateway)
    except GatewayError as exc:
        _say(f"dynipsec demo: {exc}")
        return 2
    if args.clients is not None and args.clients < 1:
        _say("dynipsec demo: --clients must be at least 1")
        return 2
    if args.workers < 1:
        _say("dynipsec demo: --workers must be at least 1")
        return 2

    t0 = time.monotonic()
    topology = load_topology(args.topology)
    plan = plan_from_topology(topology)
    _say(f"demo: building topology {topology.name!r} ...")
    try:
        with Lab(topology, progress=_say) as lab:
            _say(f"demo: lab up in {time.monotonic() - t0:.1f}s, run dir {lab.run_dir}")
            scenario = default_scenario(lab.clients, plan, count=args.clients,
                                        workers=args.workers)
            gateway_dir = lab.node_dir(topology.router_name) / f"gateway-{args.gateway}"
            with make_gateway(args.gateway, lab.router, gateway_dir, plan, lab) as gateway:
                _say(f"demo: {args.gateway} gateway up on {plan.gateway}; logging in "
                     f"{len(scenario.clients)} clients ...")
                result = ScenarioRunner(lab, plan, gateway, scenario, progress=_say).run()
            run_dir = lab.run_dir
    except (LabError, GatewayError, ValueError) as exc:
        _say(f"dynipsec demo: {exc}")
        return 1
    print(format_table(result))
    print(f"evidence: {run_dir}/summary.json (demo took {time.monotonic() - t0:.1f}s)")
    return 0 if result.passed else 1

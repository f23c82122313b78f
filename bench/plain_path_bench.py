#!/usr/bin/env python3
"""The ceiling of the data path: iperf3 TCP between the same hosts without IPsec.

    .venv/bin/python bench/plain_path_bench.py [--seconds 5] [--repeats 3] [--tunnels 1,10]

The default topology, the same hosts as bench/datapath_bench.py: access-LAN clients
and their VR's intranet server, through the router and the VR. Instead of a tunnel,
the router sends the client's own address into the VR by a policy rule (as it does
for the pools), and the VR routes the answers back over its transit link; both are
removed again after the run, by the exact rule and route added. N flows at once
(alternating VR 1 and VR 2), each from one client to its own iperf3 port; the median
of --repeats rounds. Writes bench/results/plain_path.json. No pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.engine import Lab, LabError  # noqa: E402
from lab.iperf import (IperfError, IperfJob, run_concurrently, start_servers,  # noqa: E402
                       stop_servers)
from lab.topology import load_topology  # noqa: E402

RESULTS = REPO / "bench" / "results" / "plain_path.json"
FIRST_PORT = 5301


def say(message: str) -> None:
    print(f"[plain] {message}", flush=True)


class PlainRoutes:
    """Rule (router) and return route (VR) for each client address; removed on exit."""

    def __init__(self, lab, pairs) -> None:
        self.lab = lab
        self.pairs = pairs          # [(client address, topology VR)]
        self.added: list[tuple[object, str]] = []

    def __enter__(self) -> "PlainRoutes":
        router = self.lab.router
        for address, vr in self.pairs:
            self._add(router, f"rule add from {address}/32 lookup {vr.table} priority 90",
                      f"rule del from {address}/32 lookup {vr.table} priority 90")
            self._add(self.lab.vr(vr.name), f"route add {address}/32 via {vr.transit.router}",
                      f"route del {address}/32 via {vr.transit.router}")
        return self

    def _add(self, node, add: str, delete: str) -> None:
        out = node.cmd(f"ip {add} 2>&1").strip()
        if out:
            raise LabError(f"ip {add} on {node.name}: {out}")
        self.added.append((node, delete))

    def __exit__(self, *exc) -> None:
        for node, delete in reversed(self.added):
            node.cmd(f"ip {delete} 2>&1")
        self.added = []


def measure(lab, count: int, seconds: float, omit: int) -> dict:
    topology = lab.topology
    slots = [s for s in lab.clients if not s.behind_nat][:count]
    pairs = [(slot.address, topology.vrs[i % len(topology.vrs)]) for i, slot in enumerate(slots)]
    servers = []
    try:
        for k, vr in enumerate(topology.vrs):
            ports = [FIRST_PORT + i for i in range(count) if i % len(topology.vrs) == k]
            if ports:
                servers += start_servers(lab.server(vr.name), lab.node_dir(
                    topology.server_name(k + 1)), ports, tracker=lab)
        with PlainRoutes(lab, pairs):
            tests = [(slot.host, IperfJob(server=str(vr.intranet.server), port=FIRST_PORT + i,
                                          bind=slot.address))
                     for i, (slot, (_, vr)) in enumerate(zip(slots, pairs))]
            outcomes = run_concurrently(tests, seconds=seconds, omit=omit, tracker=lab)
    finally:
        stop_servers(servers)
    errors = [str(o) for o in outcomes if isinstance(o, IperfError)]
    mbps = [o.received_mbps for o in outcomes if not isinstance(o, IperfError)]
    return {"tunnels": count, "aggregate_mbps": round(sum(mbps), 1),
            "per_flow_mbps": [round(m, 1) for m in mbps], "errors": errors}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--omit", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tunnels", default="1,10")
    p.add_argument("--prefix", default=os.environ.get("DYNIPSEC_LAB_PREFIX") or "pp")
    args = p.parse_args(argv)
    counts = [int(n) for n in args.tunnels.split(",")]
    topology = load_topology("default").with_overrides(clients=max(counts), prefix=args.prefix)
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    try:
        with Lab(topology, capture=False, start_aaa=False, kind="plain path bench") as lab:
            for r in range(args.repeats):
                for n in counts:
                    run = measure(lab, n, args.seconds, args.omit)
                    runs[n].append(run)
                    say(f"round {r + 1}/{args.repeats}: {n} flows {run['aggregate_mbps']} Mbit/s"
                        + (f" errors {run['errors']}" if run["errors"] else ""))
    except LabError as exc:
        say(f"the lab broke: {exc}")
        return 1
    rows = [{"tunnels": n, "aggregate_mbps": statistics.median(r["aggregate_mbps"] for r in rs)}
            for n, rs in runs.items()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "plain_path", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": vars(args) | {"tunnels": counts}, "loadavg_end": os.getloadavg(),
        "comparison": rows, "runs": {str(n): rs for n, rs in runs.items()}}, indent=1) + "\n")
    for row in rows:
        say(f"{row['tunnels']} flows without IPsec: {row['aggregate_mbps']} Mbit/s (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time to build and tear down the 50-client default topology (goal: under 5 s each).

    .venv/bin/python bench/lab_build.py [--runs 3] [--clients 50] [--prefix db]

Each run is a full Lab.start() (hosts, links, bridges, NAT, netns names, packet capture,
FreeRADIUS) and Lab.stop(). Prints median and max and writes bench/results/lab_build.json.
Uses its own prefix (default `db`) so that it never touches a lab of the default prefix.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_SECONDS = 5.0


def one_run(topology, runs_root: Path) -> dict:
    from lab.engine import Lab

    lab = Lab(topology, run_dir=runs_root / f"run-{time.monotonic_ns()}")
    started = time.monotonic()
    try:
        lab.start()
        build = time.monotonic() - started
        phases = dict(lab.timings)
    finally:
        stop_started = time.monotonic()
        lab.stop()
        teardown = time.monotonic() - stop_started
    return {"build": build, "teardown": teardown, "phases": phases}


def summarize(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3),
            "all": [round(v, 3) for v in values]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--prefix", default="db")
    parser.add_argument("--topology", default="default")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if os.geteuid() != 0:
        print("bench/lab_build.py needs root (it builds network namespaces)", file=sys.stderr)
        return 2

    from lab.topology import load_topology

    topology = load_topology(args.topology).with_overrides(clients=args.clients, prefix=args.prefix)
    runs = []
    with tempfile.TemporaryDirectory(prefix="dynipsec-bench-") as tmp:
        for i in range(args.runs):
            result = one_run(topology, Path(tmp))
            runs.append(result)
            print(f"run {i + 1}: build {result['build']:.2f}s  teardown {result['teardown']:.2f}s  "
                  f"({', '.join(f'{k} {v:.2f}' for k, v in result['phases'].items() if k != 'start')})",
                  flush=True)
    build = summarize([r["build"] for r in runs])
    teardown = summarize([r["teardown"] for r in runs])
    hosts = len(topology.node_names())
    print(f"{args.clients}-client topology ({hosts} hosts), {args.runs} runs: "
          f"build median {build['median']:.2f}s max {build['max']:.2f}s; "
          f"teardown median {teardown['median']:.2f}s max {teardown['max']:.2f}s "
          f"(goal < {GOAL_SECONDS:.0f}s each)")
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "lab_build.json").write_text(json.dumps({
        "benchmark": "lab_build", "clients": args.clients, "hosts": hosts, "runs": args.runs,
        "build_seconds": build, "teardown_seconds": teardown, "goal_seconds": GOAL_SECONDS,
        "within_goal": build["max"] < GOAL_SECONDS and teardown["max"] < GOAL_SECONDS,
        "phases": [r["phases"] for r in runs],
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

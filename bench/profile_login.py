#!/usr/bin/env python3
"""Where a dynipsec login spends its CPU: py-spy on every gateway process under a load.

    .venv/bin/python bench/profile_login.py [--logins 600] [--concurrency 16 | --rate 100]
        [--aaa local] [--top 25]

Not run by `make bench` (py-spy comes with the `bench` extra that `make setup` installs). One lab (the default
topology with a /18 pool per VR), the dynipsec gateway, a load of the project's
initiator from two client hosts (see bench/login_bench.py), and `py-spy record` on the
supervisor and on each worker for the length of the load (sampling at 250/s, idle
samples left out, native frames off). Writes bench/results/profile/<pid-role>.txt
(collapsed stacks) and prints, per process, the share of samples in each function
(self) and under each function (inclusive), plus the gateway's CPU per login.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.engine import Lab  # noqa: E402
from lab.gateways import plan_from_topology  # noqa: E402
from lab.gateways.dynipsec import DynipsecGateway  # noqa: E402
from lab.loadgen import (GatewayProbe, LoadProcess, LoadSpec, SourceAddresses,  # noqa: E402
                         process_tree, run_loads, scaled_topology, source_blocks,
                         user_template, wait_for)
from lab.topology import load_topology  # noqa: E402

OUT = REPO / "bench" / "results" / "profile"
HOSTS = 2


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: run `make setup` (the bench extra of pyproject.toml)")
    return found


def roles(gateway) -> dict[int, str]:
    """pid -> supervisor / worker-N (the workers are the supervisor's Python children)."""
    tree = process_tree([gateway.pid])
    named = {gateway.pid: "supervisor"}
    workers = sorted(pid for pid in tree if pid != gateway.pid
                     and "responder.daemon.worker" in Path(f"/proc/{pid}/cmdline")
                     .read_bytes().decode(errors="replace"))
    for n, pid in enumerate(workers):
        named[pid] = f"worker-{n}"
    return named


def summarize(path: Path, top: int) -> dict:
    """Self and inclusive sample shares from a collapsed-stack file."""
    self_counts: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
                  if " (" in f else f for f in stack.split(";")[1:]]  # drop the thread frame
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    share = lambda c: [(name, round(100.0 * k / total, 1)) for name, k in c.most_common(top)]  # noqa: E731
    return {"samples": total, "self": share(self_counts), "inclusive": share(incl)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logins", type=int, default=600)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--aaa", default="local")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--log-level", default="warning")
    p.add_argument("--prefix", default=os.environ.get("DYNIPSEC_LAB_PREFIX") or "pf")
    args = p.parse_args(argv)
    spy = py_spy()
    topology = scaled_topology(load_topology("default").with_overrides(
        clients=HOSTS, prefix=args.prefix), users=max(1000, args.logins))
    OUT.mkdir(parents=True, exist_ok=True)
    with Lab(topology, capture=False, kind="login profile") as lab:
        plan = plan_from_topology(lab.topology)
        hosts = [s for s in lab.clients if not s.behind_nat][:HOSTS]
        per_host = max(args.concurrency, -(-args.logins // (HOSTS * 24)))
        blocks = source_blocks(str(topology.access.subnet), HOSTS, per_host,
                               exclude=[s.address for s in lab.clients])
        user, password = user_template(lab.topology)
        gateway = DynipsecGateway(lab.router, lab.node_dir(lab.topology.router_name) / "profile",
                                  plan, lab, aaa=args.aaa, log_level=args.log_level,
                                  licenses=args.logins + 10,
                                  accounting=args.aaa == "radius").start()
        spies: list[tuple[subprocess.Popen, Path, str]] = []
        try:
            wait_for(lambda: gateway.ready, 30)
            time.sleep(1.0)
            named = roles(gateway)
            probe = GatewayProbe.of(gateway)
            with SourceAddresses(hosts[0].host, blocks[0], neighbours=[lab.router]), \
                    SourceAddresses(hosts[1].host, blocks[1], neighbours=[lab.router]):
                processes = []
                for k, (slot, sources) in enumerate(zip(hosts, blocks)):
                    group = plan.groups[k % len(plan.groups)]
                    pace = ({"rate": args.rate / HOSTS} if args.rate
                            else {"concurrency": args.concurrency})
                    spec = LoadSpec(server=plan.gateway, group=group.group,
                                    psk=plan.psk_for(group.group, "aggressive"), user=user,
                                    password=password, first=1 + k * (args.logins // HOSTS),
                                    count=args.logins // HOSTS, **pace)
                    processes.append(LoadProcess(lab, slot.host, lab.node_dir(slot.name) /
                                                 "load-profile", spec, sources))
                for pid, role in named.items():
                    path = OUT / f"{role}.txt"
                    proc = subprocess.Popen([spy, "record", "-p", str(pid), "-r", "250", "-f",
                                             "raw", "-o", str(path), "--nonblocking"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    lab.track_pid(proc.pid, f"py-spy on {role}")
                    spies.append((proc, path, role))
                time.sleep(0.5)
                before = probe.snapshot()
                result = run_loads(processes, held_timeout=args.logins + 120)
                wait_for(lambda: not gateway.show("licenses") or
                         max(r["in_use"] for r in gateway.show("licenses")) == 0, 30)
                after = probe.snapshot()
        finally:
            for proc, _, _ in spies:
                proc.send_signal(2)
            for proc, _, _ in spies:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                lab.untrack_pid(proc.pid)
            gateway.stop()
    cpu = probe.cpu_between(before, after)
    summary = {"logins": result["established"], "offered": result["offered"],
               "cpu_ms_per_login_logout": round(cpu * 1000 / max(1, result["established"]), 2),
               "per_process_cpu_s": {named.get(pid, str(pid)): round(
                   (t - before.get(pid, (0, 0))[0]) / os.sysconf("SC_CLK_TCK"), 2)
                   for pid, (t, _) in after.items()},
               "latency_ms": {k: v for k, v in result["latency_ms"].items()
                              if k not in ("samples_ms", "buckets")},
               "established_per_s": result["established_per_s"], "profiles": {}}
    for _, path, role in spies:
        if path.exists():
            summary["profiles"][role] = summarize(path, args.top)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "profiles"}, indent=1))
    for role, prof in summary["profiles"].items():
        print(f"\n== {role}: {prof['samples']} samples")
        print("  self:      " + "\n             ".join(f"{s:5.1f}% {n}" for n, s in prof["self"]))
        print("  inclusive: " + "\n             ".join(f"{s:5.1f}% {n}"
                                                       for n, s in prof["inclusive"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Subscriber interface speed: create and remove N TUN interfaces + /32 routes in a VR.

    sudo .venv/bin/python bench/netif_bench.py [N ...]     (default 1,000 and 5,000)

Makes its own namespace (``dxnb<pid>``), deletes it afterwards. For each N: create_many
then remove_many (one group delete), and create then remove one at a time for the first
200 (the per-subscriber path). Both placements: TUN opened inside the VR (default) and
opened here then moved (only for the smallest N: a move costs ~20 ms). Prints the time
per interface for each create step and writes bench/results/netif.json. No pass/fail.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from responder.netif import InterfaceManager, InterfaceSpec  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "netif.json"
STEPS = ("_open_tun_in_vr", "_open_tun_and_move", "_bring_up_with_route")
SINGLE = 200


class TimedManager(InterfaceManager):
    """The real manager with each create step timed (time spent inside each method)."""

    def __init__(self, placement: str) -> None:
        super().__init__(placement=placement)
        self.seconds: dict[str, float] = defaultdict(float)
        for step in STEPS:
            setattr(self, step, self._timed(step, getattr(self, step)))

    def _timed(self, step, method):
        def timed(*args):
            t0 = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.seconds[step] += time.perf_counter() - t0
        return timed


def link_count(ns: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "ip", "-o", "link"], capture_output=True, text=True)
    return len(out.stdout.splitlines())


def bench(ns: str, n: int, placement: str) -> dict[str, object]:
    specs = [InterfaceSpec(ns, f"dxb{i}", IPv4Address(int(IPv4Address("10.128.0.1")) + i), 1400)
             for i in range(n)]
    with TimedManager(placement) as manager:
        t0 = time.perf_counter()
        created = manager.create_many(specs)
        t1 = time.perf_counter()
        links_up = link_count(ns)
        removed = manager.remove_many(created)
        t2 = time.perf_counter()
        per_step = {step.strip("_"): manager.seconds[step] / n * 1e6 for step in STEPS if manager.seconds[step]}
        single = specs[:SINGLE]
        t3 = time.perf_counter()
        ones = [manager.create(s.vr, s.name, s.address, s.mtu) for s in single]
        t4 = time.perf_counter()
        for iface in ones:
            manager.remove(iface)
        t5 = time.perf_counter()
    if removed != n or links_up != n + 1 or link_count(ns) != 1:
        raise RuntimeError(f"expected {n} interfaces: created {links_up - 1}, removed {removed}")
    return {"n": n, "placement": placement,
            "create_many_total_s": t1 - t0, "create_us": (t1 - t0) / n * 1e6, "create_steps_us": per_step,
            "remove_many_total_s": t2 - t1, "remove_many_us": (t2 - t1) / n * 1e6,
            "single_create_us": (t4 - t3) / len(single) * 1e6, "single_remove_us": (t5 - t4) / len(single) * 1e6}


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("needs root (creates a network namespace and TUN devices)")
        return 2
    sizes = [int(a) for a in argv] or [1_000, 5_000]
    ns = f"dxnb{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        runs = [bench(ns, n, "in_vr") for n in sizes] + [bench(ns, min(sizes), "move")]
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    for r in runs:
        steps = ", ".join(f"{k} {v:.0f}" for k, v in r["create_steps_us"].items())
        print(f"{r['placement']:>5} n={r['n']:>5}: create_many {r['create_many_total_s']:.2f} s "
              f"({r['create_us']:.0f} us each: {steps}); remove_many {r['remove_many_total_s']:.2f} s "
              f"({r['remove_many_us']:.0f} us each); one at a time: create {r['single_create_us']:.0f} us, "
              f"remove {r['single_remove_us']:.0f} us")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"python": platform.python_version(), "kernel": platform.release(),
                                   "runs": runs}, indent=2) + "\n")
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

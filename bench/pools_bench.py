"""Address pool speed: allocate and release N addresses (default 10,000 and 100,000).

    .venv/bin/python bench/pools_bench.py [N ...]

Prints the figures and writes bench/results/pools.json. No pass/fail: a regression shows
as a number to compare, not as a flaky timed assert.
"""
from __future__ import annotations

import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from responder.pools import PoolManager  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pools.json"


def bench(n: int) -> dict[str, float]:
    pools = PoolManager()
    pools.add_pool("vr1", "big", ["10.0.0.0/8"], exclude=["10.0.0.0/24"])
    t0 = time.perf_counter()
    leases = [pools.allocate("vr1", "big", owner=i) for i in range(n)]
    t1 = time.perf_counter()
    random.Random(1).shuffle(leases)
    for lease in leases:
        pools.release(lease)
    t2 = time.perf_counter()
    # steady state: the free list is in use now
    leases = [pools.allocate("vr1", "big", owner=i) for i in range(n)]
    t3 = time.perf_counter()
    specific = [pools.reserve("vr2", f"172.16.{i // 256 % 256}.{i % 256}", owner=i)
                for i in range(min(n, 65536))]
    t4 = time.perf_counter()
    assert len({l.address for l in leases}) == n and len(specific) == min(n, 65536)
    return {
        "n": n,
        "allocate_fresh_us": (t1 - t0) / n * 1e6,
        "release_us": (t2 - t1) / n * 1e6,
        "allocate_reused_us": (t3 - t2) / n * 1e6,
        "reserve_specific_us": (t4 - t3) / len(specific) * 1e6,
        "total_s": t4 - t0,
    }


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [10_000, 100_000]
    runs = [bench(n) for n in sizes]
    for r in runs:
        print(f"n={r['n']:>7}: allocate {r['allocate_fresh_us']:.2f} us, release "
              f"{r['release_us']:.2f} us, reallocate {r['allocate_reused_us']:.2f} us, "
              f"reserve {r['reserve_specific_us']:.2f} us per address ({r['total_s']:.2f} s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"python": platform.python_version(),
                                   "machine": platform.machine(), "runs": runs}, indent=2) + "\n")
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

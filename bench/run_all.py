#!/usr/bin/env python3
"""Run every benchmark in bench/ one after another (`make bench`).

Each benchmark is a script that prints its numbers and writes
bench/results/<name>.json; this runner only sequences them, reports which
failed, and writes bench/results/index.json listing what ran.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def benchmarks() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if p.name != Path(__file__).name)


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    index, failed = [], []
    scripts = benchmarks()
    for n, script in enumerate(scripts, 1):
        print(f"=== [{n}/{len(scripts)}] {script.name}", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent)
        seconds = round(time.monotonic() - started, 2)
        index.append({"script": script.name, "exit_code": rc, "seconds": seconds})
        if rc != 0:
            failed.append(script.name)
    (RESULTS / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"=== {len(scripts) - len(failed)} of {len(scripts)} benchmarks ran; results in {RESULTS}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

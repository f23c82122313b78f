#!/usr/bin/env python3
"""Run every benchmark in bench/ one after another (`make bench`, `make bench QUICK=1`).

Each benchmark is a script that prints its numbers and writes
bench/results/<name>.json. This runner gives each its arguments (small sizes with
--quick), shows progress, collects the JSON files of this run into
bench/results/<timestamp>/ (bench/results/latest points there) and writes there
index.json, report.md (every figure of both gateways side by side with the ratio,
and the goals met or not) and PNG plots (bench/report.py).

    .venv/bin/python bench/run_all.py [--quick] [--only login,plain_path]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH.parent))

from bench.report import write_report  # noqa: E402

HELPERS = {"run_all.py", "report.py", "profile_login.py", "__init__.py"}


def prefix() -> str:
    return os.environ.get("DYNIPSEC_LAB_PREFIX") or "bn"


def arguments(script: str, quick: bool) -> list[str]:
    """Command-line arguments of one benchmark (lab benchmarks share one prefix)."""
    lab = ["--prefix", prefix()]
    table = {
        "datapath_bench.py": (["--seconds", "2", "--repeats", "1", *lab], lab),
        "plain_path_bench.py": (["--seconds", "2", "--repeats", "1", *lab], lab),
        "login_bench.py": (["--quick", *lab], lab),
        "flood_bench.py": (["--quick", *lab], lab),
        "lab_build.py": (["--runs", "1", "--clients", "10", *lab], lab),
        "ike_bench.py": (["--quick"], []),
        "esp_bench.py": (["2000"], []),
        "pools_bench.py": (["10000"], []),
        "netif_bench.py": (["500"], []),
        # half a million in the full run keeps it under 20 minutes; the script alone
        # feeds its default million
        "hostile_soak.py": (["--count", "100000"], ["--count", "500000"]),
    }
    quick_args, full_args = table.get(script, ([], []))
    return quick_args if quick else full_args


def benchmarks(only: list[str]) -> list[Path]:
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name not in HELPERS)
    if only:
        scripts = [p for p in scripts if any(p.stem.startswith(o) for o in only)]
    return scripts


def say(message: str) -> None:
    try:
        from rich.console import Console
        Console(highlight=False).print(message)
    except ImportError:
        print(message, flush=True)


def json_mtimes() -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in RESULTS.glob("*.json") if p.name != "index.json"}


def collect(before: dict[str, float], run_dir: Path) -> list[str]:
    """Copies the JSON files written since the `before` snapshot into the run directory."""
    copied = []
    for name, mtime in sorted(json_mtimes().items()):
        if before.get(name) != mtime:
            shutil.copy2(RESULTS / name, run_dir / name)
            copied.append(name)
    return copied


def point_latest(run_dir: Path) -> None:
    latest = RESULTS / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    latest.symlink_to(run_dir.name, target_is_directory=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (QUICK=1)")
    p.add_argument("--only", default="", help="benchmarks whose name starts so, comma-separated")
    args = p.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    run_dir = RESULTS / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir()
    index, failed = [], []
    scripts = benchmarks([o for o in args.only.split(",") if o])
    begin = time.monotonic()
    for n, script in enumerate(scripts, 1):
        extra = arguments(script.name, args.quick)
        say(f"[bold]=== [{n}/{len(scripts)}] {script.name}[/bold] {' '.join(extra)} "
            f"(load {os.getloadavg()[0]:.2f}, {time.monotonic() - begin:.0f} s so far)")
        started, before = time.monotonic(), json_mtimes()
        rc = subprocess.call([sys.executable, str(script), *extra], cwd=BENCH.parent)
        seconds = round(time.monotonic() - started, 2)
        written = collect(before, run_dir)
        index.append({"script": script.name, "arguments": extra, "exit_code": rc,
                      "seconds": seconds, "results": written})
        say(f"    {script.name}: exit {rc} in {seconds} s, wrote {', '.join(written) or 'nothing'}")
        if rc != 0:
            failed.append(script.name)
    document = {"quick": args.quick, "seconds": round(time.monotonic() - begin, 1),
                "loadavg_end": os.getloadavg(), "cpus": os.cpu_count(), "benchmarks": index}
    (run_dir / "index.json").write_text(json.dumps(document, indent=1) + "\n")
    (RESULTS / "index.json").write_text(json.dumps(document, indent=1) + "\n")
    report = write_report(run_dir)
    point_latest(run_dir)
    say(f"=== {len(scripts) - len(failed)} of {len(scripts)} benchmarks ran in "
        f"{document['seconds']} s; report {report.relative_to(BENCH.parent)} "
        f"(bench/results/latest)")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`dynipsec lab run SCENARIO...`: run scenario files, print a result table, write evidence."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

GATEWAY_CHOICES = ("dynipsec", "strongswan", "both")
PREFIX_ENV = "DYNIPSEC_LAB_PREFIX"

DESCRIPTION = """\
Run scenario files (scenarios/*.yaml, see docs/scenarios.md). Each scenario builds its
own lab of its topology, starts the gateway, runs its steps and checks its expectations,
then tears everything down. With --gateway both it runs once per gateway.

Evidence goes to OUT/<scenario>-<gateway>/ (router-public.pcap, every daemon's and
client's log by node, summary.json, junit.xml) and OUT/junit.xml for all of them.
Exit status 0 only if no check failed. Nothing stays behind: labs are torn down after
each scenario (a crashed run is cleaned with `dynipsec lab clean`).

Examples:
  dynipsec lab run scenarios/minimal-login.yaml
  dynipsec lab run scenarios/*.yaml --gateway dynipsec --out /tmp/evidence
"""


def register(cmds) -> None:
    run = cmds.add_parser("run", help="run scenario files against the gateways, with evidence",
                          description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                     help="scenario file, or a name in scenarios/ (e.g. minimal-login)")
    run.add_argument("--gateway", choices=GATEWAY_CHOICES, default="both",
                     help="gateway(s) to run against (default both; a scenario meant for one "
                          "gateway only is reported as skipped for the other)")
    run.add_argument("--out", type=Path, default=None,
                     help="evidence directory (default: a new runs/<timestamp>/)")
    run.add_argument("--prefix", default=None,
                     help=f"node-name prefix of the scenario labs (default: ${PREFIX_ENV} or "
                          f"the topology's)")
    run.set_defaults(func=cmd_run)


def _say(message: str) -> None:
    from lab.demo import write_line

    write_line(sys.stderr, message)


def cmd_run(args) -> int:
    from lab.engine import make_run_dir
    from lab.scenario_engine import junit_xml, run_scenario
    from lab.scenario_spec import ScenarioError, load_scenario

    specs = []
    for name in args.scenarios:
        try:
            specs.append(load_scenario(name))
        except ScenarioError as exc:
            print(f"dynipsec lab run: {exc}", file=sys.stderr)
            return 2
    kinds = ("dynipsec", "strongswan") if args.gateway == "both" else (args.gateway,)
    out = args.out or make_run_dir()
    out.mkdir(parents=True, exist_ok=True)
    prefix = args.prefix or os.environ.get(PREFIX_ENV) or None
    results = []
    for spec in specs:
        for kind in kinds:
            _say(f"running {spec.name} against {kind} ...")
            results.append(run_scenario(spec, kind, out / f"{spec.name}-{kind}", prefix=prefix,
                                        progress=_say))
    (out / "junit.xml").write_text(junit_xml(results))
    print_table(results)
    print(f"evidence: {out} (junit.xml; per run: summary.json, router-public.pcap, logs)")
    print("undo: nothing to undo, every lab was torn down; remove the evidence with "
          f"`rm -r {out}`")
    return 0 if all(r.status != "fail" for r in results) else 1


def print_table(results) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="scenario results")
    for column in ("scenario", "gateway", "result", "checks", "time", "first failure"):
        table.add_column(column)
    for r in results:
        counts = r.as_dict()["counts"]
        text = " ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        failures = r.failures()
        first = (f"step {failures[0].step} {failures[0].what}: {failures[0].detail}"
                 if failures else r.skipped_reason)
        style = {"pass": "green", "fail": "red", "skipped": "yellow"}[r.status]
        table.add_row(r.scenario, r.gateway, f"[{style}]{r.status.upper()}[/{style}]", text,
                      f"{r.duration:.1f}s", first[:120])
    Console(width=160).print(table)

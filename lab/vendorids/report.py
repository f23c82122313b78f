"""The vendor-ID matrix: run the gateways (`run_matrix`), then case x (expected,
dynipsec, strongSwan) as a terminal table (rich when installed, else plain
text), Markdown and JSON."""
from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import TextIO

from lab.vendorids.lab import CaseResult, run_gateway
from lab.vendorids.outcome import Outcome

__all__ = ["summarize", "matrix", "write_report", "print_matrix", "run_matrix"]

GATEWAY_COLUMNS = ("dynipsec", "strongswan")


def summarize(outcome: Outcome | None) -> str:
    """One cell: classification, NAT-T, DPD, Unity, fragmentation."""
    if outcome is None:
        return "no result"
    kind = outcome.classification + (f" ({outcome.notify})" if outcome.notify else "")
    natt = "no NAT-T" if outcome.natt_version == "none" else \
        f"{outcome.natt_version}/{outcome.natd_payload}"
    if outcome.floated:
        natt += " float"
    if outcome.encapsulation is not None:
        natt += f" enc {outcome.encapsulation}"
    dpd = "dpd " + "".join(flag if on else "-" for flag, on in (
        ("V", outcome.dpd_echoed), ("A", outcome.dpd_answered), ("P", outcome.dpd_probes)))
    extras = [name for name, on in (("unity", outcome.unity_echoed),
                                    ("frag", outcome.fragmentation_echoed)) if on]
    crash = [] if outcome.alive else ["DEAD"]
    return ", ".join([kind, natt, dpd, *extras, *crash])


def matrix(results: list[CaseResult]) -> list[dict]:
    """One row per (case, runner): the expectation and each gateway's cell."""
    rows: "OrderedDict[tuple[str, str], dict]" = OrderedDict()
    for result in results:
        row = rows.setdefault((result.case, result.runner), {
            "case": result.case, "runner": result.runner,
            "expected": summarize(result.expected) if result.gateway == "dynipsec" else None,
            "cells": {}})
        if result.gateway == "dynipsec":
            row["expected"] = summarize(result.expected)
        status = "PASS" if result.passed else "FAIL"
        note = "" if result.passed or not result.problems else "; ".join(result.problems)
        if result.passed and result.why:
            status = "PASS (differs, explained)"
        row["cells"][result.gateway] = {"status": status, "observed": summarize(result.observed),
                                        "problems": note, "why": result.why}
    for (case_id, _), row in rows.items():
        if row["expected"] is None:
            first = next(r for r in results if r.case == case_id)
            row["expected"] = summarize(first.expected)
    return list(rows.values())


def _cell(row: dict, gateway: str) -> str:
    cell = row["cells"].get(gateway)
    if cell is None:
        return "-"
    text = f"{cell['status']}: {cell['observed']}"
    if cell["problems"]:
        text += f" [{cell['problems']}]"
    return text


def write_report(results: list[CaseResult], out_dir: Path, *, header: dict) -> tuple[Path, Path]:
    """vendor-ids.md and vendor-ids.json in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = matrix(results)
    failed = [r for r in results if not r.passed]
    lines = ["# Vendor-ID matrix", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += [f"- rows: {len(results)}, failed: {len(failed)}", "",
              "Cells: classification (notify), NAT-T version/NAT-D payload, float, ESP "
              "encapsulation; dpd V = VID echoed, A = R-U-THERE answered, P = probes sent.", "",
              "| case | runner | expected (dynipsec) | dynipsec | strongSwan |",
              "|---|---|---|---|---|"]
    for row in rows:
        cells = [row["case"], row["runner"], row["expected"],
                 *(_cell(row, g) for g in GATEWAY_COLUMNS)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    explained = [r for r in results if r.why and r.gateway == "strongswan"]
    if explained:
        lines += ["", "## Where strongSwan differs, and why", ""]
        lines += [f"- **{r.case}** ({r.runner}): {r.why}" for r in explained]
    markdown = out_dir / "vendor-ids.md"
    markdown.write_text("\n".join(lines) + "\n")
    data = out_dir / "vendor-ids.json"
    data.write_text(json.dumps({"header": header, "rows": [r.as_dict() for r in results]},
                               indent=1, default=str))
    return markdown, data


def print_matrix(results: list[CaseResult], stream: TextIO | None = None) -> None:
    rows = matrix(results)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _print_plain(rows, stream)
        return
    table = Table(title="vendor-ID matrix", show_lines=False)
    for column in ("case", "runner", "expected", *GATEWAY_COLUMNS):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = []
        for gateway in GATEWAY_COLUMNS:
            cell = row["cells"].get(gateway)
            text = _cell(row, gateway)
            style = "" if cell is None else "green" if cell["status"] == "PASS" else \
                "yellow" if cell["status"].startswith("PASS") else "bold red"
            cells.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(row["case"], row["runner"], row["expected"], *cells)
    Console(file=stream).print(table)


def _print_plain(rows: list[dict], stream: TextIO | None) -> None:
    import sys

    out = stream or sys.stdout
    for row in rows:
        print(f"{row['case']:<32} {row['runner']:<18} expected: {row['expected']}", file=out)
        for gateway in GATEWAY_COLUMNS:
            if gateway in row["cells"]:
                print(f"{'':<51} {gateway:<10}: {_cell(row, gateway)}", file=out)


def run_matrix(lab, table, gateways, out_dir: Path, cases=None, *, real_clients: bool = True):
    """Every gateway in turn in one lab; the matrix report in `out_dir`. Returns the rows."""
    results = []
    timings = {}
    for kind in gateways:
        started = time.monotonic()
        results += run_gateway(lab, table, kind, out_dir, cases, real_clients=real_clients)
        timings[kind] = round(time.monotonic() - started, 1)
    header = {"case file": str(table.path), "gateways": ", ".join(gateways),
              "seconds per gateway": timings, "lab run": str(lab.run_dir)}
    write_report(results, out_dir, header=header)
    return results

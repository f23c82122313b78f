#!/usr/bin/env python3
"""Markdown report and PNG plots from one run directory of bench/run_all.py.

    .venv/bin/python bench/report.py bench/results/latest

Reads the JSON files there (login.json, datapath.json, plain_path.json, and the
in-memory benchmarks'), writes report.md and latency.png, login_rate.png,
memory.png, throughput.png. Every login figure is for both gateways with the ratio
dynipsec / strongSwan (medians over the rounds); the goals are checked against it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

GATEWAYS = ("dynipsec", "strongswan")
COLOURS = {"dynipsec": "tab:blue", "strongswan": "tab:orange", "plain": "tab:gray"}


def load(run_dir: Path, name: str) -> dict | None:
    path = run_dir / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def row_of(login: dict, aaa: str, figure: str) -> dict | None:
    for row in login.get("comparison", []):
        if row["aaa"] == aaa and row["figure"] == figure:
            return row
    return None


# -- goals ---------------------------------------------------------------------------------
def goals(login: dict | None, datapath: dict | None) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) for every goal that a figure of this run speaks to."""
    out: list[tuple[str, str, bool | None]] = []
    if login:
        def ratio_goal(label: str, figure: str, limit: float, higher: bool = False) -> None:
            row = row_of(login, "local", figure)
            ratio = row and row["ratio"]
            met = None if ratio is None else (ratio >= limit if higher else ratio <= limit)
            out.append((label, f"ratio {fmt(ratio)}", met))
        ratio_goal("CPU per login <= 0.75x", "gateway CPU per login", 0.75)
        ratio_goal("CPU per login+logout <= 0.75x", "gateway CPU per login + logout", 0.75)
        row = row_of(login, "local", "login latency p99 at the offered rate")
        if row:
            d, s = row["dynipsec"], row["strongswan"]
            met = None if d is None or s is None else (d <= s and d < 100)
            out.append(("p99 at 100/s <= strongSwan's and < 100 ms",
                        f"{fmt(d)} ms vs {fmt(s)} ms", met))
        ratio_goal("saturation >= 1.5x", "sustained logins/s at saturation", 1.5, higher=True)
        row = row_of(login, "local", "resident memory before any login")
        if row and row["dynipsec"] is not None:
            out.append(("resident memory before logins <= 100 MB",
                        f"{row['dynipsec'] / 1024:.1f} MB", row["dynipsec"] <= 100 * 1024))
        ratio_goal("memory per subscriber <= 0.5x", "memory per subscriber held", 0.5)
        scale = login.get("once", {}).get("dynipsec", {}).get("scale")
        if scale and "unavailable" not in scale:
            p99 = scale["latency_ms"]["p99"]
            out.append((f"{scale['offered']:,} held, p99 < 250 ms at 100/s",
                        f"{scale['established']:,} held, p99 {fmt(p99)} ms",
                        scale["established"] == scale["offered"] and p99 is not None and p99 < 250))
        churn = login.get("once", {}).get("dynipsec", {}).get("churn")
        if churn and "unavailable" not in churn:
            out.append(("zero leaks after churn",
                        f"{churn['cycles']:,} cycles, leaked {churn['leaked'] or 'nothing'}, "
                        f"RSS {churn['rss_growth'] * 100:+.1f} %", churn["clean"]))
    if datapath:
        for row in datapath.get("comparison", []):
            limit = {1: 1000, 10: 1500}.get(row["tunnels"])
            if limit:
                d = row["dynipsec_mbps"]
                out.append((f"{row['tunnels']} tunnel(s) >= {limit / 1000:g} Gbit/s",
                            f"{fmt(d)} Mbit/s", None if d is None else d >= limit))
    return out


# -- plots ---------------------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def first_round(login: dict, kind: str, part: str) -> dict | None:
    for record in login["rounds"].get("local", {}).get(kind, []):
        if part in record:
            return record[part]
    return None


def plot_latency(login: dict, out: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, part, title in ((axes[0], "cost", f"offered {login['conditions']['rate']:g}/s"),
                            (axes[1], "saturation", "saturation (closed loop)")):
        p99s = {}
        for kind in GATEWAYS:
            record = first_round(login, kind, part)
            samples = record and record["latency_ms"].get("samples_ms")
            if not samples:
                continue
            ys = [(i + 1) / len(samples) for i in range(len(samples))]
            ax.plot(samples, ys, label=kind, color=COLOURS[kind])
            p99s[kind] = record["latency_ms"]["p99"]
        ratio = (p99s["dynipsec"] / p99s["strongswan"]
                 if len(p99s) == 2 and p99s["strongswan"] else None)
        ax.set_xscale("log")
        ax.set_xlabel("login latency (ms, log)")
        ax.set_title(f"{title}: p99 ratio {fmt(ratio)}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("fraction of logins")
    fig.suptitle("Login latency distribution (round 1, local users)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_rate(login: dict, out: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, part in ((axes[0], "cost"), (axes[1], "saturation")):
        for kind in GATEWAYS:
            record = first_round(login, kind, part)
            if record and record.get("rate_per_s"):
                ax.plot(range(len(record["rate_per_s"])), record["rate_per_s"],
                        label=f"{kind} ({fmt(record['established_per_s'])}/s)",
                        color=COLOURS[kind], drawstyle="steps-post")
        ax.set_xlabel("seconds since the first login")
        ax.set_title(part)
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("logins established per second")
    fig.suptitle("Login rate over time (round 1, local users)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def memory_points(login: dict, kind: str) -> list[tuple[int, float]]:
    points = []
    for record in login["rounds"].get("local", {}).get(kind, []):
        if "cost" in record:
            points.append((0, record["rss_idle_kb"] / 1024))
            points.append((record["cost"]["established"], record["cost"]["rss_held_kb"] / 1024))
    scale = login.get("once", {}).get(kind, {}).get("scale")
    if scale and "unavailable" not in scale:
        points += [(0, scale["rss_before_kb"] / 1024),
                   (scale["established"], scale["rss_held_kb"] / 1024)]
    return sorted(points)


def plot_memory(login: dict, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind in GATEWAYS:
        points = memory_points(login, kind)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=kind,
                    color=COLOURS[kind])
    row = row_of(login, "local", "memory per subscriber held")
    ax.set_title(f"Gateway RSS vs subscribers held (per-subscriber ratio "
                 f"{fmt(row and row['ratio'])})")
    ax.set_xlabel("subscribers held")
    ax.set_ylabel("RSS of all gateway processes (MB)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_throughput(datapath: dict | None, plain: dict | None, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = (datapath or {}).get("comparison", [])
    tunnels = [r["tunnels"] for r in rows]
    width = 0.25
    series = [("dynipsec", [r["dynipsec_mbps"] or 0 for r in rows]),
              ("strongswan", [r["strongswan_mbps"] or 0 for r in rows])]
    if plain:
        by_n = {r["tunnels"]: r["aggregate_mbps"] for r in plain.get("comparison", [])}
        if not tunnels:
            tunnels = sorted(by_n)
        series.append(("plain", [by_n.get(n, 0) for n in tunnels]))
    for k, (name, values) in enumerate(series):
        if len(values) == len(tunnels):
            ax.bar([i + (k - 1) * width for i in range(len(tunnels))], values, width,
                   label=name + (" (no IPsec)" if name == "plain" else ""), color=COLOURS[name])
    ratios = ", ".join(f"{r['tunnels']}: {fmt(r['ratio_dynipsec_to_strongswan'])}" for r in rows)
    ax.set_xticks(range(len(tunnels)), [str(n) for n in tunnels])
    ax.set_xlabel("tunnels (one iperf3 TCP flow each)")
    ax.set_ylabel("aggregate Mbit/s (log)")
    ax.set_yscale("log")
    ax.set_title(f"Throughput vs tunnels (ratio dynipsec/strongSwan {ratios or 'n/a'})")
    ax.grid(True, alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


# -- markdown ------------------------------------------------------------------------------
def login_section(login: dict) -> list[str]:
    c = login["conditions"]
    lines = ["## Logins (bench/login_bench.py)", "",
             f"{c['login']}; {c['logins']:,} logins per scenario, offered at {c['rate']:g}/s "
             f"(cost) and closed loop with {c['concurrency_per_host']} in flight per host "
             f"(saturation); {c['rounds']} round(s), gateways alternating, medians. "
             f"Local user database: **{c['user_database']:,} users** (RADIUS: the same users "
             f"in the lab's FreeRADIUS). {c['hosts']} client hosts, {c['source_addresses']} "
             f"source addresses (at most {c['per_source']} sessions each); limits: "
             f"{c['limits']}. Load average at the end {', '.join(f'{x:.2f}' for x in c['loadavg_end'])} "
             f"on {c['cpus']} CPUs (the initiators share the cores with the gateway).", ""]
    for aaa in sorted({r["aaa"] for r in login["comparison"]}):
        work = c.get("aaa_work", {}).get(aaa)
        lines += [f"### AAA {aaa} ({c['user_database']:,} users)", ""]
        lines += [f"Work per login on both gateways: {work}.", ""] if work else []
        lines += ["| figure | dynipsec | strongSwan | ratio |", "|---|---|---|---|"]
        for row in login["comparison"]:
            if row["aaa"] == aaa:
                lines.append(f"| {row['figure']} ({row['unit']}) | {fmt(row['dynipsec'])} | "
                             f"{fmt(row['strongswan'])} | {fmt(row['ratio'])} |")
        missing = [f"{kind}: {r['unavailable']}" for kind in GATEWAYS
                   for r in login["rounds"].get(aaa, {}).get(kind, []) if "unavailable" in r]
        lines += [""] + [f"* not measured: {m}" for m in sorted(set(missing))] + [""]
    lines += once_section(login)
    return lines


def once_section(login: dict) -> list[str]:
    lines = []
    once = login.get("once", {})
    scale = {k: v.get("scale") for k, v in once.items() if v.get("scale")}
    if scale:
        lines += ["### Scale (local users)", "",
                  "| | " + " | ".join(scale) + " |", "|---" * (len(scale) + 1) + "|"]
        for label, key in (("offered", "offered"), ("established", "established"),
                           ("time to log all in (s)", "login_s"),
                           ("time to log all out (s)", "logout_s"),
                           ("RSS before (kB)", "rss_before_kb"), ("RSS held (kB)", "rss_held_kb"),
                           ("RSS per subscriber (kB)", "rss_per_subscriber_kb"),
                           ("kernel slab per subscriber (kB, machine-wide)",
                            "slab_per_subscriber_kb"),
                           ("CPU per login (ms)", "cpu_login_ms")):
            lines.append(f"| {label} | " + " | ".join(fmt(v.get(key)) for v in scale.values()) + " |")
        lines.append("| latency p50 / p99 (ms) | " + " | ".join(
            f"{fmt(v.get('latency_ms', {}).get('p50'))} / {fmt(v.get('latency_ms', {}).get('p99'))}"
            for v in scale.values()) + " |")
        lines.append("")
    churn = {k: v.get("churn") for k, v in once.items() if v.get("churn")}
    if churn:
        lines += ["### Churn (login/logout cycles, local users)", ""]
        for kind, c in churn.items():
            if "unavailable" in c:
                lines.append(f"* {kind}: not measured: {c['unavailable']}")
                continue
            lines.append(f"* {kind}: {c['established']:,}/{c['cycles']:,} cycles in "
                         f"{c['seconds']} s ({fmt(c['cycles_per_s'])}/s); leftovers at the end "
                         f"{ {k: v for k, v in c['end'].items() if k != 'rss_kb'} }; grew: "
                         f"{c['leaked'] or 'nothing'}; RSS {c['rss_growth'] * 100:+.2f} % "
                         f"-> {'clean' if c['clean'] else 'LEAK'}")
        lines.append("")
    return lines


def datapath_section(datapath: dict | None, plain: dict | None) -> list[str]:
    lines = ["## Data path (bench/datapath_bench.py, bench/plain_path_bench.py)", ""]
    plain_by_n = {r["tunnels"]: r["aggregate_mbps"] for r in (plain or {}).get("comparison", [])}
    rows = (datapath or {}).get("comparison", [])
    if not rows and not plain_by_n:
        return lines + ["not measured in this run", ""]
    lines += ["| tunnels | dynipsec Mbit/s | strongSwan Mbit/s | ratio | no IPsec (ceiling) |",
              "|---|---|---|---|---|"]
    for n in sorted({r["tunnels"] for r in rows} | set(plain_by_n)):
        r = next((r for r in rows if r["tunnels"] == n), {})
        lines.append(f"| {n} | {fmt(r.get('dynipsec_mbps'))} | {fmt(r.get('strongswan_mbps'))} | "
                     f"{fmt(r.get('ratio_dynipsec_to_strongswan'))} | {fmt(plain_by_n.get(n))} |")
    settings = (datapath or {}).get("settings", {})
    if settings:
        lines += ["", f"iperf3 {settings.get('seconds')} s per test, {settings.get('repeats')} "
                      f"round(s), median; clients: {settings.get('client_kind')}."]
    return lines + [""]


def other_section(run_dir: Path) -> list[str]:
    lines = ["## Other benchmarks (JSON in this directory)", ""]
    ike = load(run_dir, "ike")
    if ike:
        lines += ["In-memory engine, responder CPU per login (bench/ike_bench.py):", ""]
        lines += [f"* {r.get('scenario')}: median {fmt(r.get('cpu_ms_median'))} ms"
                  for r in ike.get("per_login", [])]
        lines.append("")
    for path in sorted(run_dir.glob("*.json")):
        if path.stem not in ("login", "datapath", "plain_path", "ike", "index"):
            lines.append(f"* `{path.name}`")
    return lines + [""]


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    login, datapath, plain = load(run_dir, "login"), load(run_dir, "datapath"), load(run_dir, "plain_path")
    index = load(run_dir, "index") or {}
    lines = [f"# Benchmark report {run_dir.name}", "",
             f"{'QUICK (small sizes)' if index.get('quick') else 'full run'}, "
             f"{index.get('seconds', 'n/a')} s, {index.get('cpus', 'n/a')} CPUs, load average "
             f"at the end {index.get('loadavg_end', 'n/a')}. CPU figures are of the gateway's "
             f"whole process tree (/proc) and are noisy on a shared machine.", ""]
    checked = goals(login, datapath)
    if checked:
        lines += ["## Goals", "", "| goal | measured | met |", "|---|---|---|"]
        lines += [f"| {g} | {m} | {'n/a' if ok is None else ('yes' if ok else 'no')} |"
                  for g, m, ok in checked] + [""]
    plots = []
    if login:
        lines += login_section(login)
        plots += [plot_latency(login, run_dir / "latency.png"),
                  plot_rate(login, run_dir / "login_rate.png"),
                  plot_memory(login, run_dir / "memory.png")]
    lines += datapath_section(datapath, plain)
    if datapath or plain:
        plots.append(plot_throughput(datapath, plain, run_dir / "throughput.png"))
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += other_section(run_dir)
    ran = index.get("benchmarks", [])
    if ran:
        lines += ["## Benchmarks run", "", "| script | exit | seconds |", "|---|---|---|"]
        lines += [f"| {b['script']} | {b['exit_code']} | {b['seconds']} |" for b in ran]
    report = run_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    print(write_report(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest")))

#!/usr/bin/env python3
"""Data-path throughput: iperf3 TCP through 1 and 10 tunnels, dynipsec vs the reference.

    .venv/bin/python bench/datapath_bench.py [--seconds 5] [--repeats 3] [--tunnels 1,10]
        [--gateways strongswan,dynipsec] [--client-kind strongswan] [--prefix dp]

One lab of the default topology. One round of a gateway: start it in the router; for
each tunnel count N log in N real clients at once (alternating VR 1 and VR 2; each pings
its VR's server first, so a tunnel that passes no traffic is reported, not measured), run
iperf3 TCP from every client (bound to its tunnel address) to its VR's intranet server
for --seconds, all at the same time, and log out; stop the gateway. --repeats rounds run
with the gateways taking turns, and the median round is reported (on a small machine one
round varies by 10-20 %, and taking turns keeps drift from favouring either gateway).

Each run records per-tunnel and aggregate Mbit/s (the receivers' counts), TCP
retransmits, the CPU of the gateway's processes (their whole process tree, from
/proc/<pid>/stat), of the client daemons and of the whole machine, and how fast the N
clients logged in (logins/s).

Prints a side-by-side table and writes bench/results/datapath.json. A gateway that
cannot run (dynipsec before lab/gateways/dynipsec.py exists) is recorded as
"unavailable" with the reason. Exit 0 when the benchmark ran; 1 when it broke (the lab
did not build, or the reference gateway could not be measured). No pass/fail on speed.

Everything shares the machine's cores: the clients' own userspace ESP (strongSwan's
kernel-libipsec) and iperf3 compete with the gateway, equally for both gateways; the
packet capture is off so it does not count against either.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clients import ClientError, ClientSettings, IPsecClient, make_client  # noqa: E402
from lab.gateways import GatewayError, make_gateway, plan_from_topology  # noqa: E402
from lab.iperf import (IperfError, IperfJob, IperfResult, run_concurrently,  # noqa: E402
                       start_servers, stop_servers)
from lab.scenario import SerializedTracker, ordinary_users  # noqa: E402

RESULTS = REPO / "bench" / "results" / "datapath.json"
REFERENCE = "strongswan"
FIRST_PORT = 5201
LOGIN_TIMEOUT = 40.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

log = logging.getLogger("datapath_bench")


def say(message: str) -> None:
    print(message, flush=True)


# -- CPU accounting -----------------------------------------------------------------------
def read_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime+stime in clock ticks) of a process; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_tree(roots: list[int]) -> dict[int, int]:
    """CPU ticks of the roots and all their descendants (the gateway may fork workers)."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = {}, [p for p in roots if p in stats]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree[pid] = stats[pid][1]
            todo += children.get(pid, [])
    return tree


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU used between two snapshots; a process born in between counts from zero."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat 'cpu' line)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def declared_pids(owner) -> tuple[list[int], str]:
    """The PIDs an object says it runs, and where they came from; ([], "") if none.

    Neither the Gateway nor the client interface has a PID: a gateway may offer pids()
    or pid, the vpnc client has pid, charon-based ones hold their charon daemon.
    """
    pids = getattr(owner, "pids", None)
    if callable(pids):
        found = [p for p in pids() if p]
        if found:
            return found, "pids()"
    if isinstance(getattr(owner, "pid", None), int):
        return [owner.pid], "pid"
    for name in ("charon", "daemon", "supervisor", "process"):
        pid = getattr(getattr(owner, name, None), "pid", None)
        if isinstance(pid, int):
            return [pid], f"{name}.pid"
    return [], ""


def gateway_root_pids(gateway) -> tuple[list[int], str]:
    """The gateway's processes; failing a declared PID, every process in the router node
    but its shell (the bench runs nothing else there, and capture is off)."""
    pids, source = declared_pids(gateway)
    if pids:
        return pids, f"gateway.{source}"
    return processes_in_node(gateway.node), "processes in the router node"


def processes_in_node(node) -> list[int]:
    try:
        netns = os.stat(f"/proc/{node.pid}/ns/net").st_ino
    except OSError:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == node.pid:
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino == netns:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# -- tunnels --------------------------------------------------------------------------------
@dataclasses.dataclass
class Tunnel:
    """One client and where its traffic goes: the server of its VR, on a port of its own."""

    slot: object               # lab ClientSlot
    group: str
    user: str
    server_node: object
    server_address: str
    port: int
    client: IPsecClient | None = None
    address: str | None = None
    setup_time: float | None = None


def plan_tunnels(lab, plan, count: int) -> list[Tunnel]:
    """`count` access-LAN clients, alternating VR groups, one iperf3 port each."""
    slots = [s for s in lab.clients if not s.behind_nat]
    if len(slots) < count:
        raise ValueError(f"{count} tunnels wanted, the lab has {len(slots)} access-LAN clients")
    users = ordinary_users(plan)
    tunnels = []
    for i, slot in enumerate(slots[:count]):
        group = plan.groups[i % len(plan.groups)]
        tunnels.append(Tunnel(slot=slot, group=group.group, user=users[i],
                              server_node=lab.server(group.vr), server_address=group.server,
                              port=FIRST_PORT + i))
    return tunnels


def start_iperf_servers(lab, tunnels: list[Tunnel]) -> list:
    """One iperf3 server per tunnel port, on that tunnel's VR server."""
    ports_by_server: dict[str, tuple[object, list[int]]] = {}
    for tunnel in tunnels:
        ports_by_server.setdefault(tunnel.server_node.name, (tunnel.server_node, []))[1].append(tunnel.port)
    servers = []
    try:
        for name, (node, ports) in ports_by_server.items():
            servers += start_servers(node, lab.node_dir(name), ports, tracker=lab)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def login_all(lab, plan, tunnels: list[Tunnel], kind: str, mode: str) -> float:
    """Logs every client in at once; returns the seconds from the first connect until
    the last tunnel was up. Client daemons are started first, outside that time."""
    tracker = SerializedTracker(lab)
    with concurrent.futures.ThreadPoolExecutor(len(tunnels), thread_name_prefix="prepare") as pool:
        list(pool.map(lambda t: prepare_client(lab, plan, tracker, t, kind, mode), tunnels))
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(tunnels), thread_name_prefix="login") as pool:
        list(pool.map(connect_and_wait, tunnels))
    return time.monotonic() - started


def prepare_client(lab, plan, tracker, tunnel: Tunnel, kind: str, mode: str) -> None:
    group = plan.group(tunnel.group)
    settings = ClientSettings(gateway=plan.gateway, group=group.group,
                              psk=plan.psk_for(group.group, mode), user=tunnel.user,
                              password=plan.users[tunnel.user], mode=mode,
                              remote_networks=(group.intranet,))
    workdir = lab.node_dir(tunnel.slot.name) / "bench"
    workdir.mkdir(exist_ok=True)
    tunnel.client = make_client(kind, tunnel.slot.host, workdir, settings, tracker=tracker)
    tunnel.client.prepare()


def connect_and_wait(tunnel: Tunnel) -> None:
    tunnel.client.connect()
    info = tunnel.client.wait_up(LOGIN_TIMEOUT)
    tunnel.address, tunnel.setup_time = info.address, info.setup_time


def check_tunnels_pass_traffic(tunnels: list[Tunnel]) -> None:
    """A ping through each tunnel first: a dead tunnel would otherwise look like 0 Mbit/s."""
    for tunnel in tunnels:
        result = tunnel.client.ping(tunnel.server_address, count=2)
        if not result.ok:
            raise ClientError(f"{tunnel.slot.name}: ping {tunnel.server_address} through the "
                              f"tunnel from {tunnel.address}: {result} answered")


def logout_all(tunnels: list[Tunnel]) -> None:
    """Graceful logout (the clients send Delete); every client ends, whatever happens."""
    started = [t for t in tunnels if t.client is not None]
    if not started:
        return

    def logout(tunnel: Tunnel) -> None:
        try:
            tunnel.client.disconnect()
        except Exception as exc:  # the others must still log out
            log.warning("%s: logout failed: %s", tunnel.slot.name, exc)
        finally:
            tunnel.client.close()
            tunnel.client = None

    with concurrent.futures.ThreadPoolExecutor(len(started), thread_name_prefix="logout") as pool:
        list(pool.map(logout, started))


# -- one measurement ------------------------------------------------------------------------
def measure_throughput(lab, gateway, tunnels: list[Tunnel], seconds: float, omit: int) -> dict:
    """iperf3 from every tunnel at once, with the gateway's and the machine's CPU around it."""
    roots, cpu_method = gateway_root_pids(gateway)
    # the clients' own ESP competes for the same cores: worth knowing when reading the numbers
    client_roots = [pid for t in tunnels for pid in declared_pids(t.client)[0]]
    jobs = [(t.slot.host, IperfJob(t.server_address, t.port, bind=t.address)) for t in tunnels]
    # other users of the machine add noise; the load average lets a reader spot it
    load_before = os.getloadavg()[0]
    tree_before, clients_before = process_tree(roots), process_tree(client_roots)
    busy_before, t0 = machine_busy_seconds(), time.monotonic()
    outcomes = run_concurrently(jobs, seconds=seconds, omit=omit, tracker=lab)
    wall = time.monotonic() - t0
    tree_after = process_tree(roots)
    gateway_cpu = cpu_seconds_between(tree_before, tree_after)
    clients_cpu = cpu_seconds_between(clients_before, process_tree(client_roots))
    machine_cpu = machine_busy_seconds() - busy_before
    per_tunnel = [tunnel_record(t, o) for t, o in zip(tunnels, outcomes)]
    results = [o for o in outcomes if isinstance(o, IperfResult)]
    total_mbps = sum(r.received_bps for r in results) / 1e6
    gateway_cores = gateway_cpu / wall
    return {
        "aggregate_mbps": round(total_mbps, 2),
        "tunnels_measured": len(results),
        "tunnels_failed": len(outcomes) - len(results),
        "retransmits": sum(r.retransmits or 0 for r in results),
        "wall_seconds": round(wall, 3),
        "gateway_cpu_seconds": round(gateway_cpu, 3),
        "gateway_cpu_cores": round(gateway_cores, 3),
        "gateway_cpu_ms_per_mbit": round(gateway_cores * 1000 / total_mbps, 4) if total_mbps else None,
        "gateway_processes": len(tree_after),
        "gateway_cpu_method": cpu_method,
        "clients_cpu_cores": round(clients_cpu / wall, 3),
        "machine_cpu_seconds": round(machine_cpu, 3),
        "machine_cpu_cores": round(machine_cpu / wall, 3),
        "loadavg_1min_before": round(load_before, 2),
        "per_tunnel": per_tunnel,
    }


def tunnel_record(tunnel: Tunnel, outcome: IperfResult | IperfError) -> dict:
    record = {"client": tunnel.slot.name, "group": tunnel.group, "user": tunnel.user,
              "address": tunnel.address, "server": f"{tunnel.server_node.name}:{tunnel.port}",
              "setup_time": round(tunnel.setup_time, 3) if tunnel.setup_time else None}
    if isinstance(outcome, IperfError):
        return {**record, "error": str(outcome)}
    return {**record, **outcome.as_dict()}


def median_round(runs: list[dict]) -> dict:
    """The measured run with the median aggregate (the lower middle one for an even count):
    a real measurement, so its per-tunnel numbers and CPU belong together."""
    ranked = sorted(runs, key=lambda r: r["aggregate_mbps"])
    return ranked[(len(ranked) - 1) // 2]


def describe(measurement: dict) -> str:
    m = measurement
    return (f"{m['aggregate_mbps']:.1f} Mbit/s total, {m['retransmits']} retransmits, "
            f"CPU cores: gateway {m['gateway_cpu_cores']:.2f}, client daemons "
            f"{m['clients_cpu_cores']:.2f}, machine {m['machine_cpu_cores']:.2f} of {os.cpu_count()}")


def run_tunnels(lab, plan, gateway, tag: str, tunnels: list[Tunnel], args) -> dict:
    """Login, ping, iperf3, logout for one tunnel count; errors become the run's record."""
    n = len(tunnels)
    run: dict = {"tunnels": n}
    try:
        login_seconds = login_all(lab, plan, tunnels, args.client_kind, args.mode)
        run["login"] = {"seconds": round(login_seconds, 3),
                        "logins_per_second": round(n / login_seconds, 2)}
        check_tunnels_pass_traffic(tunnels)
        say(f"{tag} {n} {args.client_kind} logins in {login_seconds:.2f}s "
            f"({n / login_seconds:.1f}/s), ping ok; iperf3 TCP {args.seconds:g}s "
            f"(+{args.omit}s omitted) ...")
        run.update(measure_throughput(lab, gateway, tunnels, args.seconds, args.omit))
        run["status"] = "ok" if not run["tunnels_failed"] else "partial"
        say(f"{tag} {describe(run)}")
    except Exception as exc:  # a run that breaks is a result; the next run and gateway go on
        expected = isinstance(exc, (ClientError, IperfError, GatewayError, OSError, ValueError))
        log.log(logging.DEBUG if expected else logging.ERROR, "%s failed", tag, exc_info=True)
        run["status"] = "failed"
        run["error"] = str(exc)
        say(f"{tag} FAILED: {str(exc).splitlines()[0]}")
    finally:
        logout_all(tunnels)
    return run


class GatewayUnavailable(Exception):
    """The gateway cannot be built or started: what to record instead of numbers."""


def gateway_round(lab, plan, kind: str, tunnel_counts: list[int], args, round_no: int
                  ) -> tuple[list[dict], str]:
    """Starts the gateway, measures every tunnel count once, stops it; (runs, gateway log)."""
    workdir = lab.node_dir(lab.topology.router_name) / f"bench-gateway-{kind}"
    try:
        gateway = make_gateway(kind, lab.router, workdir, plan, lab)
    except GatewayError as exc:
        raise GatewayUnavailable(str(exc)) from None
    try:
        gateway.start()
    except Exception as exc:  # whatever the gateway raises, the other gateway still runs
        raise GatewayUnavailable(f"did not start: {exc}") from None
    try:
        runs = []
        for n in tunnel_counts:
            tag = f"[{kind} round {round_no}/{args.repeats}, {n} tunnel{'s' if n > 1 else ''}]"
            run = run_tunnels(lab, plan, gateway, tag, plan_tunnels(lab, plan, n), args)
            runs.append({"round": round_no, **run})
    finally:
        gateway.stop()
    return runs, str(gateway.log_path)


def bench_gateways(lab, plan, args) -> dict[str, dict]:
    """Rounds of all gateways in turn (A B A B ...), so that a drift of the machine over
    the run (warm caches, other load) does not favour the gateway measured last."""
    results = {kind: {"gateway": kind, "status": "ok", "rounds": []} for kind in args.gateway_kinds}
    for round_no in range(1, args.repeats + 1):
        for kind in args.gateway_kinds:
            result = results[kind]
            if result["status"] == "unavailable":
                continue
            try:
                runs, result["log"] = gateway_round(lab, plan, kind, args.tunnel_counts, args,
                                                    round_no)
            except GatewayUnavailable as exc:
                say(f"[{kind}] unavailable: {str(exc).splitlines()[0]}")
                if not result["rounds"]:
                    result.update(status="unavailable", reason=str(exc))
                    continue
                runs = [{"round": round_no, "tunnels": n, "status": "failed", "error": str(exc)}
                        for n in args.tunnel_counts]
            result["rounds"] += runs
    for result in results.values():
        summarize_rounds(result, args.tunnel_counts)
    return results


def summarize_rounds(result: dict, tunnel_counts: list[int]) -> None:
    """result["runs"]: per tunnel count the median round, with every round's Mbit/s."""
    result["runs"] = []
    if result["status"] == "unavailable":
        return
    for n in tunnel_counts:
        rounds = [r for r in result["rounds"] if r["tunnels"] == n]
        measured = [r for r in rounds if "aggregate_mbps" in r]
        errors = [r["error"] for r in rounds if r.get("error")]
        run = dict(median_round(measured)) if measured else {"tunnels": n, "status": "failed"}
        run["round_mbps"] = [r["aggregate_mbps"] for r in measured]
        if errors:
            run["error"] = errors[0]
        result["runs"].append(run)
    if any(r["status"] != "ok" for r in result["rounds"]):
        result["status"] = "failed"


# -- report -----------------------------------------------------------------------------------
def run_for(result: dict | None, tunnels: int) -> dict | None:
    if not result:
        return None
    return next((r for r in result["runs"] if r["tunnels"] == tunnels and "aggregate_mbps" in r),
                None)


def comparison(results: dict[str, dict], tunnel_counts: list[int]) -> list[dict]:
    """Per tunnel count: both gateways' Mbit/s and CPU, and dynipsec/reference."""
    rows = []
    for n in tunnel_counts:
        ref, dyn = run_for(results.get(REFERENCE), n), run_for(results.get("dynipsec"), n)
        ratio = (dyn["aggregate_mbps"] / ref["aggregate_mbps"]
                 if ref and dyn and ref["aggregate_mbps"] else None)
        rows.append({
            "tunnels": n,
            "strongswan_mbps": ref and ref["aggregate_mbps"],
            "dynipsec_mbps": dyn and dyn["aggregate_mbps"],
            "ratio_dynipsec_to_strongswan": round(ratio, 3) if ratio is not None else None,
            "strongswan_cpu_ms_per_mbit": ref and ref["gateway_cpu_ms_per_mbit"],
            "dynipsec_cpu_ms_per_mbit": dyn and dyn["gateway_cpu_ms_per_mbit"],
        })
    return rows


def format_table(rows: list[dict], results: dict[str, dict]) -> str:
    def cell(value, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    header = ("tunnels", "strongSwan Mbit/s", "dynipsec Mbit/s", "ratio dyn/sS",
              "sS CPU ms/Mbit", "dyn CPU ms/Mbit")
    lines = [[str(r["tunnels"]), cell(r["strongswan_mbps"], ".1f"), cell(r["dynipsec_mbps"], ".1f"),
              cell(r["ratio_dynipsec_to_strongswan"], ".2f"),
              cell(r["strongswan_cpu_ms_per_mbit"], ".3f"), cell(r["dynipsec_cpu_ms_per_mbit"], ".3f")]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    out += ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines]
    for kind, result in results.items():
        if result["status"] == "unavailable":
            out.append(f"{kind}: unavailable: {result['reason'].splitlines()[0]}")
        for run in result["runs"]:
            if run.get("error"):
                out.append(f"{kind}, {run['tunnels']} tunnels: {run['error'].splitlines()[0]}")
    out.append("CPU ms/Mbit: gateway process-tree CPU per Mbit/s carried "
               "(cores busy x 1000 / Mbit/s); lower is better")
    return "\n".join(out)


def package_versions() -> dict[str, str]:
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
                            "strongswan-charon", "iperf3", "vpnc"], capture_output=True, text=True)
    versions = dict(line.split(" ", 1) for line in query.stdout.splitlines() if " " in line)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {**versions, "python": platform.python_version(), "dynipsec_commit": commit}


def write_results(args, lab_info: dict, results: dict[str, dict], rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "datapath",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"seconds": args.seconds, "omit": args.omit, "repeats": args.repeats,
                     "tunnels": args.tunnels,
                     "gateways": args.gateways, "client_kind": args.client_kind,
                     "mode": args.mode, "protocol": "TCP", "streams_per_tunnel": 1},
        "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                    "machine": platform.machine()},
        "versions": package_versions(),
        "lab": lab_info,
        "comparison": rows,
        "gateways": results,
    }, indent=1) + "\n")


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 test length (default 5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per gateway, interleaved; the median round is reported (default 3)")
    parser.add_argument("--omit", type=int, default=1,
                        help="seconds of TCP warm-up left out of the numbers (default 1)")
    parser.add_argument("--tunnels", default="1,10", help="tunnel counts, comma-separated")
    parser.add_argument("--gateways", default="strongswan,dynipsec", help="gateways, comma-separated")
    parser.add_argument("--client-kind", default="strongswan", choices=("strongswan", "vpnc"))
    parser.add_argument("--mode", default="aggressive", choices=("main", "aggressive"))
    parser.add_argument("--prefix", default=os.environ.get("DYNIPSEC_LAB_PREFIX") or "dp",
                        help="lab node-name prefix (default: $DYNIPSEC_LAB_PREFIX or dp)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    args = parser.parse_args(argv)
    args.tunnel_counts = [int(n) for n in args.tunnels.split(",") if n.strip()]
    args.gateway_kinds = [g.strip() for g in args.gateways.split(",") if g.strip()]
    if not args.tunnel_counts or min(args.tunnel_counts) < 1:
        parser.error("--tunnels needs positive counts, e.g. 1,10")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("bench/datapath_bench.py needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    from lab.engine import Lab, LabError
    from lab.topology import load_topology

    topology = load_topology("default").with_overrides(prefix=args.prefix,
                                                       clients=max(args.tunnel_counts))
    plan = plan_from_topology(topology)
    results: dict[str, dict] = {}
    say(f"datapath: building the lab (prefix {args.prefix}, {max(args.tunnel_counts)} clients) ...")
    try:
        # no packet capture: at these rates tcpdump would compete with the gateway for CPU
        with Lab(topology, capture=False, kind="datapath bench") as lab:
            lab_info = {"prefix": args.prefix, "run_dir": str(lab.run_dir)}
            servers = start_iperf_servers(lab, plan_tunnels(lab, plan, max(args.tunnel_counts)))
            try:
                results = bench_gateways(lab, plan, args)
            finally:
                stop_servers(servers)
    except (LabError, GatewayError, ValueError, OSError) as exc:
        print(f"datapath: the benchmark broke: {exc}", file=sys.stderr)
        return 1
    rows = comparison(results, args.tunnel_counts)
    write_results(args, lab_info, results, rows)
    say(format_table(rows, results))
    say(f"results: {RESULTS} (evidence in {lab_info['run_dir']})")
    reference = results.get(REFERENCE)
    if reference is not None and reference["status"] != "ok":
        print("datapath: the reference gateway could not be measured", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

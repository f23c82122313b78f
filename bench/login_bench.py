#!/usr/bin/env python3
"""Login cost, rate, scale and churn: dynipsec side by side with the reference strongSwan.

    .venv/bin/python bench/login_bench.py [--quick] [--rounds 3] [--logins 1000]
        [--rate 100] [--scale 10000] [--churn 10000] [--aaa local,radius]

One lab (the default topology with a pool of /18 per VR and --users generated local
users), two client hosts, each running `python -m clients.ikev1_initiator.load` from
its own block of extra source addresses (at most --per-source sessions per address, so
the gateway's per-peer limits of 64 SAs are never reached: the limits stay as the lab
gateway sets them). Every login: Aggressive Mode aes256-sha256-modp2048, Xauth,
Mode-Config, one ESP SA (aes256-sha1), UDP encapsulation forced.

Both gateways do the same AAA work in a mode (AAA_WORK): "local" = local users, no
RADIUS, no accounting; "radius" = Xauth by the lab FreeRADIUS and accounting Start/Stop.

Per AAA mode and round, each gateway in turn (dynipsec, strongSwan, dynipsec, ...):
  * cost: --logins offered at --rate per second, held, then deleted; the gateway's
    CPU (its whole process tree from /proc) over the login phase and over login +
    logout, per established login; latency p50/p99; RSS before any login and while
    all are held (per subscriber); kernel slab (/proc/meminfo, machine-wide);
  * saturation: --logins more, closed loop (--concurrency per host in flight):
    sustained logins/s.
Once per gateway (AAA local): scale (--scale held, offered at --rate; RSS and slab per
subscriber, time to log all in and all out) and churn (--churn login/logout cycles,
closed loop, then the leftovers: addresses, licences, TUNs, routes, SA tables, fds,
RSS against the start). Medians over rounds; ratios dynipsec / strongSwan.

Writes bench/results/login.json. Exit 0 when it ran, 1 when it broke.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.engine import Lab, LabError  # noqa: E402
from lab.gateways import GatewayError, plan_from_topology  # noqa: E402
from lab.gateways.dynipsec import DynipsecGateway  # noqa: E402
from lab.gateways.strongswan import StrongSwanGateway  # noqa: E402
from lab.loadgen import (GatewayProbe, LoadProcess, LoadSpec, SourceAddresses,  # noqa: E402
                         held_count, leftovers, meminfo_kb, run_loads, scaled_topology,
                         source_blocks, user_template, wait_for)
from lab.topology import load_topology  # noqa: E402

RESULTS = REPO / "bench" / "results" / "login.json"
GATEWAYS = ("dynipsec", "strongswan")
HOSTS = 2
#: what both gateways do per login in each AAA mode (the same work on both)
AAA_WORK = {
    "local": {"accounting": False,
              "functions": "Xauth against local users (dynipsec aaa.local_users, strongSwan "
                           "xauth-generic secrets); no RADIUS, no accounting on either"},
    "radius": {"accounting": True,
               "functions": "Xauth by RADIUS Access-Request (PAP) to the lab FreeRADIUS and "
                            "accounting Start/Stop on both (dynipsec aaa.accounting, "
                            "strongSwan eap-radius xauth-radius + accounting)"},
}

log = logging.getLogger("login_bench")


_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line, with the seconds since the benchmark started."""
    print(f"[login +{time.monotonic() - _STARTED:.0f}s] {message}", flush=True)


# -- one gateway ---------------------------------------------------------------------------
class Bench:
    def __init__(self, lab, args) -> None:
        self.lab = lab
        self.args = args
        self.plan = plan_from_topology(lab.topology)
        self.hosts = [slot for slot in lab.clients if not slot.behind_nat][:HOSTS]
        self.user, self.password = user_template(lab.topology)
        self.next_user = 1
        self.gateway = None
        self.probe: GatewayProbe | None = None

    def start(self, kind: str, aaa: str, tag: str):
        workdir = self.lab.node_dir(self.lab.topology.router_name) / f"bench-{tag}"
        if kind == "dynipsec":
            gateway = DynipsecGateway(self.lab.router, workdir, self.plan, self.lab, aaa=aaa,
                                      log_level=self.args.log_level,
                                      licenses=self.args.users + 10,
                                      accounting=AAA_WORK[aaa]["accounting"])
        else:
            gateway = StrongSwanGateway(self.lab.router, workdir, self.plan, self.lab, aaa=aaa)
        self.gateway = gateway.start()
        if not wait_for(lambda: gateway.ready, 30):
            raise GatewayError(f"{kind} gateway not ready")
        self.probe = GatewayProbe.of(gateway)
        time.sleep(1.0)  # let start-up work settle before the idle figures
        return gateway

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.gateway = self.probe = None

    def users(self, count: int) -> int:
        """First user number of a block of `count` (wraps around the user database)."""
        if self.next_user + count - 1 > self.args.users:
            self.next_user = 1
        first, self.next_user = self.next_user, self.next_user + count
        return first

    def processes(self, tag: str, count: int, blocks, **pace) -> list[LoadProcess]:
        per_host = [count // HOSTS + (1 if k < count % HOSTS else 0) for k in range(HOSTS)]
        first = self.users(count)
        processes = []
        for k, (slot, sources) in enumerate(zip(self.hosts, blocks)):
            group = self.plan.groups[k % len(self.plan.groups)]
            host_pace = dict(pace)
            if "rate" in host_pace:
                host_pace["rate"] = host_pace["rate"] / HOSTS
            spec = LoadSpec(server=self.plan.gateway, group=group.group,
                            psk=self.plan.psk_for(group.group, "aggressive"), user=self.user,
                            password=self.password, first=first + sum(per_host[:k]),
                            count=per_host[k], mode="aggressive", timeout=self.args.timeout,
                            **host_pace)
            workdir = self.lab.node_dir(slot.name) / f"load-{tag}"
            processes.append(LoadProcess(self.lab, slot.host, workdir, spec,
                                         sources[:self.sources_for(per_host[k])]))
        return processes

    def sources_for(self, count: int) -> int:
        """Source addresses for `count` sessions of one host: at most --per-source
        sessions each, and one login in flight per source in the closed loop
        (strongSwan's charon drops the IKE_SA_INITs of a peer address holding 5
        half-open SAs, `charon.block_threshold`)."""
        return sources_per_host(count, self.args.per_source, self.args.concurrency)

    def held_load(self, tag: str, count: int, blocks, **pace) -> dict:
        """Logins, a measurement while all are held, release, a measurement when gone."""
        gateway, probe = self.gateway, self.probe
        marks: dict = {"before": probe.snapshot(), "slab_before": meminfo_kb("Slab"),
                       "busy_before": machine_busy_seconds(), "t0": time.monotonic()}

        def on_held() -> None:
            marks["held"] = probe.snapshot()
            marks["slab_held"] = meminfo_kb("Slab")
            marks["t_held"] = time.monotonic()
            marks["held_count"] = held_count(gateway)

        def on_released() -> None:
            gone = wait_for(lambda: held_count(gateway) == 0, self.args.timeout + 60,
                            interval=0.25)
            marks["after"] = probe.snapshot()
            # from the release (right after on_held) until the gateway holds nobody
            marks["released_s"] = (round(time.monotonic() - marks["t_held"], 3)
                                   if gone is not None else None)
            marks["busy_after"] = machine_busy_seconds()

        load = run_loads(self.processes(tag, count, blocks, **pace),
                         held_timeout=count / 5 + self.args.timeout + 60,
                         on_held=on_held, on_released=on_released)
        established = max(1, load["established"])
        cpu_login = probe.cpu_between(marks["before"], marks["held"])
        cpu_all = probe.cpu_between(marks["before"], marks["after"])
        rss_before = probe.rss_kb(marks["before"])
        rss_held = probe.rss_kb(marks["held"])
        return {
            "offered": load["offered"], "established": load["established"],
            "failed": load["failed"], "failures": load["failures"],
            "held_at_gateway": marks["held_count"],
            "cpu_login_ms": round(cpu_login * 1000 / established, 3),
            "cpu_login_logout_ms": round(cpu_all * 1000 / established, 3),
            "latency_ms": {k: v for k, v in load["latency_ms"].items() if k != "buckets"},
            "latency_buckets": load["latency_ms"]["buckets"],
            "established_per_s": load["established_per_s"], "rate_per_s": load["rate_per_s"],
            "login_s": load["login_s"], "logout_s": marks["released_s"],
            "rss_before_kb": rss_before, "rss_held_kb": rss_held,
            "rss_per_subscriber_kb": round((rss_held - rss_before) / established, 3),
            "slab_per_subscriber_kb": round((marks["slab_held"] - marks["slab_before"])
                                            / established, 3),
            "gateway_processes": len(marks["held"]),
            "machine_busy_s": round(marks["busy_after"] - marks["busy_before"], 2),
            "retransmits": load["retransmits"], "start_lag_max_s": load["start_lag_max_s"],
            "sources": load["sources"],
        }

    def churn(self, tag: str, cycles: int, blocks) -> dict:
        gateway, probe = self.gateway, self.probe
        warm = run_loads(self.processes(f"{tag}-warm", 4 * self.args.concurrency, blocks,
                                        concurrency=self.args.concurrency, release_each=True),
                         held_timeout=self.args.timeout + 120)
        wait_for(lambda: held_count(gateway) == 0, 30)
        start = {"rss_kb": probe.rss_kb(probe.snapshot()), "fds": probe.fds(),
                 "processes": probe.processes(), **leftovers(gateway, self.lab)}
        t0 = time.monotonic()
        load = run_loads(self.processes(tag, cycles, blocks, concurrency=self.args.concurrency,
                                        release_each=True),
                         held_timeout=cycles / 2 + self.args.timeout + 120)
        settled = wait_for(lambda: held_count(gateway) == 0, 60)
        time.sleep(1.0)
        end = {"rss_kb": probe.rss_kb(probe.snapshot()), "fds": probe.fds(),
               "processes": probe.processes(), **leftovers(gateway, self.lab)}
        # what grew (fewer fds at the end than at the start is no leak)
        leaked = {k: end[k] - start[k] for k in end if k != "rss_kb" and end[k] > start[k]}
        rss_growth = (end["rss_kb"] - start["rss_kb"]) / max(1, start["rss_kb"])
        return {"cycles": cycles, "established": load["established"], "failed": load["failed"],
                "failures": load["failures"], "warmup": warm["established"],
                "seconds": round(time.monotonic() - t0, 2), "settled_s": settled,
                "cycles_per_s": load["established_per_s"], "start": start, "end": end,
                "leaked": leaked, "rss_growth": round(rss_growth, 4),
                "clean": not leaked and abs(rss_growth) <= 0.05}


def sources_per_host(count: int, per_source: int, concurrency: int) -> int:
    return max(1, math.ceil(count / per_source), concurrency)


def machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


# -- rounds --------------------------------------------------------------------------------
def guarded(what: str, step):
    try:
        return step()
    except (GatewayError, LabError, OSError, ValueError) as exc:
        say(f"{what}: unavailable: {exc}")
        return {"unavailable": str(exc)}


def round_of(bench: Bench, kind: str, aaa: str, n: int, blocks, args) -> dict:
    tag = f"{kind}-{aaa}-{n}"

    def run() -> dict:
        bench.start(kind, aaa, tag)
        try:
            idle = bench.probe.snapshot()
            idle_kb, idle_pss_kb = bench.probe.rss_kb(idle), bench.probe.pss_kb(idle)
            cost = bench.held_load(f"{tag}-cost", args.logins, blocks, rate=args.rate)
            say(f"{tag}: cost {cost['established']}/{cost['offered']} "
                f"{cost['cpu_login_ms']} ms CPU/login, {cost['cpu_login_logout_ms']} ms "
                f"login+logout, p50 {cost['latency_ms']['p50']} p99 "
                f"{cost['latency_ms']['p99']} ms, idle RSS {idle_kb / 1024:.1f} MB "
                f"(PSS {idle_pss_kb / 1024:.1f} MB)")
            saturation = bench.held_load(f"{tag}-sat", args.logins, blocks,
                                         concurrency=args.concurrency)
            say(f"{tag}: saturation {saturation['established_per_s']} logins/s "
                f"({saturation['established']}/{saturation['offered']}), "
                f"{saturation['cpu_login_ms']} ms CPU/login")
            return {"rss_idle_kb": idle_kb, "pss_idle_kb": idle_pss_kb, "cost": cost,
                    "saturation": saturation}
        finally:
            bench.stop()
    return guarded(tag, run)


def once_of(bench: Bench, kind: str, blocks, args) -> dict:
    out = {}
    if args.scale:
        def scale() -> dict:
            bench.start(kind, "local", f"{kind}-scale")
            try:
                result = bench.held_load(f"{kind}-scale", args.scale, blocks, rate=args.rate)
                result["rss_idle_kb"] = result["rss_before_kb"]
                return result
            finally:
                bench.stop()
        out["scale"] = guarded(f"{kind} scale", scale)
        s = out["scale"]
        if "unavailable" not in s:
            say(f"{kind}: scale {s['established']}/{s['offered']} held, "
                f"{s['rss_per_subscriber_kb']} kB RSS and {s['slab_per_subscriber_kb']} kB slab "
                f"per subscriber, p99 {s['latency_ms']['p99']} ms, in {s['login_s']} s, "
                f"out {s['logout_s']} s")
    if args.churn:
        def churn() -> dict:
            bench.start(kind, "local", f"{kind}-churn")
            try:
                return bench.churn(f"{kind}-churn", args.churn, blocks)
            finally:
                bench.stop()
        out["churn"] = guarded(f"{kind} churn", churn)
        c = out["churn"]
        if "unavailable" not in c:
            say(f"{kind}: churn {c['established']}/{c['cycles']} cycles, leaked {c['leaked']}, "
                f"RSS {c['rss_growth'] * 100:+.1f} %")
    return out


# -- summary -----------------------------------------------------------------------------------
FIGURES = [  # (name, path into a round, unit, better)
    ("gateway CPU per login", ("cost", "cpu_login_ms"), "ms", "lower"),
    ("gateway CPU per login + logout", ("cost", "cpu_login_logout_ms"), "ms", "lower"),
    ("login latency p50 at the offered rate", ("cost", "latency_ms", "p50"), "ms", "lower"),
    ("login latency p99 at the offered rate", ("cost", "latency_ms", "p99"), "ms", "lower"),
    ("sustained logins/s at saturation", ("saturation", "established_per_s"), "1/s", "higher"),
    ("latency p99 at saturation", ("saturation", "latency_ms", "p99"), "ms", "lower"),
    ("resident memory before any login", ("rss_idle_kb",), "kB", "lower"),
    ("proportional set size (PSS) before any login", ("pss_idle_kb",), "kB", "lower"),
    ("memory per subscriber held", ("cost", "rss_per_subscriber_kb"), "kB", "lower"),
    ("kernel slab per subscriber (machine-wide)", ("cost", "slab_per_subscriber_kb"), "kB",
     "lower"),
    ("time to log all out", ("cost", "logout_s"), "s", "lower"),
]


def dig(record: dict, path) -> float | None:
    for key in path:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record if isinstance(record, (int, float)) else None


def median_of(rounds: list[dict], path) -> float | None:
    values = [v for v in (dig(r, path) for r in rounds) if v is not None]
    return round(statistics.median(values), 3) if values else None


def comparison(results: dict, aaa: str) -> list[dict]:
    rows = []
    for name, path, unit, better in FIGURES:
        values = {kind: median_of(results[aaa].get(kind, []), path) for kind in GATEWAYS}
        d, s = values["dynipsec"], values["strongswan"]
        rows.append({"figure": name, "unit": unit, "better": better, "aaa": aaa, **values,
                     "ratio": round(d / s, 3) if d is not None and s else None})
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (make bench QUICK=1)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--logins", type=int, default=None)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=16, help="in flight per host (saturation)")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--churn", type=int, default=None)
    p.add_argument("--users", type=int, default=None, help="local user database size")
    p.add_argument("--per-source", type=int, default=24)
    p.add_argument("--aaa", default="local,radius")
    p.add_argument("--gateways", default=",".join(GATEWAYS))
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--log-level", default="warning", help="dynipsec's log level")
    p.add_argument("--prefix", default=os.environ.get("DYNIPSEC_LAB_PREFIX", "lb"))
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.logins = args.logins or (200 if quick else 1000)
    args.scale = args.scale if args.scale is not None else (0 if quick else 10000)
    args.churn = args.churn if args.churn is not None else (200 if quick else 10000)
    args.users = args.users or max(1000 if quick else 12000, args.scale + args.logins)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    kinds = [k for k in args.gateways.split(",") if k]
    aaa_modes = [a for a in args.aaa.split(",") if a]
    base = load_topology("default").with_overrides(clients=HOSTS, prefix=args.prefix)
    topology = scaled_topology(base, users=args.users)
    most = max(args.logins, args.scale, args.churn)
    per_host = sources_per_host(math.ceil(most / HOSTS), args.per_source, args.concurrency)
    results: dict = {aaa: {k: [] for k in kinds} for aaa in aaa_modes}
    once: dict = {}
    started = time.monotonic()
    say(f"lab {args.prefix}: {args.users} users, {HOSTS} hosts x {per_host} source addresses")
    try:
        with Lab(topology, capture=False, kind="login bench") as lab:
            bench = Bench(lab, args)
            blocks = source_blocks(str(topology.access.subnet), HOSTS, per_host,
                                   exclude=[slot.address for slot in lab.clients])
            with SourceAddresses(bench.hosts[0].host, blocks[0],
                                 neighbours=[lab.router]), \
                    SourceAddresses(bench.hosts[1].host, blocks[1],
                                    neighbours=[lab.router]):
                for aaa in aaa_modes:
                    for n in range(args.rounds):
                        for kind in kinds:
                            say(f"round {n + 1}/{args.rounds} {kind} aaa={aaa}")
                            results[aaa][kind].append(round_of(bench, kind, aaa, n, blocks, args))
                for kind in kinds:
                    once[kind] = once_of(bench, kind, blocks, args)
            lab_info = {"prefix": args.prefix, "run_dir": str(lab.run_dir.relative_to(REPO))
                        if lab.run_dir.is_relative_to(REPO) else lab.run_dir.name}
    except (LabError, OSError) as exc:
        say(f"the lab broke: {exc}")
        return 1
    rows = [row for aaa in aaa_modes for row in comparison(results, aaa)]
    document = {
        "benchmark": "login", "quick": args.quick, "seconds": round(time.monotonic() - started, 1),
        "conditions": {"machine": platform.node(), "cpus": os.cpu_count(),
                       "loadavg_end": os.getloadavg(), "python": platform.python_version(),
                       "user_database": args.users, "hosts": HOSTS,
                       "source_addresses": HOSTS * per_host, "per_source": args.per_source,
                       "limits": "lab gateway defaults (dynipsec 64 SAs and 64 half-open per "
                                 "peer per worker; strongSwan block_threshold 5 half-open per "
                                 "peer); sources spread instead (one login in flight per "
                                 "source in the closed loop)",
                       "login": "aggressive aes256-sha256-modp2048 + Xauth + Mode-Config + "
                                "1 ESP SA aes256-sha1, UDP encapsulation",
                       "aaa_work": {aaa: AAA_WORK[aaa]["functions"] for aaa in aaa_modes},
                       "rate": args.rate, "logins": args.logins, "rounds": args.rounds,
                       "concurrency_per_host": args.concurrency, "scale": args.scale,
                       "churn": args.churn},
        "lab": lab_info, "comparison": rows, "rounds": results, "once": once,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    for row in rows:
        say(f"{row['aaa']:6} {args.users} users {row['figure']:45} dynipsec {row['dynipsec']} strongswan "
            f"{row['strongswan']} {row['unit']} ratio {row['ratio']}")
    say(f"wrote {args.output} in {document['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

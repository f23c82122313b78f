#!/usr/bin/env python3
"""Honest logins under a spoofed message 1 flood: dynipsec side by side with strongSwan.

    .venv/bin/python bench/flood_bench.py [--quick] [--logins 20] [--rate 5000]
    .venv/bin/python bench/flood_bench.py spoof --target ADDR --rate R --seconds S

One lab (the default topology, 3 client hosts). Per gateway (dynipsec, then the
reference strongSwan): --logins honest logins one after another with the project's
initiator (Aggressive Mode keyid:vr1 + Xauth + Mode-Config + Quick Mode) with no flood,
then the same while another client host sends spoofed Main Mode (and a share of
Aggressive Mode) message 1s at --rate per second, each from a forged address of
198.18.208.0/20 (16 prefixes /24 x 16 hosts: inside the lab's access LAN, on-link for
the router, so the gateway's answers end at an unanswered ARP and never leave the lab).
Latency p50/p99 of the logins (initiator start to its Quick Mode), failures, and
dynipsec's engine counters (evictions, drops) of the flood.

`spoof` is the sender alone (it runs inside a client host: raw socket, IP_HDRINCL);
tests/lab/test_flood.py uses it too.

Writes bench/results/flood.json (with `section`: Markdown lines for the report).
Exit 0 when it ran, 1 when it broke.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from responder.ikev1.enums import ExchangeType  # noqa: E402
from responder.ikev1.message import Header, serialize_with_body  # noqa: E402
from responder.ikev1.payloads import (DataAttribute, Identification, KeyExchange,  # noqa: E402
                                      Nonce, Proposal, SecurityAssociation, Transform,
                                      serialize_payloads)

RESULTS = REPO / "bench" / "results" / "flood.json"
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
SCRIPT = str(Path(__file__).resolve())
GATEWAYS = ("dynipsec", "strongswan")
#: forged sources: inside the access LAN 198.18.0.0/16, clear of the lab's hosts
SPOOF_NET = "198.18.208.0/20"
SPOOF_HOSTS_PER_PREFIX = 16

#: (encryption, key length, hash, group) offered in a forged Main Mode message 1,
#: with PSK and Xauth-PSK each: whatever the gateway's proposals, one is taken
MM_TRANSFORMS = [(7, 256, 4, 14), (7, 128, 4, 14), (7, 256, 2, 2), (7, 128, 2, 2), (5, 0, 2, 2)]
AUTH_METHODS = (65001, 1)


def say(message: str) -> None:
    print(f"[flood] {message}", flush=True)


# -- the forged datagrams --------------------------------------------------------------------
def transform(number: int, enc: int, key_length: int, hash_alg: int, group: int,
              auth: int) -> Transform:
    attributes = [DataAttribute.tv(1, enc), DataAttribute.tv(2, hash_alg),
                  DataAttribute.tv(3, auth), DataAttribute.tv(4, group),
                  DataAttribute.tv(11, 1), DataAttribute.tlv(12, struct.pack("!I", 28800))]
    if key_length:
        attributes.append(DataAttribute.tv(14, key_length))
    return Transform(number=number, transform_id=1, attributes=attributes)


def _message(exchange: int, payloads) -> bytes:
    first, chain = serialize_payloads(payloads)
    return serialize_with_body(Header(os.urandom(8), bytes(8), exchange), first, chain)


def main_mode_1() -> bytes:
    offers = [(t, auth) for t in MM_TRANSFORMS for auth in AUTH_METHODS]
    sa = SecurityAssociation(proposals=[Proposal(1, 1, b"", [
        transform(n + 1, *t, auth) for n, (t, auth) in enumerate(offers)])])
    return _message(ExchangeType.IDENTITY_PROTECTION, [sa])


def aggressive_mode_1(group: str) -> bytes:
    """aes256-sha256-modp2048, Xauth-PSK, ID_KEY_ID `group`, a random KE."""
    sa = SecurityAssociation(proposals=[Proposal(1, 1, b"", [transform(1, 7, 256, 4, 14, 65001)])])
    return _message(ExchangeType.AGGRESSIVE, [
        sa, KeyExchange(os.urandom(256)), Nonce(os.urandom(32)), Identification.key_id(group)])


def spoof_sources(network: str = SPOOF_NET, per_prefix: int = SPOOF_HOSTS_PER_PREFIX) -> list[str]:
    """Hosts .10.. of every /24 of `network`, the prefixes interleaved."""
    prefixes = list(ipaddress.ip_network(network).subnets(new_prefix=24))
    return [str(p.network_address + 10 + h) for h in range(per_prefix) for p in prefixes]


def udp_datagram(source: str, target: str, payload: bytes, port: int = 500) -> bytes:
    """IPv4 + UDP (checksum 0: none); the kernel fills in IP length, id and checksum."""
    udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(target))
    return ip + udp


def spoof(target: str, rate: float, seconds: float, count: int, aggressive_share: float,
          group: str, sources: list[str]) -> dict:
    """Send forged message 1s at `rate` per second until `seconds`, `count` or SIGTERM
    (the benchmark ends the flood with the logins it measures), then the tally."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    aggressive_every = int(1 / aggressive_share) if aggressive_share > 0 else 0
    sent = aggressive = 0
    started = time.monotonic()
    batch = max(1, int(rate / 200))
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    try:
        while sent < count and time.monotonic() - started < seconds and not stopped:
            for _ in range(batch):
                if aggressive_every and sent % aggressive_every == 0:
                    payload = aggressive_mode_1(group)
                    aggressive += 1
                else:
                    payload = main_mode_1()
                sock.sendto(udp_datagram(sources[sent % len(sources)], target, payload),
                            (target, 0))
                sent += 1
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        sock.close()
    return {"sent": sent, "aggressive": aggressive,
            "seconds": round(time.monotonic() - started, 3), "sources": len(sources)}


def spoof_argv(target: str, *, rate: float, seconds: float, count: int = 10**9,
               aggressive_share: float = 0.1, group: str = "vr1") -> list[str]:
    """The command line of the sender (run it inside a lab host)."""
    return [PYTHON, SCRIPT, "spoof", "--target", target, "--rate", str(rate),
            "--seconds", str(seconds), "--count", str(count),
            "--aggressive-share", str(aggressive_share), "--group", group]


# -- an honest login ---------------------------------------------------------------------------
def honest_login(lab, plan, node: str, user: str, *, mode: str = "aggressive",
                 group: str = "vr1", timeout: float = 30.0) -> dict:
    """One session of `python -m clients.ikev1_initiator` on `node`: its `session=`
    line as a dict, plus `wall_ms` (process start to exit)."""
    workdir = lab.node_dir(node)
    psk_file, password_file = workdir / "flood.psk", workdir / "flood.pw"
    for path, secret in ((psk_file, plan.psk_for(group, mode)),
                         (password_file, plan.users[user])):
        path.write_text(secret)
        os.chmod(path, 0o600)
    argv = [PYTHON, "-m", "clients.ikev1_initiator", "--server", str(plan.gateway),
            "--mode", mode, "--id", f"keyid:{group}", "--psk-file", str(psk_file),
            "--user", user, "--password-file", str(password_file), "--timeout", "15",
            "--remote-selector", str(plan.group(group).intranet)]
    started = time.monotonic()
    process = lab.node(node).popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    lab.track_pid(process.pid, "ikev1-initiator flood")
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        lab.untrack_pid(process.pid)
    lines = [dict(field.split("=", 1) for field in line.split())
             for line in out.splitlines() if line.startswith("session=")]
    line = lines[0] if len(lines) == 1 else {"ok": "no", "error": "no-session-line"}
    line["wall_ms"] = round((time.monotonic() - started) * 1000, 1)
    line["stderr_tail"] = err[-2000:]
    return line


class Flood:
    """The sender as a process of its own on a lab host (ended by its PID)."""

    def __init__(self, lab, node: str, target: str, **options) -> None:
        self.lab, self.node = lab, node
        self.argv = spoof_argv(target, **options)
        self.process = None

    def __enter__(self) -> "Flood":
        self.process = self.lab.node(self.node).popen(
            self.argv, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lab.track_pid(self.process.pid, "flood sender")
        return self

    def result(self, timeout: float = 60.0) -> dict:
        out, err = self.process.communicate(timeout=timeout)
        self.lab.untrack_pid(self.process.pid)
        for line in out.splitlines():
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"flood sender: no result: {err[-2000:]}")

    def stop(self, timeout: float = 30.0) -> dict:
        """End the flood now (SIGTERM) and return the sender's tally."""
        self.process.terminate()
        return self.result(timeout)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.lab.untrack_pid(self.process.pid)


def engine_counters(gateway) -> dict:
    """dynipsec's engine counters summed over the workers (show statistics)."""
    totals: dict[str, int] = {}
    reply = gateway.request({"cmd": "show", "what": "statistics"})
    for worker in reply.get("workers") or []:
        for key, value in (worker.get("engine") or {}).items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals


# -- the benchmark -----------------------------------------------------------------------------
def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


def latency_of(lines: list[dict]) -> dict:
    done = [float(line["wall_ms"]) for line in lines if line.get("ok") == "yes"]
    return {"logins": len(lines), "failures": len(lines) - len(done),
            "p50_ms": percentile(done, 0.5), "p99_ms": percentile(done, 0.99),
            "mean_ms": round(statistics.fmean(done), 1) if done else None}


def phase(lab, plan, node: str, users: list[str]) -> list[dict]:
    return [honest_login(lab, plan, node, user) for user in users]


def run_gateway(lab, plan, kind: str, args) -> dict:
    from lab.gateways import make_gateway
    from lab.gateways.dynipsec import DynipsecGateway

    workdir = lab.node_dir(lab.topology.router_name) / f"flood-{kind}"
    if kind == "dynipsec":
        gateway = DynipsecGateway(lab.router, workdir, plan, lab, aaa="local",
                                  log_level="warning")
    else:
        gateway = make_gateway(kind, lab.router, workdir, plan, lab)
    honest_node, flood_node = lab.clients[0].name, lab.clients[1].name
    users = [u for u in sorted(plan.users) if u.startswith("user")]
    with gateway:
        time.sleep(1.0)
        idle = phase(lab, plan, honest_node, users[:args.logins])
        before = engine_counters(gateway) if kind == "dynipsec" else {}
        with Flood(lab, flood_node, str(plan.gateway), rate=args.rate,
                   seconds=args.flood_seconds) as flood:
            time.sleep(2.0)  # the half-open tables fill first
            flooded = phase(lab, plan, honest_node, users[args.logins:2 * args.logins])
            sent = flood.stop()
        after = engine_counters(gateway) if kind == "dynipsec" else {}
    counters = {k: after[k] - before.get(k, 0) for k in sorted(after)
                if after[k] != before.get(k, 0) and k.startswith(("evicted_", "dropped_",
                                                                  "notify_", "phase1_",
                                                                  "half_open"))}
    return {"no_flood": latency_of(idle), "flood": latency_of(flooded), "sender": sent,
            "engine_counters_during_flood": counters,
            "failed_logins": [{k: v for k, v in line.items() if k != "stderr_tail"}
                              for line in idle + flooded if line.get("ok") != "yes"][:5]}


def section(results: dict, args) -> list[str]:
    lines = [f"### Honest logins under a spoofed message 1 flood ({args.rate:g} pkt/s)", "",
             "| gateway | phase | logins | failures | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for kind, result in results.items():
        for name in ("no_flood", "flood"):
            r = result[name]
            lines.append(f"| {kind} | {name.replace('_', ' ')} | {r['logins']} | {r['failures']} "
                         f"| {r['p50_ms']} | {r['p99_ms']} |")
    counters = results.get("dynipsec", {}).get("engine_counters_during_flood")
    if counters:
        lines += ["", "dynipsec engine counters during the flood: " +
                  ", ".join(f"`{k}` {v}" for k, v in counters.items())]
    return lines + [""]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("spoof", help="send forged message 1s (inside a lab host)")
    s.add_argument("--target", required=True)
    s.add_argument("--rate", type=float, default=5000.0)
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--count", type=int, default=10**9)
    s.add_argument("--aggressive-share", type=float, default=0.1)
    s.add_argument("--group", default="vr1")
    p.add_argument("--quick", action="store_true", help="small sizes (make bench QUICK=1)")
    p.add_argument("--logins", type=int, default=None, help="honest logins per phase")
    p.add_argument("--rate", type=float, default=5000.0, help="spoofed message 1s per second")
    p.add_argument("--gateways", default=",".join(GATEWAYS))
    p.add_argument("--prefix", default=os.environ.get("DYNIPSEC_LAB_PREFIX", "fb"))
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.command is None:
        args.logins = args.logins or (3 if args.quick else 20)
        # an upper bound: the flood ends when the flooded logins have (Flood.stop),
        # and each login gives up after 30 s
        args.flood_seconds = 2.0 + args.logins * 30.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "spoof":
        print(json.dumps(spoof(args.target, args.rate, args.seconds, args.count,
                               args.aggressive_share, args.group, spoof_sources())), flush=True)
        return 0
    from lab.engine import Lab, LabError
    from lab.gateways import GatewayError, plan_from_topology
    from lab.topology import load_topology

    started = time.monotonic()
    topology = load_topology("default").with_overrides(clients=3, prefix=args.prefix)
    results: dict = {}
    try:
        with Lab(topology, capture=False, kind="flood bench") as lab:
            plan = plan_from_topology(lab.topology)
            for kind in [k for k in args.gateways.split(",") if k]:
                say(f"{kind}: {args.logins} logins, then {args.logins} under "
                    f"{args.rate:g} spoofed pkt/s")
                results[kind] = run_gateway(lab, plan, kind, args)
                say(f"{kind}: {json.dumps({k: results[kind][k] for k in ('no_flood', 'flood')})}")
    except (LabError, GatewayError, OSError, RuntimeError) as exc:
        say(f"the lab broke: {exc}")
        return 1
    document = {
        "benchmark": "flood", "quick": args.quick, "seconds": round(time.monotonic() - started, 1),
        "conditions": {"machine": platform.node(), "cpus": os.cpu_count(),
                       "loadavg_end": os.getloadavg(), "python": platform.python_version(),
                       "rate": args.rate, "logins_per_phase": args.logins,
                       "spoofed_sources": f"{SPOOF_NET}: 16 prefixes /24 x "
                                          f"{SPOOF_HOSTS_PER_PREFIX} hosts",
                       "spoofed_mix": "90 % Main Mode msg 1, 10 % Aggressive Mode msg 1 "
                                      "(keyid:vr1, a key the gateway has)",
                       "login": "aggressive keyid:vr1 + Xauth (local users) + Mode-Config + "
                                "Quick Mode, one after another; latency = initiator process "
                                "start to exit",
                       "gateway_limits": "defaults of each gateway"},
        "results": results,
    }
    document["section"] = section(results, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print("\n".join(document["section"]))
    say(f"wrote {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

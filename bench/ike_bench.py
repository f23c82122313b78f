#!/usr/bin/env python3
"""IKEv1 responder CPU per login, in memory (no sockets), responder side only.

Logins are driven by the product initiator (clients/ikev1_initiator) against
one `Responder` the way the worker's transport drives it: after every
datagram the engine's output, its events and `get_timer()` are collected
(and `handle_timer` runs when due). Only the time spent inside Responder /
TransactionTask calls is counted (`time.process_time_ns` around each call),
never the initiator's.

Scenarios (per-login responder CPU, median over `--logins` sequential logins
on one responder, repeated `--repeat` times; median of the medians):

* MM / PSK / MODP-2048 (strongSwan client defaults),
* AM / MODP-1024 (vpnc's default dh2; aes256-sha1),
* AM / ECP-256,
each without and with Xauth + Mode-Config (the real TransactionTask; the
"daemon" answers XauthCredentials at once with `set_config` + `xauth_result`).
Every login ends with Quick Mode (one ESP SA).

Scale: 1,000 and 10,000 sequential logins held at once (MM/MODP-2048 + Xauth +
Mode-Config): logins/s (responder CPU only, and wall time including the
initiator), memory per SA (tracemalloc, in a separate run so that tracing does
not distort the timings), `get_timer()` / `handle_timer()` cost with all SAs
held (nothing due; and a DPD burst where every SA is due).

    .venv/bin/python bench/ike_bench.py            # full run, writes bench/results/ike.json
    .venv/bin/python bench/ike_bench.py --quick    # small numbers, for a smoke test

Reference: a strongSwan 5.9.8 gateway spends 6.0-6.6 ms CPU per login on the
2-core lab machine (IKEv1 Xauth PSK, 20 to 200 concurrent strongSwan clients).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import platform
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from clients.ikev1_initiator import IdentitySpec, InitiatorConfig, InitiatorSession, Mode  # noqa: E402
from clients.ikev1_initiator.config import EspOffer, IkeOffer  # noqa: E402
from responder.ikev1.engine import Responder  # noqa: E402
from responder.ikev1.enums import (  # noqa: E402
    AuthMethod,
    EncryptionAlgorithm,
    EspTransformId,
    ExchangeType,
    GroupDescription,
    HashAlgorithm,
    IdType,
    IpsecAuthAlgorithm,
)
from responder.ikev1.exchanges.transaction import TransactionTask  # noqa: E402
from responder.ikev1.modecfg import ModeConfig  # noqa: E402
from responder.ikev1.policy import Identity, Limits, PresharedKey, ResponderPolicy  # noqa: E402
from responder.ikev1.transaction_events import XauthCredentials  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SERVER = "198.18.0.1"
PSK = b"bench-group-key"
GROUP = Identity(IdType.KEY_ID, "vpngroup")
PASSWORD = b"bench-password"
REFERENCE_MS = (6.0, 6.6)
#: simulated time between two logins (10,000 logins = 5 s: no DPD probe or
#: timeout falls due while the SAs are being built)
LOGIN_SPACING = 0.0005


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: Mode
    proposal: IkeOffer
    xauth: bool
    identity: str = "keyid:vpngroup"


def _proposal(group: int, *, xauth: bool, hash_alg: int = HashAlgorithm.SHA2_256) -> IkeOffer:
    auth = AuthMethod.XAUTH_INIT_PSK if xauth else AuthMethod.PRE_SHARED_KEY
    return IkeOffer(EncryptionAlgorithm.AES_CBC, 256, hash_alg, group, auth)


def scenarios() -> list[Scenario]:
    out = []
    for xauth in (False, True):
        suffix = " +Xauth+MCfg" if xauth else ""
        out += [
            Scenario(f"MM/PSK/MODP-2048{suffix}", Mode.MAIN,
                     _proposal(GroupDescription.MODP_2048, xauth=xauth), xauth),
            Scenario(f"AM/PSK/MODP-1024 (vpnc){suffix}", Mode.AGGRESSIVE,
                     _proposal(GroupDescription.MODP_1024, xauth=xauth,
                               hash_alg=HashAlgorithm.SHA), xauth),
            Scenario(f"AM/PSK/ECP-256{suffix}", Mode.AGGRESSIVE,
                     _proposal(GroupDescription.ECP_256, xauth=xauth), xauth),
        ]
    return out


def seeded(seed: int):
    generator = random.Random(seed)
    return generator.randbytes


# ---------------------------------------------------------------- the meter
@dataclass
class Meter:
    """Responder-side CPU time, accumulated around each engine call, minus the
    meter's own cost per call (process_time_ns is a syscall, ~0.8 us here)."""

    raw_ns: int = 0
    calls: int = 0
    overhead_ns: float = 0.0

    def __post_init__(self) -> None:
        samples = []
        for _ in range(5):
            before_ns, before_calls = self.raw_ns, self.calls
            for _ in range(2000):
                self.run(int)
            samples.append((self.raw_ns - before_ns) / (self.calls - before_calls))
        self.overhead_ns = statistics.median(samples)
        self.raw_ns = self.calls = 0

    @property
    def cpu_ns(self) -> float:
        return self.raw_ns - self.calls * self.overhead_ns

    def run(self, fn, *args):
        start = time.process_time_ns()
        try:
            return fn(*args)
        finally:
            self.raw_ns += time.process_time_ns() - start
            self.calls += 1


@dataclass
class Gateway:
    """A Responder (+ TransactionTask) driven like responder/ikev1/transport.py,
    with a "daemon" that grants every Xauth at once and hands out addresses."""

    responder: Responder
    task: TransactionTask | None
    meter: Meter = field(default_factory=Meter)
    now: float = 1000.0
    pool: object = None
    routes: dict = field(default_factory=dict)  # client address -> session
    timer_calls: int = 0

    @classmethod
    def create(cls, *, xauth: bool, max_sas: int = 200_000) -> "Gateway":
        policy = ResponderPolicy(
            # the Main Mode key, and the same key bound to the group the sessions log in
            # with: Aggressive Mode answers only with a key bound to the identity
            psks=(PresharedKey(PSK), PresharedKey(PSK, identity=GROUP)),
            require_transaction=xauth,
            limits=Limits(max_sas=max_sas, max_half_open=max_sas))
        responder = Responder(policy)
        task = TransactionTask.attach(responder) if xauth else None
        return cls(responder, task, pool=ipaddress.ip_network("10.96.0.0/12").hosts())

    def receive(self, data: bytes, local, remote) -> None:
        self.meter.run(self.responder.receive_datagram, data, local, remote, self.now)
        self.after_engine()

    def after_engine(self) -> None:
        """What the transport does after each engine call."""
        out = self.meter.run(self.responder.datagrams_to_send)
        events = self.meter.run(list, self.responder.events())
        when = self.meter.run(self.responder.get_timer)
        self.timer_calls += 1
        for event in events:
            if isinstance(event, XauthCredentials) and self.task is not None:
                ctx = self.meter.run(self.task.context, self.now)
                config = ModeConfig(next(self.pool), "255.255.255.255",
                                    dns=["10.50.0.53", "10.50.0.54"], wins=["10.50.0.137"])
                self.meter.run(self.task.set_config, ctx, event.sa_id, config)
                self.meter.run(self.task.xauth_result, ctx, event.sa_id, True)
                out += self.meter.run(self.responder.datagrams_to_send)
                self.meter.run(self.responder.get_timer)
        for datagram in out:
            session = self.routes.get(datagram.remote)
            if session is not None:
                session.receive_datagram(datagram.data, self.now,
                                         natt=datagram.local[1] != 500)
        if when is not None and when <= self.now:
            self.meter.run(self.responder.handle_timer, self.now)
            self.after_engine()


def client_config(scenario: Scenario, user: str) -> InitiatorConfig:
    return InitiatorConfig(
        server=SERVER, identity=IdentitySpec.parse(scenario.identity), psk=PSK,
        mode=scenario.mode, ike_proposals=(scenario.proposal,),
        xauth_user=user if scenario.xauth else None,
        xauth_password=PASSWORD if scenario.xauth else None,
        mode_config=scenario.xauth,
        esp_proposals=(EspOffer(EspTransformId.AES_CBC, 256, IpsecAuthAlgorithm.HMAC_SHA),),
        remote_selector="0.0.0.0/0")


def client_address(n: int) -> str:
    return str(ipaddress.IPv4Address("100.64.0.0") + n + 1)


def login(gateway: Gateway, scenario: Scenario, n: int) -> float:
    """One login to the end of Quick Mode; returns its responder CPU in ms."""
    address = client_address(n)
    session = InitiatorSession(client_config(scenario, f"user{n:05d}"), local=(address, 500),
                               rng=seeded(n))
    gateway.routes[session.local] = gateway.routes[session.local_natt] = session
    before = gateway.meter.cpu_ns
    pending = session.start(gateway.now)
    for _ in range(64):
        for datagram in pending:
            source = session.local_natt if datagram.natt else session.local
            gateway.receive(datagram.data, datagram.remote, source)
        pending = session.datagrams_to_send()
        if not pending:
            break
    del gateway.routes[session.local], gateway.routes[session.local_natt]
    if not session.established or (scenario.xauth and session.mode_config is None):
        raise RuntimeError(f"{scenario.name}: login {n} did not complete: {session.state} "
                           f"{session.error}")
    gateway.now += LOGIN_SPACING
    return (gateway.meter.cpu_ns - before) / 1e6


# ---------------------------------------------------------------- measurements
def per_login(scenario: Scenario, logins: int, repeat: int) -> dict:
    medians, p90s, all_ms = [], [], []
    for r in range(repeat):
        gateway = Gateway.create(xauth=scenario.xauth)
        login(gateway, scenario, 10_000_000 + r)  # warm-up (caches, imports)
        times = [login(gateway, scenario, r * logins + i) for i in range(logins)]
        all_ms += times
        medians.append(statistics.median(times))
        p90s.append(sorted(times)[int(0.9 * (len(times) - 1))])
    return {"scenario": scenario.name, "logins": logins, "repeat": repeat,
            "meter_overhead_ns_per_call": gateway.meter.overhead_ns,
            "cpu_ms_median": statistics.median(medians), "cpu_ms_p90": statistics.median(p90s),
            "cpu_ms_min": min(all_ms), "cpu_ms_run_medians": medians}


def held(scenario: Scenario, count: int) -> dict:
    gateway = Gateway.create(xauth=scenario.xauth)
    wall = time.perf_counter()
    for i in range(count):
        login(gateway, scenario, i)
    wall = time.perf_counter() - wall
    cpu_s = gateway.meter.cpu_ns / 1e9
    responder = gateway.responder
    assert responder.sa_count == count, responder.sa_count
    result = {"scenario": scenario.name, "sas": count,
              "responder_cpu_s": cpu_s, "logins_per_s_responder_cpu": count / cpu_s,
              "wall_s_with_initiator": wall, "logins_per_s_wall": count / wall,
              "cpu_ms_per_login": 1000 * cpu_s / count}
    # timer cost with every SA held (nothing due)
    get_timer = []
    for _ in range(7):
        start = time.process_time_ns()
        for _ in range(200):
            responder.get_timer()
        get_timer.append((time.process_time_ns() - start) / 200 / 1000)
    result["get_timer_us"] = statistics.median(get_timer)
    handle = []
    for _ in range(7):
        start = time.process_time_ns()
        for _ in range(20):
            responder.handle_timer(gateway.now)
        handle.append((time.process_time_ns() - start) / 20 / 1000)
    result["handle_timer_nothing_due_us"] = statistics.median(handle)
    assert not responder.datagrams_to_send()
    # DPD burst: every SA idle for `interval` -> one R-U-THERE each
    when = responder.get_timer()
    due_at = gateway.now + responder.policy.dpd.interval + 1
    start = time.process_time_ns()
    responder.handle_timer(due_at)
    burst = (time.process_time_ns() - start) / 1e6
    probes = len(responder.datagrams_to_send())
    result.update({"first_timer_in_s": when - gateway.now, "dpd_burst_ms": burst,
                   "dpd_burst_probes": probes,
                   "dpd_burst_us_per_sa": 1000 * burst / max(probes, 1)})
    return result


def repository_relative(filename: str) -> str:
    """`filename` relative to the repository, or unchanged if it lies outside."""
    try:
        return Path(filename).resolve().relative_to(REPOSITORY).as_posix()
    except ValueError:
        return filename


def memory_per_sa(scenario: Scenario, count: int) -> dict:
    gateway = Gateway.create(xauth=scenario.xauth)
    login(gateway, scenario, 10_000_000)  # warm-up: caches, lazily built tables
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        login(gateway, scenario, i)
    after = tracemalloc.get_traced_memory()[0]
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = snapshot.statistics("lineno")[:8]
    top = [{"where": f"{repository_relative(s.traceback[0].filename)}:{s.traceback[0].lineno}",
            "bytes_per_sa": round(s.size / count)} for s in stats]
    return {"scenario": scenario.name, "sas": count, "bytes_per_sa": (after - before) / count,
            "top_allocations": top}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=40, help="logins per scenario and repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--held", default="1000,10000", help="SA counts held at once")
    parser.add_argument("--memory-sas", type=int, default=1000)
    parser.add_argument("--only", default="", help="run only scenarios containing this text")
    parser.add_argument("--quick", action="store_true", help="small numbers (smoke test)")
    parser.add_argument("--output", default=str(RESULTS / "ike.json"))
    args = parser.parse_args()
    if args.quick:
        args.logins, args.repeat, args.held, args.memory_sas = 5, 1, "100", 50
    # the engine logs every login at INFO and AM-with-PSK at WARNING; a worker
    # logs to a file, here nothing is printed (the level check still runs)
    logging.getLogger("responder").setLevel(logging.ERROR)

    chosen = [s for s in scenarios() if args.only in s.name]
    results = {"python": platform.python_version(), "machine": platform.machine(),
               "reference_strongswan_cpu_ms_per_login": list(REFERENCE_MS),
               "per_login": [], "held": [], "memory": []}
    print(f"{'scenario':36} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}   (responder CPU per login)")
    for scenario in chosen:
        row = per_login(scenario, args.logins, args.repeat)
        results["per_login"].append(row)
        print(f"{scenario.name:36} {row['cpu_ms_median']:10.2f} {row['cpu_ms_p90']:8.2f} "
              f"{row['cpu_ms_min']:8.2f}", flush=True)
    print(f"reference: strongSwan gateway {REFERENCE_MS[0]}-{REFERENCE_MS[1]} ms CPU per login")

    big = next(s for s in scenarios() if s.name == "MM/PSK/MODP-2048 +Xauth+MCfg")
    counts = [int(c) for c in args.held.split(",") if c]
    if counts:
        print(f"\n{big.name}, sequential logins held at once:")
        print(f"{'SAs':>7} {'logins/s (resp CPU)':>20} {'logins/s (wall)':>16} {'ms/login':>9} "
              f"{'get_timer us':>13} {'handle_timer us':>16} {'DPD burst us/SA':>16}")
    for count in counts:
        row = held(big, count)
        results["held"].append(row)
        print(f"{count:7d} {row['logins_per_s_responder_cpu']:20.0f} {row['logins_per_s_wall']:16.0f} "
              f"{row['cpu_ms_per_login']:9.2f} {row['get_timer_us']:13.1f} "
              f"{row['handle_timer_nothing_due_us']:16.1f} {row['dpd_burst_us_per_sa']:16.1f}",
              flush=True)
    if args.memory_sas:
        row = memory_per_sa(big, args.memory_sas)
        results["memory"].append(row)
        print(f"\nmemory per established SA (tracemalloc, {args.memory_sas} SAs, {big.name}): "
              f"{row['bytes_per_sa'] / 1024:.1f} KiB")
        for entry in row["top_allocations"]:
            print(f"   {entry['bytes_per_sa']:7d} B/SA  {entry['where']}")
    output = Path(args.output)
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

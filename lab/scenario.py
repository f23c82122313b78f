"""Scenarios as data, and a runner that logs real clients in and proves what they got.

A scenario lists clients: which lab node, which kind (strongswan / vpnc), which
IKEv1 mode, which Xauth user and which VR group. The runner works in three
phases so that every check is exact:

1. login, concurrently (a thread pool): connect, wait until up, collect info;
2. verify, in batches of one VR's clients (at most `workers` at once): ping the
   intranet server of the clients' own VR through the tunnel, and read the ICMP
   InEchos counters of BOTH VRs' servers (/proc/<pid>/net/snmp) around the
   batch. Both servers have the same address, so the counters are what proves
   that the echoes landed in the clients' VR and not in the other one; a batch
   that fails the check is verified again one client at a time;
3. logout, concurrently (the clients send Delete), then check that the gateway
   no longer lists them.

Evidence: run_dir/summary.json, and a readable table (format_table).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from clients import ClientError, ClientSettings, IPsecClient, make_client
from lab.gateways.base import Gateway, GatewayError
from lab.gateways.plan import AccessPlan

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


# -- scenarios as data ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClientPlan:
    node: str                  # lab node, e.g. "dlc3" or "dln1"
    kind: str                  # "strongswan" or "vpnc"
    mode: str                  # "main" or "aggressive"
    user: str                  # Xauth user
    group: str                 # IKE group (key-id) = VR group, e.g. "vr1"
    behind_nat: bool = False


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    clients: tuple[ClientPlan, ...]
    ping_count: int = 3
    login_timeout: float = 30.0
    workers: int = 10


#: the mix of the default scenario, cycled over the clients
DEFAULT_MIX = (("strongswan", "main"), ("strongswan", "aggressive"), ("vpnc", "aggressive"))


def default_scenario(slots: Iterable, plan: AccessPlan, count: int | None = None,
                     nat_share: int = 4, name: str = "default", workers: int = 10) -> Scenario:
    """A mix of strongSwan main, strongSwan aggressive and vpnc clients in all groups.

    `slots` are lab ClientSlots (name, host, address, behind_nat); `count` None
    takes every slot of the lab, otherwise up to `nat_share` of the `count`
    clients are taken from behind the NAT host.
    """
    slots = list(slots)
    if count is None:
        count, nat_share = len(slots), len(slots)
    check_resources(plan, count)
    behind_nat = [s for s in slots if s.behind_nat][:min(nat_share, count)]
    direct = [s for s in slots if not s.behind_nat][:count - len(behind_nat)]
    chosen = direct + behind_nat
    if len(chosen) < count:
        raise ValueError(f"scenario wants {count} clients, the lab has {len(chosen)}")
    users = ordinary_users(plan)
    groups = [g.group for g in plan.groups]
    clients = []
    for i, slot in enumerate(chosen):
        kind, mode = DEFAULT_MIX[i % len(DEFAULT_MIX)]
        # the group changes after each full round of the mix: every kind/mode meets every group
        group = groups[(i // len(DEFAULT_MIX)) % len(groups)]
        clients.append(ClientPlan(node=slot.name, kind=kind, mode=mode, user=users[i],
                                  group=group, behind_nat=slot.behind_nat))
    return Scenario(name=name, clients=tuple(clients), workers=workers)


def check_resources(plan: AccessPlan, count: int) -> None:
    """Refuses a scenario the plan cannot serve, before any client starts: every client
    needs its own user, and the round-robin over the groups fills each pool evenly."""
    users = len(ordinary_users(plan))
    if count > users:
        raise ValueError(f"scenario wants {count} clients, the plan has {users} users")
    per_group = -(-count // max(1, len(plan.groups)))
    for group in plan.groups:
        size = ipaddress.ip_network(group.pool).num_addresses - 2
        if per_group > size:
            raise ValueError(f"group {group.group}: {per_group} clients, pool {group.pool} "
                             f"has {size} addresses")


def ordinary_users(plan: AccessPlan) -> list[str]:
    """Users of the numbered range first (user001 ...): the named ones are special cases
    for RADIUS tests (other VR, fixed address, timeouts)."""
    numbered = re.compile(r"^[A-Za-z]+\d+$")
    names = plan.user_names()
    return [n for n in names if numbered.match(n)] + [n for n in names if not numbered.match(n)]


class SerializedTracker:
    """Serializes track_pid/untrack_pid: the runner's threads share one lab."""

    def __init__(self, tracker):
        self._tracker = tracker
        self._lock = threading.Lock()

    def track_pid(self, pid: int, what: str) -> None:
        with self._lock:
            self._tracker.track_pid(pid, what)

    def untrack_pid(self, pid: int) -> None:
        with self._lock:
            self._tracker.untrack_pid(pid)


# -- results -------------------------------------------------------------------------
@dataclasses.dataclass
class ClientResult:
    node: str
    kind: str
    mode: str
    user: str
    group: str
    vr: str
    behind_nat: bool
    address: str | None = None
    netmask: str | None = None
    dns: list[str] = dataclasses.field(default_factory=list)
    wins: list[str] = dataclasses.field(default_factory=list)
    banner: str | None = None
    default_domain: str | None = None
    split_networks: list[str] = dataclasses.field(default_factory=list)
    setup_time: float | None = None
    ping_target: str | None = None
    ping_sent: int = 0
    ping_received: int = 0
    echos_own_vr: int | None = None
    echos_other_vr: int | None = None
    logged_out: bool | None = None
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


@dataclasses.dataclass
class ScenarioResult:
    scenario: str
    gateway: str
    clients: list[ClientResult]
    started: float
    duration: float = 0.0
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.clients) and all(c.passed for c in self.clients)

    def as_dict(self) -> dict:
        setup = sorted(c.setup_time for c in self.clients if c.setup_time is not None)
        return {
            "scenario": self.scenario,
            "gateway": self.gateway,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration": round(self.duration, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "passed": self.passed,
            "counts": {"clients": len(self.clients),
                       "passed": sum(c.passed for c in self.clients)},
            "setup_time": {"min": setup[0], "median": setup[len(setup) // 2],
                           "max": setup[-1]} if setup else None,
            "errors": self.errors,
            "clients": [c.as_dict() for c in self.clients],
        }


# -- ICMP counters of the intranet servers ---------------------------------------------
def icmp_in_echos(host) -> int:
    """InEchos of the host's network namespace (/proc/PID/net/snmp is per namespace)."""
    lines = Path(f"/proc/{host.pid}/net/snmp").read_text().splitlines()
    icmp = [line.split() for line in lines if line.startswith("Icmp:")]
    header, values = icmp[0], icmp[1]
    return int(values[header.index("InEchos")])


# -- the runner -----------------------------------------------------------------------
class ScenarioRunner:
    """Runs one scenario against a started gateway in a started lab."""

    def __init__(self, lab, plan: AccessPlan, gateway: Gateway, scenario: Scenario,
                 run_dir: Path | None = None, progress: Progress | None = None):
        self.lab = lab
        self.plan = plan
        self.gateway = gateway
        self.scenario = scenario
        self.run_dir = Path(run_dir or lab.run_dir)
        self.progress = progress or (lambda message: log.info("%s", message))
        self._lock = threading.Lock()
        self._done = 0
        self._tracker = SerializedTracker(lab)

    def run(self) -> ScenarioResult:
        result = ScenarioResult(self.scenario.name, self.gateway.kind, [], started=time.time())
        t0 = time.monotonic()
        clients: list[tuple[IPsecClient | None, ClientResult]] = []
        try:
            clients = self._phase(result, "login", self._login_all)
            self._phase(result, "verify", lambda: self._verify_all(clients))
        finally:
            self._phase(result, "logout", lambda: self._logout_all(clients))
            result.clients = [r for _, r in clients]
            result.duration = time.monotonic() - t0
            self.write_summary(result)
        return result

    def _phase(self, result: ScenarioResult, name: str, step):
        t0 = time.monotonic()
        try:
            return step()
        finally:
            result.phases[name] = time.monotonic() - t0

    # -- phase 1 ---------------------------------------------------------------
    def _login_all(self) -> list[tuple[IPsecClient | None, ClientResult]]:
        self._done = 0
        workers = max(1, min(self.scenario.workers, len(self.scenario.clients)))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="login") as pool:
            return list(pool.map(self._login, self.scenario.clients))

    def _login(self, entry: ClientPlan) -> tuple[IPsecClient | None, ClientResult]:
        group = self.plan.group(entry.group)
        result = ClientResult(node=entry.node, kind=entry.kind, mode=entry.mode, user=entry.user,
                              group=entry.group, vr=group.vr, behind_nat=entry.behind_nat)
        client = None
        try:
            settings = ClientSettings(
                gateway=self.plan.gateway, group=entry.group,
                psk=self.plan.psk_for(entry.group, entry.mode), user=entry.user,
                password=self.plan.users[entry.user], mode=entry.mode,
                remote_networks=(group.intranet,))
            client = make_client(entry.kind, self.lab.node(entry.node),
                                 self.lab.node_dir(entry.node), settings, tracker=self._tracker)
            client.prepare()  # daemon start-up stays out of the setup time
            client.connect()
            info = client.wait_up(self.scenario.login_timeout)
            self._record_info(result, info, group)
        except (ClientError, ValueError, KeyError, OSError) as exc:
            result.errors.append(f"login: {exc}")
        self._report(result, "up" if not result.errors else "FAILED")
        return client, result

    @staticmethod
    def _record_info(result: ClientResult, info, group) -> None:
        for field in ("address", "netmask", "dns", "wins", "banner", "default_domain",
                      "split_networks", "setup_time"):
            setattr(result, field, getattr(info, field))
        if not group.in_pool(info.address):
            result.errors.append(f"address {info.address} not in pool {group.pool}")
        if list(info.dns) != list(group.dns):
            result.errors.append(f"DNS {info.dns} != expected {list(group.dns)}")
        if list(info.wins) != list(group.wins):
            result.errors.append(f"WINS {info.wins} != expected {list(group.wins)}")

    def _report(self, result: ClientResult, what: str) -> None:
        """One progress line per client, numbered in the order they are written.

        The line is passed on while the lock is held, so that concurrent logins
        never hand the progress callback two lines at once.
        """
        total = len(self.scenario.clients)
        setup = f"{result.setup_time:.3f}s" if result.setup_time is not None else "-"
        details = (f"{result.node:<6} {result.kind:<10} {result.mode:<10} {result.group:<4} "
                   f"{what:<6} {setup:>7} {result.address or ''}")
        with self._lock:
            self._done += 1
            self.progress(f"[{self._done:>{len(str(total))}}/{total}] {details}")

    # -- phase 2 ---------------------------------------------------------------
    def _verify_all(self, clients) -> None:
        """Pings in batches of one VR's clients at a time, `workers` clients at once.

        A batch holds clients of a single VR only, so the InEchos counters still tell
        exactly where the echoes landed: the batch's own VR server must count them all
        and the other VR's server none. Should a batch fail that check, its clients are
        verified again one by one, which names the client that leaked.
        """
        servers = {g.vr: self.lab.server(g.vr) for g in self.plan.groups}
        ready = [(c, r) for c, r in clients if c is not None and not r.errors]
        for vr in servers:
            in_vr = [(c, r) for c, r in ready if r.vr == vr]
            for start in range(0, len(in_vr), max(1, self.scenario.workers)):
                self._verify_batch(in_vr[start:start + self.scenario.workers], servers)

    def _verify_batch(self, batch, servers: dict) -> None:
        if not batch:
            return
        vr = batch[0][1].vr
        before = {name: icmp_in_echos(host) for name, host in servers.items()}
        with concurrent.futures.ThreadPoolExecutor(len(batch), thread_name_prefix="ping") as pool:
            pings = list(pool.map(lambda pair: self._ping(*pair), batch))
        after = {name: icmp_in_echos(host) for name, host in servers.items()}
        own = after[vr] - before[vr]
        other = sum(after[name] - before[name] for name in servers if name != vr)
        received = sum(p.received for p in pings if p is not None)
        if len(batch) > 1 and (other or own < received):
            self.progress(f"verify: {vr} batch of {len(batch)}: {own} echos in its VR, "
                          f"{other} in the other; checking them one at a time")
            for client, result in batch:
                self._verify_batch([(client, result)], servers)
            return
        for (_, result), ping in zip(batch, pings):
            if ping is not None:
                share_own = own if len(batch) == 1 else ping.received
                share_other = other if len(batch) == 1 else 0
                self._judge(result, ping, share_own, share_other)
        self.progress(f"verify: {vr}: {len(batch)} clients pinged, {received} replies, "
                      f"{own} echos counted in {vr}, {other} in the other VR")

    def _ping(self, client: IPsecClient, result: ClientResult):
        """The client's ping of its VR's server through the tunnel; None if it failed."""
        result.errors = [e for e in result.errors if not e.startswith(("ping", "own VR",
                                                                       "the other VR"))]
        group = self.plan.group(result.group)
        result.ping_target = group.server
        try:
            return client.ping(group.server, count=self.scenario.ping_count)
        except ClientError as exc:
            result.errors.append(f"ping: {exc}")
            return None

    @staticmethod
    def _judge(result: ClientResult, ping, own: int, other: int) -> None:
        result.ping_sent, result.ping_received = ping.sent, ping.received
        result.echos_own_vr, result.echos_other_vr = own, other
        if not ping.ok:
            result.errors.append(f"ping {result.ping_target}: {ping} answered")
        if own < ping.received:
            result.errors.append(f"own VR server counted {own} echos")
        if other:
            result.errors.append(f"the other VR's server got {other} echos")

    # -- phase 3 ---------------------------------------------------------------
    def _logout_all(self, clients) -> None:
        started = [(c, r) for c, r in clients if c is not None]
        if not started:
            return
        workers = max(1, min(self.scenario.workers, len(started)))
        self.progress(f"logout: {len(started)} clients, {workers} at a time ...")
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="logout") as pool:
            list(pool.map(lambda pair: self._logout(*pair), started))
        self._check_gateway_forgot(started)

    @staticmethod
    def _logout(client: IPsecClient, result: ClientResult) -> None:
        try:
            client.disconnect()
        except Exception as exc:  # logout must reach every client, whatever happened
            result.errors.append(f"logout: {exc}")
        finally:
            client.close()

    def _check_gateway_forgot(self, started, timeout: float = 5.0) -> None:
        users = {r.user for _, r in started if r.address}
        deadline = time.monotonic() + timeout
        remaining = users
        while True:
            try:
                remaining = users & {s.user for s in self.gateway.subscribers()}
            except GatewayError as exc:
                log.warning("cannot list the gateway's subscribers: %s", exc)
                return
            if not remaining or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for _, result in started:
            if result.address:
                result.logged_out = result.user not in remaining
                if not result.logged_out:
                    result.errors.append("gateway still lists the subscriber after logout")

    # -- evidence --------------------------------------------------------------
    def write_summary(self, result: ScenarioResult) -> Path:
        path = self.run_dir / "summary.json"
        path.write_text(json.dumps(result.as_dict(), indent=1))
        (self.run_dir / "summary.txt").write_text(format_table(result) + "\n")
        return path


# -- the readable table -----------------------------------------------------------------
COLUMNS = (("client", 6), ("kind", 10), ("mode", 10), ("user", 8), ("VR", 6), ("NAT", 3),
           ("address", 13), ("netmask", 15), ("DNS", 23), ("WINS", 25), ("ping", 4),
           ("other VR", 8), ("setup", 7), ("result", 6))


def _row(c: ClientResult) -> tuple:
    return (c.node, c.kind, c.mode, c.user, c.vr, "yes" if c.behind_nat else "no",
            c.address or "-", c.netmask or "-", ",".join(c.dns) or "-", ",".join(c.wins) or "-",
            f"{c.ping_received}/{c.ping_sent}" if c.ping_sent else "-",
            "-" if c.echos_other_vr is None else str(c.echos_other_vr),
            f"{c.setup_time:.3f}" if c.setup_time is not None else "-",
            "ok" if c.passed else "FAIL")


def format_table(result: ScenarioResult) -> str:
    widths = [max(width, len(name)) for name, width in COLUMNS]
    rows = [_row(c) for c in result.clients]
    for row in rows:
        widths = [max(w, len(str(v))) for w, v in zip(widths, row)]
    line = "  ".join(name.ljust(w) for (name, _), w in zip(COLUMNS, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in rows]
    passed = sum(c.passed for c in result.clients)
    setups = sorted(c.setup_time for c in result.clients if c.setup_time is not None)
    median = f", median setup {setups[len(setups) // 2]:.3f}s" if setups else ""
    out.append(f"{passed}/{len(result.clients)} clients passed with gateway {result.gateway} "
               f"in {result.duration:.1f}s{median}")
    for c in result.clients:
        for error in c.errors:
            out.append(f"  {c.node}: {error.splitlines()[0]}")
    out += [f"  {error}" for error in result.errors]
    return "\n".join(out)

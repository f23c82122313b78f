"""Runs a scenario file (lab.scenario_spec) against one gateway in a lab of its own.

One engine, two tables: `STEPS` maps a step's `do` to the function that performs it,
`CHECKS` maps an expectation's `check` to the function that evaluates it (and says
which gateways it applies to). A check is true *eventually*: it is re-evaluated until
it holds or its `within` seconds have passed, so no check depends on timing luck.

    result = run_scenario(spec, "dynipsec", out_dir, prefix="hs")
    result.passed, result.checks, result.run_dir

Evidence in the run directory: the lab's pcap of the router's public side, every
daemon's and client's log (one directory per node), summary.json and junit.xml.
After the last step every client is logged out, the gateway stopped and the VR
namespaces checked for left-over subscriber interfaces (strongSwan's posttest).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from clients import ClientError, ClientInfo, ClientSettings, make_client
from lab.gateways.base import Gateway, GatewayError
from lab.gateways.plan import AccessPlan, VrGroup, plan_from_topology
from lab.impair import Impairment, apply_impairment
from lab.initiator_probe import InitiatorProbe
from lab.scenario import SerializedTracker, icmp_in_echos
from lab.scenario_spec import ScenarioSpec
from lab.topology import load_topology

Progress = Callable[[str], None]


class StepFailed(RuntimeError):
    """A step could not do what it says (a login failed, a ping went unanswered...)."""


@dataclasses.dataclass
class LiveClient:
    spec: Any                       # lab.scenario_spec.ClientSpec
    group: VrGroup
    client: Any = None              # clients.IPsecClient or InitiatorProbe
    info: ClientInfo | None = None
    row: dict = dataclasses.field(default_factory=dict)   # dynipsec subscriber row at login
    up: bool = False


# -- results -------------------------------------------------------------------------------
@dataclasses.dataclass
class CheckResult:
    step: int
    step_title: str
    what: str
    status: str          # pass | fail | n/a | skipped
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RunResult:
    scenario: str
    gateway: str
    run_dir: Path
    checks: list[CheckResult] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    skipped_reason: str = ""

    @property
    def passed(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    @property
    def status(self) -> str:
        if self.skipped_reason:
            return "skipped"
        return "pass" if self.passed else "fail"

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    def as_dict(self) -> dict:
        counts: dict[str, int] = {}
        for c in self.checks:
            counts[c.status] = counts.get(c.status, 0) + 1
        return {"scenario": self.scenario, "gateway": self.gateway, "status": self.status,
                "duration": round(self.duration, 3), "run_dir": str(self.run_dir),
                "skipped_reason": self.skipped_reason, "counts": counts,
                "checks": [c.as_dict() for c in self.checks]}


# -- the context steps and checks work on --------------------------------------------------
class Context:
    def __init__(self, spec: ScenarioSpec, kind: str, lab, plan: AccessPlan, gateway: Gateway,
                 progress: Progress):
        self.spec = spec
        self.kind = kind
        self.lab = lab
        self.plan = plan
        self.gateway = gateway
        self.progress = progress
        self.tracker = SerializedTracker(lab)
        self.clients = {c.name: LiveClient(c, plan.group(c.group)) for c in spec.clients}

    def node(self, host: str):
        """A scenario host name (no prefix: r, aaa, vr1, c3, n1) -> the lab's node."""
        prefix = self.lab.topology.prefix
        aliases = {"router": "r"}
        return self.lab.node(prefix + aliases.get(host, host))

    def live(self, name: str) -> LiveClient:
        return self.clients[name]

    def vr_node(self, vr: str | None, live: LiveClient):
        if vr:
            return self.lab.vr(vr)
        if live.row.get("netns"):
            return self.lab.node(live.row["netns"])
        return self.lab.node(live.group.vr)

    def address(self, live: LiveClient) -> str:
        if not live.info or not live.info.address:
            raise StepFailed(f"client {live.spec.name} has no address (not logged in)")
        return live.info.address

    def subscriber_users(self) -> set[str]:
        return {s.user for s in self.gateway.subscribers()}


# -- steps ---------------------------------------------------------------------------------
def _make_client(ctx: Context, live: LiveClient):
    spec = live.spec
    password = spec.password or ctx.plan.users.get(spec.user)
    if password is None:
        raise StepFailed(f"client {spec.name}: user {spec.user!r} is not in the topology "
                         f"and has no password")
    # a group bound to an address of its own is reached there (one Main Mode VPN each);
    # `address` sends a client elsewhere, still with its group's keys
    settings = ClientSettings(gateway=spec.address or ctx.plan.gateway_for(spec.group),
                              group=spec.group,
                              psk=ctx.plan.psk_for(spec.group, spec.mode), user=spec.user,
                              password=password, mode=spec.mode,
                              remote_networks=(live.group.intranet,), natt=spec.natt)
    node = ctx.node(spec.host)
    workdir = ctx.lab.node_dir(node.name)
    if spec.kind == "initiator":
        return InitiatorProbe(node, workdir, settings, spec, ctx.tracker)
    return make_client(spec.kind, node, workdir, settings, tracker=ctx.tracker)


def _login_one(ctx: Context, live: LiveClient, timeout: float) -> str | None:
    """Logs one client in; returns the error text or None."""
    try:
        if live.client is None:
            live.client = _make_client(ctx, live)
        live.client.connect()
        live.info = live.client.wait_up(timeout)
        live.up = live.spec.kind != "initiator"
    except (ClientError, StepFailed, ValueError, OSError) as exc:
        return str(exc).splitlines()[0]
    if ctx.kind == "dynipsec" and live.up:
        rows = ctx.gateway.subscriber_rows(user=live.spec.user)
        live.row = rows[0] if rows else {}
    return None


def step_login(ctx: Context, step) -> str:
    lives = [ctx.live(name) for name in step.clients]
    with concurrent.futures.ThreadPoolExecutor(min(10, len(lives))) as pool:
        errors = list(pool.map(lambda lv: _login_one(ctx, lv, step.timeout), lives))
    failed = [(lv.spec.name, e) for lv, e in zip(lives, errors) if e]
    if step.refused:
        if len(failed) != len(lives):
            ok = [lv.spec.name for lv, e in zip(lives, errors) if not e]
            raise StepFailed(f"expected refused, but logged in: {', '.join(ok)}")
        return f"{len(lives)} refused as expected"
    if failed:
        raise StepFailed("; ".join(f"{name}: {error}" for name, error in failed))
    return ", ".join(f"{lv.spec.name}={lv.info.address}" for lv in lives)


def step_logout(ctx: Context, step) -> str:
    for name in step.clients:
        live = ctx.live(name)
        if live.client is not None:
            live.client.disconnect()
        live.up = False
    return f"{len(step.clients)} logged out"


def step_kill_client(ctx: Context, step) -> str:
    for name in step.clients:
        live = ctx.live(name)
        if live.client is not None:
            live.client.kill()
        live.up = False
    return f"{len(step.clients)} killed (no Delete)"


def step_ping(ctx: Context, step) -> str:
    live = ctx.live(step.client)
    target = step.target or live.group.server
    servers = {g.vr: ctx.lab.server(g.vr) for g in ctx.plan.groups}
    before = {vr: icmp_in_echos(host) for vr, host in servers.items()}
    try:
        result = live.client.ping(target, count=step.count)
    except (ClientError, AttributeError) as exc:
        raise StepFailed(f"ping: {str(exc).splitlines()[0]}") from None
    after = {vr: icmp_in_echos(host) for vr, host in servers.items()}
    detail = f"{result} answered from {target}"
    if not step.answered:
        if result.received:
            raise StepFailed(f"expected no answer, {detail}")
        return detail
    if not result.ok:
        raise StepFailed(detail)
    own = live.row.get("netns") or live.group.vr
    others = sum(after[vr] - before[vr] for vr in servers if vr != own)
    if step.target is None and others:
        raise StepFailed(f"{detail}, but another VR's server counted {others} echoes")
    return detail


def step_iperf(ctx: Context, step) -> str:
    from lab.iperf import IperfJob, IperfServer, run_iperf_client

    live = ctx.live(step.client)
    server_node = ctx.lab.node(live.row.get("netns") or live.group.vr)
    server_node = ctx.lab.server(server_node.name)
    with IperfServer(server_node, ctx.lab.node_dir(server_node.name), tracker=ctx.tracker):
        result = run_iperf_client(ctx.node(live.spec.host),
                                  IperfJob(live.group.server, bind=ctx.address(live)),
                                  seconds=step.seconds, tracker=ctx.tracker)
    if result.received_mbps < step.min_mbps:
        raise StepFailed(f"{result.received_mbps:.2f} Mbit/s < {step.min_mbps}")
    return f"{result.received_mbps:.1f} Mbit/s"


def step_wait(ctx: Context, step) -> str:
    time.sleep(step.seconds)
    return f"waited {step.seconds:g}s"


def step_kill_worker(ctx: Context, step) -> str:
    live = ctx.live(step.client)
    workers = {w["index"]: w for w in ctx.gateway.workers()}
    victim = workers[live.row["worker"]]
    os.kill(victim["pid"], signal.SIGKILL)
    return f"worker {victim['index']} (pid {victim['pid']}) killed"


#: step -> the Lab's RFC 5176 sender (radclient on the AAA host)
RADIUS_SENDERS = {"radius_disconnect": "aaa_disconnect", "radius_coa": "aaa_coa"}


def step_radius(ctx: Context, step) -> str:
    live = ctx.live(step.client)
    send = getattr(ctx.lab, RADIUS_SENDERS[step.do])
    try:
        answer = send(user=live.spec.user, extra=step.attributes)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:  # no AAA host, no reply
        raise StepFailed(f"{step.do}: {str(exc).splitlines()[0]}") from None
    # the pattern sees the reply only: on a NAK radclient also prints "Expected CoA-ACK
    # got CoA-NAK", which the default pattern ACK would match
    reply = _radclient_summary(answer)
    if not re.search(step.answer, reply):
        raise StepFailed(f"radclient answer does not match {step.answer!r}: {reply}")
    return reply


def _radclient_summary(answer: str) -> str:
    """radclient -x output -> its 'Received ...' line and the reply's attributes, one line
    (or its last line when nothing was received: 'No reply ...')."""
    lines = [line.strip() for line in answer.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Received")), None)
    if start is None:
        return (lines[-1:] or ["no output"])[0] or "no output"
    reply = [start] + [i for i in range(start + 1, len(lines)) if " = " in lines[i]]
    return "; ".join(lines[i] for i in reply)


def step_impair(ctx: Context, step) -> str:
    node = ctx.node(step.host)
    interface = node.defaultIntf().name
    impairment = Impairment(loss=step.loss, blackhole=step.blackhole, rate=step.rate,
                            clear=step.clear)
    apply_impairment(node, interface, impairment)
    return f"{node.name}:{interface} {impairment.describe()}"


def step_admin_logout(ctx: Context, step) -> str:
    live = ctx.live(step.client)
    count = ctx.gateway.terminate(user=live.spec.user)
    if count != 1:
        raise StepFailed(f"the gateway logged out {count} sessions of {live.spec.user}")
    live.up = False
    return f"{live.spec.user} logged out by the gateway"


def merge_scenario_config(base: dict, extra: dict) -> dict:
    """`extra` merged into `base` (mappings recursively, anything else replaced), except
    that a mapping given for a list of named entries (tunnel_profiles) merges into the
    entries by name: `{tunnel_profiles: {vr1: {mode_config: {banner: X}}}}` changes one
    profile's banner without repeating every profile."""
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(value, dict) and _named_entries(current):
            merged[key] = _merge_named(key, current, value)
        elif isinstance(value, dict) and isinstance(current, dict):
            merged[key] = merge_scenario_config(current, value)
        else:
            merged[key] = value
    return merged


def _named_entries(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, dict) and "name" in item for item in value)


def _merge_named(key: str, entries: list[dict], changes: dict) -> list[dict]:
    by_name = {entry["name"]: entry for entry in entries}
    unknown = [name for name in changes if name not in by_name]
    if unknown:
        raise StepFailed(f"reload: no {key} entry {', '.join(map(repr, unknown))} "
                         f"(entries: {', '.join(by_name)})")
    return [merge_scenario_config(entry, changes.get(entry["name"], {})) for entry in entries]


def _reload_problems(answer: dict) -> list[str]:
    """Why a reload did not do what the scenario asked: the file refused, a change that
    only a restart applies (the scenario expects it to show), a worker that failed."""
    if not answer.get("reloaded"):
        return [f"refused: {'; '.join(answer.get('errors') or [str(answer)])}"]
    problems = [f"{path} needs a restart ({why})"
                for path, why in (answer.get("restart_needed") or {}).items()]
    problems += [f"a worker did not reload: {w.get('error')}"
                 for w in answer.get("workers") or [] if not w.get("ok")]
    return problems


def step_reload(ctx: Context, step) -> str:
    from clients.process import DaemonError

    daemon = ctx.gateway.daemon
    previous = daemon.config
    daemon.config = merge_scenario_config(previous, step.config)
    try:
        daemon.build_config()
        daemon.check_config()
    except DaemonError as exc:
        # leave the file as the daemon runs it: a later reload must not pick this up
        daemon.config = previous
        daemon.build_config()
        lines = str(exc).splitlines()
        raise StepFailed(f"reload: {'; '.join(lines[1:]) or lines[0]}") from None
    answer = ctx.gateway.request({"cmd": "reload"}, timeout=30)
    problems = _reload_problems(answer)
    if problems:
        raise StepFailed(f"reload: {'; '.join(problems)}")
    applied = answer.get("applied") or []
    return f"reloaded: {', '.join(applied) or 'no change'}"


STEPS: dict[str, Callable[[Context, Any], str]] = {
    "login": step_login, "logout": step_logout, "kill_client": step_kill_client,
    "ping": step_ping, "iperf": step_iperf, "wait": step_wait,
    "kill_worker": step_kill_worker, "radius_disconnect": step_radius,
    "radius_coa": step_radius, "impair": step_impair, "admin_logout": step_admin_logout,
    "reload": step_reload,
}


# -- checks: each returns (ok, detail) -----------------------------------------------------
def _group_value(group: VrGroup, attribute: str):
    return {"netmask": group.netmask, "dns": list(group.dns), "wins": list(group.wins),
            "banner": group.banner, "domain": group.default_domain}[attribute]


def check_mode_config(ctx: Context, check) -> tuple[bool, str]:
    live = ctx.live(check.client)
    info = live.info or ClientInfo()
    if check.attribute == "address":
        pool = check.equals or live.group.pool
        ok = bool(info.address) and ipaddress.ip_address(info.address) in ipaddress.ip_network(pool)
        return ok, f"address {info.address} in {pool}"
    got = {"netmask": info.netmask, "dns": info.dns, "wins": info.wins, "banner": info.banner,
           "domain": info.default_domain}[check.attribute]
    want = check.equals if check.equals is not None else _group_value(live.group, check.attribute)
    return got == want, f"{check.attribute} {got!r} (expected {want!r})"


def check_route(ctx: Context, check) -> tuple[bool, str]:
    live = ctx.live(check.client)
    address = ctx.address(live)
    if ctx.kind == "dynipsec":
        node = ctx.vr_node(check.vr, live)
        out = node.cmd(f"ip route show {address}/32")
    else:
        node = ctx.lab.router
        out = node.cmd(f"ip route show table 220 {address}")
    present = "dev" in out
    return present == check.present, f"{node.name}: route {address} {'present' if present else 'absent'}"


def check_interface(ctx: Context, check) -> tuple[bool, str]:
    live = ctx.live(check.client)
    interface = live.row.get("interface")
    if not interface:
        return False, f"no interface recorded for {check.client} at login"
    node = ctx.vr_node(None, live)
    present = re.search(rf"^\d+: {re.escape(interface)}[:@]", node.cmd("ip -o link show"), re.M)
    return bool(present) == check.present, f"{node.name}: {interface} {'present' if present else 'absent'}"


def check_subscriber(ctx: Context, check) -> tuple[bool, str]:
    live = ctx.live(check.client)
    user = live.spec.user
    if ctx.kind == "dynipsec" and check.vr and check.listed:
        rows = ctx.gateway.subscriber_rows(user=user)
        vrs = [r.get("vr") for r in rows]
        return check.vr in vrs, f"{user} listed in VRs {vrs}"
    listed = user in ctx.subscriber_users()
    return listed == check.listed, f"{user} {'listed' if listed else 'not listed'}"


def check_accounting(ctx: Context, check) -> tuple[bool, str]:
    live = ctx.live(check.client)
    session = live.row.get("acct_session_id")
    if not session:
        return False, f"no accounting session recorded for {check.client}"
    records = [r for r in ctx.lab.accounting_records() if r.get("Acct-Session-Id") == session]
    wanted_interim = "Interim-Update" in check.status
    statuses = [r["Acct-Status-Type"] for r in records
                if wanted_interim or r["Acct-Status-Type"] != "Interim-Update"]
    cause = records[-1].get("Acct-Terminate-Cause") if records else None
    ok = statuses == check.status and (check.cause is None or cause == check.cause)
    return ok, f"session {session}: {statuses} cause {cause}"


def _log_path(ctx: Context, source: str) -> Path:
    if source == "gateway":
        return ctx.gateway.log_path
    if source == "radius":
        return ctx.lab.radius.log_path
    return ctx.live(source).client.log_path


def check_log(ctx: Context, check) -> tuple[bool, str]:
    path = _log_path(ctx, check.source)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    found = re.search(check.pattern, text, re.M) is not None
    return found == check.present, f"{check.pattern!r} {'found' if found else 'not found'} in {path.name}"


def _dig(answer: Any, path: list[str]) -> Any:
    for part in path:
        answer = answer[part] if isinstance(answer, dict) else answer[int(part)]
    return answer


def _compare(value: int, check) -> bool:
    return ((check.equals is None or value == check.equals)
            and (getattr(check, "min", None) is None or value >= check.min)
            and (getattr(check, "max", None) is None or value <= check.max))


def check_counter(ctx: Context, check) -> tuple[bool, str]:
    what, *path = check.path.split(".")
    answer = ctx.gateway.request({"cmd": "show", "what": what})
    try:
        value = int(_dig(answer, path) or 0)
    except (KeyError, IndexError, ValueError, TypeError):
        value = 0
    return _compare(value, check), f"{check.path} = {value}"


def check_capture(ctx: Context, check) -> tuple[bool, str]:
    pcap = ctx.lab.run_dir / "router-public.pcap"
    run = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", check.filter, "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, timeout=60)
    if run.returncode != 0 and not run.stdout:
        return False, f"tshark: {run.stderr.strip().splitlines()[-1:]}"
    count = len(run.stdout.split())
    return _compare(count, check), f"{count} packets match {check.filter!r}"


def check_command(ctx: Context, check) -> tuple[bool, str]:
    node = ctx.node(check.host)
    proc = node.popen(["sh", "-c", check.run], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=30)
    found = re.search(check.pattern, out, re.M) is not None
    return found == check.present, (f"{node.name}::{check.run}::{check.pattern}::"
                                    f"{'found' if found else 'not found'}")


def check_resources_free(ctx: Context, check) -> tuple[bool, str]:
    licenses = sum(r["in_use"] for r in ctx.gateway.show("licenses"))
    addresses = sum(r["used"] for r in ctx.gateway.show("pools"))
    subscribers = len(ctx.gateway.show("subscribers"))
    in_use = (licenses, addresses, subscribers)
    return in_use == (0, 0, 0), f"licenses {licenses}, addresses {addresses}, subscribers {subscribers} in use"


def check_workers_ready(ctx: Context, check) -> tuple[bool, str]:
    workers = ctx.gateway.workers()
    ready = [w for w in workers if w.get("ready")]
    enough = check.workers is None or len(ready) == check.workers
    return bool(workers) and len(ready) == len(workers) and enough, \
        f"{len(ready)} of {len(workers)} workers ready"


BOTH = ("dynipsec", "strongswan")
DYNIPSEC = ("dynipsec",)
#: check kind -> (function, the gateways it applies to)
CHECKS: dict[str, tuple[Callable[[Context, Any], tuple[bool, str]], tuple[str, ...]]] = {
    "mode_config": (check_mode_config, BOTH),
    "route": (check_route, BOTH),
    "interface": (check_interface, DYNIPSEC),
    "subscriber": (check_subscriber, BOTH),
    "accounting": (check_accounting, DYNIPSEC),
    "log": (check_log, BOTH),
    "counter": (check_counter, DYNIPSEC),
    "capture": (check_capture, BOTH),
    "command": (check_command, BOTH),
    "resources_free": (check_resources_free, DYNIPSEC),
    "workers_ready": (check_workers_ready, DYNIPSEC),
}


def describe_check(check) -> str:
    fields = check.model_dump(exclude={"check", "within", "gateway"}, exclude_defaults=True)
    return f"{check.check}({', '.join(f'{k}={v}' for k, v in fields.items())})"


def evaluate(ctx: Context, check) -> tuple[str, str, float]:
    """(status, detail, seconds): re-evaluated until true or `within` has passed."""
    function, gateways = CHECKS[check.check]
    if ctx.kind not in gateways or (check.gateway and check.gateway != ctx.kind):
        return "n/a", f"not for the {ctx.kind} gateway", 0.0
    started = time.monotonic()
    deadline = started + check.within
    while True:
        try:
            ok, detail = function(ctx, check)
        except (StepFailed, GatewayError, ClientError, KeyError, OSError,
                subprocess.TimeoutExpired) as exc:
            ok, detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if ok or time.monotonic() >= deadline:
            return ("pass" if ok else "fail"), detail, time.monotonic() - started
        time.sleep(0.1)


# -- gateways ------------------------------------------------------------------------------
def make_scenario_gateway(kind: str, lab, plan: AccessPlan, spec: ScenarioSpec,
                          workdir: Path) -> Gateway:
    """The gateway of `kind` with the scenario's options, not started."""
    if kind == "dynipsec":
        from lab.gateways.dynipsec import DynipsecGateway

        o = spec.gateway.dynipsec
        return DynipsecGateway(lab.router, workdir, plan, lab, aaa=o.aaa, workers=o.workers,
                               licenses=tuple(o.licenses) if isinstance(o.licenses, tuple) else o.licenses,
                               dpd=o.dpd, remote_delete_grace=o.remote_delete_grace,
                               max_attempts=o.max_attempts, extra_users=o.users or None,
                               extra_config=o.config or None)
    from lab.gateways.strongswan import StrongSwanGateway

    o = spec.gateway.strongswan
    return StrongSwanGateway(lab.router, workdir, plan, lab, dpd_delay=o.dpd[0], dpd_timeout=o.dpd[1])


def scenario_topology(spec: ScenarioSpec, prefix: str | None):
    return load_topology(spec.topology.name).with_overrides(clients=spec.topology.clients,
                                                            prefix=prefix)


# -- running -------------------------------------------------------------------------------
def run_scenario(spec: ScenarioSpec, kind: str, run_dir: Path, *, prefix: str | None = None,
                 progress: Progress | None = None) -> RunResult:
    """Builds the scenario's lab in `run_dir`, runs every step against `kind`, tears down."""
    from lab.engine import Lab

    progress = progress or (lambda message: None)
    result = RunResult(spec.name, kind, Path(run_dir))
    started = time.monotonic()
    if kind not in spec.gateway.kinds:
        result.skipped_reason = f"scenario is for {', '.join(spec.gateway.kinds)} only"
        write_evidence(result)
        return result
    topology = scenario_topology(spec, prefix)
    plan = plan_from_topology(topology)
    try:
        with Lab(topology, run_dir) as lab:
            progress(f"{spec.name} [{kind}]: lab {topology.name} up ({len(lab.hosts)} hosts)")
            gateway = make_scenario_gateway(kind, lab, plan, spec,
                                            lab.node_dir(topology.router_name) / f"gateway-{kind}")
            ctx = Context(spec, kind, lab, plan, gateway, progress)
            try:
                gateway.start()
                run_steps(ctx, result)
            finally:
                teardown(ctx, gateway, lab, plan, result)
    except Exception as exc:  # the lab or the gateway did not come up: one failed check
        result.checks.append(CheckResult(0, "setup", "lab and gateway", "fail",
                                         f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
    result.duration = time.monotonic() - started
    write_evidence(result)
    progress(f"{spec.name} [{kind}]: {result.status.upper()} in {result.duration:.1f}s")
    return result


def run_steps(ctx: Context, result: RunResult) -> None:
    failed_step = None
    for index, step in enumerate(ctx.spec.steps, 1):
        title = step.title or step.do
        if failed_step is not None:
            result.checks.append(CheckResult(index, title, step.do, "skipped",
                                             f"after step {failed_step} failed"))
            continue
        t0 = time.monotonic()
        try:
            detail = STEPS[step.do](ctx, step)
            status = "pass"
        except (StepFailed, ClientError, GatewayError, OSError, KeyError) as exc:
            detail, status = str(exc).splitlines()[0] if str(exc) else type(exc).__name__, "fail"
            failed_step = index
        result.checks.append(CheckResult(index, title, f"do {step.do}", status, detail,
                                         time.monotonic() - t0))
        ctx.progress(f"  {index}. {title}: {status} ({detail})")
        for check in step.expect:
            status, detail, seconds = evaluate(ctx, check)
            result.checks.append(CheckResult(index, title, describe_check(check), status,
                                             detail, seconds))
            if status == "fail":
                ctx.progress(f"     FAIL {describe_check(check)}: {detail}")


def teardown(ctx: Context, gateway: Gateway, lab, plan: AccessPlan, result: RunResult) -> None:
    """Every client out, the gateway stopped, then: nothing may be left in the VRs."""
    step = len(ctx.spec.steps) + 1
    try:
        listed = ctx.subscriber_users()
    except GatewayError:
        listed = set()
    for live in ctx.clients.values():
        if live.client is None:
            continue
        try:
            if live.up and live.spec.user in listed:  # the gateway may have ended it already
                live.client.disconnect()
            else:
                live.client.close()
        except Exception as exc:  # every client must be ended, whatever happened
            result.checks.append(CheckResult(step, "teardown", f"logout {live.spec.name}",
                                             "fail", str(exc)))
    gateway.stop()
    if gateway.kind == "dynipsec":
        leftovers = []
        for group in plan.groups:
            out = lab.node(group.vr).cmd("ip -o link show")
            leftovers += re.findall(r"^\d+: (ips\d+-\d+)", out, re.M)
        result.checks.append(CheckResult(step, "teardown", "no subscriber interface left in the VRs",
                                         "fail" if leftovers else "pass",
                                         ", ".join(leftovers) or "none left"))


# -- evidence ------------------------------------------------------------------------------
def write_evidence(result: RunResult) -> None:
    result.run_dir.mkdir(parents=True, exist_ok=True)
    (result.run_dir / "summary.json").write_text(json.dumps(result.as_dict(), indent=1))
    (result.run_dir / "junit.xml").write_text(junit_xml([result]))


def junit_xml(results: list[RunResult], suite: str = "dynipsec-scenarios") -> str:
    """One <testcase> per scenario and gateway; failures list the failed checks."""
    from xml.sax.saxutils import escape, quoteattr

    failures = sum(r.status == "fail" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    total = sum(r.duration for r in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name={quoteattr(suite)} tests="{len(results)}" failures="{failures}" '
             f'skipped="{skipped}" time="{total:.3f}">']
    for r in results:
        lines.append(f'  <testcase classname={quoteattr("scenarios." + r.scenario)} '
                     f'name={quoteattr(r.gateway)} time="{r.duration:.3f}">')
        if r.status == "skipped":
            lines.append(f'    <skipped message={quoteattr(r.skipped_reason)}/>')
        elif r.status == "fail":
            text = "\n".join(f"step {c.step} {c.step_title}: {c.what}: {c.detail}" for c in r.failures())
            lines.append(f'    <failure message={quoteattr(r.failures()[0].detail[:200])}>'
                         f'{escape(text)}</failure>')
        lines.append(f'    <system-out>{escape(str(r.run_dir))}</system-out>')
        lines.append('  </testcase>')
    lines.append('</testsuite>')
    return "\n".join(lines) + "\n"


def format_failures(result: RunResult) -> str:
    return "\n".join(f"step {c.step} ({c.step_title}) {c.what}: {c.detail}" for c in result.failures())

"""The vendor-ID table in the lab: every case against a running gateway at once.

    with Lab(topology) as lab:
        results = run_gateway(lab, load_cases(), "dynipsec", out_dir)

One gateway start per kind (dynipsec: lab/gateways/dynipsec.py, the reference
strongSwan one: lab/gateways/strongswan.py), DPD interval 2 s. The cases are
spread over the client hosts (NAT cases over the hosts behind the NAT host);
one probe process per host (agent.py) runs its cases concurrently. Then the
Outcome of each case is filled from what was observed:

* the router's capture (tshark, decrypted with the initiator's own phase 1
  keys): the gateway's vendor IDs, NAT-D payload types, the port float, its
  R-U-THERE / R-U-THERE-ACK and the encapsulation mode of its Quick Mode answer;
* the initiator's view: Xauth, Mode-Config, the Quick Mode result and notifies;
* dynipsec's `show ike-sa` (polled during the run): its own dynamic/static
  decision for each initiator cookie, which must agree with what the
  initiator saw;
* alive: dynipsec's workers kept their generation (none restarted), charon runs.

Cases with a `real_client` also run with that real client (its default
fingerprint), one after another on a host of their own; what a real client
run cannot show (our DPD probe, notifies, the Quick Mode attributes) is not
compared there.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.gateways.plan import AccessPlan, plan_from_topology
from lab.vendorids.cases import Case, CaseTable
from lab.vendorids.outcome import FIELDS, Outcome, compare, with_changes
from lab.vendorids.probe import InitiatorView, WireFacts, classification, outcome_of

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
GATEWAY_DPD = (2, 10)
DPD_WAIT = 3.5
XAUTH_WAIT = 2.0
AGENT_TIMEOUT = 150.0
#: Xauth users of the initiator runs: user101, user102, ... (the plan has 250)
FIRST_USER = 101
REAL_CLIENT_FIELDS = ("classification", "dpd.echoed", "natt.version", "natt.natd",
                      "natt.floated", "unity", "fragmentation", "responder_vids", "alive")
R_U_THERE, R_U_THERE_ACK = 36136, 36137


@dataclass
class CaseResult:
    """One row of the matrix: a case on one gateway, run by the initiator or a real client."""

    case: str
    gateway: str
    runner: str
    expected: Outcome
    observed: Outcome | None
    compared: tuple[str, ...]
    problems: list[str]
    #: the table's reason when the expectation differs from dynipsec's
    why: str | None = None
    evidence: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"case": self.case, "gateway": self.gateway, "runner": self.runner,
                "passed": self.passed, "expected": self.expected.as_table(),
                "observed": self.observed.as_table() if self.observed else None,
                "compared": list(self.compared), "problems": self.problems, "why": self.why,
                "evidence": self.evidence}


# ------------------------------------------------------------------ gateways
def make_gateway(kind: str, lab, plan: AccessPlan, workdir: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "dynipsec":
        from lab.gateways.dynipsec import DynipsecGateway

        return DynipsecGateway(lab.router, workdir, plan, lab,
                               dpd=(float(GATEWAY_DPD[0]), float(GATEWAY_DPD[1])))
    if kind == "strongswan":
        from lab.gateways.strongswan import StrongSwanGateway

        return StrongSwanGateway(lab.router, workdir, plan, lab, dpd_delay=GATEWAY_DPD[0],
                                 dpd_timeout=GATEWAY_DPD[1])
    raise ValueError(f"unknown gateway {kind!r} (dynipsec, strongswan)")


class SaPoller:
    """dynipsec's `show ike-sa` rows by initiator cookie, polled while the cases run."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        self.rows: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="show-ike-sa", daemon=True)

    def __enter__(self) -> "SaPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            try:
                for row in self.gateway.show("ike-sa"):
                    cookie = str(row.get("cookies", ""))[:16]
                    if cookie:
                        self.rows.setdefault(cookie, row)
            except Exception as exc:  # a busy control socket: try again next round
                log.debug("show ike-sa: %s", exc)


def _alive_marker(kind: str, gateway) -> Any:
    if kind == "dynipsec":
        answer = gateway.request({"cmd": "ping"})
        return (answer.get("pid"), tuple((w["index"], w["generation"], w["ready"])
                                         for w in answer.get("workers", [])))
    return gateway.charon.pid if gateway.ready else None


def _still_alive(kind: str, gateway, before: Any) -> bool:
    try:
        return gateway.ready and _alive_marker(kind, gateway) == before
    except Exception:
        return False


# ------------------------------------------------------------------ agents
def _assign(lab, table: CaseTable, cases: list[Case]) -> dict[str, list[Case]]:
    """Client host -> its cases: NAT cases on hosts behind the NAT, the others on the
    access LAN (the last access host is kept for the real clients)."""
    direct = [s for s in lab.clients if not s.behind_nat]
    nat = [s for s in lab.clients if s.behind_nat]
    agents = direct[:-1] if len(direct) > 1 else direct
    if any(c.nat for c in cases) and not nat:
        raise RuntimeError("NAT cases need client hosts behind the NAT host (topology nat:)")
    spread: dict[str, list[Case]] = {}
    counters = {True: 0, False: 0}
    for case in cases:
        pool = nat if case.nat else agents
        slot = pool[counters[case.nat] % len(pool)]
        counters[case.nat] += 1
        spread.setdefault(slot.name, []).append(case)
    return spread


def _agent_plan(lab, table: CaseTable, plan: AccessPlan, slot_name: str, cases: list[Case],
                users: dict[str, str]) -> dict:
    slot = next(s for s in lab.clients if s.name == slot_name)
    group = plan.groups[0]
    return {
        "cases_file": str(table.path), "server": plan.gateway, "group": group.group,
        "main_mode_psk": plan.main_mode_psk, "group_psk": group.psk,
        "intranet": group.intranet, "source": slot.address, "client_address": slot.address,
        "dpd_wait": DPD_WAIT, "xauth_wait": XAUTH_WAIT, "concurrency": 32,
        "runs": [{"case": c.id, "user": users[c.id], "password": plan.users[users[c.id]]}
                 for c in cases]}


def run_agents(lab, table: CaseTable, plan: AccessPlan, cases: list[Case], workdir: Path,
               tag: str) -> dict[str, InitiatorView]:
    """Start one probe process per client host, wait for all, return case id -> view."""
    users = {case.id: f"user{FIRST_USER + i:03d}" for i, case in enumerate(cases)}
    processes = []
    for slot_name, slot_cases in _assign(lab, table, cases).items():
        plan_file = lab.node_dir(slot_name) / f"vendor-ids-{tag}.json"
        plan_file.write_text(json.dumps(_agent_plan(lab, table, plan, slot_name, slot_cases,
                                                    users)))
        os.chmod(plan_file, 0o600)
        stderr = open(lab.node_dir(slot_name) / f"vendor-ids-{tag}.log", "w")
        process = lab.node(slot_name).popen(
            [sys.executable, "-m", "lab.vendorids.agent", str(plan_file)], cwd=str(REPO),
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        lab.track_pid(process.pid, f"vendor-ids agent {slot_name}")
        processes.append((slot_name, process, stderr))
    views: dict[str, InitiatorView] = {}
    for slot_name, process, stderr in processes:
        try:
            out, _ = process.communicate(timeout=AGENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        finally:
            lab.untrack_pid(process.pid)
            stderr.close()
        for line in out.splitlines():
            record = json.loads(line)
            if "case" in record:
                views[record["case"]] = InitiatorView.from_dict(record["view"])
    return views


# ------------------------------------------------------------------ the capture
TSHARK_FIELDS = ("frame.time_epoch", "ip.src", "udp.dstport", "isakmp.ispi", "isakmp.rspi",
                 "isakmp.flag_e", "isakmp.vid_bytes", "isakmp.typepayload",
                 "isakmp.notify.msgtype", "isakmp.ipsec.attr.encap_mode",
                 "isakmp.exchangetype")


def read_capture(pcap: Path, key_lines: list[str], out: Path) -> list[dict]:
    """Every ISAKMP frame of the capture, decrypted where a key line fits, as dicts
    of the fields above (lists where a field occurs more than once)."""
    argv = ["tshark", "-r", str(pcap), "-n", "-Y", "isakmp", "-T", "fields",
            "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for line in key_lines:
        argv += ["-o", f"uat:ikev1_decryption_table:{line}"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    out.write_text(run.stdout)
    frames = []
    for line in run.stdout.splitlines():
        values = line.split("\t")
        values += [""] * (len(TSHARK_FIELDS) - len(values))
        frame = {name: [v for v in value.split(",") if v] for name, value in
                 zip(TSHARK_FIELDS, values)}
        for name in ("isakmp.ispi", "isakmp.rspi"):
            frame[name] = [v.replace(":", "") for v in frame[name]]
        frames.append(frame)
    return frames


def _ints(values: list[str]) -> list[int]:
    return [int(v, 0) for v in values if v.strip().lstrip("-").isdigit() or v.startswith("0x")]


def wire_from_capture(frames: list[dict], gateway_ip: str, cookies: list[str]) -> WireFacts:
    """The gateway's answer to the case's sessions, as on the wire."""
    first = cookies[0] if cookies else ""
    ours = [f for f in frames if first in f["isakmp.ispi"]]
    theirs = [f for f in ours if gateway_ip in f["ip.src"]]
    clear = [f for f in theirs if f["isakmp.flag_e"][:1] != ["1"]]
    vids = next((tuple(bytes.fromhex(v) for v in f["isakmp.vid_bytes"]) for f in clear
                 if f["isakmp.vid_bytes"]), ())
    natd = next((t for f in clear for t in _ints(f["isakmp.typepayload"]) if t in (20, 130)), None)
    floated = any(gateway_ip not in f["ip.src"] and "4500" in f["udp.dstport"] for f in ours)
    sessions = [f for f in frames if set(f["isakmp.ispi"]) & set(cookies)
                and gateway_ip in f["ip.src"] and f["isakmp.flag_e"][:1] == ["1"]]
    decrypted = any(_ints(f["isakmp.typepayload"]) for f in sessions)
    notifies = [n for f in sessions for n in _ints(f["isakmp.notify.msgtype"])]
    encap = next((m for f in sessions if "32" in f["isakmp.exchangetype"]
                  for m in _ints(f["isakmp.ipsec.attr.encap_mode"])), None)
    return WireFacts(vids, natd, floated,
                     dpd_probes=(R_U_THERE in notifies) if decrypted else None,
                     dpd_answered=(R_U_THERE_ACK in notifies) if decrypted else None,
                     encapsulation=encap)


# ------------------------------------------------------------------ outcomes
def _classified(view: InitiatorView, row: dict | None) -> tuple[str, str | None]:
    kind, notify = classification(view)
    if row is None or kind not in ("dynamic", "static"):
        return kind, notify
    if bool(row.get("dynamic")) != (kind == "dynamic"):
        return f"{kind} to the initiator, dynamic={row.get('dynamic')} in show ike-sa", notify
    return kind, notify


def case_result(table: CaseTable, case: Case, kind: str, view: InitiatorView | None,
                frames: list[dict], gateway_ip: str, alive: bool,
                rows: dict[str, dict]) -> CaseResult:
    expected = case.expected(kind)
    why = case.strongswan_why(table.reasons) if kind == "strongswan" else None
    if view is None:
        return CaseResult(case.id, kind, "initiator", expected, None, FIELDS,
                          ["no result from the probe (see the agent log)"], why)
    wire = wire_from_capture(frames, gateway_ip, view.cookies)
    row = rows.get(view.cookies[0]) if kind == "dynipsec" and view.cookies else None
    observed = outcome_of(table, view, wire, alive=alive, classified=_classified(view, row))
    evidence = {"cookies": view.cookies, "initiator": view.summary(),
                "show_ike_sa": row, "wire": {"dpd_probes": wire.dpd_probes,
                                             "dpd_answered": wire.dpd_answered,
                                             "encapsulation": wire.encapsulation}}
    return CaseResult(case.id, kind, "initiator", expected, observed, FIELDS,
                      compare(expected, observed), why, evidence)


# ------------------------------------------------------------------ real clients
def run_real_clients(lab, plan: AccessPlan, cases: list[Case], kind: str) -> list[dict]:
    """Each real-client case once, in turn, on the last access host."""
    from clients import ClientSettings, make_client

    slot = [s for s in lab.clients if not s.behind_nat][-1]
    group = plan.groups[0]
    runs = []
    for index, case in enumerate(c for c in cases if c.real_client):
        user = f"user{FIRST_USER + 100 + index:03d}"
        settings = ClientSettings(gateway=plan.gateway, group=group.group,
                                  psk=plan.psk_for(group.group, case.mode), user=user,
                                  password=plan.users[user], mode=case.mode,
                                  remote_networks=(group.intranet,))
        workdir = lab.node_dir(slot.name) / f"vendor-ids-{kind}-{case.id}"
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        record = {"case": case.id, "client": case.real_client.name, "source": slot.address,
                  "started": started, "address": None, "error": None}
        try:
            with make_client(case.real_client.name, lab.node(slot.name), workdir, settings,
                             tracker=lab) as client:
                client.connect()
                record["address"] = client.wait_up(20).address
                client.disconnect()
        except Exception as exc:  # the row shows it; the other clients still run
            record["error"] = f"{type(exc).__name__}: {exc}"
        record["ended"] = time.time()
        runs.append(record)
    return runs


def real_client_result(table: CaseTable, case: Case, kind: str, run: dict,
                       frames: list[dict], gateway_ip: str, alive: bool) -> CaseResult:
    spec = case.real_client
    expected = with_changes(case.expected(kind), spec.differs)
    why = case.real_client_why(table.reasons)
    if kind == "strongswan" and case.strongswan is not None:
        noted = case.strongswan_why(table.reasons)
        why = f"{noted}; {why}" if why else noted
    mine = [f for f in frames if run["source"] in f["ip.src"] and f["isakmp.rspi"]
            and set(f["isakmp.rspi"]) <= {"0000000000000000"}
            and run["started"] - 0.05 <= float(f["frame.time_epoch"][0]) <= run["ended"]]
    cookie = mine[0]["isakmp.ispi"][0] if mine else ""
    wire = wire_from_capture(frames, gateway_ip, [cookie] if cookie else [])
    view = InitiatorView(phase1="up" if run["address"] else f"failed: {run['error']}",
                         xauth_started=bool(run["address"]), xauth_ok=bool(run["address"]),
                         phase2="up" if run["address"] else "none", cookies=[cookie])
    observed = outcome_of(table, view, dataclasses.replace(wire, dpd_probes=None,
                                                           dpd_answered=None), alive=alive)
    problems = compare(_only(expected, REAL_CLIENT_FIELDS), _only(observed, REAL_CLIENT_FIELDS))
    return CaseResult(case.id, kind, f"{spec.name} client", expected, observed,
                      REAL_CLIENT_FIELDS, problems, why,
                      {"cookies": [cookie], "client": run})


def _only(outcome: Outcome, names: tuple[str, ...]) -> Outcome:
    blank = {name: outcome.get(name) if name in names else None for name in FIELDS}
    return with_changes(outcome, blank)


# ------------------------------------------------------------------ one gateway
def run_gateway(lab, table: CaseTable, kind: str, out_dir: Path,
                cases: list[Case] | None = None, *, real_clients: bool = True
                ) -> list[CaseResult]:
    """All cases (and their real clients) against one start of one gateway."""
    cases = list(cases if cases is not None else table.cases)
    plan = plan_from_topology(lab.topology)
    out_dir.mkdir(parents=True, exist_ok=True)
    gateway = make_gateway(kind, lab, plan, lab.node_dir(lab.topology.router_name)
                           / f"gateway-vendor-ids-{kind}")
    started = time.monotonic()
    counted = _capture_counters(lab)
    with gateway:
        marker = _alive_marker(kind, gateway)
        poller = SaPoller(gateway) if kind == "dynipsec" else None
        if poller:
            poller.__enter__()
        try:
            views = run_agents(lab, table, plan, cases, out_dir, kind)
        finally:
            if poller:
                poller.__exit__()
        real_runs = run_real_clients(lab, plan, cases, kind) if real_clients else []
        alive = _still_alive(kind, gateway, marker)
        _copy(gateway.log_path, out_dir / f"{kind}-gateway.log")
    time.sleep(0.5)  # the capture writes each packet at once; let the last ones land
    dropped = _capture_dropped(lab, counted)
    key_lines = [line for view in views.values() for line in view.key_lines]
    frames = read_capture(lab.run_dir / "router-public.pcap", key_lines,
                          out_dir / f"{kind}-isakmp-frames.tsv")
    rows = poller.rows if poller else {}
    results = [case_result(table, case, kind, views.get(case.id), frames, plan.gateway, alive,
                           rows) for case in cases]
    for run in real_runs:
        case = table.case(run["case"])
        results.append(real_client_result(table, case, kind, run, frames, plan.gateway, alive))
    if dropped:
        _mark_capture_losses(results, dropped)
    (out_dir / f"{kind}-views.json").write_text(json.dumps(
        {case_id: view.summary() for case_id, view in views.items()}, indent=1))
    log.info("%s: %d rows in %.1f s", kind, len(results), time.monotonic() - started)
    return results


def _capture_counters(lab):
    return lab.capture.counters() if lab.capture is not None else None


def _capture_dropped(lab, before) -> int:
    """Packets the router's capture lost while this gateway ran (0 if unknown)."""
    after = _capture_counters(lab)
    if before is None or after is None:
        return 0
    return max(0, after.dropped - before.dropped)


def _mark_capture_losses(results: list[CaseResult], dropped: int) -> None:
    """A field observed on the wire is only as good as the capture: say so where it lost
    packets, so that a missing payload is not read as the gateway's fault."""
    log.warning("the router's capture dropped %d packets during this run", dropped)
    for result in results:
        result.evidence["capture_dropped"] = dropped
        if result.problems:
            result.problems.append(f"the router's capture dropped {dropped} packets during "
                                   "this run: fields seen on the wire may be incomplete")


def _copy(source: Path, target: Path) -> None:
    try:
        target.write_bytes(Path(source).read_bytes())
    except OSError as exc:
        log.warning("could not copy %s: %s", source, exc)

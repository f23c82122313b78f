"""iperf3 in the lab: servers on the intranet servers, clients inside client hosts.

    servers = [IperfServer(lab.server("dlvr1"), lab.node_dir("dlsrv1"), port=5201, tracker=lab)]
    with IperfServer(...) as server:                       # one test at a time per port
        result = run_iperf_client(client_node, IperfJob("10.50.0.10", 5201, bind="10.99.1.1"),
                                  seconds=5)
        result.received_bps                                 # bits/s the receiver counted

An iperf3 server serves one test at a time, so several tunnels measured at once need
one server port per client (`IperfServer` per port). Clients run with `-J` and are
bound (`-B`) to the tunnel address, so the traffic takes the tunnel and not some other
route. Throughput is the receiver's count (`end.sum_received`): what crossed the
data path, not what the sender queued. Every process is started through the node
(it lives in the node's namespaces), tracked by PID and ended by PID.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import subprocess
from pathlib import Path
from typing import Sequence

import clients.parts as parts
from clients.process import Daemon, PidTracker, ProcessHost

log = logging.getLogger(__name__)

IPERF3 = parts.PROGRAMS["iperf3"][0]
DEFAULT_PORT = 5201
#: seconds an iperf3 client may take beyond its test: control connection, omit period,
#: the final exchange of results
CLIENT_GRACE = 20.0
#: the control connection must come up quickly, or the path is broken: fail early
CONNECT_TIMEOUT_MS = 5000


class IperfError(RuntimeError):
    """iperf3 did not run, timed out, or reported an error of its own."""


@dataclasses.dataclass(frozen=True)
class IperfResult:
    """One TCP test, as the iperf3 client reported it (bits/s, bytes, seconds)."""

    received_bps: float        # the receiver's count: what crossed the path
    sent_bps: float
    received_bytes: int
    seconds: float             # the receiver's measurement interval
    retransmits: int | None    # None where the kernel does not report them
    local: str = ""            # "address:port" of the client side
    remote: str = ""

    @property
    def received_mbps(self) -> float:
        return self.received_bps / 1e6

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "received_mbps": round(self.received_mbps, 3)}


@dataclasses.dataclass(frozen=True)
class IperfJob:
    """Where one client sends to: the server's address and port, from which local address."""

    server: str
    port: int = DEFAULT_PORT
    bind: str | None = None


# -- parsing ---------------------------------------------------------------------------
def parse_iperf_json(text: str) -> IperfResult:
    """Reads the output of `iperf3 -c ... -J` (TCP). IperfError if iperf3 reported an error
    or the output is not a finished test."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IperfError(f"iperf3 output is not JSON ({exc}): {text.strip()[:300]!r}") from None
    if not isinstance(data, dict):
        raise IperfError(f"iperf3 output is not a JSON object: {text.strip()[:300]!r}")
    if data.get("error"):
        raise IperfError(f"iperf3: {data['error']}")
    end = data.get("end") or {}
    received, sent = end.get("sum_received"), end.get("sum_sent")
    if not received or not sent:
        raise IperfError("iperf3 output has no end.sum_received/sum_sent (not a finished TCP test)")
    connected = (data.get("start") or {}).get("connected") or [{}]
    first = connected[0]
    return IperfResult(
        received_bps=float(received["bits_per_second"]),
        sent_bps=float(sent["bits_per_second"]),
        received_bytes=int(received.get("bytes", 0)),
        seconds=float(received.get("seconds", 0.0)),
        retransmits=sent.get("retransmits"),
        local=f"{first.get('local_host', '')}:{first.get('local_port', '')}",
        remote=f"{first.get('remote_host', '')}:{first.get('remote_port', '')}",
    )


def total_received_bps(results: Sequence[IperfResult]) -> float:
    """Aggregate throughput of tests that ran at the same time: the sum of their rates."""
    return sum(r.received_bps for r in results)


# -- server ----------------------------------------------------------------------------
class IperfServer(Daemon):
    """`iperf3 -s` on one port of a node; stays up between tests (no --one-off)."""

    name = "iperf3-server"
    ready_timeout = 5.0
    parts = ("iperf3",)

    def __init__(self, node: ProcessHost, workdir: Path, port: int = DEFAULT_PORT,
                 bind: str | None = None, tracker: PidTracker | None = None):
        super().__init__(node, workdir, tracker)
        self.port = port
        self.bind = bind

    @property
    def log_path(self) -> Path:
        return self.workdir / f"iperf3-server-{self.port}.log"

    def argv(self) -> list[str]:
        # --forceflush: the "listening" line reaches the log at once (ready() reads it)
        argv = [IPERF3, "-s", "-p", str(self.port), "--forceflush"]
        if self.bind:
            argv += ["-B", self.bind]
        return argv

    def ready(self) -> bool:
        return self.alive() and "Server listening" in self.tail_log(5)


def start_servers(node: ProcessHost, workdir: Path, ports: Sequence[int],
                  tracker: PidTracker | None = None) -> list[IperfServer]:
    """One server per port on a node; on failure, those already started are stopped."""
    servers: list[IperfServer] = []
    try:
        for port in ports:
            servers.append(IperfServer(node, workdir, port, tracker=tracker).start())
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Sequence[IperfServer]) -> None:
    for server in servers:
        try:
            server.stop()
        except Exception:  # keep going: one stuck server must not leak the others
            log.exception("stopping iperf3 server on %s port %d failed", server.node.name,
                          server.port)


# -- client ----------------------------------------------------------------------------
def client_argv(job: IperfJob, seconds: float, omit: int = 0) -> list[str]:
    argv = [IPERF3, "-c", job.server, "-p", str(job.port), "-t", f"{seconds:g}", "-J",
            "--connect-timeout", str(CONNECT_TIMEOUT_MS)]
    if omit:
        argv += ["-O", str(omit)]  # TCP slow start stays out of the numbers
    if job.bind:
        argv += ["-B", job.bind]
    return argv


def run_iperf_client(node: ProcessHost, job: IperfJob, seconds: float = 5.0, omit: int = 0,
                     tracker: PidTracker | None = None, timeout: float | None = None) -> IperfResult:
    """Runs one TCP test from `node` to the job's server; returns what iperf3 measured.

    Thread-safe (a process of its own, not the node's shared shell), so that several
    clients can run at once. A client that outlives `timeout` is killed by PID.
    """
    parts.require("iperf3")
    argv = client_argv(job, seconds, omit)
    timeout = timeout if timeout is not None else seconds + omit + CLIENT_GRACE
    proc = node.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    if tracker:
        tracker.track_pid(proc.pid, f"iperf3-client@{node.name}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise IperfError(f"iperf3 client on {node.name} to {job.server}:{job.port} "
                         f"still running after {timeout:.0f}s; killed") from None
    finally:
        if tracker:
            tracker.untrack_pid(proc.pid)
    log.debug("iperf3 on %s -> %s:%d exited %d", node.name, job.server, job.port, proc.returncode)
    try:
        return parse_iperf_json(out)
    except IperfError as exc:
        raise IperfError(f"{node.name} -> {job.server}:{job.port}: {exc}"
                         f"{'; stderr: ' + err.strip() if err.strip() else ''}") from None


def run_concurrently(tests: Sequence[tuple[ProcessHost, IperfJob]], seconds: float = 5.0,
                     omit: int = 0, tracker: PidTracker | None = None
                     ) -> list[IperfResult | IperfError]:
    """Runs every (node, job) test at the same time; results in the same order.

    A failed test yields its IperfError in its place instead of aborting the others,
    so the caller sees which tunnel failed and still gets the rest.
    """
    if not tests:
        return []

    def one(test: tuple[ProcessHost, IperfJob]) -> IperfResult | IperfError:
        node, job = test
        try:
            return run_iperf_client(node, job, seconds, omit, tracker)
        except IperfError as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(len(tests), thread_name_prefix="iperf") as pool:
        return list(pool.map(one, tests))

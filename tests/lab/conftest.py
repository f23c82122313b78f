"""Fixtures for lab tests: one session-wide lab of the default topology, and the helpers
every lab module shares (plan, wait_until, a gateway factory, a client factory).

Options (see `pytest --help`, section "lab"):
  --lab-keep   a failed lab test leaves the session lab up at the end, with instructions
  --lab-pcap   a capture of the router's access LAN per test, in the test's evidence dir

Environment:
  DYNIPSEC_LAB_CLIENTS   access-LAN clients in the session lab (default 50)
  DYNIPSEC_LAB_PREFIX    node-name prefix (default: the topology's, `dl`); set another one
                         (e.g. `dt`) to test next to a `dynipsec lab up` lab on the same machine
  DYNIPSEC_LAB_TOPOLOGY  topology name or path (default `default`)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

#: where the per-test capture goes, inside the test's evidence directory
PCAP_NAME = "access-lan.pcap"  # tests/conftest.py names it in --lab-pcap's help
_FAILED_LAB_TESTS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_FAILED_LAB_TESTS] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.get_closest_marker("lab") is not None:
        item.config.stash[_FAILED_LAB_TESTS].append(item.nodeid)
    return report


def session_prefix() -> str | None:
    return os.environ.get("DYNIPSEC_LAB_PREFIX") or None


def lab_topology(clients: int | None = None, prefix: str | None = None):
    """The test topology with the environment's overrides applied."""
    from lab.topology import load_topology

    topology = load_topology(os.environ.get("DYNIPSEC_LAB_TOPOLOGY", "default"))
    count = clients if clients is not None else int(os.environ.get("DYNIPSEC_LAB_CLIENTS", "50"))
    return topology.with_overrides(clients=count, prefix=prefix or session_prefix())


def aux_prefix(letter: str) -> str:
    """A prefix for a test's own extra lab: the session prefix plus one letter, so that it
    never collides with the session lab (or with a developer's lab of the base prefix)."""
    from lab.topology import load_topology

    base = session_prefix() or load_topology(os.environ.get("DYNIPSEC_LAB_TOPOLOGY", "default")).prefix
    return f"{base[:4]}{letter}"


@pytest.fixture(scope="session")
def lab(request):
    """The running default lab (lab.engine.Lab), shared by the whole test session."""
    from lab.engine import Lab

    keep = request.config.getoption("lab_keep")
    # kind "keeper": `dynipsec lab down` then ends a kept lab by SIGTERM to this process
    with Lab(lab_topology(), kind="keeper" if keep else "in-process") as running:
        yield running
        failed = request.config.stash[_FAILED_LAB_TESTS]
        if keep and failed:
            # fd-level capture would swallow the instructions and the Ctrl-C prompt
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            with capture.global_and_fixture_disabled():
                hold_lab(running, failed, _terminal(request.config))


def _terminal(config):
    """Writes past pytest's output capture, which swallows fixture teardown output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def write(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)
        else:
            sys.__stderr__.write(line + "\n")
        sys.__stderr__.flush()
    return write


def keep_instructions(lab, failed: list[str]) -> list[str]:
    """What a developer needs to look into a kept lab and to end it."""
    prefix = lab.topology.prefix
    client = lab.clients[0].name if lab.clients else lab.topology.router_name
    return [
        f"lab {prefix!r} kept up after {len(failed)} failed lab test(s): {', '.join(failed)}",
        f"  evidence:  {lab.run_dir}",
        f"  enter:     dynipsec lab exec {lab.topology.router_name} -- ip -br addr",
        f"             dynipsec lab exec {client} -- bash",
        f"  status:    dynipsec lab status --prefix {prefix}",
        f"  end it:    dynipsec lab down --prefix {prefix}   (or Ctrl-C here)",
        f"  if this pytest (pid {os.getpid()}) was killed: dynipsec lab clean --prefix {prefix}",
    ]


def hold_lab(lab, failed: list[str], write) -> None:
    """Blocks until SIGTERM (what `dynipsec lab down` sends) or Ctrl-C; the caller then
    tears the lab down as always."""
    for line in keep_instructions(lab, failed):
        write(line)
    ended = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: ended.set())
    try:
        while not ended.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    write(f"lab {lab.topology.prefix!r}: tearing down")


@pytest.fixture(autouse=True)
def lab_pcap(request):
    """With --lab-pcap: tcpdump on the router's access LAN for the test's duration.

    Only tests that use the session lab get one: the others build labs of their own.
    """
    if not request.config.getoption("lab_pcap") or "lab" not in request.fixturenames:
        yield None
        return
    from lab.engine import LAN_BRIDGE, PacketCapture

    running = request.getfixturevalue("lab")
    evidence = request.getfixturevalue("lab_evidence_dir")
    capture = PacketCapture(running.router, evidence, LAN_BRIDGE, evidence / PCAP_NAME,
                            tracker=running)
    capture.start()
    try:
        yield capture.pcap
    finally:
        capture.stop()


@pytest.fixture(scope="session")
def make_topology():
    """make_topology(clients=None, prefix=None) -> Topology with the environment's overrides."""
    return lab_topology


@pytest.fixture(scope="session")
def make_prefix():
    """make_prefix('x') -> a prefix for a test's own extra lab (see aux_prefix)."""
    return aux_prefix


@pytest.fixture(scope="session")
def lab_runs_root():
    """One runs/<timestamp>/ directory for the evidence of this test session."""
    from lab.engine import make_run_dir

    return make_run_dir()


@pytest.fixture
def lab_evidence_dir(request, lab_runs_root):
    """This test's own evidence directory: runs/<timestamp>/<test name>/."""
    # short: client work directories hold unix sockets (at most 108 bytes of path)
    name = request.node.name.removeprefix("test_").replace("[", "-").rstrip("]")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = lab_runs_root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- shared helpers of the lab test modules ------------------------------------------------
@pytest.fixture(scope="session")
def plan(lab):
    """The access plan (groups, PSKs, pools, users) of the session lab."""
    from lab.gateways import plan_from_topology

    return plan_from_topology(lab.topology)


def poll_until(predicate, timeout: float = 5.0, interval: float = 0.1) -> bool:
    """True as soon as predicate() is; False if it still is not after `timeout` seconds
    (it is asked once more at the deadline, so a slow last step still counts)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


@pytest.fixture(scope="session")
def wait_until():
    """wait_until(predicate, timeout=5.0) -> bool (see poll_until)."""
    return poll_until


def node_name(lab, index: int) -> str:
    return lab.clients[index].name


def client_for(lab, plan, node: str, kind: str, mode: str, user: str, group: str = "vr1",
               password: str | None = None, **settings):
    """An unconnected real client on `node`, logging in as `user` to `group`."""
    from clients import ClientSettings, make_client

    options = ClientSettings(gateway=plan.gateway, group=group, psk=plan.psk_for(group, mode),
                             user=user, password=password or plan.users[user], mode=mode,
                             remote_networks=(plan.group(group).intranet,), **settings)
    return make_client(kind, lab.node(node), lab.node_dir(node), options, tracker=lab)


@pytest.fixture(scope="session")
def client_factory(lab, plan):
    """client_factory(node, kind, mode, user, group="vr1", password=None) -> a client."""
    return lambda *args, **kwargs: client_for(lab, plan, *args, **kwargs)


def gateway_for(lab, plan, kind: str, name: str, **options):
    """An unstarted gateway of `kind` in the router, working in gateway-<name>/ (the name
    keeps each module's daemon logs apart); options go to DynipsecGateway."""
    workdir = lab.node_dir(lab.topology.router_name) / f"gateway-{name}"
    if kind == "dynipsec":
        from lab.gateways.dynipsec import DynipsecGateway

        return DynipsecGateway(lab.router, workdir, plan, lab, **options)
    from lab.gateways import make_gateway

    return make_gateway(kind, lab.router, workdir, plan, lab)


@pytest.fixture(scope="session")
def gateway_factory(lab, plan):
    """gateway_factory(kind, name, **options) -> an unstarted gateway (a context manager)."""
    return lambda kind, name, **options: gateway_for(lab, plan, kind, name, **options)


def cli(gateway, *args) -> dict:
    """`dynipsec show|logout ... --json` against the gateway's control socket."""
    run = subprocess.run([sys.executable, "-m", "responder", *args, "-s",
                          gateway.daemon.control_socket], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)

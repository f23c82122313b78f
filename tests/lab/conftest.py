"""Fixtures for lab tests: one session-wide lab of the default topology.

Environment:
  DYNIPSEC_LAB_CLIENTS   access-LAN clients in the session lab (default 50)
  DYNIPSEC_LAB_PREFIX    node-name prefix (default: the topology's, `dl`); set another one
                         (e.g. `dt`) to test next to a `dynipsec lab up` lab on the same machine
  DYNIPSEC_LAB_TOPOLOGY  topology name or path (default `default`)
"""
from __future__ import annotations

import os

import pytest


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
def lab():
    """The running default lab (lab.engine.Lab), shared by the whole test session."""
    from lab.engine import Lab

    with Lab(lab_topology()) as running:
        yield running


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

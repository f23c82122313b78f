"""Shared pytest setup. Only cheap checks happen here: nothing is built at import time.

Tests marked `lab` need real network namespaces: they are skipped, with the reason,
unless we run as root. As root, a missing program of the lab (Debian's mnexec, ip, ...)
is a broken installation, not a reason to skip: those tests fail at once naming the
part and its package (clients.parts).
"""
from __future__ import annotations

import os

import pytest

from clients.parts import require

#: what every lab test runs, whatever its daemons (they check their own parts)
LAB_PROGRAMS = ("mnexec", "ip", "tc", "nft", "brctl", "sysctl", "ping", "tcpdump")


# registered here, not in tests/lab/conftest.py, so that `pytest --help` lists them
def pytest_addoption(parser):
    group = parser.getgroup("lab", "dynipsec lab (network namespaces)")
    group.addoption("--lab-keep", action="store_true", default=False,
                    help="if a lab test fails, keep the session lab up when the tests are "
                         "done and print how to enter it (dynipsec lab exec HOST -- CMD) and "
                         "how to end it (dynipsec lab down, or dynipsec lab clean if this "
                         "process was killed); pytest waits until then")
    group.addoption("--lab-pcap", action="store_true", default=False,
                    help="capture the router's access LAN during every test that uses the "
                         "session lab, into the test's evidence directory "
                         "(runs/<timestamp>/<test>/access-lan.pcap)")


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab test: needs root (it builds real network namespaces)"
    return None


@pytest.fixture(autouse=True)
def lab_programs_installed(request):
    if request.node.get_closest_marker("lab") is not None and lab_unavailable_reason() is None:
        require(*LAB_PROGRAMS)


def pytest_collection_modifyitems(config, items):
    reason = lab_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(skip)

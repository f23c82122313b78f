"""Shared pytest setup. Only cheap checks happen here: nothing is built at import time.

Tests marked `lab` need real network namespaces: they are skipped, with the reason,
unless we run as root. As root, a missing program of the lab (Debian's mnexec, ip, ...)
is a broken installation, not a reason to skip: those tests fail at once naming the
part and its package (lab.parts).
"""
from __future__ import annotations

import os

import pytest

from lab.parts import require

#: what every lab test runs, whatever its daemons (they check their own parts)
LAB_PROGRAMS = ("mnexec", "ip", "tc", "nft", "brctl", "sysctl", "ping", "tcpdump")


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

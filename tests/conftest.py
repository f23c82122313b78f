"""Shared pytest setup. Only cheap checks happen here: nothing is built at import time.

Tests marked `lab` need real network namespaces: they are skipped, with the reason,
unless we run as root and Debian's /usr/bin/mnexec (package mininet) is present.
"""
from __future__ import annotations

import os

import pytest

MNEXEC = "/usr/bin/mnexec"


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab test: needs root (it builds real network namespaces)"
    if not os.path.exists(MNEXEC):
        return f"lab test: needs {MNEXEC} (Debian package mininet; run ci/setup.sh)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = lab_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(skip)

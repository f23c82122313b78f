"""The vendor-ID table (lab/vendorids/cases.yaml) in the lab, against the running
dynipsec daemon and the reference strongSwan gateway.

One lab of its own (4 access clients, the NAT host's clients), one start per
gateway; all cases run at once from the client hosts with the project's
initiator, the strongSwan/vpnc cases with the real client too. The Outcome of a
case comes from the router's capture (tshark), the initiator's result and
dynipsec's `show ike-sa`; on strongSwan every difference from dynipsec's
answer must be one the table explains. The matrix report (Markdown, JSON) and
its evidence land in the lab run's vendor-ids/ directory.

Needs root, Mininet, strongSwan, vpnc and tshark (marker `lab`).
"""
from __future__ import annotations

import os
import shutil

import pytest

from lab.vendorids.cases import load_cases

pytestmark = pytest.mark.lab

if os.geteuid() != 0:
    pytest.skip("lab tests need root (Mininet namespaces)", allow_module_level=True)

TABLE = load_cases()
GATEWAYS = ("dynipsec", "strongswan")


@pytest.fixture(scope="module")
def vendor_lab(make_topology, make_prefix):
    from lab.engine import Lab

    if shutil.which("tshark") is None:
        pytest.fail("tshark is missing (Debian package tshark, ci/apt-packages.txt)")
    with Lab(make_topology(clients=4, prefix=make_prefix("v"))) as lab:
        yield lab


@pytest.fixture(scope="module")
def matrix(vendor_lab):
    from lab.vendorids.report import run_matrix

    out_dir = vendor_lab.run_dir / "vendor-ids"
    results = run_matrix(vendor_lab, TABLE, GATEWAYS, out_dir)
    assert (out_dir / "vendor-ids.md").is_file() and (out_dir / "vendor-ids.json").is_file()
    rows: dict[tuple[str, str], list] = {}
    for result in results:
        rows.setdefault((result.gateway, result.case), []).append(result)
    return rows


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("case", TABLE.cases, ids=[case.id for case in TABLE.cases])
def test_case_in_the_lab(matrix, gateway, case):
    results = matrix.get((gateway, case.id), [])
    runners = {r.runner for r in results}
    assert "initiator" in runners, results
    if case.real_client is not None:
        assert f"{case.real_client.name} client" in runners, results
    failed = {r.runner: (r.problems, r.evidence) for r in results if not r.passed}
    assert not failed, f"{gateway} {case.id}: {failed}"

"""Every scenario file (scenarios/*.yaml) against every gateway it is meant for: one test each.

The scenario engine (lab/scenario_engine.py) builds the scenario's own lab under the
prefix `aux_prefix("s")`, so these tests run beside the session lab. Evidence of each
test (pcap, logs, summary.json, junit.xml) is in runs/<timestamp>/<test name>/.
"""
from __future__ import annotations

import pytest

from lab.scenario_spec import GATEWAY_KINDS, all_scenario_paths, load_scenario
from tests.lab.conftest import aux_prefix

pytestmark = pytest.mark.lab

# every kind for every file: a scenario not meant for a gateway shows as skipped, with why
CASES = [(path, kind) for path in all_scenario_paths() for kind in GATEWAY_KINDS]


@pytest.mark.parametrize("path,kind", CASES, ids=[f"{p.stem}-{k}" for p, k in CASES])
def test_scenario(path, kind, lab_evidence_dir):
    from lab.scenario_engine import format_failures, run_scenario

    spec = load_scenario(path)
    result = run_scenario(spec, kind, lab_evidence_dir, prefix=aux_prefix("s"), progress=print)
    if result.skipped_reason:
        pytest.skip(f"{spec.name} on {kind}: {result.skipped_reason}")
    assert result.passed, f"{format_failures(result)}\nevidence: {result.run_dir}"

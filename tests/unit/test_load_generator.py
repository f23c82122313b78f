"""The load generator's pure parts, and one small load over loopback UDP."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from clients.ikev1_initiator import IdentitySpec, InitiatorConfig, Mode
from clients.ikev1_initiator.load import (
    LatencyHistogram,
    RateSchedule,
    address_block,
    failure_reason,
    rate_timeline,
    run_load,
    sources_needed,
    spread,
)

from tests.unit.test_initiator_driver import PSK, engine, serve


def test_schedule_is_absolute_so_a_late_start_does_not_shift_the_rest():
    schedule = RateSchedule(rate=100.0, start=10.0)
    assert schedule.due(0) == 10.0
    assert schedule.due(250) == pytest.approx(12.5)
    assert schedule.delay(5, now=10.0) == pytest.approx(0.05)
    # session 5 started 0.2 s late: session 30 is still due at 10.3
    assert schedule.lag(5, now=10.25) == pytest.approx(0.2)
    assert schedule.delay(30, now=10.25) == pytest.approx(0.05)
    assert schedule.delay(1, now=11.0) == 0.0


def test_schedule_needs_a_positive_rate():
    with pytest.raises(ValueError):
        RateSchedule(rate=0)


def test_histogram_percentiles_are_nearest_rank():
    histogram = LatencyHistogram.from_samples([float(v) for v in range(100, 0, -1)])
    assert len(histogram) == 100
    assert histogram.percentile(0.5) == 50.0
    assert histogram.percentile(0.99) == 99.0
    assert histogram.percentile(1.0) == 100.0
    assert histogram.summary()["min"] == 1.0
    assert LatencyHistogram().percentile(0.5) is None


def test_histogram_buckets_count_every_sample_once():
    histogram = LatencyHistogram(low=1.0, decades=2, per_decade=1)  # edges 1, 10, 100
    for ms in (0.2, 1.0, 5.0, 10.0, 50.0, 500.0):
        histogram.record(ms)
    assert histogram.buckets() == [{"le": 1.0, "count": 1}, {"le": 10.0, "count": 2},
                                   {"le": 100.0, "count": 2}, {"le": None, "count": 1}]


@settings(deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1e6), max_size=200),
       st.lists(st.floats(min_value=0.01, max_value=1e6), max_size=200))
def test_merged_histogram_equals_one_built_from_all_samples(a, b):
    merged = LatencyHistogram.from_samples(a)
    merged.merge(LatencyHistogram.from_samples(b))
    whole = LatencyHistogram.from_samples(a + b)
    assert merged.counts == whole.counts
    assert merged.samples == whole.samples
    assert sum(c["count"] for c in merged.buckets()) == len(a) + len(b)


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=64))
def test_spread_keeps_every_source_under_its_share(count, per_source):
    sources = [f"198.18.200.{i}" for i in range(1, sources_needed(count, per_source) + 1)]
    assigned = spread(count, sources)
    assert len(assigned) == count
    assert max(Counter(assigned).values(), default=0) <= per_source


def test_spread_needs_a_source():
    with pytest.raises(ValueError):
        spread(3, [])


def test_address_block_skips_taken_and_special_addresses():
    assert address_block("198.18.0.0/30", "198.18.0.0", 1, exclude=["198.18.0.1"]) == [
        "198.18.0.2"]
    assert address_block("198.18.0.0/29", "198.18.0.0", 3, exclude=["198.18.0.2"]) == [
        "198.18.0.1", "198.18.0.3", "198.18.0.4"]
    with pytest.raises(ValueError):
        address_block("198.18.0.0/30", "198.18.0.1", 3)
    with pytest.raises(ValueError):
        address_block("198.18.0.0/30", "10.0.0.1", 1)


def test_failure_reasons_group_by_kind_not_by_detail():
    assert failure_reason("xauth", None, None, True) == "timeout in xauth"
    assert failure_reason("failed", "peer refused", "NO_PROPOSAL_CHOSEN", False) == \
        "notify NO_PROPOSAL_CHOSEN"
    assert failure_reason("failed", "xauth refused: user user007", None, False) == "xauth refused"
    assert failure_reason("closed", None, None, False) == "ended in closed"


def test_rate_timeline_bins_completions_per_second():
    assert rate_timeline([10.1, 10.5, 11.2, 13.9], start=10.0) == [2, 1, 0, 1]
    assert rate_timeline([], start=0.0) == []


def _configs(ike_port: int, natt_port: int, count: int) -> list[InitiatorConfig]:
    return [InitiatorConfig(server="127.0.0.1", server_port=ike_port, server_natt_port=natt_port,
                            identity=IdentitySpec.parse("keyid:vr1"), psk=PSK,
                            mode=(Mode.MAIN, Mode.AGGRESSIVE)[i % 2], mode_config=False)
            for i in range(count)]


@pytest.mark.parametrize("pace", [{"rate": 200.0}, {"concurrency": 4}], ids=["open", "closed"])
def test_load_logs_everyone_in_holds_and_deletes_all(pace):
    responder = engine()
    held_counts = []

    async def scenario():
        sockets, ike_port, natt_port = await serve(responder)
        try:
            return await run_load(_configs(ike_port, natt_port, 10), ["127.0.0.1"], timeout=10,
                                  on_held=lambda r: held_counts.append(responder.sa_count),
                                  **pace)
        finally:
            for transport in sockets.values():
                transport.close()

    result = asyncio.run(scenario()).as_dict()
    assert result["established"] == 10 and result["failed"] == 0, result["failures"]
    assert result["released"] == 10
    assert held_counts and held_counts[0] > 0
    assert responder.sa_count == 0  # every session sent Delete
    assert sum(result["rate_per_s"]) == 10
    assert result["latency_ms"]["count"] == 10


def test_load_counts_refused_logins_by_reason():
    responder = engine()

    async def scenario():
        sockets, ike_port, natt_port = await serve(responder)
        configs = [c.with_changes(psk=b"wrong-key") for c in _configs(ike_port, natt_port, 3)]
        configs = [c.with_changes(retransmit=c.retransmit.__class__(timeout=0.1, tries=1))
                   for c in configs]
        try:
            return await run_load(configs, ["127.0.0.1"], concurrency=3, timeout=3)
        finally:
            for transport in sockets.values():
                transport.close()

    result = asyncio.run(scenario()).as_dict()
    assert result["established"] == 0
    assert sum(result["failures"].values()) == 3

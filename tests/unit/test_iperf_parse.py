"""lab.iperf: reading `iperf3 -J` output, and the command lines it runs (no processes)."""
from __future__ import annotations

import json

import pytest

from lab.iperf import (IperfError, IperfJob, IperfResult, client_argv, parse_iperf_json,
                       total_received_bps)

# a real iperf 3.12 TCP result from the lab (intervals and per-stream details trimmed)
FINISHED = {
    "start": {
        "connected": [{"socket": 7, "local_host": "10.99.1.1", "local_port": 46166,
                       "remote_host": "10.50.0.10", "remote_port": 5201}],
        "version": "iperf 3.12",
        "test_start": {"protocol": "TCP", "num_streams": 1, "omit": 1, "duration": 5},
    },
    "intervals": [],
    "end": {
        "streams": [],
        "sum_sent": {"start": 0, "end": 5.000101, "seconds": 5.000101, "bytes": 131072000,
                     "bits_per_second": 209710000.0, "retransmits": 12, "sender": True},
        "sum_received": {"start": 0, "end": 5.000188, "seconds": 5.000188, "bytes": 130000000,
                         "bits_per_second": 208000000.0, "sender": True},
        "sender_tcp_congestion": "bbr",
    },
}

# what iperf 3.12 prints with -J when the server does not answer
REFUSED = {"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [], "end": {},
           "error": "unable to connect to server: Connection refused"}


def test_finished_test_gives_receiver_rate_bytes_and_retransmits():
    result = parse_iperf_json(json.dumps(FINISHED))
    assert result.received_bps == 208000000.0
    assert result.sent_bps == 209710000.0
    assert result.received_bytes == 130000000
    assert result.seconds == pytest.approx(5.000188)
    assert result.retransmits == 12
    assert result.local == "10.99.1.1:46166"
    assert result.remote == "10.50.0.10:5201"
    assert result.received_mbps == pytest.approx(208.0)
    assert result.as_dict()["received_mbps"] == 208.0


def test_missing_retransmits_stay_unknown():
    data = json.loads(json.dumps(FINISHED))
    del data["end"]["sum_sent"]["retransmits"]
    assert parse_iperf_json(json.dumps(data)).retransmits is None


def test_iperf_error_field_becomes_iperf_error():
    with pytest.raises(IperfError, match="Connection refused"):
        parse_iperf_json(json.dumps(REFUSED))


@pytest.mark.parametrize("text", ["", "iperf3: error - unable to connect", "[]",
                                  json.dumps({"start": {}, "end": {}})])
def test_output_that_is_not_a_finished_test_is_an_error(text):
    with pytest.raises(IperfError):
        parse_iperf_json(text)


def test_total_is_the_sum_of_concurrent_rates():
    a = IperfResult(received_bps=100e6, sent_bps=101e6, received_bytes=1, seconds=5, retransmits=0)
    b = IperfResult(received_bps=50e6, sent_bps=51e6, received_bytes=1, seconds=5, retransmits=3)
    assert total_received_bps([a, b]) == 150e6
    assert total_received_bps([]) == 0


def test_client_argv_binds_to_the_tunnel_address_and_asks_for_json():
    argv = client_argv(IperfJob("10.50.0.10", 5203, bind="10.99.2.7"), seconds=5, omit=1)
    assert argv[:3] == ["iperf3", "-c", "10.50.0.10"]
    assert argv[argv.index("-p") + 1] == "5203"
    assert argv[argv.index("-t") + 1] == "5"
    assert argv[argv.index("-B") + 1] == "10.99.2.7"
    assert argv[argv.index("-O") + 1] == "1"
    assert "-J" in argv


def test_client_argv_without_bind_or_omit():
    argv = client_argv(IperfJob("10.50.0.10"), seconds=2.5)
    assert "-B" not in argv and "-O" not in argv
    assert argv[argv.index("-t") + 1] == "2.5"

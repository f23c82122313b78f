"""Progress lines of concurrent logins stay whole (demo output and scenario runner)."""

from __future__ import annotations

import io
import re
import threading
import time
from types import SimpleNamespace

from lab import demo
from lab.scenario import ClientResult, ScenarioRunner

CLIENTS = 24
WHOLE_RUNNER_LINE = re.compile(r"\[ ?\d+/24\] dlc\d+ +vpnc +aggressive dlg1 up +0\.100s 10\.99\.1\.\d+")


class SlowStream(io.StringIO):
    """A captured stream that yields to other threads after every write."""

    def write(self, text: str) -> int:
        written = super().write(text)
        time.sleep(0.0005)
        return written


def run_at_once(calls) -> None:
    """Starts every call in its own thread at the same moment and waits for all."""
    barrier = threading.Barrier(len(calls))

    def started_together(call):
        barrier.wait()
        call()

    threads = [threading.Thread(target=started_together, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def progress_record(i: int) -> str:
    return f"[{i:>2}/{CLIENTS}] dlc{i:<3} strongswan main       dlg1 up      0.120s 10.99.1.{i}"


def test_demo_progress_lines_of_concurrent_callers_are_whole(monkeypatch):
    stream = SlowStream()
    monkeypatch.setattr("sys.stderr", stream)
    records = [progress_record(i) for i in range(1, CLIENTS + 1)]
    run_at_once([lambda record=record: demo._say(record) for record in records])
    assert sorted(stream.getvalue().splitlines()) == sorted(records)
    assert stream.getvalue().endswith("\n")


def client_result(i: int) -> ClientResult:
    return ClientResult(node=f"dlc{i}", kind="vpnc", mode="aggressive", user=f"u{i:03}",
                        group="dlg1", vr="dlvr1", behind_nat=False, address=f"10.99.1.{i}",
                        setup_time=0.1)


def runner_writing_to(stream: io.StringIO) -> ScenarioRunner:
    """A runner without a lab whose progress writes text and newline separately, as print does."""

    def print_like(message: str) -> None:
        stream.write(message)
        stream.write("\n")

    scenario = SimpleNamespace(clients=[None] * CLIENTS)
    return ScenarioRunner(lab=None, plan=None, gateway=None, scenario=scenario,
                          run_dir="unused", progress=print_like)


def test_scenario_runner_reports_each_login_as_one_whole_numbered_line():
    stream = SlowStream()
    runner = runner_writing_to(stream)
    results = [client_result(i) for i in range(1, CLIENTS + 1)]
    run_at_once([lambda result=result: runner._report(result, "up") for result in results])
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == [f"[{i:>2}/{CLIENTS}" for i in range(1, CLIENTS + 1)]
    assert sorted(line.split()[-1] for line in lines) == sorted(r.address for r in results)
    assert all(WHOLE_RUNNER_LINE.fullmatch(line) for line in lines), lines

"""Interface removals batched for the netif thread (daemon/netifbatch.py): removals asked
for while a batch job waits join it, one remove_many call per VR, and no removal runs
after a job submitted later than it."""
from __future__ import annotations

from dataclasses import dataclass

from responder.daemon.netifbatch import RemovalBatcher


@dataclass
class Iface:
    name: str
    vr: str = "vr1"


class SerialThread:
    """The netif thread's queue, run by hand."""

    def __init__(self) -> None:
        self.jobs: list = []
        self.log: list = []

    def submit(self, job) -> None:
        self.jobs.append(job)

    def run_all(self) -> None:
        while self.jobs:
            self.jobs.pop(0)()

    def remove_many(self, ifaces) -> int:
        self.log.append(("remove", sorted(i.name for i in ifaces)))
        return len(ifaces)


def test_removals_waiting_for_the_thread_go_in_one_call():
    thread = SerialThread()
    batcher = RemovalBatcher(thread.submit, thread.remove_many)
    for n in range(200):
        batcher.add(Iface(f"ips1-{n}"))
    assert len(thread.jobs) == 1
    thread.run_all()
    assert len(thread.log) == 1 and len(thread.log[0][1]) == 200
    assert batcher.batches == 1


def test_one_call_per_vr():
    thread = SerialThread()
    batcher = RemovalBatcher(thread.submit, thread.remove_many)
    for name, vr in (("a", "vr1"), ("b", "vr2"), ("c", "vr1")):
        batcher.add(Iface(name, vr))
    thread.run_all()
    assert thread.log == [("remove", ["a", "c"]), ("remove", ["b"])]


def test_a_removal_runs_before_every_job_submitted_after_it():
    thread = SerialThread()
    batcher = RemovalBatcher(thread.submit, thread.remove_many)
    batcher.add(Iface("old-1"))
    thread.submit(lambda: thread.log.append(("create", "new-1")))
    batcher.add(Iface("old-2"))  # joins the batch queued before the creation
    thread.run_all()
    batcher.add(Iface("old-3"))  # the batch began: a new one
    thread.submit(lambda: thread.log.append(("create", "new-2")))
    thread.run_all()
    assert thread.log == [("remove", ["old-1", "old-2"]), ("create", "new-1"),
                          ("remove", ["old-3"]), ("create", "new-2")]


def test_a_failing_vr_does_not_stop_the_others():
    thread = SerialThread()

    def remove_many(ifaces):
        if ifaces[0].vr == "vr1":
            raise OSError("netlink went away")
        return thread.remove_many(ifaces)

    batcher = RemovalBatcher(thread.submit, remove_many)
    batcher.add(Iface("a", "vr1"))
    batcher.add(Iface("b", "vr2"))
    thread.run_all()
    assert thread.log == [("remove", ["b"])]

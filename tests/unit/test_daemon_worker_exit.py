"""A worker's exit does not wait forever for its netif thread: a netlink call that never
returns (lost acks) left a worker alive for good after its supervisor died."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from responder.daemon.worker import ThreadedInterfaces


class StuckManager:
    def __init__(self) -> None:
        self.release = threading.Event()

    def close(self) -> None:
        self.release.wait(30)


def threaded(manager) -> ThreadedInterfaces:
    interfaces = object.__new__(ThreadedInterfaces)   # without a real InterfaceManager
    interfaces._executor = ThreadPoolExecutor(1, thread_name_prefix="netif-test")
    interfaces._manager = manager
    return interfaces


def test_a_stuck_netif_thread_gives_up_the_close_in_time():
    manager = StuckManager()
    interfaces = threaded(manager)
    started = time.monotonic()
    try:
        assert interfaces.close(timeout=0.2) is False
        assert time.monotonic() - started < 2
    finally:
        manager.release.set()
        interfaces._executor.shutdown(wait=True)


def test_a_netif_thread_that_finishes_is_joined():
    class Done:
        closed = False

        def close(self) -> None:
            Done.closed = True

    assert threaded(Done()).close(timeout=5) is True and Done.closed

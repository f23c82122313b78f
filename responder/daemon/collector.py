"""When a worker's cyclic garbage collector makes a full pass over its objects.

CPython collects the oldest generation whenever it has grown by a quarter since the last
full pass. A worker's long-lived objects are its subscribers' state, so during a login
wave that rule makes full passes over an ever larger heap: at 5,000 subscribers a
worker tracks ~570,000 objects and a pass takes 360-480 ms, with every login in flight
waiting behind it. Logins make long-lived objects, not garbage; what ends (a logout, a
refused or abandoned login) may leave garbage in cycles. So the young generations stay
automatic and the oldest is collected here, from the worker's once-a-second tick:

* when as many sessions have ended since the last pass as a quarter of those held
  (at least ``floor``), or ``max_interval`` seconds after the last pass;
* what exists when the worker has read its configuration is frozen (modules,
  configuration: never garbage, never scanned again).
"""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

__all__ = ["FullCollections"]

log = logging.getLogger(__name__)

#: the oldest generation's threshold that CPython never reaches (its own passes off)
NEVER = 2**31 - 1


class FullCollections:
    def __init__(self, *, floor: int = 1000, max_interval: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.floor = floor
        self.max_interval = max_interval
        self.clock = clock
        self.ended = 0            # sessions ended since the last full pass
        self.passes = 0
        self.last_pass = clock()
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Freeze what exists and take the oldest generation's passes over."""
        gc.collect()
        gc.freeze()
        young, middle, _ = self._saved = gc.get_threshold()
        gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def note_ended(self, count: int = 1) -> None:
        self.ended += count

    def due(self, held: int) -> bool:
        return (self.ended >= max(self.floor, held // 4)
                or self.clock() - self.last_pass >= self.max_interval)

    def tick(self, held: int) -> int | None:
        """A full pass if one is due: the unreachable objects it found, else None."""
        if not self.due(held):
            return None
        started = time.perf_counter()
        found = gc.collect()
        self.passes += 1
        self.ended, self.last_pass = 0, self.clock()
        log.debug("full collection: %d unreachable, %.1f ms, %d held", found,
                  (time.perf_counter() - started) * 1000, held)
        return found

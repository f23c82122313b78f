"""The worker's full garbage collections: due by sessions ended, not by logins."""
from __future__ import annotations

import gc

from responder.daemon.collector import NEVER, FullCollections


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_logins_alone_never_make_a_full_pass_until_the_interval():
    clock = Clock()
    collections = FullCollections(floor=10, max_interval=600, clock=clock)
    for held in range(0, 10_000, 100):
        clock.now += 1
        assert collections.tick(held=held) is None
    clock.now = 600
    assert collections.tick(held=10_000) is not None and collections.passes == 1


def test_a_quarter_of_the_held_ended_makes_a_pass_that_finds_cyclic_garbage():
    collections = FullCollections(floor=10, clock=Clock())
    collections.note_ended(9)
    assert collections.tick(held=20) is None          # under the floor
    collections.note_ended(1)
    assert not collections.due(held=100)              # 10 < 100 / 4
    collections.note_ended(15)

    class Node:
        pass
    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert collections.tick(held=100) >= 2 and collections.ended == 0


def test_start_takes_the_oldest_generation_over_and_stop_gives_it_back():
    before = gc.get_threshold()
    collections = FullCollections()
    collections.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
        assert gc.get_freeze_count() > 0
    finally:
        collections.stop()
        gc.unfreeze()
    assert gc.get_threshold() == before

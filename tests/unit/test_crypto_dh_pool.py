"""Key pairs made ahead (crypto/dh.py KEY_PAIRS, daemon/dhpool.py): off by default, each
pair handed out once, refilled one at a time up to the capacity per group in use."""
from __future__ import annotations

import asyncio

import pytest

from responder.daemon import dhpool
from responder.ikev1.crypto import dh_group
from responder.ikev1.crypto.dh import KEY_PAIRS, KeyPairPool


def pinned(size: int) -> bytes:
    return b"\x42" * size


def value(pair) -> tuple[int, bytes]:
    return pair.private_value, pair.public_bytes


@pytest.fixture
def pool():
    yield KEY_PAIRS
    KEY_PAIRS.disable()


@pytest.mark.parametrize("number", [2, 14, 19])
def test_off_by_default_generate_uses_the_given_rng(number):
    group = dh_group(number)
    assert KEY_PAIRS.capacity == 0
    assert value(group.generate(pinned)) == value(group.fresh(pinned))


@pytest.mark.parametrize("number", [14, 19])
def test_a_pair_made_ahead_is_handed_out_once(pool, number):
    group = dh_group(number)
    pool.enable(2)
    first = group.generate(pinned)  # nothing stocked yet: computed now, group noted
    assert value(first) == value(group.fresh(pinned))
    assert pool.missing() == 2
    assert pool.refill_one() and pool.refill_one() and not pool.refill_one()
    handed = [group.generate(pinned), group.generate(pinned)]
    assert all(value(p) != value(first) and p.group is group for p in handed)
    assert handed[0].public_bytes != handed[1].public_bytes
    assert value(group.generate(pinned)) == value(group.fresh(pinned))  # stock used up
    peer = group.fresh()
    assert handed[0].compute_shared(peer.public_bytes) == peer.compute_shared(
        handed[0].public_bytes)


def test_refill_serves_the_least_stocked_group_first():
    pool = KeyPairPool()
    pool.enable(1)
    for number in (14, 19):
        assert pool.take(dh_group(number)) is None
    assert pool.refill_one() and pool.refill_one() and not pool.refill_one()
    assert pool.take(dh_group(14)) is not None and pool.take(dh_group(19)) is not None


def test_the_refill_task_stocks_the_pool_and_turns_it_off_when_cancelled(pool):
    group = dh_group(14)

    async def scenario() -> int:
        task = asyncio.ensure_future(dhpool.keep_key_pairs_ready(pool, capacity=3))
        await asyncio.sleep(0)
        group.generate()  # the first login of the group
        for _ in range(200):
            if not pool.missing():
                break
            await asyncio.sleep(0.01)
        missing = pool.missing()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return missing

    assert asyncio.run(scenario()) == 0
    assert pool.capacity == 0 and pool.take(group) is None

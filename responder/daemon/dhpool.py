"""Keeps the worker's Diffie-Hellman key pairs made ahead (responder/ikev1/crypto/dh.py
``KEY_PAIRS``), from the event loop, one pair per turn after a pause: the pairs are made
between datagrams, never while one is handled."""
from __future__ import annotations

import asyncio

from responder.ikev1.crypto.dh import KEY_PAIRS, KeyPairPool

#: pairs kept per group in use, and the pauses of the refill task
POOL_CAPACITY = 8
PAUSE_WHILE_MISSING = 0.005
PAUSE_WHEN_FULL = 0.1


async def keep_key_pairs_ready(pool: KeyPairPool = KEY_PAIRS,
                               capacity: int = POOL_CAPACITY) -> None:
    """Runs until cancelled; the pool is off again afterwards."""
    pool.enable(capacity)
    try:
        while True:
            made = pool.refill_one()
            await asyncio.sleep(PAUSE_WHILE_MISSING if made else PAUSE_WHEN_FULL)
    finally:
        pool.disable()

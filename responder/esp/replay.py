"""Anti-replay sliding window (RFC 4303 §3.4.3), 32-bit sequence numbers, no ESN.

The window is a Python int used as a bitmask: bit ``i`` set means sequence number
``highest - i`` has been received (and authenticated). Checking is separate from
updating because the RFC wants the cheap duplicate check *before* the ICV is
verified (to shed replayed floods cheaply) and the window moved only *after* the
ICV verified (so forged packets cannot advance it).
"""
from __future__ import annotations

from .errors import DropReason

DEFAULT_WINDOW_SIZE = 128
MAX_SEQUENCE = 0xFFFFFFFF


class ReplayWindow:
    """Receive window of ``size`` sequence numbers ending at the highest one seen."""

    __slots__ = ("size", "highest", "_bitmap", "_mask")

    def __init__(self, size: int = DEFAULT_WINDOW_SIZE) -> None:
        # RFC 4303 §3.4.3: a minimum window of 32 MUST be supported, 64 SHOULD be default.
        if size < 32:
            raise ValueError(f"replay window size must be at least 32, not {size}")
        self.size = size
        self.highest = 0
        self._bitmap = 0
        self._mask = (1 << size) - 1

    def check(self, seq: int) -> DropReason | None:
        """Return why ``seq`` must be dropped, or None if it may be processed."""
        if seq > self.highest:
            return None
        # Sequence number 0 is never sent (§3.3.3: the first packet has 1).
        if seq == 0:
            return DropReason.TOO_OLD
        offset = self.highest - seq
        if offset >= self.size:
            return DropReason.TOO_OLD
        if (self._bitmap >> offset) & 1:
            return DropReason.REPLAY
        return None

    def update(self, seq: int) -> None:
        """Mark ``seq`` as received; call only after its ICV verified and check() passed."""
        if seq > self.highest:
            shift = seq - self.highest
            self._bitmap = ((self._bitmap << shift) | 1) & self._mask
            self.highest = seq
        else:
            self._bitmap |= 1 << (self.highest - seq)

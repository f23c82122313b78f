"""Per-SA counters and lifetimes (sans-I/O: the caller passes ``now``).

Octets count the inner IPv4 packets (what the subscriber sent or received), which is
what RADIUS accounting reports and what IKEv1 "kilobytes" lifetimes measure
(RFC 2407 §4.5 SA Life Type/Duration). Drops are counted by :class:`DropReason`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from .errors import DropReason

DEFAULT_SOFT_LIFETIME_RATIO = 0.9


@dataclass
class SaCounters:
    packets: int = 0
    octets: int = 0
    drops: Counter[DropReason] = field(default_factory=Counter)

    def count_packet(self, octets: int) -> None:
        self.packets += 1
        self.octets += octets

    def count_drop(self, reason: DropReason) -> None:
        self.drops[reason] += 1

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "octets": self.octets,
            "drops": {reason.value: n for reason, n in self.drops.items()},
        }


class LifetimeState(Enum):
    ACTIVE = "active"
    SOFT_EXPIRED = "soft_expired"  # time to rekey; the SA still works
    HARD_EXPIRED = "hard_expired"  # the SA must not protect or accept packets any more


@dataclass(frozen=True)
class Lifetime:
    """Hard limits by bytes and seconds (None: unlimited) and a soft point before them.

    The soft point (default 90 % of each hard limit) is where the owner starts a
    rekey, so the new SA is in place before the old one stops working.
    """

    created_at: float
    hard_bytes: int | None = None
    hard_seconds: float | None = None
    soft_ratio: float = DEFAULT_SOFT_LIFETIME_RATIO

    def __post_init__(self) -> None:
        if not 0.0 < self.soft_ratio <= 1.0:
            raise ValueError(f"soft lifetime ratio must be in (0, 1], not {self.soft_ratio}")

    @property
    def soft_bytes(self) -> int | None:
        return None if self.hard_bytes is None else int(self.hard_bytes * self.soft_ratio)

    @property
    def soft_expires_at(self) -> float | None:
        return None if self.hard_seconds is None else self.created_at + self.hard_seconds * self.soft_ratio

    @property
    def hard_expires_at(self) -> float | None:
        return None if self.hard_seconds is None else self.created_at + self.hard_seconds

    def hard_expired(self, octets: int, now: float | None) -> bool:
        """True once either hard limit is reached; time is not checked when now is None."""
        if self.hard_bytes is not None and octets >= self.hard_bytes:
            return True
        expires_at = self.hard_expires_at
        return expires_at is not None and now is not None and now >= expires_at

    def state(self, octets: int, now: float) -> LifetimeState:
        if self.hard_expired(octets, now):
            return LifetimeState.HARD_EXPIRED
        soft_bytes, soft_at = self.soft_bytes, self.soft_expires_at
        if (soft_bytes is not None and octets >= soft_bytes) or (soft_at is not None and now >= soft_at):
            return LifetimeState.SOFT_EXPIRED
        return LifetimeState.ACTIVE

    def next_deadline(self, now: float) -> float | None:
        """The next time-based transition after ``now`` (for the adapter's timer), or None."""
        for moment in (self.soft_expires_at, self.hard_expires_at):
            if moment is not None and moment > now:
                return moment
        return None

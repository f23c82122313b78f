"""The two counted license pools of SPEC.md "Licensing".

Every dynamic subscriber holds one IPsec-tunnel license and one subscriber license.
:meth:`LicenseManager.acquire_both` is all-or-nothing: if either pool is exhausted,
nothing is taken and the refusal names the pool ("no subscriber license available
(8 of 8 in use)"). Each holder releases exactly once; a second release is a bug
elsewhere (the resource ledger should have made it impossible) and raises.
"""
from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Hashable

log = logging.getLogger(__name__)

TUNNEL = "IPsec tunnel"
SUBSCRIBER = "subscriber"


class LicenseError(Exception):
    """Base of the typed license errors."""


class LicenseRefused(LicenseError):
    """A pool is exhausted; nothing was taken. ``kind`` is :data:`TUNNEL` or
    :data:`SUBSCRIBER`; ``str(exc)`` is the reason for the log and the refusal counter."""

    def __init__(self, kind: str, in_use: int, size: int) -> None:
        self.kind = kind
        self.in_use = in_use
        self.size = size
        super().__init__(f"no {kind} license available ({in_use} of {size} in use)")


class LicenseReleaseError(LicenseError):
    """Released by a holder that holds none (double release or never acquired)."""


class LicenseHeldError(LicenseError):
    """Acquired twice by the same holder (a lifecycle bug, not a refusal)."""


class CountedPool:
    """``size`` licenses of one kind, and who holds them."""

    def __init__(self, kind: str, size: int) -> None:
        if size < 0:
            raise ValueError(f"{kind} license count must be >= 0, not {size}")
        self.kind = kind
        self.size = size
        self._holders: set[Hashable] = set()

    @property
    def in_use(self) -> int:
        return len(self._holders)

    @property
    def available(self) -> int:
        return self.size - self.in_use

    def check_available(self, holder: Hashable) -> None:
        if holder in self._holders:
            raise LicenseHeldError(f"{holder!r} already holds a {self.kind} license")
        if self.available <= 0:
            raise LicenseRefused(self.kind, self.in_use, self.size)

    def take(self, holder: Hashable) -> None:
        self.check_available(holder)
        self._holders.add(holder)

    def give_back(self, holder: Hashable) -> None:
        try:
            self._holders.remove(holder)
        except KeyError:
            raise LicenseReleaseError(
                f"{holder!r} released a {self.kind} license it does not hold") from None

    def holds(self, holder: Hashable) -> bool:
        return holder in self._holders


@dataclass(frozen=True)
class LicenseStats:
    kind: str
    size: int
    in_use: int


class LicenseManager:
    """Both pools plus counters of refused logins by reason."""

    def __init__(self, tunnel_licenses: int, subscriber_licenses: int) -> None:
        self.tunnel = CountedPool(TUNNEL, tunnel_licenses)
        self.subscriber = CountedPool(SUBSCRIBER, subscriber_licenses)
        self.refusals: collections.Counter[str] = collections.Counter()

    def acquire_both(self, subscriber_id: Hashable) -> None:
        """Take one license of each kind, or none: raises :class:`LicenseRefused`."""
        try:
            # Check both before taking either: nothing to undo on refusal.
            self.tunnel.check_available(subscriber_id)
            self.subscriber.check_available(subscriber_id)
        except LicenseRefused as refused:
            self.refusals[refused.kind] += 1
            log.warning("login of subscriber %s refused: %s", subscriber_id, refused)
            raise
        self.tunnel.take(subscriber_id)
        self.subscriber.take(subscriber_id)

    def release_both(self, subscriber_id: Hashable) -> None:
        """Return both licenses; raises :class:`LicenseReleaseError` on a second release."""
        holds_tunnel = self.tunnel.holds(subscriber_id)
        holds_subscriber = self.subscriber.holds(subscriber_id)
        if not (holds_tunnel and holds_subscriber):
            raise LicenseReleaseError(
                f"subscriber {subscriber_id!r} released licenses it does not hold "
                f"(tunnel: {holds_tunnel}, subscriber: {holds_subscriber})")
        self.tunnel.give_back(subscriber_id)
        self.subscriber.give_back(subscriber_id)

    def stats(self) -> list[LicenseStats]:
        return [LicenseStats(p.kind, p.size, p.in_use) for p in (self.tunnel, self.subscriber)]

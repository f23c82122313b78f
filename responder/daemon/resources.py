"""What the supervisor hands out and takes back, counted once for every worker: the two
license pools and the address pools (an address is unique per VR).

An `acquire` takes the licenses first, then the address (SPEC step 5); a refusal holds
nothing and is counted by reason (``show statistics``: refused). `release` returns both,
exactly once per key.
"""
from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass

from responder.config import build_license_manager, build_pool_manager
from responder.config.model import ResponderConfig
from responder.licenses import TUNNEL, LicenseRefused
from responder.pools import Lease, PoolError

log = logging.getLogger(__name__)

__all__ = ["Held", "Resources"]


@dataclass
class Held:
    """What one subscriber holds (released exactly once)."""

    worker: int
    lease: Lease


class Resources:
    def __init__(self, cfg: ResponderConfig) -> None:
        self.licenses = build_license_manager(cfg)
        self.pools = build_pool_manager(cfg)
        self.held: dict[str, Held] = {}
        self.refused: Counter[str] = Counter()

    def keys_of(self, worker: int) -> list[str]:
        return [key for key, held in self.held.items() if held.worker == worker]

    def acquire(self, cfg: ResponderConfig, worker: int, message: dict) -> dict:
        """Licenses, then the address in the VR AAA named; the worker's reply."""
        key = message["key"]
        if key in self.held:
            return {"ok": False, "kind": "duplicate", "reason": f"{key} already holds resources"}
        try:
            self.licenses.acquire_both(key)
        except LicenseRefused as refused:
            self.refused["tunnel-license" if refused.kind == TUNNEL else "subscriber-license"] += 1
            return {"ok": False, "kind": "license", "reason": str(refused)}
        vr = message.get("vr")
        if vr not in cfg.vrs:
            self.licenses.release_both(key)
            self.refused["unknown-vr"] += 1
            return {"ok": False, "kind": "vr", "reason": f"AAA named VR {vr!r}, which is not "
                                                         f"configured ({', '.join(cfg.vrs)})"}
        vr_pools = cfg.pools.get(vr, {})
        try:
            lease = self.pools.assign(vr, key, address=message.get("framed_ip"),
                                      pool=_pool_of(message, vr, vr_pools))
        except PoolError as exc:
            self.licenses.release_both(key)
            self.refused["address"] += 1
            log.warning("login of %s (%s) refused: %s", key, message.get("user"), exc)
            return {"ok": False, "kind": "address", "reason": str(exc)}
        self.held[key] = Held(worker, lease)
        netmask = pool_netmask(vr_pools.get(lease.pool)) if lease.pool else None
        return {"ok": True, "address": str(lease.address), "vr": vr, "pool": lease.pool,
                "netmask": netmask}

    def release(self, key: str) -> None:
        held = self.held.pop(key, None)
        if held is None:
            return
        try:
            self.pools.release(held.lease)
        except PoolError:
            log.exception("releasing the address of %s failed", key)
        try:
            self.licenses.release_both(key)
        except Exception:  # noqa: BLE001 - logged; the other releases went through
            log.exception("releasing the licenses of %s failed", key)

    # -- reload ---------------------------------------------------------------------------
    def apply(self, new: ResponderConfig, applied: list[str]) -> None:
        """License sizes, and each pool the reload plan names: added or grown."""
        self.licenses.tunnel.size = new.licenses.ipsec_tunnel
        self.licenses.subscriber.size = new.licenses.subscriber
        for path in applied:
            parts = path.split(".")
            if parts[0] != "pools":
                continue
            vrs = [parts[1]] if len(parts) >= 2 else list(new.pools)
            for vr in vrs:
                names = [parts[2]] if len(parts) >= 3 else list(new.pools.get(vr, {}))
                for name in names:
                    self.apply_pool(vr, name, new.pools.get(vr, {}).get(name))

    def apply_pool(self, vr: str, name: str, pool_cfg) -> None:
        """A new pool, or a grown one (same leases, more addresses)."""
        if pool_cfg is None:
            return
        try:
            vr_pools = self.pools.vr(vr)
        except PoolError:
            vr_pools = None
        old = vr_pools.pools.get(name) if vr_pools is not None else None
        if old is None:
            self.pools.add_pool(vr, name, list(pool_cfg.ranges), list(pool_cfg.exclude))
            log.info("reload: pool %s in %s added", name, vr)
            return
        try:
            grown = vr_pools.grow_pool(name, list(pool_cfg.ranges), list(pool_cfg.exclude))
        except PoolError:
            log.error("reload: pool %s in %s not grown: it would overlap another", name, vr)
            return
        log.info("reload: pool %s in %s now %d addresses (was %d)", name, vr, grown.size,
                 old.size)


def _pool_of(message: dict, vr: str, vr_pools: dict) -> str | None:
    """AAA's pool name, else the profile's (in the profile's VR), else the VR's first."""
    pool = message.get("pool")
    if not pool and vr == message.get("profile_vr"):
        pool = message.get("profile_pool")
    return pool or next(iter(vr_pools), None)


def pool_netmask(pool_cfg) -> str | None:
    """The netmask of a pool given as one prefix (Mode-Config INTERNAL_IP4_NETMASK)."""
    if pool_cfg is None or len(pool_cfg.ranges) != 1 or "/" not in pool_cfg.ranges[0]:
        return None
    return str(ipaddress.IPv4Network(pool_cfg.ranges[0]).netmask)

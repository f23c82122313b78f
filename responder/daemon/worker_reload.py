"""A worker's configuration-made parts, built from the supervisor's snapshot
(responder/config/snapshot.py) at start, and built again from a new snapshot at a reload.

At a reload (``{"op": "reload", "snapshot": ..., "summary": ...}`` from the supervisor,
which already validated the file and held back what needs a restart) new exchanges and
logins get:

=====================  =====================================================================
what                   where it goes
=====================  =====================================================================
IKE policy, proposals  the engine's ``policy`` (PSKs, rules, timers, limits)
phase 2 fallback       the ``Phase2Gate`` (Quick Modes of SAs without a subscriber)
Xauth / Mode-Config    the Transaction task's defaults (``transaction_policy``)
local users, RADIUS,   a new ``Authenticator``; the previous RADIUS client is closed
domain maps            :data:`OLD_RADIUS_GRACE` seconds later (logins may still wait for it)
profiles, VRs          ``Orchestrator.apply_config`` (limits, timers, ESP proposals, grace)
logging                level and format
=====================  =====================================================================

Logged-in subscribers keep what they logged in with.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from responder.aaa.base import Authenticator, Registry
from responder.aaa.local import LocalBackend
from responder.config.snapshot import (WorkerConfig, build_domain_maps, build_local_users,
                                       build_nas_identity, build_radius_groups,
                                       build_responder_policy, radius_default_group,
                                       worker_config)
from responder.ikev1.exchanges.transaction import TransactionPolicy

from .logsetup import setup_logging

log = logging.getLogger(__name__)

__all__ = ["transaction_policy", "build_authenticator", "WorkerReload", "OLD_RADIUS_GRACE"]

#: seconds a replaced RADIUS client stays open for the requests still in flight on it
OLD_RADIUS_GRACE = 60.0


def transaction_policy(cfg) -> TransactionPolicy:
    """The worker's Transaction policy: the defaults until the subscriber's profile is
    known (the first Xauth REQUEST leaves with phase 1): the most patient of the
    profiles' Xauth settings, push if any profile wants it. The orchestrator then sets
    the profile's own values per SA (`TransactionTask.configure`)."""
    profiles = cfg.tunnel_profiles
    return TransactionPolicy(
        xauth_max_attempts=max(p.xauth.max_attempts for p in profiles),
        xauth_timeout=max(p.xauth.timeout for p in profiles),
        modecfg_push=any(p.mode_config.mode == "push" for p in profiles),
        # pull answers only what was asked; a profile's
        # mode_config.send_unrequested changes that per SA (orchestrator)
        answer_unrequested=False,
        application_version="dynipsec",
    )


def build_authenticator(cfg) -> tuple[Authenticator, Any]:
    """Local users always; the RADIUS back end (and its client, returned second, None
    without RADIUS) only when server groups are configured: pyrad is imported then."""
    registry = Registry()
    registry.register(LocalBackend(build_local_users(cfg)))
    radius = None
    if cfg.aaa.radius is not None:
        from responder.aaa.radius import RadiusBackend, RadiusClient

        radius = RadiusClient(build_radius_groups(cfg), default_group=radius_default_group(cfg))
        registry.register(RadiusBackend(radius, build_nas_identity(cfg)))
    return Authenticator(registry, cfg.aaa.default_method, build_domain_maps(cfg)), radius


class WorkerReload:
    """Applies a new snapshot to the running worker's parts. `radius`: the RADIUS
    client in use (closed by :meth:`close`, at the worker's exit)."""

    def __init__(self, worker_index: int, *, responder, gate, orchestrator,
                 radius=None) -> None:
        self.index = worker_index
        self.responder = responder
        self.gate = gate
        self.orchestrator = orchestrator
        self.radius = radius
        self.cfg: WorkerConfig | None = None

    def apply(self, snapshot: dict[str, Any], summary: str = "") -> dict[str, Any]:
        cfg = worker_config(snapshot)
        policy = build_responder_policy(cfg)
        authenticator, radius = build_authenticator(cfg)
        self.responder.policy = policy
        self.gate.fallback = policy.dynamic_esp
        self.orchestrator.task.policy = transaction_policy(cfg)
        self.orchestrator.apply_config(cfg, authenticator)
        self._replace_radius(radius)
        setup_logging(cfg.logging.level, cfg.logging.format, f"w{self.index}")
        self.cfg = cfg
        log.info("worker %d: configuration reloaded: %s", self.index, summary or "applied")
        return {"ok": True}

    def _replace_radius(self, radius) -> None:
        old, self.radius = self.radius, radius
        if old is not None:
            asyncio.get_running_loop().call_later(OLD_RADIUS_GRACE, old.close)

    def close(self) -> None:
        if self.radius is not None:
            self.radius.close()

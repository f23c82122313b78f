"""Gateways the lab can run in the router node: the reference strongSwan one, and dynipsec.

`make_gateway(kind, ...)` returns an object with the interface of
lab.gateways.base.Gateway: start(), stop(), ready, subscribers().
"""
from __future__ import annotations

from pathlib import Path

from clients.process import PidTracker, ProcessHost
from lab.gateways.base import Gateway, GatewayError, GatewaySubscriber
from lab.gateways.plan import AccessPlan, VrGroup, default_plan, plan_from_topology

GATEWAY_KINDS = ("strongswan", "dynipsec")

__all__ = ["AccessPlan", "Gateway", "GatewayError", "GatewaySubscriber", "VrGroup", "GATEWAY_KINDS",
           "default_plan", "make_gateway", "plan_from_topology"]


def make_gateway(kind: str, node: ProcessHost, workdir: Path, plan: AccessPlan,
                 tracker: PidTracker | None = None) -> Gateway:
    if kind == "strongswan":
        from lab.gateways.strongswan import StrongSwanGateway
        return StrongSwanGateway(node, workdir, plan, tracker)
    if kind == "dynipsec":
        try:
            from lab.gateways.dynipsec import DynipsecGateway  # written with the responder
        except ImportError:
            raise GatewayError(
                "the dynipsec gateway cannot log subscribers in yet (no "
                "lab/gateways/dynipsec.py); use --gateway strongswan") from None
        return DynipsecGateway(node, workdir, plan, tracker)
    raise GatewayError(f"unknown gateway kind {kind!r}; choose one of {', '.join(GATEWAY_KINDS)}")
